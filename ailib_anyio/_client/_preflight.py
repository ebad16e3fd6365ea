"""Preflight: everything that can be known about a request before any I/O.

``PreflightChecker(client).issues(request)`` lists the problems; ``check(request)`` raises
the first as its typed error. The client runs the request checks (parameters and the
model's capabilities) on every request before it is encoded; the circuit and rate-limit
checks happen anyway when the request is admitted, so the checker only peeks at them here,
for callers that want to know before they try.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._core._errors import (
    AiLibError,
    CircuitOpenError,
    ContextLengthExceededError,
    InvalidRequestError,
    RateLimitedError,
)
from .._core._types import ChatRequest
from .._protocol._models import ProviderManifest

if TYPE_CHECKING:
    from ._chat import ChatBuilder
    from ._client import Client

__all__ = ["PreflightChecker", "PreflightIssue", "preflight_error", "request_problems"]

#: A lower bound of the characters a token holds: no tokenizer in use packs more than
#: about 6 non-space characters into an average token, so a prompt with more than
#: ``6 * context_window`` of them is over the window with any of them. (English runs
#: about 4 characters a token; whitespace runs can be one token, so they are not counted.)
CHARS_PER_TOKEN_BOUND = 6

# (request needs it, the model_capabilities flag that says whether the model can)
_NEEDS = (
    ("tools", "tool_call"),
    ("images", "vision"),
    ("structured output", "structured_output"),
)


@attrs.frozen
class PreflightIssue:
    """One reason a request would fail: ``check`` is ``"parameter"``, ``"capability"``,
    ``"context_length"``, ``"circuit"`` or ``"rate_limit"``; ``error`` is what sending it
    would raise."""

    check: str
    message: str
    error: AiLibError


def _parameter_problems(
    manifest: ProviderManifest, model_id: str, request: ChatRequest
) -> Iterator[str]:
    for name in ("temperature", "top_p", "max_tokens"):
        value = getattr(request, name)
        spec = manifest.parameters.get(name)
        if value is None or spec is None:
            continue
        low, high = spec.range if spec.range is not None else (spec.min, spec.max)
        if (low is not None and value < low) or (high is not None and value > high):
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            yield f"{name}={value!r} is outside the range [{lo}, {hi}] accepted by {manifest.id}"
    info = manifest.model_info(model_id)
    if (
        request.max_tokens is not None
        and info is not None
        and info.max_output_tokens is not None
        and request.max_tokens > info.max_output_tokens
    ):
        yield (
            f"max_tokens={request.max_tokens} exceeds {model_id}'s maximum output of "
            f"{info.max_output_tokens} tokens"
        )


def _needs(request: ChatRequest) -> set[str]:
    needs = set()
    if request.tools:
        needs.add("tools")
    if any(
        isinstance(m.content, Sequence)
        and not isinstance(m.content, str)
        and any(b.type == "image" for b in m.content)
        for m in request.messages
    ):
        needs.add("images")
    if request.response_format and request.response_format.get("type") == "json_schema":
        needs.add("structured output")
    return needs


def _capability_problems(
    manifest: ProviderManifest, model_id: str, request: ChatRequest
) -> Iterator[str]:
    info = manifest.model_info(model_id)
    if info is None:
        return
    needs = _needs(request)
    for need, flag in _NEEDS:
        if need in needs and info.model_capabilities.get(flag) is False:
            yield f"{model_id} does not support {need} (its manifest says {flag}: false)"


def _texts(request: ChatRequest) -> Iterator[str]:
    """Every piece of text the request sends the model (the lower-bound prompt)."""
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            yield content
        elif content is not None:
            for block in content:
                if block.type == "text" and block.text:
                    yield block.text
        for call in message.tool_calls:
            yield call.raw_arguments
        if message.reasoning:
            yield message.reasoning


def _non_space(text: str) -> int:
    return len(text) - sum(text.count(c) for c in " \t\n\r")


def _context_problems(
    manifest: ProviderManifest, model_id: str, request: ChatRequest
) -> Iterator[str]:
    info = manifest.model_info(model_id)
    window = info.context_window if info is not None else None
    if window is None:
        return
    bound = CHARS_PER_TOKEN_BOUND * window
    texts = list(_texts(request))
    if sum(map(len, texts)) <= bound:  # the common case: no need to look closer
        return
    chars = sum(map(_non_space, texts))
    if chars > bound:
        yield (
            f"the prompt is at least {chars // CHARS_PER_TOKEN_BOUND} tokens ({chars} "
            f"characters besides whitespace), more than {model_id}'s context window of "
            f"{window} tokens"
        )


def request_problems(
    manifest: ProviderManifest, model_id: str, request: ChatRequest
) -> list[tuple[str, str]]:
    """``(check, message)`` for every parameter, capability or context-length problem of
    ``request``: what the manifest says the provider would refuse."""
    return [
        *(("parameter", m) for m in _parameter_problems(manifest, model_id, request)),
        *(("capability", m) for m in _capability_problems(manifest, model_id, request)),
        *(("context_length", m) for m in _context_problems(manifest, model_id, request)),
    ]


def preflight_error(check: str, message: str, **context: Any) -> InvalidRequestError:
    """The error a ``request_problems`` entry raises: never a ``RemoteError``, since
    nothing was sent."""
    if check == "context_length":
        return ContextLengthExceededError(message, **context)
    return InvalidRequestError(message, **context)


class PreflightChecker:
    """Gate a request before any I/O: parameter ranges and the model's capabilities from
    the manifest, the circuit breaker's state and the rate limiter's wait::

        checker = PreflightChecker(client)
        request = client.chat().user("hi").temperature(5.0)  # beyond the manifest's range
        for issue in checker.issues(request):
            print(issue.check, issue.message)
        try:
            checker.check(request)  # raises the first issue's error
        except InvalidRequestError as error:
            print(error)

    Call it inside the client's block (the circuit and limiter checks read the clock).
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def issues(self, request: ChatRequest | ChatBuilder) -> list[PreflightIssue]:
        """Every problem found, in the order: parameters, capabilities, circuit, limiter."""
        client = self._client
        if not isinstance(request, ChatRequest):
            request = request.build()
        found = [
            PreflightIssue(
                check, message, preflight_error(check, message, **client.primary.context())
            )
            for check, message in request_problems(client.manifest, client.model_id, request)
        ]
        if not client.primary.chats:  # no chat at all: that comes first
            refusal = client.primary.chat_refusal()
            found.insert(0, PreflightIssue("capability", refusal.message, refusal))
        guard = client.primary.guard
        now = anyio.current_time()
        if guard.breaker is not None and guard.breaker.state(now).value == "open":
            snapshot = guard.breaker.snapshot(now)
            message = f"the circuit of {guard.name} is open for {snapshot.retry_in:g}s more"
            found.append(
                PreflightIssue(
                    "circuit",
                    message,
                    CircuitOpenError(
                        message, retry_after=snapshot.retry_in, **client.primary.context()
                    ),
                )
            )
        limiter = guard.limiter
        if limiter is not None and limiter.config.max_wait is not None:
            blocked = limiter.stats().blocked_for
            if blocked > limiter.config.max_wait:
                message = (
                    f"the rate limiter is blocked for {blocked:g}s, more than max_wait"
                    f" ({limiter.config.max_wait:g}s)"
                )
                limited = RateLimitedError(
                    message, retryable=False, retry_after=blocked, **client.primary.context()
                )
                found.append(PreflightIssue("rate_limit", message, limited))
        return found

    def check(self, request: ChatRequest | ChatBuilder) -> None:
        """Raise the first issue's error; return when the request may go."""
        found = self.issues(request)
        if found:
            raise found[0].error
