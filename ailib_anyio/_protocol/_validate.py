"""Checks of the caller's arguments, run where they are passed, before any I/O.

Each returns nothing or raises ``ConfigurationError`` naming the argument and where in it
the problem is (``extra_body["options"][0]``), so a bad value never reaches the wire or
fails deep inside the encoder or the HTTP library. The ``context`` keywords some take
(``provider``, ``model``) go into the error they raise.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .._core._errors import ConfigurationError
from .._core._jsoncheck import check_json, json_problem
from .._core._types import ChatRequest, Message, ToolDefinition

__all__ = [
    "check_base_url",
    "check_json",
    "check_mapping",
    "check_number",
    "check_request",
    "check_response_format",
    "check_tool_choice",
    "json_problem",
]

_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def check_mapping(name: str, value: Any, **context: Any) -> None:
    """Raise unless ``value`` is a JSON object (a mapping of JSON values)."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{name} must be a mapping (a JSON object), got {value!r}", **context
        )
    check_json(name, value, **context)


def check_number(name: str, value: Any, **context: Any) -> float:
    """``value`` as a float, if it is a finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}", **context)
    return float(value)


def check_base_url(url: Any, name: str = "base_url") -> str:
    """``url`` if it is an absolute http(s) URL with a host and a valid port; ``name`` is
    what the error calls it (the argument, or the variable it came from)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"{name} must be a string, got {type(url).__name__}")
    if _CONTROL_OR_SPACE.search(url):
        raise ConfigurationError(
            f"{name} must not contain whitespace or control characters, got {url!r}"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not a valid URL ({exc}), got {url!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigurationError(f"{name} must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ConfigurationError(f"{name} has no host, got {url!r}")
    if port == 0:
        raise ConfigurationError(f"{name} port must be 1-65535, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name} must not have a query or fragment, got {url!r}")
    return url


def check_response_format(value: Any, **context: Any) -> None:
    """An OpenAI-style ``response_format``: a JSON object with a string ``type``."""
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise ConfigurationError(
            'response_format must be a mapping with a "type", such as '
            f'{{"type": "json_object"}}, got {value!r}',
            **context,
        )
    check_json("response_format", value, **context)


def check_tool_choice(choice: Any, tools: Sequence[ToolDefinition], **context: Any) -> None:
    """``auto``, ``none``, ``required`` or the name of one of ``tools``."""
    if not isinstance(choice, str):
        raise ConfigurationError(f"tool_choice must be a string, got {choice!r}", **context)
    if choice in ("auto", "none", "required"):
        return
    names = [tool.name for tool in tools]
    if choice not in names:
        known = ", ".join(repr(n) for n in names) if names else "none are set"
        raise ConfigurationError(
            f"tool_choice {choice!r} names no tool of the request (tools: {known})", **context
        )


def check_request(request: ChatRequest, **context: Any) -> None:
    """The checks of every builder method, for a ``ChatRequest`` made by hand."""
    if not request.messages:
        raise ConfigurationError("a chat request needs at least one message", **context)
    for i, message in enumerate(request.messages):
        if not isinstance(message, Message):
            raise ConfigurationError(f"messages[{i}] must be a Message, got {message!r}", **context)
    for name in ("temperature", "top_p"):
        value = getattr(request, name)
        if value is not None:
            check_number(name, value, **context)
    max_tokens = request.max_tokens
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ConfigurationError(
            f"max_tokens must be a positive integer, got {max_tokens!r}", **context
        )
    for i, stop in enumerate(request.stop):
        if not isinstance(stop, str):
            raise ConfigurationError(f"stop[{i}] must be a string, got {stop!r}", **context)
    for i, tool in enumerate(request.tools):
        if not isinstance(tool, ToolDefinition):
            raise ConfigurationError(
                f"tools[{i}] must be a ToolDefinition, got {tool!r}", **context
            )
    if request.tool_choice is not None:
        check_tool_choice(request.tool_choice, request.tools, **context)
    if request.response_format is not None:
        check_response_format(request.response_format, **context)
    if request.output_type is not None:
        fmt = request.response_format
        if not (isinstance(request.output_type, type) and attrs.has(request.output_type)):
            raise ConfigurationError(
                f"output_type must be an attrs class, got {request.output_type!r}", **context
            )
        if fmt is None or fmt.get("type") != "json_schema":
            raise ConfigurationError(
                "output_type needs a json_schema response_format (its schema): build both"
                " with ChatBuilder.response_format(cls)",
                **context,
            )
    if request.extra_body is not None:
        check_mapping("extra_body", request.extra_body, **context)
