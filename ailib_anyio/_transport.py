"""The transport: the only module that imports httpx.

One pooled ``httpx.AsyncClient`` per ``open_client`` block, authentication headers built
from the manifest's credential chain, and the translation of httpx's exceptions into the
library's own (always chained with ``from exc``). Cancellation passes through untouched:
only httpx exceptions are translated.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from ._credentials import resolve_credential
from ._errors import (
    AiLibError,
    ConfigurationError,
    ConnectTimeoutError,
    MalformedResponseError,
    ReadTimeoutError,
    TimeoutError,
    TransportError,
    WriteTimeoutError,
)
from ._protocol._models import AuthSpec, ProviderManifest
from ._secrets import scrub_exception_chain
from ._validate import check_base_url
from ._version import __version__

__all__ = [
    "DEFAULT_TIMEOUT",
    "Transport",
    "auth_material",
    "base_url_from_env",
    "http_timeout",
    "map_httpx_errors",
    "resolve_auth",
    "translate_httpx_error",
]

#: Generous read timeout: reasoning models can think for minutes before the first byte.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0, write=60.0, pool=60.0)
USER_AGENT = f"ailib-anyio/{__version__}"

_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def http_timeout(
    timeout: float | httpx.Timeout | None,
    http_client: httpx.AsyncClient | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> httpx.Timeout:
    """The HTTP timeout a client uses: ``timeout=`` (seconds or an ``httpx.Timeout``),
    else a lent ``http_client``'s own, else ``AI_HTTP_TIMEOUT_SECS`` (seconds, for every
    phase), else :data:`DEFAULT_TIMEOUT`. A bad variable raises ``ConfigurationError``."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is not None:
        return httpx.Timeout(float(timeout))
    if http_client is not None:
        return http_client.timeout
    raw = (os.environ if environ is None else environ).get("AI_HTTP_TIMEOUT_SECS", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigurationError(
            f"AI_HTTP_TIMEOUT_SECS must be a positive number of seconds, got {raw!r}"
        )
    return httpx.Timeout(seconds)


def base_url_from_env(
    names: tuple[str, ...], *, environ: Mapping[str, str] | None = None
) -> str | None:
    """The base URL set in ``<PROVIDER>_BASE_URL`` for the first of ``names`` (provider
    ids, upper-cased, every character but A-Z and 0-9 turned into ``_``: ``OPENAI_BASE_URL``,
    ``OPENAI_COMPATIBLE_BASE_URL``) whose variable is set, else None. A value that is not
    a valid http(s) URL raises ``ConfigurationError`` naming the variable."""
    env = os.environ if environ is None else environ
    for name in dict.fromkeys(names):
        var = f"{_NOT_ALNUM.sub('_', name.upper())}_BASE_URL"
        value = env.get(var, "").strip()
        if value:
            return check_base_url(value, var)
    return None


def auth_material(
    auth: AuthSpec | ProviderManifest,
    provider: str,
    api_key: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    host_supplied: bool = False,
) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query params) that authenticate a request, from the credential chain of
    :func:`~ailib_anyio._credentials.resolve_credential` (``api_key``, the manifest's
    variables, then ``{PROVIDER_ID}_API_KEY``). Given the whole manifest, ``endpoint.auth``
    is the single source of truth over a divergent top-level ``auth`` block.

    Raises ``ConfigurationError`` (its diagnostics, which never hold a secret) when the
    manifest requires a credential and none is found, or the key holds a control
    character. ``host_supplied``: ``api_key`` is the only source (no environment is
    read)."""
    headers, params, _ = resolve_auth(
        auth, provider, api_key, environ=environ, host_supplied=host_supplied
    )
    return headers, params


def resolve_auth(
    auth: AuthSpec | ProviderManifest,
    provider: str,
    api_key: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    host_supplied: bool = False,
) -> tuple[dict[str, str], dict[str, str], tuple[str, ...]]:
    """:func:`auth_material` plus the secrets to mask: the key itself and every header or
    query value that carries it (those that differ from the redacted attachment)."""
    resolution = resolve_credential(
        auth, provider=provider, api_key=api_key, environ=environ, host_supplied=host_supplied
    )
    if resolution.status == "missing" and not resolution.optional:
        raise ConfigurationError("\n".join(resolution.diagnostics), provider=provider)
    headers, params = resolution.attachment()
    if resolution.secret is None:
        return headers, params, ()
    shown_headers, shown_params = resolution.redacted()
    secrets = {resolution.secret}
    secrets.update(v for k, v in headers.items() if shown_headers.get(k) != v)
    secrets.update(v for k, v in params.items() if shown_params.get(k) != v)
    return headers, params, tuple(sorted(secrets))


def translate_httpx_error(exc: httpx.HTTPError, **context: Any) -> AiLibError:
    """The library error for an httpx error (the caller chains it with ``from exc``).

    The secrets of open clients are masked in ``exc`` and the exceptions it was raised
    from, in place (h11 quotes a header it refuses, value included), and in the message
    built from it."""
    scrub_exception_chain(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimeoutError("timed out connecting to the provider", **context)
    if isinstance(exc, httpx.ReadTimeout):
        return ReadTimeoutError("timed out waiting for data from the provider", **context)
    if isinstance(exc, httpx.WriteTimeout):
        return WriteTimeoutError("timed out sending the request", **context)
    if isinstance(exc, httpx.PoolTimeout):
        return TimeoutError("timed out waiting for a free connection in the pool", **context)
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError(f"timed out: {type(exc).__name__}", **context)
    if isinstance(exc, httpx.DecodingError):
        return MalformedResponseError(f"could not decode the response body: {exc}", **context)
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.LocalProtocolError):
        # Our own request broke HTTP's rules: sending it again cannot help.
        return TransportError(
            f"the request could not be sent: {detail}", retryable=False, **context
        )
    return TransportError(f"connection to the provider failed: {detail}", **context)


@contextmanager
def map_httpx_errors(**context: Any) -> Iterator[None]:
    """Translate httpx exceptions raised inside the block into ``AiLibError`` subclasses."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise translate_httpx_error(exc, **context) from exc
    except httpx.InvalidURL as exc:
        scrub_exception_chain(exc)
        raise ConfigurationError(f"invalid URL: {exc}", **context) from exc


class _Body(httpx.AsyncByteStream):
    """A request body httpx can send without an async generator.

    httpx's own byte stream iterates through one; a request cancelled while sending would
    leave it suspended until garbage collection, which trio reports as a ResourceWarning.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Once(self._data)


class _Once:
    __slots__ = ("_data",)

    def __init__(self, data: bytes | None) -> None:
        self._data = data

    def __aiter__(self) -> _Once:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopAsyncIteration
        return data


class Transport:
    """A pooled HTTP client plus the provider's authentication."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        timeout: float | httpx.Timeout | None,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        self._headers = {"user-agent": USER_AGENT, "content-type": "application/json", **headers}
        self._params = dict(params)
        self.timeout = http_timeout(timeout, http_client)
        self._owns_client = http_client is None
        self.client = http_client or httpx.AsyncClient(
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never show headers: they hold the key
        return f"<Transport owns_client={self._owns_client}>"

    async def send(
        self,
        url: str,
        content: bytes,
        *,
        timeout: float | httpx.Timeout | None = None,
        context: Mapping[str, Any],
    ) -> httpx.Response:
        """POST ``content`` and return once the response headers arrived (body unread)."""
        with map_httpx_errors(**context):
            request = self.client.build_request(
                "POST",
                url,
                content=content,
                headers=self._headers,
                params=self._params or None,
                timeout=self.timeout if timeout is None else timeout,
            )
            request.stream = _Body(content)
            return await self.client.send(request, stream=True)

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()
