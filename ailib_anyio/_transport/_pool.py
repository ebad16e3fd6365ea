"""``ConnectionPool`` and ``PoolConfig``: HTTP connections shared by the clients of one
provider (one origin), owned by a block the caller opens.

A pool holds one HTTP client (httpx's or httpx2's, :func:`~._http.pooled_http_client`)
per origin (``scheme://host:port`` of a client's base URL), made when the first client of
that origin opens. Clients lent the pool (``open_client(model, pool=pool)``) take a
*lease* on their origin's HTTP client: closing a client gives its lease back and leaves
the connections open for the next one; closing the pool closes them all. A pool closed
while a client still uses it interrupts what is in flight with a clear error (a request
waiting for a connection is cancelled, not left to wait out the pool timeout), and a
request started afterwards is refused.

``get_stats()`` counts the connections of each origin (through
:func:`~._http.connection_counts`, the only code that looks inside the HTTP library).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs

from .._core._checks import optional_seconds
from .._core._errors import ConfigurationError
from ._http import (
    HTTP_LIBRARIES,
    connection_counts,
    http_library,
    http_timeout,
    pooled_http_client,
)

__all__ = ["ConnectionPool", "OriginStats", "PoolConfig", "PoolStats"]


# ------------------------------------------------------------------ the settings


def _connections(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    least = 1 if attribute.name == "max_connections" else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(
            f"{attribute.name} must be an integer >= {least} or None, got {value!r}"
        )


def _library(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in HTTP_LIBRARIES:
        raise ConfigurationError(f"http_library must be 'httpx' or 'httpx2', got {value!r}")


@attrs.frozen(kw_only=True)
class PoolConfig:
    """The limits of a ``ConnectionPool``, per origin (each origin has its own HTTP client
    and its own connections). Each setting is checked when made; a bad one is a
    ``ConfigurationError`` naming it.

    - ``max_connections``: connections open at once (None: unbounded); a request beyond
      it waits for one, at most ``pool_timeout``.
    - ``max_keepalive_connections``: idle connections kept for reuse (None: all; never
      more than ``max_connections``, whatever it says).
    - ``keepalive_expiry``: seconds an idle connection is kept (None: until the server
      closes it).
    - ``connect_timeout`` / ``read_timeout`` / ``pool_timeout``: seconds; None keeps the
      library's default (``AI_HTTP_TIMEOUT_SECS``, else 10 s to connect, 600 s to read,
      60 s to get a connection). A client's own ``timeout=`` still wins.
    - ``http_library``: ``"httpx"`` or ``"httpx2"`` (the extra ``ailib-anyio[httpx2]``).

    Presets: :meth:`default`, :meth:`high_throughput`, :meth:`low_latency`; change one
    setting with ``attrs.evolve(PoolConfig.high_throughput(), http_library="httpx2")``.
    """

    max_connections: int | None = attrs.field(default=100, validator=_connections)
    max_keepalive_connections: int | None = attrs.field(default=20, validator=_connections)
    keepalive_expiry: float | None = attrs.field(default=30.0, validator=optional_seconds)
    connect_timeout: float | None = attrs.field(default=None, validator=optional_seconds)
    read_timeout: float | None = attrs.field(default=None, validator=optional_seconds)
    pool_timeout: float | None = attrs.field(default=None, validator=optional_seconds)
    http_library: str = attrs.field(default="httpx", validator=_library)

    @classmethod
    def default(cls) -> PoolConfig:
        """100 connections per origin, 20 kept idle for 30 s: ``PoolConfig()``."""
        return cls()

    @classmethod
    def high_throughput(cls) -> PoolConfig:
        """Many concurrent requests (batch jobs, fan-out): 500 connections per origin,
        200 kept idle for 60 s, and up to 120 s to wait for a free one."""
        return cls(
            max_connections=500,
            max_keepalive_connections=200,
            keepalive_expiry=60.0,
            pool_timeout=120.0,
        )

    @classmethod
    def low_latency(cls) -> PoolConfig:
        """Interactive use: every connection kept warm (100 per origin, idle for 120 s, so
        a request rarely pays a handshake), and failing fast: 5 s to connect, 5 s to get
        a connection."""
        return cls(
            max_connections=100,
            max_keepalive_connections=100,
            keepalive_expiry=120.0,
            connect_timeout=5.0,
            pool_timeout=5.0,
        )


# ------------------------------------------------------------------ the statistics


@attrs.frozen
class OriginStats:
    """The connections of one origin of a ``ConnectionPool``.

    ``active_connections`` carry a request (or are being set up); ``idle_connections``
    wait for the next one (None for both if the HTTP library no longer lets them be
    counted). ``clients``: open clients using the origin now; ``requests_served``:
    requests sent through it since the pool opened (retries count, cache hits do not)."""

    origin: str
    providers: tuple[str, ...]
    active_connections: int | None
    idle_connections: int | None
    max_connections: int | None
    max_keepalive_connections: int | None
    clients: int
    requests_served: int


@attrs.frozen
class PoolStats:
    """What ``ConnectionPool.get_stats()`` returns: one ``OriginStats`` per origin, in
    the order they were first used. ``stats["openai"]`` (a provider id) or
    ``stats["https://api.openai.com"]`` (an origin) is that one's ``OriginStats``."""

    origins: tuple[OriginStats, ...]

    @property
    def active_connections(self) -> int:
        """Active connections over every origin (those that cannot be counted count 0)."""
        return sum(o.active_connections or 0 for o in self.origins)

    @property
    def idle_connections(self) -> int:
        """Idle connections over every origin (those that cannot be counted count 0)."""
        return sum(o.idle_connections or 0 for o in self.origins)

    @property
    def requests_served(self) -> int:
        """Requests sent through the pool, over every origin."""
        return sum(o.requests_served for o in self.origins)

    def __iter__(self) -> Iterator[OriginStats]:
        return iter(self.origins)

    def __len__(self) -> int:
        return len(self.origins)

    def __contains__(self, key: object) -> bool:
        return any(key == o.origin or key in o.providers for o in self.origins)

    def __getitem__(self, key: str) -> OriginStats:
        """The stats of the origin ``key``, or of the one origin the provider ``key``
        uses; ``ConfigurationError`` for one the pool has not served, or a provider
        reached at several origins (ask by origin then)."""
        for o in self.origins:
            if o.origin == key:
                return o
        found = [o for o in self.origins if key in o.providers]
        if len(found) == 1:
            return found[0]
        if found:
            raise ConfigurationError(
                f"provider {key!r} uses {len(found)} origins in this pool"
                f" ({', '.join(o.origin for o in found)}): ask for one of them"
            )
        known = sorted({p for o in self.origins for p in o.providers}) + [
            o.origin for o in self.origins
        ]
        raise ConfigurationError(
            f"no connections for {key!r} in this pool (it has: {', '.join(known) or 'none'})"
        )


# ------------------------------------------------------------------ the pool


def origin_of(base_url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, the default port left out."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class _Origin:
    """One origin's HTTP client and counters."""

    __slots__ = ("client", "leases", "name", "providers", "requests")

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client
        self.providers: dict[str, None] = {}  # in order of first use
        self.leases = 0
        self.requests = 0


class _Lease:
    """A client's share of its origin in the pool (``_http.PoolLease``)."""

    __slots__ = ("_origin", "_pool", "_released")

    def __init__(self, pool: ConnectionPool, origin: _Origin) -> None:
        self._pool = pool
        self._origin = origin
        self._released = False
        origin.leases += 1

    @property
    def client(self) -> Any:
        return self._origin.client

    @property
    def is_open(self) -> bool:
        return self._pool.is_open

    def begin(self, scope: anyio.CancelScope) -> None:
        if not self._pool.is_open:
            raise RuntimeError(
                "the ConnectionPool this client uses is closed: open the client inside the"
                " pool's 'async with' block, and close it before the pool"
            )
        self._origin.requests += 1
        self._pool._sending.add(scope)

    def end(self, scope: anyio.CancelScope) -> None:
        self._pool._sending.discard(scope)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._origin.leases -= 1


class ConnectionPool:
    """HTTP connections shared by the clients of each provider (each origin), opened and
    closed by the caller; lend it to clients with ``open_client(model, pool=pool)``::

        async with ConnectionPool(PoolConfig.high_throughput()) as pool:
            async with open_client("openai/gpt-4o", pool=pool) as a, open_client(
                "openai/gpt-4o-mini", pool=pool
            ) as b:
                ...  # a and b share one set of connections to api.openai.com
            print(pool.get_stats()["openai"].idle_connections)

    A client's ``timeout=`` applies to its requests; without it, the pool's timeouts
    (``PoolConfig``) do. Closing a client keeps the pool's connections; closing the pool
    closes them, and interrupts a client still using it with a ``TransportError`` (not
    retried); a request started after that raises ``RuntimeError``. A pool opens once;
    it owns no task, so any task may close it. ``aclose()`` is idempotent.
    """

    def __init__(self, config: PoolConfig | None = None) -> None:
        if config is None:
            config = PoolConfig()
        elif not isinstance(config, PoolConfig):
            raise ConfigurationError(f"config must be a PoolConfig, got {config!r}")
        self.config = config
        http_library(config.http_library)  # httpx2 missing: fails here, not at first use
        self._state = "unopened"
        self._origins: dict[str, _Origin] = {}
        self._sending: set[anyio.CancelScope] = set()
        self._timeout: Any = None

    def __repr__(self) -> str:
        return f"<ConnectionPool {self.config.http_library} {self._state}>"

    @property
    def is_open(self) -> bool:
        """Whether the pool is open (entered and not yet closed)."""
        return self._state == "open"

    async def __aenter__(self) -> ConnectionPool:
        if self._state != "unopened":
            raise RuntimeError("a ConnectionPool can be opened only once")
        config = self.config
        base = http_timeout(None, None)  # AI_HTTP_TIMEOUT_SECS read now; a bad one fails
        self._timeout = base.__class__(
            connect=base.connect if config.connect_timeout is None else config.connect_timeout,
            read=base.read if config.read_timeout is None else config.read_timeout,
            write=base.write,
            pool=base.pool if config.pool_timeout is None else config.pool_timeout,
        )
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection; requests still in flight fail at once. Idempotent;
        completes even when cancelled."""
        if self._state == "closed":
            return
        self._state = "closed"
        for scope in list(self._sending):  # waiting for a connection, or for headers
            scope.cancel()
        self._sending.clear()
        with anyio.CancelScope(shield=True):
            for origin in self._origins.values():
                await origin.client.aclose()

    def check_open(self) -> None:
        """Raise ``RuntimeError`` unless the pool is open (before a client opens)."""
        if self._state == "unopened":
            raise RuntimeError(
                "the ConnectionPool is not open: open clients inside"
                " 'async with ConnectionPool(...) as pool:'"
            )
        if self._state == "closed":
            raise RuntimeError("the ConnectionPool is closed")

    def lease(self, base_url: str, provider: str) -> _Lease:
        """The share of a client of ``provider`` at ``base_url`` (made when it opens)."""
        self.check_open()
        name = origin_of(base_url)
        origin = self._origins.get(name)
        if origin is None:
            config = self.config
            client = pooled_http_client(
                config.http_library,
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_keepalive_connections,
                keepalive_expiry=config.keepalive_expiry,
                timeout=self._timeout,
            )
            origin = self._origins[name] = _Origin(name, client)
        origin.providers.setdefault(provider)
        return _Lease(self, origin)

    def get_stats(self, provider: str | None = None) -> PoolStats:
        """Each origin's connections (only those ``provider`` uses, if given): see
        ``PoolStats`` and ``OriginStats``. Counted now, without I/O."""
        found = []
        for origin in self._origins.values():
            if provider is not None and provider not in origin.providers:
                continue
            counts = connection_counts(origin.client) if self.is_open else (0, 0)
            active, idle = counts if counts is not None else (None, None)
            found.append(
                OriginStats(
                    origin=origin.name,
                    providers=tuple(origin.providers),
                    active_connections=active,
                    idle_connections=idle,
                    max_connections=self.config.max_connections,
                    max_keepalive_connections=self.config.max_keepalive_connections,
                    clients=origin.leases,
                    requests_served=origin.requests,
                )
            )
        return PoolStats(tuple(found))
