"""Error classification: (HTTP status, headers, body) -> an AI-Protocol error kind.

The manifest says where a provider puts its error code, type and message, and how codes and
statuses map onto the standard kinds; this module applies those tables in a fixed order:

1. a context-window overflow (code ``context_length_exceeded``, or a 400/413 whose message
   says so) is ``request_too_large`` and flagged ``context_length``;
2. the first of the error's codes found in ``by_error_code``, then in the standard code
   table (``insufficient_quota`` is ``quota_exhausted`` whatever the manifest declares);
3. the HTTP status (for an error inside a 200 stream: the status the error body carries)
   through ``by_http_status``, then the standard table;
4. the error ``type`` through ``by_error_type`` (errors inside a 200 stream);
5. ``server_error``.

The HTTP status wins over a body ``type`` that disagrees with it (a 503 that says
``invalid_request_error`` is overloaded). ``retryable`` follows the kind, unless the
provider's ``x-should-retry`` header says otherwise.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import RETRYABLE_KINDS, RemoteError, error_class_for_kind, standard_error
from ._rules import FieldSpec

if TYPE_CHECKING:
    from ._types import ChatResponse, RateLimitSnapshot

__all__ = [
    "DEFAULT_ERROR_RULES",
    "ErrorInfo",
    "ErrorRules",
    "classify_error",
    "error_from_info",
    "parse_retry_after",
]

#: the standard status table, used for any status a manifest does not map.
STANDARD_STATUS_KINDS: Mapping[int, str] = {
    400: "invalid_request",
    401: "authentication",
    403: "permission_denied",
    404: "not_found",
    408: "timeout",
    413: "invalid_request",  # only a context overflow (rule 1) is request_too_large
    422: "invalid_request",
    429: "rate_limited",
    500: "server_error",
    502: "server_error",
    503: "overloaded",
    504: "timeout",
    529: "overloaded",
}

#: the standard code table, used for a code a manifest does not map: codes whose meaning
#: the HTTP status does not carry (OpenAI sends an exhausted quota as a 429, which alone
#: would read as a retryable rate limit; the spec's own openai.yaml maps it the same way).
STANDARD_CODE_KINDS: Mapping[str, str] = {
    "insufficient_quota": "quota_exhausted",
}

_CONTEXT_PATTERNS = (
    r"context[ _-]?(length|window)",
    r"maximum (context )?length",
    r"prompt is too long",
    r"too many (input )?tokens",
)


# Where most providers put an error's parts; manifests override them under `paths`.
_CODE = FieldSpec.compile("$.error.code")
_TYPE = FieldSpec.compile("$.error.type")
_MESSAGE = FieldSpec.compile(["$.error.message", "$.message", "$.error"])
_STATUS = FieldSpec.compile(["$.error.status_code", "$.status_code"])


@attrs.frozen
class ErrorRules:
    """A manifest's ``error_classification``, compiled."""

    by_http_status: Mapping[int, str] = attrs.field(factory=dict)
    by_error_code: Mapping[str, str] = attrs.field(factory=dict)
    by_error_type: Mapping[str, str] = attrs.field(factory=dict)
    code: FieldSpec = _CODE
    type: FieldSpec = _TYPE
    message: FieldSpec = _MESSAGE
    status: FieldSpec = _STATUS
    retry_after: FieldSpec | None = None
    context_patterns: tuple[re.Pattern[str], ...] = tuple(
        re.compile(p, re.IGNORECASE) for p in _CONTEXT_PATTERNS
    )


DEFAULT_ERROR_RULES = ErrorRules()


@attrs.frozen
class ErrorInfo:
    """The classification of one provider error."""

    kind: str
    message: str
    status: int | None
    code: str | None = None
    type: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    context_length: bool = False

    @property
    def error_code(self) -> str:
        """The AI-Protocol standard code of the kind (``E1001``...)."""
        return standard_error(self.kind)[0]

    @property
    def fallbackable(self) -> bool:
        return standard_error(self.kind)[1]


def _codes(rules: ErrorRules, body: Any) -> list[str]:
    out: list[str] = []
    for sel in rules.code.selectors:
        for value in sel.all(body):
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                out.append(str(value))
    return out


def _int_status(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def classify_error(
    rules: ErrorRules,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    *,
    mid_stream: bool = False,
    now: float | None = None,
) -> ErrorInfo:
    """Classify an error response (or an error event inside a stream, ``mid_stream=True``)."""
    codes = _codes(rules, body)
    err_type = rules.type.first(body)
    err_type = err_type if isinstance(err_type, str) else None
    message = rules.message.first(body)
    if not isinstance(message, str) or not message.strip():
        message = body.strip() if isinstance(body, str) and body.strip() else f"HTTP {status}"
    if len(message) > 500:  # an HTML error page, say: enough to recognise it
        message = message[:500] + "..."
    effective = status
    if mid_stream or status < 400:
        effective = _int_status(rules.status.first(body)) or 0

    kind: str | None = None
    context_length = False
    if "context_length_exceeded" in codes or (
        effective in (400, 413) and any(p.search(message) for p in rules.context_patterns)
    ):
        kind, context_length = "request_too_large", True
    if kind is None:
        kind = next((rules.by_error_code[c] for c in codes if c in rules.by_error_code), None)
    if kind is None:
        kind = next((STANDARD_CODE_KINDS[c] for c in codes if c in STANDARD_CODE_KINDS), None)
    if kind is None and effective >= 400:
        kind = rules.by_http_status.get(effective) or STANDARD_STATUS_KINDS.get(effective)
        if kind is None:
            kind = "server_error" if effective >= 500 else "invalid_request"
    if kind is None and err_type is not None:
        kind = rules.by_error_type.get(err_type)
    if kind is None:
        kind = "server_error"

    retryable = kind in RETRYABLE_KINDS
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"

    retry_after = parse_retry_after(headers, now=now)
    if retry_after is None and rules.retry_after is not None:
        retry_after = parse_duration(rules.retry_after.first(body))
    return ErrorInfo(
        kind=kind,
        message=message,
        status=status,
        code=codes[0] if codes else None,
        type=err_type,
        retryable=retryable,
        retry_after=retry_after,
        context_length=context_length,
    )


def error_from_info(
    info: ErrorInfo,
    *,
    body: Any = None,
    request_id: str | None = None,
    partial: ChatResponse | None = None,
    mid_stream: bool = False,
    provider: str | None = None,
    model: str | None = None,
    rate_limits: RateLimitSnapshot | None = None,
) -> RemoteError:
    """The exception for a classified provider error: the ``RemoteError`` subclass of its
    kind, complete with where it came from. The one place an ``ErrorInfo`` becomes an
    error (HTTP error statuses, error events in a stream or a 200 body, the test doubles).

    ``mid_stream`` marks an error event received inside a stream (its message says so);
    ``partial`` is what the stream delivered before it.

    >>> info = ErrorInfo(kind="rate_limited", message="slow down", status=429, retryable=True)
    >>> error = error_from_info(info, provider="openai", model="gpt-4o")
    >>> type(error).__name__, str(error)
    ('RateLimitedError', 'rate_limited: slow down (status=429, openai/gpt-4o)')
    """
    cls = error_class_for_kind(info.kind, context_length=info.context_length)
    where = " (in the stream)" if mid_stream else ""
    return cls(
        f"{info.kind}{where}: {info.message}",
        provider=provider,
        model=model,
        status_code=info.status,
        request_id=request_id,
        retryable=info.retryable,
        retry_after=info.retry_after,
        code=info.code,
        response=partial,
        body=body,
        rate_limits=rate_limits,
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float | None:
    """``"42s"``, ``"1.5s"``, ``"500ms"``, ``3`` -> seconds; anything else -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms)
        except ValueError:
            value = -1.0
        if 0 <= value < math.inf:
            return value / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, seconds)
    return seconds if 0 <= seconds < math.inf else None
