"""Rate-limit headers -> a ``RateLimitSnapshot``, by the manifest's ``rate_limit_headers``.

Providers name and format these headers differently: OpenAI and Groq send reset times as
durations (``12ms``, ``6m0s``, ``2m59.56s``), Anthropic as RFC 3339 timestamps. The manifest
maps the standard names (``requests_limit``, ``requests_remaining``, ``requests_reset``,
``tokens_*``, ``input_tokens_*``, ``output_tokens_*``, ``retry_after``) to header names;
this module reads and normalizes them (resets become seconds from now).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime

import attrs

from ._classify import parse_retry_after
from ._types import RateLimitSnapshot

__all__ = ["RateLimitSnapshot", "parse_duration_text", "parse_rate_limits"]


_FIELDS = frozenset(a.name for a in attrs.fields(RateLimitSnapshot))
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_text(text: str) -> float | None:
    """``"12ms"``, ``"1s"``, ``"6m0s"``, ``"2m59.56s"``, ``"30"`` -> seconds (None if not one)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if 0 <= value < float("inf") else None
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos else None


def _reset_seconds(text: str, now: float) -> float | None:
    seconds = parse_duration_text(text)
    if seconds is not None:
        return seconds
    try:  # an RFC 3339 timestamp (Anthropic)
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_rate_limits(
    names: Mapping[str, str], headers: Mapping[str, str], *, now: float | None = None
) -> RateLimitSnapshot | None:
    """Read the headers the manifest names; None when the response carries none of them."""
    current = time.time() if now is None else now
    values: dict[str, int | float] = {}
    for field, header in names.items():
        if field not in _FIELDS or field == "retry_after":
            continue
        raw = headers.get(header)
        if raw is None:
            continue
        parsed = _reset_seconds(raw, current) if field.endswith("_reset") else _int(raw)
        if parsed is not None:
            values[field] = parsed
    retry_after = parse_retry_after(headers, now=current)
    if retry_after is not None:
        values["retry_after"] = retry_after
    return RateLimitSnapshot(**values) if values else None  # type: ignore[arg-type]
