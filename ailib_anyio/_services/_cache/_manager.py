"""``CacheManager``: keys, entries, statistics, and the client's cache middleware.

Used directly, it is the reference's cache (``generate_key``, ``get``, ``set``,
``stats()``). Given to a client (``open_client(..., cache=manager)``), it becomes the
client's innermost call-level middleware:

- the key is the SHA-256 of the canonical JSON of the provider, model, endpoint, whether
  it streams, and the request body exactly as the primary target encodes it (messages,
  tools, parameters: everything the provider would see) — never the API key or any
  header, which are not part of the body;
- a hit answers without any HTTP request: an ``execute()`` gets the cached
  ``ChatResponse``, a stream a ``ReplayStream`` of the events recorded when it first ran;
- a miss goes upstream; a successful ``execute()`` response, or a stream read to its end,
  is stored; an error, a stream broken off or failed, or a cancelled call never is;
- single flight: while a call is in flight, identical calls (same key, same thread) wait
  for it and take its answer instead of making requests of their own. If that call is
  cancelled, or its stream closes unfinished, one of the waiters makes the request in its
  place; if it fails, each waiter makes its own request (errors are neither cached nor
  shared). A waiter waits at most ``CacheConfig.wait_timeout_seconds``, then goes alone.
  A stream's waiters wait until its first user has read it to the end.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
import attrs

from ..._client._middleware import Call, Middleware, Next, ResponseCache
from ..._client._replay import ReplayStream, StreamWatcher
from ..._core._checks import flag, optional_seconds
from ..._core._errors import AiLibError, CacheError, ConfigurationError
from ..._core._types import ChatResponse, Message, ToolDefinition
from ._backends import CacheBackend, MemoryCache
from ._codec import CachedReply, decode_reply, encode_reply

if TYPE_CHECKING:
    from ..._client._client import Client
    from ..._client._targetstream import TargetStream

__all__ = ["CacheConfig", "CacheManager", "CacheStats"]

_log = logging.getLogger("ailib_anyio.cache")

#: the key's format: part of every key, so a change of it never reads an old entry
KEY_FORMAT = 1


# ------------------------------------------------------------------ settings and stats


def _text(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigurationError(f"{attribute.name} must be a string, got {value!r}")


@attrs.frozen(kw_only=True)
class CacheConfig:
    """How a ``CacheManager`` caches.

    - ``default_ttl_seconds``: how long an entry lives (``None``: until evicted);
    - ``namespace``: part of every key, so that users or applications sharing one backend
      never read each other's entries;
    - ``single_flight``: identical calls in flight at once share one upstream request;
      ``wait_timeout_seconds`` bounds how long one waits for another (``None``: no bound),
      then it sends its own. A stream's waiters wait until its reader read it to the end:
      a task never waits for a stream it holds open itself, but code that opens an
      identical stream while another is open and unread, and cannot read both at once
      (a blocking ``ailib_anyio.sync`` client), waits out this bound;
    - ``cache_streams``: streams are cached too (replayed as the same events);
    - ``fail_open``: a backend failure after the cache opened is logged (logger
      ``ailib_anyio.cache``) and counted in ``stats().errors``, and the call goes to the
      provider; with ``False`` it raises the ``CacheError`` (a ``MiddlewareError`` chained
      from it, on a client's call).
    """

    default_ttl_seconds: float | None = attrs.field(default=3600.0, validator=optional_seconds)
    namespace: str = attrs.field(default="", validator=_text)
    single_flight: bool = attrs.field(default=True, validator=flag)
    wait_timeout_seconds: float | None = attrs.field(default=60.0, validator=optional_seconds)
    cache_streams: bool = attrs.field(default=True, validator=flag)
    fail_open: bool = attrs.field(default=True, validator=flag)


@attrs.frozen
class CacheStats:
    """What a ``CacheManager`` did since it was made (or since ``reset_stats()``).

    ``hits``: lookups answered by the backend; ``misses``: lookups that found nothing
    (the call went upstream); ``coalesced``: calls answered by an identical call in
    flight (single flight), with no lookup and no request; ``stores``: entries written;
    ``errors``: backend failures (each also a miss or a store not made).
    """

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    stores: int = 0
    errors: int = 0

    @property
    def requests(self) -> int:
        """Calls (or ``get``s) the cache answered or passed on."""
        return self.hits + self.misses + self.coalesced

    @property
    def hit_ratio(self) -> float:
        """The share of ``requests`` answered without going upstream (0.0 when none)."""
        total = self.requests
        return (self.hits + self.coalesced) / total if total else 0.0


# ------------------------------------------------------------------ keys


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON data: attrs classes as objects with their class name,
    enums as their values, sequences as lists, bytes as base64."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigurationError(f"{where}: {value!r} cannot be part of a cache key")
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value, where)
    if attrs.has(type(value)):
        plain = {"type": type(value).__name__}
        for field in attrs.fields(type(value)):
            plain[field.name] = _plain(getattr(value, field.name), f"{where}.{field.name}")
        return plain
    if isinstance(value, Mapping):
        plain = {}
        for name, item in value.items():
            if not isinstance(name, str):
                raise ConfigurationError(f"{where}: key {name!r} is not a string")
            plain[name] = _plain(item, f"{where}.{name}")
        return plain
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Sequence):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ConfigurationError(f"{where}: a {type(value).__name__} cannot be part of a cache key")


def _endpoint(base_url: str) -> str:
    """The endpoint a key names: scheme, host, port and path; never credentials or a
    query (where a key could be)."""
    parts = urlsplit(base_url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()


def canonical_json(material: Mapping[str, Any]) -> bytes:
    """The one byte form of ``material``: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


# ------------------------------------------------------------------ single flight


class _Flight:
    """One call in flight that identical calls may wait for."""

    __slots__ = ("done", "failed", "owner", "reply")

    def __init__(self, owner: int) -> None:
        self.done = anyio.Event()
        self.owner = owner  # the task that opened it (streams only; else 0)
        self.reply: CachedReply | None = None
        self.failed = False

    def settle(self, reply: CachedReply) -> None:
        self.reply = reply
        self.done.set()


#: what a waiter does when it did not get an answer
_LEAD, _ALONE = "lead", "alone"


# ------------------------------------------------------------------ the manager


class CacheManager(ResponseCache):
    """A response cache over one backend (default: ``MemoryCache()``).

    Used directly, as in the reference::

        cache = CacheManager(
            config=CacheConfig(default_ttl_seconds=3600), backend=MemoryCache(max_size=1000)
        )
        messages = [Message.user("2+2?")]
        for _ in range(2):
            key = cache.generate_key(model="gpt-4o", messages=messages)
            if (response := await cache.get(key)) is None:
                response = await client.chat().messages(messages).execute()
                await cache.set(key, response)
        assert cache.stats().hit_ratio == 0.5

    or given to clients, which then answer repeated requests and streams from it with no
    HTTP request (see the module docstring)::

        async with open_client("openai/gpt-4o", cache=CacheManager()) as cached:
            first = await cached.chat().user("hi").execute()
            assert await cached.chat().user("hi").execute() == first  # no HTTP request

    ``async with cache:`` opens the backend (``RedisCache`` needs it; the others work
    without). A client opens a cache that is not open and closes it with itself; to share
    one opened cache between clients, open it yourself around them.
    """

    def __init__(
        self, config: CacheConfig | None = None, backend: CacheBackend | None = None
    ) -> None:
        if config is None:
            config = CacheConfig()
        if not isinstance(config, CacheConfig):
            raise ConfigurationError(f"config must be a CacheConfig, got {config!r}")
        if backend is None:
            backend = MemoryCache()
        if not isinstance(backend, CacheBackend):
            raise ConfigurationError(
                f"backend must be a CacheBackend (MemoryCache, DiskCache, RedisCache,"
                f" NullCache), got {backend!r}"
            )
        self.config = config
        self.backend = backend
        self._open = False
        self._flights: dict[tuple[int, str], _Flight] = {}
        self._hits = self._misses = self._coalesced = self._stores = self._errors = 0

    def __repr__(self) -> str:
        return f"<CacheManager {self.backend!r} {'open' if self._open else 'closed'}>"

    # ------------------------------------------------------------ lifecycle

    @property
    def is_open(self) -> bool:
        return self._open

    async def __aenter__(self) -> CacheManager:
        if self._open:
            raise RuntimeError(f"{self!r} is already open")
        self._open = True  # first: a second client opening it meanwhile only uses it
        try:
            await self.backend.__aenter__()
        except BaseException:
            self._open = False
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if not self._open:
            return None
        self._open = False
        return await self.backend.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the backend (in the task that opened it). Idempotent."""
        await self.__aexit__(None, None, None)

    # ------------------------------------------------------------ keys

    def generate_key(
        self,
        *,
        model: str,
        messages: Sequence[Message] = (),
        tools: Sequence[ToolDefinition] = (),
        provider: str | None = None,
        base_url: str | None = None,
        body: Mapping[str, Any] | bytes | str | None = None,
        stream: bool = False,
        **parameters: Any,
    ) -> str:
        """A key for a request: the SHA-256 (hex) of the canonical JSON of everything
        given, with the cache's namespace. The same request gives the same key in every
        process; any difference (a message, a tool, a parameter, the model, the encoded
        ``body`` a provider would receive) gives another. ``parameters`` set to ``None``
        are left out. Pass no secret: an API key has no place in a key.
        """
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"model must be a non-empty string, got {model!r}")
        material: dict[str, Any] = {
            "format": KEY_FORMAT,
            "namespace": self.config.namespace,
            "model": model,
            "stream": bool(stream),
        }
        if provider is not None:
            material["provider"] = provider
        if base_url is not None:
            material["endpoint"] = _endpoint(base_url)
        if messages:
            material["messages"] = _plain(messages, "messages")
        if tools:
            material["tools"] = _plain(tools, "tools")
        given = {name: value for name, value in parameters.items() if value is not None}
        if given:
            material["parameters"] = _plain(given, "parameters")
        if body is not None:
            if isinstance(body, (bytes, str)):
                try:
                    material["body"] = json.loads(body)
                except ValueError as exc:
                    raise ConfigurationError(f"body is not JSON: {exc}") from None
            else:
                material["body"] = _plain(body, "body")
        try:
            data = canonical_json(material)
        except ValueError as exc:  # NaN in a decoded body
            raise ConfigurationError(f"cannot make a cache key: {exc}") from None
        return hashlib.sha256(data).hexdigest()

    def key_for(self, client: Client, call: Call) -> str:
        """The key of ``call`` on ``client``: its provider, model, endpoint, stream flag
        and the body its primary target encodes. Raises what encoding raises (a request
        the library refuses)."""
        return self.generate_key(
            model=call.model,
            provider=call.provider,
            base_url=client.base_url,
            body=client.primary.encode(call.request),
            stream=call.stream,
        )

    # ------------------------------------------------------------ entries

    def _backend_failed(self, exc: CacheError, what: str) -> None:
        self._errors += 1
        if not self.config.fail_open:
            raise exc
        _log.warning("cache %s failed, going on without it: %s", what, exc)

    async def lookup(self, key: str, *, stream: bool = False) -> CachedReply | None:
        """The entry under ``key`` (counted as a hit or a miss), or ``None``; with
        ``stream``, only an entry that recorded a stream's events."""
        try:
            data = await self.backend.get(key)
        except CacheError as exc:
            self._misses += 1
            self._backend_failed(exc, "lookup")
            return None
        reply = None if data is None else decode_reply(data)
        if reply is not None and stream and reply.events is None:
            reply = None
        if reply is None:
            if data is not None:
                _log.debug("cache entry %s does not decode: a miss", key)
            self._misses += 1
        else:
            self._hits += 1
        return reply

    async def store(self, key: str, reply: CachedReply, ttl: float | None = None) -> None:
        """Write ``reply`` under ``key`` for ``ttl`` seconds (default: the config's)."""
        if ttl is None:
            ttl = self.config.default_ttl_seconds
        try:
            data = encode_reply(reply)
        except (TypeError, ValueError) as exc:  # a response a middleware made, not JSON
            _log.warning("cache: a reply that is not JSON is not cached: %s", exc)
            return
        try:
            await self.backend.set(key, data, ttl)
        except CacheError as exc:
            self._backend_failed(exc, "store")
            return
        self._stores += 1

    async def get(self, key: str) -> ChatResponse | None:
        """The response cached under ``key`` (a stream's: its whole response), or None."""
        reply = await self.lookup(key)
        return None if reply is None else reply.response

    async def set(self, key: str, response: ChatResponse, *, ttl: float | None = None) -> None:
        """Cache ``response`` under ``key`` for ``ttl`` seconds (default: the config's)."""
        if not isinstance(response, ChatResponse):
            raise ConfigurationError(f"response must be a ChatResponse, got {response!r}")
        optional_seconds(None, attrs.fields(CacheConfig).default_ttl_seconds, ttl)
        reply = CachedReply(response=response, provider="", model=response.model or "")
        await self.store(key, reply, ttl)

    async def delete(self, key: str) -> None:
        """Forget the entry under ``key``."""
        await self.backend.delete(key)

    async def clear(self) -> None:
        """Forget every entry of the backend (for Redis: under its prefix)."""
        await self.backend.clear()

    def stats(self) -> CacheStats:
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            coalesced=self._coalesced,
            stores=self._stores,
            errors=self._errors,
        )

    def reset_stats(self) -> None:
        self._hits = self._misses = self._coalesced = self._stores = self._errors = 0

    # ------------------------------------------------------------ the client's middleware

    def middleware_for(self, client: Client) -> Middleware:
        return CacheMiddleware(self, client)

    async def _join(self, key: str, owner: int) -> _Flight | CachedReply | str:
        """Before a call: wait for an identical one in flight. Returns its answer, or
        ``_ALONE`` (go upstream without a flight: it failed, the wait timed out, or this
        task holds it), or this call's own new flight to lead."""
        flights = self._flights
        flight_key = (threading.get_ident(), key)
        while (flight := flights.get(flight_key)) is not None:
            if owner and flight.owner == owner:
                return _ALONE  # this task holds the identical stream open: never wait on it
            with anyio.move_on_after(self.config.wait_timeout_seconds or math.inf):
                await flight.done.wait()
            if flight.reply is not None:
                self._coalesced += 1
                return flight.reply
            if flight.failed or not flight.done.is_set():
                return _ALONE
            # abandoned (cancelled, or a stream closed unfinished): take over or wait again
        flight = flights[flight_key] = _Flight(owner)
        return flight

    def _release(self, key: str, flight: _Flight) -> None:
        """End ``flight``: forget it, and wake its waiters (idempotent)."""
        flight_key = (threading.get_ident(), key)
        if self._flights.get(flight_key) is flight:
            del self._flights[flight_key]
        flight.done.set()

    async def answer(self, key: str, call: Call, next: Next) -> ChatResponse:
        """An ``execute()`` call through the cache."""
        flight: _Flight | None = None
        if self.config.single_flight:
            joined = await self._join(key, 0)
            if isinstance(joined, CachedReply):
                return joined.response
            if isinstance(joined, _Flight):
                flight = joined
        try:
            reply = await self.lookup(key)
            if reply is not None:
                if flight is not None:
                    flight.settle(reply)
                await anyio.lowlevel.checkpoint()
                return reply.response
            response: ChatResponse = await next(call)
            reply = CachedReply(response=response, provider=call.provider, model=call.model)
            if flight is not None:
                flight.settle(reply)  # waiters go on now; the store follows
            await self.store(key, reply)
            return response
        except Exception:
            if flight is not None:
                flight.failed = True
            raise
        finally:
            if flight is not None:
                self._release(key, flight)

    async def answer_stream(self, key: str, call: Call, next: Next) -> TargetStream | ReplayStream:
        """A ``stream()`` call through the cache: a replay on a hit, else the live stream,
        recorded as its user reads it."""
        flight: _Flight | None = None
        if self.config.single_flight:
            joined = await self._join(key, anyio.get_current_task().id)
            if isinstance(joined, CachedReply):
                return _replay(joined)
            if isinstance(joined, _Flight):
                flight = joined
        try:
            reply = await self.lookup(key, stream=True)
            if reply is not None:
                if flight is not None:
                    flight.settle(reply)
                    self._release(key, flight)
                await anyio.lowlevel.checkpoint()
                return _replay(reply)
            stream: TargetStream | ReplayStream = await next(call)
        except BaseException as exc:
            if flight is not None:
                flight.failed = isinstance(exc, Exception)
                self._release(key, flight)
            raise
        stream.watch(_Recorder(self, key, flight, stream.provider, stream.model))
        return stream


def _replay(reply: CachedReply) -> ReplayStream:
    assert reply.events is not None
    return ReplayStream(reply.events, reply.response, provider=reply.provider, model=reply.model)


class _Recorder(StreamWatcher):
    """Records one live stream; stores it when its user read it to the end."""

    def __init__(
        self, manager: CacheManager, key: str, flight: _Flight | None, provider: str, model: str
    ) -> None:
        self._manager, self._key, self._flight = manager, key, flight
        self._provider, self._model = provider, model
        self._events: list[Any] = []

    def on_event(self, event: Any) -> None:
        self._events.append(event)

    async def on_complete(self, response: ChatResponse) -> None:
        reply = CachedReply(
            response=response,
            provider=self._provider,
            model=self._model,
            events=tuple(self._events),
        )
        flight = self._flight
        if flight is not None:
            flight.settle(reply)  # waiters replay it now; the store follows
        try:
            await self._manager.store(self._key, reply)
        finally:
            if flight is not None:
                self._manager._release(self._key, flight)

    def on_close(self) -> None:
        if self._flight is not None:
            self._manager._release(self._key, self._flight)


class CacheMiddleware(Middleware):
    """A ``CacheManager`` on one client's seam (the innermost call-level middleware)."""

    def __init__(self, manager: CacheManager, client: Client) -> None:
        self.manager = manager
        self.client = client

    def __repr__(self) -> str:
        return f"CacheMiddleware({self.manager!r})"

    async def on_call(self, call: Call, next: Next) -> Any:
        manager = self.manager
        if call.stream and not manager.config.cache_streams:
            return await next(call)
        try:
            key = manager.key_for(self.client, call)
        except AiLibError:
            return await next(call)  # a request the library refuses: let it say so
        if call.stream:
            return await manager.answer_stream(key, call, next)
        return await manager.answer(key, call, next)
