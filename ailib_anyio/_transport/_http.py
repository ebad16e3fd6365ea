"""The transport: the only module that imports an HTTP library (httpx, or httpx2 when
one of its clients is lent).

One pooled ``httpx.AsyncClient`` per ``open_client`` block (or the lent
``httpx.AsyncClient`` / ``httpx2.AsyncClient``, or one of a ``ConnectionPool``'s, which
``_pool.py`` builds and counts through :func:`pooled_http_client` and
:func:`connection_counts`), authentication headers built from the
manifest's credential chain, the library's own response type (:class:`HttpResponse`) and
the translation of the HTTP library's exceptions into the library's own (always chained
with ``from exc``). Cancellation passes through untouched: only HTTP library exceptions
are translated.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import os
import re
import ssl
import sys
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from urllib.request import getproxies

import anyio
import h11
import httpx

from .._core._errors import (
    AiLibError,
    ConfigurationError,
    ConnectTimeoutError,
    MalformedResponseError,
    ReadTimeoutError,
    TimeoutError,
    TransportError,
    WriteTimeoutError,
)
from .._core._secrets import scrub_exception_chain
from .._core._wire import DEFAULT_MAX_RESPONSE_BYTES
from .._protocol._credentials import resolve_credential
from .._protocol._models import AuthSpec, ProviderManifest
from .._protocol._validate import check_base_url
from .._version import __version__

if TYPE_CHECKING:
    import httpx2

    #: An HTTP client a user may lend (``http_client=``).
    HttpClient: TypeAlias = httpx.AsyncClient | httpx2.AsyncClient
    #: A timeout setting: seconds, or either library's ``Timeout``.
    TimeoutSetting: TypeAlias = float | httpx.Timeout | httpx2.Timeout

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "HTTP_LIBRARIES",
    "POOL_CLOSED_IN_FLIGHT",
    "HttpResponse",
    "PoolLease",
    "Transport",
    "auth_material",
    "base_url_from_env",
    "connection_counts",
    "http_library",
    "http_timeout",
    "is_timeout",
    "map_transport_errors",
    "pooled_http_client",
    "resolve_auth",
    "transport_errors",
    "translate_transport_error",
]

#: Generous read timeout: reasoning models can think for minutes before the first byte.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0, write=60.0, pool=60.0)
USER_AGENT = f"ailib-anyio/{__version__}"
#: Decompression works in steps of at most this many output bytes, whatever one network
#: read holds: a gzip bomb never inflates a whole read at once.
INFLATE_STEP = 64 * 1024
#: The only encodings asked for (and decoded in bounded steps).
ACCEPT_ENCODING = "gzip, deflate"

_NOT_ALNUM = re.compile(r"[^A-Z0-9]")

#: The HTTP libraries a ``ConnectionPool`` can build its clients with.
HTTP_LIBRARIES = ("httpx", "httpx2")
#: What a request (or a stream) gets when its ``ConnectionPool`` closes under it.
POOL_CLOSED_IN_FLIGHT = "the ConnectionPool was closed while this request was using it"


def _httpx2() -> ModuleType | None:
    """The httpx2 module if something imported it (never imported here: a lent client
    did), else None."""
    return sys.modules.get("httpx2")


def _library(http_client: object) -> ModuleType:
    """The HTTP library of a lent client: httpx2 for an ``httpx2.AsyncClient``, else
    httpx."""
    h2 = _httpx2()
    if h2 is not None and isinstance(http_client, h2.AsyncClient):
        return h2
    return httpx


def is_timeout(value: object) -> bool:
    """Whether ``value`` is an ``httpx.Timeout`` or an ``httpx2.Timeout``."""
    if isinstance(value, httpx.Timeout):
        return True
    h2 = _httpx2()
    return h2 is not None and isinstance(value, h2.Timeout)


def _as_timeout(value: Any, lib: ModuleType = httpx) -> Any:
    """``value`` (either library's ``Timeout``) as a ``Timeout`` of ``lib``."""
    if isinstance(value, lib.Timeout):
        return value
    return lib.Timeout(connect=value.connect, read=value.read, write=value.write, pool=value.pool)


def http_library(name: str) -> ModuleType:
    """The module of the HTTP library ``name`` (one of :data:`HTTP_LIBRARIES`); httpx2 is
    imported here, on demand. ``ConfigurationError`` when it is not installed."""
    if name == "httpx":
        return httpx
    if name == "httpx2":
        try:
            return importlib.import_module("httpx2")
        except ImportError:
            raise ConfigurationError(
                "http_library='httpx2' needs httpx2: pip install 'ailib-anyio[httpx2]'"
            ) from None
    raise ConfigurationError(f"http_library must be 'httpx' or 'httpx2', got {name!r}")


#: The connection-pool transport of each HTTP client this module built itself (its own
#: clients and a ``ConnectionPool``'s), which requests are handed to directly; a lent
#: client is never in it (see :func:`_own_http_client`).
_DIRECT: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _proxies_from_env() -> bool:
    """Whether the environment names an HTTP proxy (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``, read as httpx reads them): then the client mounts proxy transports."""
    found = getproxies()
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


def _own_http_client(
    lib: ModuleType,
    *,
    timeout: Any,
    max_connections: int | None,
    max_keepalive_connections: int | None,
    keepalive_expiry: float | None = 5.0,
) -> Any:
    """A new ``AsyncClient`` of ``lib`` (httpx or httpx2) on a connection-pool transport
    of its own, with these limits and default timeout, following no redirect.

    The transport sends this library's requests without the client's ``send``: the
    client's request machinery (authentication and redirect flows, cookie jar, event
    hooks, mounts), none of which a client built here uses, is about a third of the CPU
    of a small request. Not when the environment names a proxy: the client routes
    through the proxy transports it mounts for it."""
    limits = lib.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
    )
    timeout = _as_timeout(timeout, lib)
    if _proxies_from_env():  # (a client given its transport mounts no proxy)
        return lib.AsyncClient(
            timeout=timeout, limits=limits, follow_redirects=False, verify=default_ssl_context()
        )
    transport = lib.AsyncHTTPTransport(verify=default_ssl_context(), limits=limits)
    client = lib.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
    _DIRECT[client] = transport
    return client


def pooled_http_client(
    library: str,
    *,
    max_connections: int | None,
    max_keepalive_connections: int | None,
    keepalive_expiry: float | None,
    timeout: httpx.Timeout,
) -> Any:
    """A new ``AsyncClient`` of ``library`` (``"httpx"`` or ``"httpx2"``) with these
    limits and default timeout, following no redirect: one origin's client in a
    ``ConnectionPool``."""
    return _own_http_client(
        http_library(library),
        timeout=timeout,
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
    )


def connection_counts(http_client: object) -> tuple[int, int] | None:
    """(active, idle) connections in the pool of an httpx or httpx2 ``AsyncClient`` built
    with its default transport; None for any other transport or layout.

    Neither library has a public way to count them: their connection pools (httpcore's
    and httpcore2's ``AsyncConnectionPool``) list ``connections``, each answering
    ``is_idle()`` and ``is_closed()``. A connection still being set up, or carrying a
    request, is active; a closed one not yet dropped is not counted."""
    pool = getattr(getattr(http_client, "_transport", None), "_pool", None)
    connections = getattr(pool, "connections", None)
    if not isinstance(connections, list):
        return None
    active = idle = 0
    for connection in list(connections):
        is_idle = getattr(connection, "is_idle", None)
        is_closed = getattr(connection, "is_closed", None)
        if not (callable(is_idle) and callable(is_closed)):
            return None
        if is_closed():
            continue
        if is_idle():
            idle += 1
        else:
            active += 1
    return active, idle


def transport_errors() -> tuple[type[Exception], ...]:
    """The exception types the HTTP libraries raise (httpx's, and httpx2's once it is
    imported), for an ``except`` clause: it is evaluated only when an exception passes,
    so the per-chunk path pays nothing."""
    h2 = _httpx2()
    if h2 is None:
        return (httpx.HTTPError, httpx.InvalidURL)
    return (httpx.HTTPError, httpx.InvalidURL, h2.HTTPError, h2.InvalidURL)


def http_timeout(
    timeout: TimeoutSetting | None,
    http_client: HttpClient | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> httpx.Timeout:
    """The HTTP timeout a client uses: ``timeout=`` (seconds or an ``httpx.Timeout`` /
    ``httpx2.Timeout``), else a lent ``http_client``'s own, else ``AI_HTTP_TIMEOUT_SECS``
    (seconds, for every phase), else :data:`DEFAULT_TIMEOUT`. A bad variable raises
    ``ConfigurationError``. Always an ``httpx.Timeout``."""
    if is_timeout(timeout):
        return _as_timeout(timeout)  # type: ignore[no-any-return]
    if timeout is not None:
        return httpx.Timeout(float(timeout))  # type: ignore[arg-type]
    if http_client is not None:
        return _as_timeout(http_client.timeout)  # type: ignore[no-any-return]
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
    :func:`~ailib_anyio._protocol._credentials.resolve_credential` (``api_key``, the manifest's
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
    """:func:`auth_material` plus the secrets to mask: the key itself (first) and every
    header or query value that carries it (those that differ from the redacted
    attachment)."""
    resolution = resolve_credential(
        auth, provider=provider, api_key=api_key, environ=environ, host_supplied=host_supplied
    )
    if resolution.status == "missing" and not resolution.optional:
        raise ConfigurationError("\n".join(resolution.diagnostics), provider=provider)
    headers, params = resolution.attachment()
    if resolution.secret is None:
        return headers, params, ()
    shown_headers, shown_params = resolution.redacted()
    secrets = {v for k, v in headers.items() if shown_headers.get(k) != v}
    secrets.update(v for k, v in params.items() if shown_params.get(k) != v)
    secrets.discard(resolution.secret)
    return headers, params, (resolution.secret, *sorted(secrets))


def translate_transport_error(exc: Exception, **context: Any) -> AiLibError:
    """The library error for an httpx or httpx2 error (one of :func:`transport_errors`;
    the caller chains it with ``from exc``).

    The secrets of open clients are masked in ``exc`` and the exceptions it was raised
    from, in place (h11 quotes a header it refuses, value included), and in the message
    built from it."""
    scrub_exception_chain(exc)
    lib = httpx
    h2 = _httpx2()
    if h2 is not None and isinstance(exc, (h2.HTTPError, h2.InvalidURL)):
        lib = h2
    if isinstance(exc, lib.InvalidURL):
        return ConfigurationError(f"invalid URL: {exc}", **context)
    if isinstance(exc, lib.ConnectTimeout):
        return ConnectTimeoutError("timed out connecting to the provider", **context)
    if isinstance(exc, lib.ReadTimeout):
        return ReadTimeoutError("timed out waiting for data from the provider", **context)
    if isinstance(exc, lib.WriteTimeout):
        return WriteTimeoutError("timed out sending the request", **context)
    if isinstance(exc, lib.PoolTimeout):
        return TimeoutError("timed out waiting for a free connection in the pool", **context)
    if isinstance(exc, lib.TimeoutException):
        return TimeoutError(f"timed out: {type(exc).__name__}", **context)
    if isinstance(exc, lib.DecodingError):
        return MalformedResponseError(f"could not decode the response body: {exc}", **context)
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, lib.LocalProtocolError):
        # Our own request broke HTTP's rules: sending it again cannot help.
        return TransportError(
            f"the request could not be sent: {detail}", retryable=False, **context
        )
    return TransportError(f"connection to the provider failed: {detail}", **context)


@contextmanager
def map_transport_errors(**context: Any) -> Iterator[None]:
    """Translate httpx/httpx2 exceptions raised inside the block into ``AiLibError``
    subclasses."""
    try:
        yield
    except transport_errors() as exc:
        raise translate_transport_error(exc, **context) from exc


class _Body(httpx.AsyncByteStream):
    """A request body httpx can send without an async generator.

    httpx's own byte stream iterates through one; a request cancelled while sending would
    leave it suspended until garbage collection, which trio reports as a ResourceWarning.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Once(self._data)


@functools.cache
def _body_type(lib: ModuleType) -> type[_Body]:
    """:class:`_Body` for ``lib`` (httpx2's transport asserts its own base class)."""
    if lib is httpx:
        return _Body
    return type("_Body", (_Body, lib.AsyncByteStream), {"__slots__": ()})


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


class _Inflater:
    """A gzip or deflate decoder that yields its output in pieces of at most
    ``INFLATE_STEP`` bytes (zlib's ``max_length``), so memory never follows the ratio."""

    __slots__ = ("_guess", "_z")

    def __init__(self, encoding: str) -> None:
        gzip = encoding in ("gzip", "x-gzip")
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        # "deflate" is zlib-wrapped by the RFC, raw in practice: the first bytes decide.
        self._guess = not gzip

    def pieces(self, data: bytes) -> Iterator[bytes]:
        z = self._z
        try:
            out = z.decompress(data, INFLATE_STEP)
        except zlib.error:
            if not self._guess:
                raise
            self._z = z = zlib.decompressobj(-zlib.MAX_WBITS)
            out = z.decompress(data, INFLATE_STEP)
        self._guess = False
        while True:
            if out:
                yield out
            if not z.unconsumed_tail and len(out) < INFLATE_STEP:
                return  # all input consumed and no output held back
            out = z.decompress(z.unconsumed_tail, INFLATE_STEP)

    def flush(self) -> Iterator[bytes]:
        yield from self.pieces(b"")
        rest = self._z.flush()
        if rest:
            yield rest


def _inflater(response: httpx.Response) -> _Inflater | None:
    """The bounded decoder for the response's ``content-encoding`` (None: identity).

    Raises ``httpx.DecodingError`` for an encoding that was not asked for (brotli, zstd,
    stacked encodings): those would be inflated without a bound."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater(encoding)
    raise httpx.DecodingError(f"unsupported content-encoding {encoding!r}")


async def _inflated(
    response: Any, raw: AsyncIterator[bytes], inflater: _Inflater
) -> AsyncIterator[bytes]:
    try:
        async for chunk in raw:
            for piece in inflater.pieces(chunk):
                yield piece
        for piece in inflater.flush():
            yield piece
    except zlib.error as exc:
        # the body is useless: close the response, and end the HTTP library's chain of
        # body generators left suspended (see ``_abandon``)
        await _abandon(response, raw)
        raise httpx.DecodingError(f"invalid compressed data: {exc}") from exc


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The decoded body of a streamed response, in pieces of bounded size.

    Reads the response's byte stream directly (not ``aiter_raw``, which closes the
    response, and so releases its connection, before :func:`forget_if_unclean` can look
    at it). Errors are httpx's (``httpx.DecodingError`` for a bad or unknown encoding)."""
    inflater = _inflater(response)
    raw = response.stream.__aiter__()  # type: ignore[union-attr]
    return raw if inflater is None else _inflated(response, raw, inflater)


def _h11_state(response: httpx.Response) -> h11.Connection | None:
    """The h11 connection under an httpx response from httpx's default transport.

    httpx and httpcore expose no public way to it; the walk is defensive and answers None
    for any other transport or layout."""
    # httpx's BoundAsyncStream -> AsyncResponseStream -> httpcore's PoolByteStream ->
    # HTTP11ConnectionByteStream, whose connection (AsyncHTTP11Connection) holds h11's.
    stream: object = response.stream
    for _ in range(8):
        connection = getattr(stream, "_connection", None)
        if connection is not None:
            state = getattr(connection, "_h11_state", None)
            return state if isinstance(state, h11.Connection) else None
        stream = getattr(stream, "_stream", None) or getattr(stream, "_httpcore_stream", None)
        if stream is None:
            return None
    return None


def forget_if_unclean(response: httpx.Response) -> None:
    """Make sure the connection of a complete response is not reused when the server sent
    bytes past the response's end (they would be read as the next request's response).

    Call it after the body was read and before the response is closed. httpcore puts a
    connection back in the pool after a complete response without looking at what h11
    still buffers; marking our side failed (h11's public ``send_failed``) makes it close
    the connection instead."""
    state = _h11_state(response)
    if state is not None and state.their_state is h11.DONE and state.trailing_data[0]:
        state.send_failed()


async def _abandon(response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    """Close a response whose body is left unread, and run its chain of body generators
    to their end on the closed connection (else they stay suspended until garbage
    collection, which trio reports as a ResourceWarning)."""
    with anyio.CancelScope(shield=True):
        await response.aclose()
        for _ in range(100_000):  # bounded: only bytes already received can still come
            try:
                await chunks.__anext__()
            except StopAsyncIteration:
                return
            except Exception:  # noqa: BLE001 - the connection is closed: any error ends it
                return


class ResponseHeaders(dict[str, str]):
    """A response's headers, read once from the HTTP library's: lower-cased names, the
    values of a repeated header joined with ``", "`` (as ``httpx.Headers.get`` gives
    them), looked up case-insensitively. Each lookup is a dict lookup: httpx's scans and
    decodes every header, and a response's rate-limit, retry and request-id headers are a
    dozen lookups."""

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, key.lower())


class HttpResponse:
    """A response whose headers arrived and whose body is unread: the library's own view
    of the HTTP library's response, whatever the library.

    ``status_code`` and ``headers`` (case-insensitive mapping); :meth:`aread` for the
    whole bounded body, :meth:`chunks` for the streamed body, :meth:`aclose` (always).
    """

    __slots__ = ("_headers", "_raw", "_transport", "status_code")

    def __init__(self, raw: Any, transport: Transport) -> None:
        self._raw = raw
        self._transport = transport
        self.status_code: int = raw.status_code
        self._headers: ResponseHeaders | None = None

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers (case-insensitive), made on first use from the HTTP library's."""
        headers = self._headers
        if headers is None:
            headers = self._headers = ResponseHeaders(self._raw.headers.items())
        return headers

    def forget_headers(self) -> None:
        """Drop the headers made by :attr:`headers` (made again if asked for again): a
        stream that has read what it needs from them does not hold a copy while it runs
        (at a thousand concurrent streams, each copy is memory)."""
        self._headers = None

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status_code}>"

    def chunks(self, *, context: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """The decoded body in pieces of bounded size: the underlying async iterator
        itself (no wrapper, so no coroutine frame per chunk). Errors raised while it is
        iterated are the HTTP library's (one of :func:`transport_errors`): catch them
        with ``except transport_errors()`` and map them with
        :func:`translate_transport_error`. An unknown ``content-encoding`` raises here,
        translated."""
        try:
            return body_chunks(self._raw)
        except transport_errors() as exc:
            raise translate_transport_error(exc, **context) from exc

    async def aread(self, *, context: Mapping[str, Any]) -> bytes:
        """The whole decoded body (the caller still closes the response).

        At most the transport's ``max_response_bytes`` decoded bytes are held: a larger
        body (declared or inflated) raises ``MalformedResponseError`` as soon as it is
        known, and decompression runs in bounded steps. A connection that carried bytes
        past the response's end is not reused."""
        return await self._transport.read_body(self._raw, context=context)

    def forget_if_unclean(self) -> None:
        """After the body was read to its end: see :func:`forget_if_unclean`."""
        forget_if_unclean(self._raw)

    async def aclose(self) -> None:
        """Close the response (a response whose body is unread closes its connection)."""
        await self._raw.aclose()


class PoolLease(Protocol):
    """A client's share of a ``ConnectionPool`` (``_pool.py``): the HTTP client of its
    origin, and the hooks that count its requests and let the pool interrupt them."""

    @property
    def client(self) -> Any:
        """The origin's HTTP client (the pool's: never closed by the transport)."""

    @property
    def is_open(self) -> bool:
        """False once the pool closed."""

    def begin(self, scope: anyio.CancelScope) -> None:
        """A request starts under ``scope``, which the pool cancels if it closes first;
        raises ``RuntimeError`` if the pool is closed already."""

    def end(self, scope: anyio.CancelScope) -> None:
        """The request started under ``scope`` has its headers (or failed)."""

    def release(self) -> None:
        """The client closed: the pool keeps the connections."""


def default_ssl_context() -> ssl.SSLContext:
    """The SSL context of the clients the transport opens itself: httpx's default
    (certifi's CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set), made once per
    process and those two variables and shared, since loading the CA bundle takes tens of
    milliseconds, far more than the rest of opening a client."""
    return _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # the arguments are the cache key: httpx reads the same variables itself
    return httpx.create_ssl_context()


class Transport:
    """A pooled HTTP client (httpx's, a lent httpx/httpx2 client, or a ``ConnectionPool``'s
    through its ``lease``) plus the provider's authentication."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        timeout: TimeoutSetting | None,
        http_client: HttpClient | None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        lease: PoolLease | None = None,
    ) -> None:
        # with the default headers of an httpx client: the same for a request built by
        # the client and one sent to its transport directly
        self._headers = {
            "accept": "*/*",
            "connection": "keep-alive",
            "user-agent": USER_AGENT,
            "content-type": "application/json",
            "accept-encoding": ACCEPT_ENCODING,
            **headers,
        }
        self.max_response_bytes = max_response_bytes
        self._params = dict(params) or None
        self._lease = lease
        if lease is not None:
            http_client = lease.client
        self.timeout = http_timeout(timeout, http_client)
        self._owns_client = http_client is None
        #: The HTTP library in use (the ``httpx`` or ``httpx2`` module).
        self.library = lib = _library(http_client)
        self._timeout = _as_timeout(self.timeout, lib)  # in the library's own type
        self._body = _body_type(lib)
        self.client: Any = http_client or _own_http_client(
            httpx, timeout=self.timeout, max_connections=None, max_keepalive_connections=100
        )
        #: the client's own transport when requests go to it directly (a client built
        #: here: see ``_own_http_client``)
        self._direct = _DIRECT.get(self.client)
        self._client_log = logging.getLogger(lib.__name__)
        self._direct_timeout = {"timeout": self._timeout.as_dict()}
        #: parsed URLs by text (a client posts to a handful of endpoints)
        self._urls: dict[str, Any] = {}

    def __repr__(self) -> str:  # never show headers: they hold the key
        return f"<Transport owns_client={self._owns_client}>"

    async def send(
        self,
        url: str,
        content: bytes | None,
        *,
        timeout: TimeoutSetting | None = None,  # noqa: ASYNC109 - the HTTP library's
        context: Mapping[str, Any],
        method: str = "POST",
        content_type: str | None = None,
    ) -> HttpResponse:
        """Send ``content`` (POST unless ``method`` says otherwise; ``None``: no body) and
        return once the response headers arrived (body unread). ``content_type``
        replaces the JSON one (a multipart upload)."""
        try:
            request = self._request(method, url, content, timeout, content_type)
        except transport_errors() as exc:
            raise translate_transport_error(exc, **context) from exc
        # try/except rather than map_transport_errors: no generator, context manager and
        # keyword dict held per request while it waits for its headers
        lease = self._lease
        if lease is None:
            try:
                raw = await self._dispatch(request)
            except transport_errors() as exc:
                raise translate_transport_error(exc, **context) from exc
            return HttpResponse(raw, self)
        # A pool's client: the pool cancels the scope if it closes before the headers
        # came (a request waiting for a connection would wait out the pool timeout).
        with anyio.CancelScope() as scope:
            lease.begin(scope)
            try:
                raw = await self._dispatch(request)
            except transport_errors() as exc:
                raise self.translate_error(exc, **context) from exc
            finally:
                lease.end(scope)
        if scope.cancelled_caught:
            raise TransportError(POOL_CLOSED_IN_FLIGHT, retryable=False, **context)
        return HttpResponse(raw, self)

    def _dispatch(self, request: Any) -> Awaitable[Any]:
        """The response to ``request``, its headers read: from the transport itself, or
        through the client's ``send``."""
        direct = self._direct
        if direct is None:
            return self.client.send(request, stream=True)  # type: ignore[no-any-return]
        if self._client_log.isEnabledFor(logging.INFO):
            return self._logged(direct, request)
        return direct.handle_async_request(request)  # type: ignore[no-any-return]

    async def _logged(self, direct: Any, request: Any) -> Any:
        """The direct request, logged as the client's ``send`` logs it (its library's
        logger, at INFO, where the credentials filter masks the URL's key)."""
        raw = await direct.handle_async_request(request)
        self._client_log.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            raw.http_version,
            raw.status_code,
            raw.reason_phrase,
        )
        return raw

    def _request(
        self,
        method: str,
        url: str,
        content: bytes | None,
        timeout: TimeoutSetting | None,
        content_type: str | None,
    ) -> Any:
        """The HTTP library's request: built by the client (its headers, timeout and
        mounts apply) or, for its transport, as the client would have built it (its
        default headers are in ``_headers``; its timeout)."""
        lib = self.library
        headers = self._headers
        if content_type is not None:
            headers = {**headers, "content-type": content_type}
        if self._direct is None:
            if timeout is None:
                timeout = self._timeout
            elif not isinstance(timeout, (int, float)):
                timeout = _as_timeout(timeout, lib)
            request = self.client.build_request(
                method, url, content=content, headers=headers, params=self._params, timeout=timeout
            )
        else:
            extensions = self._direct_timeout
            if timeout is not None:
                found = lib.Timeout(timeout) if isinstance(timeout, (int, float)) else timeout
                extensions = {"timeout": _as_timeout(found, lib).as_dict()}
            parsed = self._urls.get(url)
            if parsed is None:
                if len(self._urls) >= 64:
                    self._urls.clear()
                parsed = self._urls[url] = lib.URL(url)
            request = lib.Request(
                method,
                parsed,
                params=self._params,
                headers=headers,
                content=content,
                extensions=extensions,
            )
        if content is not None:
            request.stream = self._body(content)
        return request

    def translate_error(self, exc: Exception, **context: Any) -> AiLibError:
        """:func:`translate_transport_error`, except that an error caused by the
        ``ConnectionPool`` closing under the request says so (and is not retried)."""
        lease = self._lease
        if lease is not None and not lease.is_open:
            scrub_exception_chain(exc)
            return TransportError(POOL_CLOSED_IN_FLIGHT, retryable=False, **context)
        return translate_transport_error(exc, **context)

    async def read_body(self, response: Any, *, context: Mapping[str, Any]) -> bytes:
        """The whole decoded body of the HTTP library's streamed response (the caller
        closes it): see :meth:`HttpResponse.aread`, which calls it."""
        limit = self.max_response_bytes
        parts: list[bytes] = []
        size = 0
        try:
            chunks = body_chunks(response)
            declared = response.headers.get("content-length", "")
            if "content-encoding" not in response.headers and declared.isdigit():
                size = int(declared)  # a declared size over the limit fails before reading
            if size <= limit:
                size = 0
                async for piece in chunks:
                    size += len(piece)
                    if size > limit:
                        break
                    parts.append(piece)
            if size > limit:
                parts.clear()
                await _abandon(response, chunks)
                raise MalformedResponseError(
                    f"the response body is larger than max_response_bytes ({limit} bytes)",
                    **context,
                )
        except transport_errors() as exc:
            raise self.translate_error(exc, **context) from exc
        forget_if_unclean(response)
        return b"".join(parts)

    async def aclose(self) -> None:
        if self._lease is not None:
            self._lease.release()
        elif self._owns_client:
            await self.client.aclose()
