"""Logging: structured keyword fields, masking of credentials, ``AI_LIB_LOG``.

The library logs on the stdlib hierarchy under ``ailib_anyio`` (``ailib_anyio.attempts``
for attempts, retries, fallbacks, hedges and circuit transitions, ``ailib_anyio.ratelimit``
for limiter waits), all at DEBUG: nothing shows until an application asks for it.

:class:`~._secrets.RedactingFilter`, attached to the library's loggers, to httpx's and
httpcore's and to every logger :func:`get_logger` returns, masks the secrets of every open
client and any value that looks like a credential (:func:`~._secrets.mask_credentials`).

``AI_LIB_LOG=debug`` (or ``info``) makes the first client opened add a stderr handler to
the ``ailib_anyio`` and ``httpx`` loggers at that level, the way ``OPENAI_LOG`` does: at
``info`` httpx's request lines, at ``debug`` also the library's attempt records.

Leaf module: the standard library and :mod:`._secrets` only.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

from ._errors import ConfigurationError
from ._secrets import attach_redaction, install_log_redaction

__all__ = [
    "AiLibLogger",
    "configure_from_env",
    "configure_logging",
    "get_logger",
    "render_fields",
]


def render_fields(message: str, fields: Mapping[str, Any]) -> str:
    """``message key=value ...``: strings with spaces or quotes are quoted (``repr``)."""
    if not fields:
        return message
    parts = [message]
    for name, value in fields.items():
        if isinstance(value, str) and value and not any(c in value for c in " \"'=\n"):
            parts.append(f"{name}={value}")
        else:
            parts.append(f"{name}={value!r}")
    return " ".join(parts)


#: the keywords ``Logger.log`` itself takes; any other keyword is a structured field
_LOGGING_KEYWORDS = frozenset({"exc_info", "stack_info", "stacklevel", "extra"})


class AiLibLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A stdlib logger that takes structured fields as keywords::

        logger = get_logger("my_app")
        logger.info("Request started", model="gpt-4o", tokens=100)

    logs ``Request started model=gpt-4o tokens=100``; the fields are also on the record
    as ``record.fields`` (a dict) for structured handlers. Fields are rendered only when
    the level is enabled. Credentials are masked (see the module's docstring)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in _LOGGING_KEYWORDS}
        extra = dict(kwargs.get("extra") or {})
        extra["fields"] = fields
        kwargs["extra"] = extra
        if fields:
            msg = render_fields(str(msg), fields)
        return msg, kwargs


def get_logger(name: str) -> AiLibLogger:
    """The logger ``name`` (any name: the library's own are under ``ailib_anyio``) taking
    structured keyword fields, with the masking filter attached."""
    logger = logging.getLogger(name)
    attach_redaction(logger)
    return AiLibLogger(logger)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_configured: list[str] = []


def configure_logging() -> None:
    """What a client does when it opens: the masking filter on every logger the library
    and its HTTP library log on, and ``AI_LIB_LOG`` applied."""
    install_log_redaction()
    configure_from_env()


def configure_from_env() -> None:
    """Apply ``AI_LIB_LOG`` once per process (``debug``, ``info`` or ``warning``; unset or
    empty: nothing). Another value is a ``ConfigurationError`` naming the variable."""
    value = os.environ.get("AI_LIB_LOG", "").strip().lower()
    if not value or value in _configured:
        return
    level = _LEVELS.get(value)
    if level is None:
        raise ConfigurationError(f"AI_LIB_LOG must be one of {', '.join(_LEVELS)}, not {value!r}")
    _configured.append(value)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s"))
    for name in ("ailib_anyio", "httpx"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)
    install_log_redaction()
