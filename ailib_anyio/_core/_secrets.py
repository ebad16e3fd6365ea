"""Secret values the library must never show, and the one place that masks them.

A client registers its secrets (the resolved API key and every credential header or query
value) in :data:`SECRETS` while it is open; the library masks them in every text it builds
from something it did not write: error messages (``AiLibError`` masks its message, ``body``
and ``str`` itself), the exception chain of a translated transport error
(:func:`scrub_exception_chain`), and log records (:class:`RedactingFilter`, installed by
:func:`install_log_redaction` on the ``httpx``, ``httpcore`` and ``ailib_anyio`` loggers;
it also masks any credential-looking value, :func:`mask_credentials`).

Each secret (of at least ``MIN_SECRET_LENGTH`` characters) is masked as written,
percent-encoded (a query parameter) and as Python writes it inside a bytes repr
(httpcore's logs). Leaf module: no anyio, no httpx, nothing of the library's.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "REDACTED",
    "SECRETS",
    "RedactingFilter",
    "SecretRegistry",
    "attach_redaction",
    "get_logger",
    "install_log_redaction",
    "mask_credentials",
    "mask_json",
    "mask_text",
    "scrub_exception_chain",
]

#: What stands in for a secret wherever the library shows text.
REDACTED = "<redacted>"


#: Shorter values are not masked in free text: they would mask ordinary words (a local
#: server's ``api_key="x"``) and are no secret worth the name. The header value that
#: carries one (``"Bearer x"``) is long enough and still masked.
MIN_SECRET_LENGTH = 6


def _variants(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    try:
        forms.add(repr(secret.encode())[2:-1])
    except UnicodeEncodeError:  # pragma: no cover - str.encode() is utf-8: never fails
        pass
    return {f for f in forms if f}


class SecretRegistry:
    """A multiset of secret values and the compiled pattern that masks them all.

    ``add``/``discard`` count: two clients with the same key each add it, and it stays
    masked until both discarded it. Reading (``mask``) takes no lock: it uses whichever
    compiled pattern is current."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.pattern: re.Pattern[str] | None = None

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            for secret in secrets:
                if len(secret) >= MIN_SECRET_LENGTH:
                    self._counts[secret] = self._counts.get(secret, 0) + 1
            self._compile()

    def discard(self, secrets: Iterable[str]) -> None:
        with self._lock:
            for secret in secrets:
                count = self._counts.get(secret, 0) - 1
                if count > 0:
                    self._counts[secret] = count
                else:
                    self._counts.pop(secret, None)
            self._compile()

    def _compile(self) -> None:
        forms = {form for secret in self._counts for form in _variants(secret)}
        if not forms:
            self.pattern = None
            return
        # Longest first: a secret that contains another is masked whole.
        alternatives = sorted(forms, key=lambda f: (-len(f), f))
        self.pattern = re.compile("|".join(map(re.escape, alternatives)))

    def __bool__(self) -> bool:
        return self.pattern is not None

    def mask(self, text: str) -> str:
        pattern = self.pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


#: The secrets of every open client.
SECRETS = SecretRegistry()


def mask_text(text: str) -> str:
    """``text`` with every registered secret replaced by ``"<redacted>"``."""
    pattern = SECRETS.pattern
    return text if pattern is None else pattern.sub(REDACTED, text)


def mask_json(value: Any) -> Any:
    """A JSON-like value (decoded response body) with every registered secret masked in its
    strings, keys included; the value itself when nothing needed masking."""
    pattern = SECRETS.pattern
    if pattern is None:
        return value
    return _mask_json(value, pattern, 0)


def _mask_json(value: Any, pattern: re.Pattern[str], depth: int) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if depth > 200:  # deeper than any JSON parser accepts: drop rather than recurse
        return REDACTED
    if isinstance(value, dict):
        return {
            _mask_json(k, pattern, depth + 1): _mask_json(v, pattern, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_json(v, pattern, depth + 1) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return pattern.sub(REDACTED, bytes(value).decode("utf-8", "replace"))
    return value


def scrub_exception_chain(exc: BaseException) -> None:
    """Mask registered secrets in the ``args`` of ``exc`` and of every exception it was
    raised from or during (``__cause__``/``__context__``), in place, so a traceback of a
    library error chained to a transport error (whose message quotes a header) shows none.
    """
    pattern = SECRETS.pattern
    if pattern is None:
        return
    seen: set[int] = set()
    current: BaseException | None = exc
    stack: list[BaseException] = []
    while current is not None or stack:
        if current is None:
            current = stack.pop()
        if id(current) in seen:
            current = None
            continue
        seen.add(id(current))
        try:
            args = current.args
            masked = tuple(
                pattern.sub(REDACTED, a)
                if isinstance(a, str)
                else pattern.sub(REDACTED, a.decode("utf-8", "replace"))
                if isinstance(a, bytes)
                else a
                for a in args
            )
            if masked != args:
                current.args = masked
        except Exception:  # noqa: BLE001 - an exotic exception type: leave it as it is  # pragma: no cover
            pass
        if current.__context__ is not None:
            stack.append(current.__context__)
        current = current.__cause__


_HEADERS = r"(?:proxy-)?authorization|x-api-key|x-goog-api-key|api-key"
_SCHEME = r"(?:(?:bearer|basic|token)\s+)?"

#: ``name: value`` / ``"name": "value"`` / ``name=value`` (headers written as text or JSON)
_HEADER_TEXT = re.compile(rf"(?i)(\b(?:{_HEADERS})['\"]?\s*[:=]\s*['\"]?{_SCHEME})[^\s'\",;)}}\]]+")
#: httpcore's debug records: ``(b'authorization', b'Bearer sk-...')``
_HEADER_TUPLE = re.compile(rf"(?i)(b?['\"](?:{_HEADERS})['\"],\s*b?['\"]{_SCHEME})[^'\"]+")
#: ``?key=...`` / ``&api_key=...`` in a URL
_QUERY = re.compile(r"(?i)([?&](?:key|api_key|api-key|access_token)=)[^&\s'\"#]+")


def mask_credentials(text: str) -> str:
    """``text`` with every value that looks like a credential masked, whoever it belongs
    to: the values of ``Authorization``, ``Proxy-Authorization``, ``x-api-key``,
    ``x-goog-api-key`` and ``api-key`` headers (written as text, as ``"name": "value"`` or
    as httpcore's ``(b'name', b'value')`` tuples) and of ``key=``, ``api_key=``,
    ``api-key=`` and ``access_token=`` query parameters."""
    if not any(marker in text.lower() for marker in ("auth", "key", "token")):
        return text  # the common record: nothing to look for
    text = _HEADER_TUPLE.sub(rf"\1{REDACTED}", text)
    text = _HEADER_TEXT.sub(rf"\1{REDACTED}", text)
    return _QUERY.sub(rf"\1{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks, in a record's message, exception text and stack, the
    registered secrets and every credential-looking value (:func:`mask_credentials`); it
    never drops a record. Costs a few pattern checks per record made, and nothing when the
    logger is not enabled (no record is made)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record: logging reports it itself
            return True
        masked = _mask_all(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _mask_all(record.exc_text)
        if record.stack_info:
            record.stack_info = _mask_all(record.stack_info)
        return True


def _mask_all(text: str) -> str:
    pattern = SECRETS.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return mask_credentials(text)


_FILTER = RedactingFilter()

#: The loggers records are made on: a logger's filters see only records made on that
#: logger, not those its children propagate, so each is named.
LOGGERS = (
    "ailib_anyio",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_PREFIXES = tuple(f"{name}." for name in ("ailib_anyio", "httpx", "httpcore"))


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to the httpx, httpcore and ailib_anyio loggers (and
    to any child of theirs that exists already). Idempotent."""
    names = set(LOGGERS)
    names.update(
        name
        for name in list(logging.Logger.manager.loggerDict)
        if isinstance(name, str) and name.startswith(_PREFIXES)
    )
    for name in sorted(names):
        attach_redaction(logging.getLogger(name))


def attach_redaction(logger: logging.Logger) -> None:
    """Attach :class:`RedactingFilter` to ``logger`` (idempotent)."""
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def get_logger(name: str) -> logging.Logger:
    """The library's logger ``name`` (``"ailib_anyio"`` or a child of it) with the
    redacting filter attached: library code gets its loggers here, since a filter on
    ``ailib_anyio`` does not see the records of loggers created under it later."""
    if name != "ailib_anyio" and not name.startswith("ailib_anyio."):
        raise ValueError(f"not a logger of the library: {name!r}")
    logger = logging.getLogger(name)
    attach_redaction(logger)
    return logger
