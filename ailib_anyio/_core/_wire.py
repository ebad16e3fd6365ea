"""Values that become part of the request line or the headers, checked before any I/O.

- :func:`expand_path` fills a manifest's endpoint path template (``/models/{model}:...``):
  every value is one path segment, percent-encoded; a value that would leave its segment
  (``/``, ``\\``, ``.``/``..``), add a query or fragment (``?``, ``#``) or holds a control
  character is refused with ``ConfigurationError``. A template may only name known
  placeholders.
- :func:`check_model_id`: a model id never holds a control character, wherever it goes
  (it is shown in errors and logs); in a JSON body it is otherwise sent as given.
- :func:`check_headers`: header names are HTTP tokens, values hold no control character
  but tab; the error names the header and never shows the value (it may be a key).
- :data:`DEFAULT_MAX_RESPONSE_BYTES`: the largest decoded body ``execute()`` accepts by
  default (a setting of the client, enforced by the transport).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from ._errors import ConfigurationError

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "check_headers", "check_model_id", "expand_path"]

#: The largest decoded (decompressed) body ``execute()`` accepts by default.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
#: RFC 9110 token: the characters a header name may use.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Characters left as they are in a path segment (RFC 3986 pchar minus '%', which is
#: encoded so an id is never decoded twice).
_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"


def check_model_id(model_id: str, *, provider: str | None = None) -> None:
    """``ConfigurationError`` when ``model_id`` holds a control character (the error's
    ``model`` stays unset: its ``str`` would show the id unescaped)."""
    if _CONTROL.search(model_id):
        raise ConfigurationError(
            f"model id {model_id!r} contains a control character; model ids never do",
            provider=provider,
        )


def _segment_problem(value: str) -> str | None:
    if not value:
        return "it is empty"
    if _CONTROL.search(value):
        return "it contains a control character"
    for char, what in (("/", "'/'"), ("\\", "'\\'"), ("?", "'?'"), ("#", "'#'")):
        if char in value:
            return f"it contains {what}"
    if value in (".", ".."):
        return f"{value!r} is a relative path segment"
    return None


def expand_path(
    template: str, values: Mapping[str, str], *, provider: str, model: str | None = None
) -> str:
    """``template`` with each ``{name}`` replaced by ``values[name]`` as one percent-encoded
    path segment (see the module docstring); ``provider`` and ``model`` are the errors'."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join(f"{{{k}}}" for k in values) or "none"
            raise ConfigurationError(
                f"endpoint path {template!r} of provider {provider!r} names an unknown"
                f" placeholder {{{name}}} (known: {known})",
                provider=provider,
                model=model,
            )
        value = values[name]
        problem = _segment_problem(value)
        if problem is not None:
            raise ConfigurationError(
                f"{name} {value!r} cannot go into the URL path {template!r} of provider"
                f" {provider!r}: {problem}, and it must be exactly one path segment",
                provider=provider,
                model=model,
            )
        return quote(value, safe=_SEGMENT_SAFE)

    return _PLACEHOLDER.sub(fill, template)


def check_headers(headers: Mapping[str, str], *, argument: str = "headers") -> dict[str, str]:
    """A copy of ``headers`` once every name is an HTTP token and every value a string
    without control characters (tab aside); ``ConfigurationError`` naming the header (the
    value is never shown) otherwise."""
    if not isinstance(headers, Mapping):
        raise ConfigurationError(
            f"{argument} must be a mapping of header names to values, got {type(headers).__name__}"
        )
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            shown = repr(name) if isinstance(name, str) else type(name).__name__
            raise ConfigurationError(
                f"{argument}: {shown} is not a valid header name (letters, digits and"
                " !#$%&'*+-.^_`|~ only)"
            )
        if not isinstance(value, str):
            raise ConfigurationError(
                f"{argument}: the value of header {name!r} must be a string, got"
                f" {type(value).__name__}"
            )
        if _CONTROL.search(value.replace("\t", " ")):
            raise ConfigurationError(
                f"{argument}: the value of header {name!r} contains a control character"
                " (CR, LF, NUL or similar), which no HTTP header can carry"
            )
        checked[name] = value
    return checked
