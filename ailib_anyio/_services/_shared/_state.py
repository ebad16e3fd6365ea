"""``RedisState``: rate limits and circuit state shared by every process through Redis.

One ``RedisState`` per process holds one connection pool (see ``_redisconn``) and hands
each client target its :class:`~._limiter.RedisRateLimiter` and
:class:`~._circuit.RedisCircuitStore`, keyed by provider, model and a fingerprint of the
API key (the rate limit) or of the base URL (the circuit). Every change runs as one Lua
script on the server (``_lua``), on the server's clock.

When Redis cannot be reached: at open, ``SharedStateError`` within about ``timeout``
seconds; while running, the request that found out fails with ``SharedStateError`` and
Redis is not tried again for ``recheck_after`` seconds (requests fail at once meanwhile,
never hang). With ``fallback_to_local=True`` each limiter and breaker answers from an
in-process twin instead, with a warning logged when Redis goes and when it comes back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from ..._core._breaker import CircuitBreakerConfig
from ..._core._bucket import RateLimiterConfig
from ..._core._checks import positive_seconds
from ..._core._errors import ConfigurationError, SharedStateError
from ..._core._logging import get_logger
from ..._resilience._shared import SharedScope, SharedState
from .._redisconn import RedisConnection, check_redis_settings, failures

if TYPE_CHECKING:
    import coredis
    from coredis.commands.script import Script

    from ._circuit import RedisCircuitStore
    from ._limiter import RedisRateLimiter

__all__ = ["RedisState"]

#: when Redis goes and comes back, at WARNING
log = get_logger("ailib_anyio.shared")


class RedisState(SharedState):
    """Rate limits and circuit state in Redis (6 or later), shared by every process that
    uses the same server and ``prefix``::

        # not run: needs a Redis server (see tests/services/test_shared_state.py)
        state = RedisState("redis://127.0.0.1:6379/0")
        async with open_client("openai/gpt-4o", rate_limit=RateLimiterConfig.from_rps(5),
                               circuit_breaker=CircuitBreakerConfig(),
                               shared_state=state) as client:
            ...

    - ``url``: ``redis://[user:password@]host:port/db``, ``rediss://`` or ``unix:///path``;
      ``prefix`` starts every key; ``timeout`` (seconds) bounds connecting and each reply.
    - ``fallback_to_local``: when Redis cannot be reached (at open or later), use each
      target's in-process limiter and breaker instead of failing with
      ``SharedStateError``, logging a warning; Redis is tried again every
      ``recheck_after`` seconds, and used again once it answers.
    - ``probe_lease``: how long a half-open probe holds its slot (seconds) if its worker
      never reports back (it died): then another worker may probe.

    The client opens it unless it is open already (``async with state:``, to share one
    pool between several clients of a process). Every worker must give the same limits
    (``RateLimiterConfig``, ``CircuitBreakerConfig``) for the same provider, key and model.
    Needs coredis: ``pip install 'ailib-anyio[redis]'``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "ailib:",
        timeout: float = 1.0,
        fallback_to_local: bool = False,
        probe_lease: float = 60.0,
        recheck_after: float = 5.0,
        max_connections: int | None = None,
    ) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be a string, got {prefix!r}")
        if not isinstance(fallback_to_local, bool):
            raise ConfigurationError(
                f"fallback_to_local must be True or False, got {fallback_to_local!r}"
            )
        self.probe_lease = positive_seconds("probe_lease", probe_lease)
        self.recheck_after = positive_seconds("recheck_after", recheck_after)
        check_redis_settings("RedisState", url, timeout, max_connections)
        self._connection = RedisConnection(
            url,
            timeout=timeout,
            max_connections=max_connections,
            owner="RedisState",
            error=lambda message: SharedStateError(message),
            logger="ailib_anyio.shared",
        )
        self.url = self._connection.url  # without the password
        self.prefix = prefix
        self.timeout = float(timeout)
        self.fallback_to_local = fallback_to_local
        self._limiters: dict[tuple[SharedScope, RateLimiterConfig], RedisRateLimiter] = {}
        self._circuits: dict[tuple[SharedScope, CircuitBreakerConfig], RedisCircuitStore] = {}
        self._scripts: dict[str, Script[bytes]] = {}
        self._scripts_of: coredis.Redis[bytes] | None = None
        self._down_since: float | None = None  # when Redis was last found unreachable
        self._retry_at = -math.inf  # not tried again before this time
        self._recovering = False

    def __repr__(self) -> str:
        return f"RedisState({self.url!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------ lifecycle

    @property
    def is_open(self) -> bool:
        return self._connection.is_open

    @property
    def available(self) -> bool:
        """False while Redis is known to be unreachable (with ``fallback_to_local``, the
        local limiters and breakers answer meanwhile)."""
        return self.is_open and self._down_since is None

    async def __aenter__(self) -> RedisState:
        connection = self._connection
        if connection.is_open:
            raise RuntimeError(f"{self!r} is already open")
        await connection.__aenter__()
        try:
            await connection.connect()
        except SharedStateError as exc:
            if not self.fallback_to_local:
                await connection.__aexit__(None, None, None)  # nothing runs in it
                raise
            self._went_down(exc)
        except BaseException:
            await connection.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._scripts.clear()
        self._scripts_of = None
        # their queues and locks belong to this run: a state opened again starts afresh
        self._limiters.clear()
        self._circuits.clear()
        self._down_since, self._retry_at = None, -math.inf
        return await self._connection.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the connections (the task that opened the state must do it). Idempotent."""
        await self.__aexit__(None, None, None)

    # ------------------------------------------------------------ what clients get

    def rate_limiter(self, config: RateLimiterConfig, scope: SharedScope) -> RedisRateLimiter:
        """The shared limiter of ``scope`` (one per scope and config in this process, so
        that its callers queue in one FIFO line)."""
        from ._limiter import RedisRateLimiter

        if not isinstance(config, RateLimiterConfig):
            raise ConfigurationError(f"config must be a RateLimiterConfig, got {config!r}")
        if not isinstance(scope, SharedScope):
            raise ConfigurationError(f"scope must be a SharedScope, got {scope!r}")
        limiter = self._limiters.get((scope, config))
        if limiter is None:
            limiter = self._limiters[scope, config] = RedisRateLimiter(self, config, scope)
        return limiter

    def circuit(self, config: CircuitBreakerConfig, scope: SharedScope) -> RedisCircuitStore:
        """The shared circuit breaker of ``scope`` (one per scope and config in this
        process)."""
        from ._circuit import RedisCircuitStore

        if not isinstance(config, CircuitBreakerConfig):
            raise ConfigurationError(f"config must be a CircuitBreakerConfig, got {config!r}")
        if not isinstance(scope, SharedScope):
            raise ConfigurationError(f"scope must be a SharedScope, got {scope!r}")
        circuit = self._circuits.get((scope, config))
        if circuit is None:
            circuit = self._circuits[scope, config] = RedisCircuitStore(self, config, scope)
        return circuit

    def key(self, kind: str, *parts: str) -> str:
        """A key under ``prefix``; the parts inside ``{...}`` (one hash slot in a cluster:
        a circuit's keys go together)."""
        return f"{self.prefix}{kind}:{{{':'.join(parts)}}}"

    # ------------------------------------------------------------ talking to Redis

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> bool:
        """Run ``func(*args)`` in the state's own task group (False when it is closed)."""
        return self._connection.start_soon(func, *args)

    async def run(
        self,
        source: str,
        keys: Sequence[str],
        args: Sequence[str],
        *,
        what: str,
        context: Mapping[str, Any],
    ) -> list[Any]:
        """Run the Lua script ``source`` (by its SHA, loaded on first use); its reply.

        ``SharedStateError`` (with ``context``: provider, model) when Redis does not
        answer, and at once, without trying, while it is known to be unreachable."""
        if self._down_since is not None:
            await self._recover(context)
        client = self._connection.client
        if client is None:
            if not self._connection.is_open:
                raise SharedStateError(
                    f"{self!r} is not open: use 'async with state:' or give it to open_client",
                    **context,
                )
            error = SharedStateError(f"Redis at {self.url}: the connection pool is gone", **context)
            self._went_down(error)
            raise error
        script = self._script(client, source)
        try:
            with anyio.fail_after(self._connection.backstop):
                reply: Any = await script(keys=keys, args=args)
        except failures() as exc:
            error = SharedStateError(
                f"Redis at {self.url}: {what} failed: {type(exc).__name__}: {exc}", **context
            )
            self._went_down(error)
            raise error from exc
        if not isinstance(reply, list):  # pragma: no cover - the scripts return tables
            raise SharedStateError(f"Redis at {self.url}: {what}: unexpected reply", **context)
        return reply

    def _script(self, client: coredis.Redis[bytes], source: str) -> Script[bytes]:
        if self._scripts_of is not client:
            self._scripts.clear()
            self._scripts_of = client
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        return script

    def _went_down(self, error: SharedStateError) -> None:
        now = anyio.current_time()
        self._retry_at = now + self.recheck_after
        if self._down_since is None:
            self._down_since = now
            then = (
                "the local rate limiters and circuit breakers answer until it is back"
                if self.fallback_to_local
                else "requests fail with SharedStateError until it is back"
            )
            log.warning(
                f"shared state unavailable: {error.message}; {then}",
                checked_every=self.recheck_after,
            )

    async def _recover(self, context: Mapping[str, Any]) -> None:
        """Raise at once while Redis is known down; after ``recheck_after``, one caller
        checks (a plain connect, then the pool) and the others keep failing fast."""
        now = anyio.current_time()
        if now < self._retry_at or self._recovering:
            down_for = now - (self._down_since or now)
            raise SharedStateError(
                f"Redis at {self.url} is unreachable (for {down_for:.1f}s; tried again every"
                f" {self.recheck_after:g}s)",
                **context,
            )
        self._recovering = True
        try:
            try:
                await self._connection.can_connect()
                if self._connection.client is None:
                    await self._connection.connect()
            except (OSError, TimeoutError, SharedStateError) as exc:
                self._retry_at = anyio.current_time() + self.recheck_after
                raise SharedStateError(
                    f"Redis at {self.url} is still unreachable: {type(exc).__name__}: {exc}",
                    **context,
                ) from exc
        finally:
            self._recovering = False
        down_for = now - (self._down_since or now)
        self._down_since = None
        log.warning("shared state available again", url=self.url, after=round(down_for, 1))
