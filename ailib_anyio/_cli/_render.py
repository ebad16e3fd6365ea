"""What the command line prints: responses and errors as JSON, prices and counts as text.

Plain functions over the library's typed results, so ``chat --json``, each line ``batch``
writes and the ``models`` table read the same fields the same way. Money is a decimal
string (``"0.000125"``): the manifests' prices are exact decimals and stay exact.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .._core._cost import CostEstimate
from .._core._errors import AiLibError, ConfigurationError, InvalidRequestError, ProtocolError
from .._core._errors import RemoteError as _RemoteError
from .._core._types import ChatResponse, Usage
from .._services._routing import ModelInfo

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "count",
    "error_dict",
    "exit_code_for",
    "model_dict",
    "money",
    "response_dict",
]

#: The exit codes scripts can rely on.
EXIT_OK = 0
EXIT_FAILURE = 1  # the provider answered with an error, or the run failed
EXIT_USAGE = 2  # bad arguments, bad input, bad configuration (a missing key...)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


def exit_code_for(error: BaseException) -> int:
    """2 for a problem found before any request went out (configuration, a manifest, a
    request the library refuses); 1 for everything else (what a provider or the network
    did)."""
    if isinstance(error, (ConfigurationError, ProtocolError)):
        return EXIT_USAGE
    if isinstance(error, InvalidRequestError) and not isinstance(error, _RemoteError):
        return EXIT_USAGE
    return EXIT_FAILURE


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _usage(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _cost(cost: CostEstimate | None) -> dict[str, Any] | None:
    if cost is None:
        return None
    return {
        "total": _decimal(cost.total_cost),
        "input": _decimal(cost.input_cost),
        "cached_input": _decimal(cost.cached_input_cost),
        "output": _decimal(cost.output_cost),
        "reasoning": _decimal(cost.reasoning_cost),
        "currency": cost.currency,
    }


def response_dict(response: ChatResponse) -> dict[str, Any]:
    """A response as plain JSON values: content, reasoning, tool calls, finish reason
    (normalized and raw), usage, cost (decimal strings), model and ids."""
    finish = response.finish_reason
    return {
        "model": response.model,
        "content": response.content,
        "reasoning": response.reasoning or None,
        "refusal": response.refusal,
        "tool_calls": [
            {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}
            for call in response.tool_calls
        ],
        "finish_reason": (
            None if finish is None else {"normalized": finish.normalized, "raw": finish.raw}
        ),
        "usage": _usage(response.usage),
        "cost": _cost(response.cost),
        "request_id": response.request_id,
        "response_id": response.response_id,
    }


def error_dict(error: BaseException) -> dict[str, Any]:
    """An error as plain JSON values: its type and message, and for the library's own
    errors the standard kind, HTTP status, retryability and request id."""
    found: dict[str, Any] = {"type": type(error).__name__}
    if isinstance(error, AiLibError):
        found.update(
            message=error.message,
            kind=error.kind,
            code=error.code,
            status_code=error.status_code,
            retryable=error.retryable,
            request_id=error.request_id,
        )
    else:
        found["message"] = str(error)
    return found


_CENT = Decimal("0.01")


def money(value: Decimal | None, currency: str = "USD") -> str:
    """``Decimal("2.5")`` -> ``"$2.50"``: at least two decimals, never rounded away;
    ``"—"`` for no price; a currency other than USD is written after the amount."""
    if value is None:
        return "—"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(_CENT)
    text = format(value, "f")
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def count(value: int | None) -> str:
    """``128000`` -> ``"128,000"``; ``"—"`` when the manifest declares none."""
    return "—" if value is None else f"{value:,}"


def model_dict(model: ModelInfo) -> dict[str, Any]:
    """A catalogue entry as plain JSON values (prices per 1M tokens, decimal strings)."""
    pricing = model.pricing
    return {
        "model": model.full_id,
        "provider": model.provider,
        "id": model.id,
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "input_per_1m": None if pricing is None else _decimal(pricing.input_per_1m),
        "output_per_1m": None if pricing is None else _decimal(pricing.output_per_1m),
        "cached_input_per_1m": None if pricing is None else _decimal(pricing.cached_input_per_1m),
        "currency": None if pricing is None else pricing.currency,
        "capabilities": sorted(model.capabilities),
    }
