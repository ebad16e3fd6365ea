"""``RedisCache``: the cache in Redis, shared by processes and machines (extra ``redis``).

Built on coredis, whose client runs on anyio and so under asyncio and trio alike
(redis-py's asyncio client does not run under trio). A coredis client must be entered
(``async with client:``) by one task, which owns its connection pool's task group; here
that task is a holder started in the cache's own task group when it opens: it connects,
sends a ``PING`` (an unreachable server is a ``CacheError`` there, within about
``timeout`` seconds: both the connect and the read timeouts are set, and coredis's
retries are off), then waits until the cache closes. Every operation has a backstop
deadline too, so nothing waits on Redis past a few ``timeout``s. Entries expire on the
server (``SET ... PX``), so every process sees the same time to live.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.abc

from ..._core._errors import CacheError, ConfigurationError
from ..._resilience._taskgroups import exit_task_group
from ._backends import CacheBackend

if TYPE_CHECKING:
    import coredis

__all__ = ["RedisCache"]

_log = logging.getLogger("ailib_anyio.cache")

_SCHEMES = ("redis", "rediss", "unix")


def _safe_url(url: str) -> str:
    """``url`` without its credentials (``redis://user:password@host`` -> ``redis://host``)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisCache(CacheBackend):
    """A cache in Redis (6 or later), shared by every process and machine using the same
    server and ``prefix``.

    ``url``: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or
    ``unix:///path``; ``prefix`` is put before every key (several caches or applications
    can share one database); ``timeout`` (seconds) bounds connecting and each reply.

    It must be opened: ``async with cache_manager:`` or ``open_client(..., cache=...)``
    does it (in the task that will close it: the cache owns a task group). Needs coredis:
    ``pip install 'ailib-anyio[redis]'``.
    """

    name = "RedisCache"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "ailib:cache:",
        timeout: float = 2.0,
        max_connections: int | None = None,
    ) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
            shown = _safe_url(url) if isinstance(url, str) else repr(url)
            raise ConfigurationError(
                f"url must be a redis://, rediss:// or unix:// URL, got {shown!r}"
            )
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be a string, got {prefix!r}")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not (timeout > 0 and math.isfinite(timeout))
        ):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        if max_connections is not None and (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ConfigurationError(
                f"max_connections must be a positive integer, got {max_connections!r}"
            )
        if importlib.util.find_spec("coredis") is None:
            raise ConfigurationError("RedisCache needs coredis: pip install 'ailib-anyio[redis]'")
        self._url = url  # may hold a password: never shown
        self.url = _safe_url(url)
        self.prefix = prefix
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self._task_group: anyio.abc.TaskGroup | None = None
        self._client: coredis.Redis[bytes] | None = None

    def __repr__(self) -> str:
        return f"RedisCache({self.url!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------ lifecycle

    @property
    def is_open(self) -> bool:
        return self._client is not None

    async def __aenter__(self) -> RedisCache:
        if self._task_group is not None:
            raise RuntimeError(f"{self!r} is already open")
        task_group = self._task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(self._hold)
        except BaseException:
            self._task_group = None
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)  # nothing runs in it: returns at once
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return None
        task_group.cancel_scope.cancel()  # ends the holder, which closes the client
        return await exit_task_group(task_group, exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the connections (the task that opened the cache must do it). Idempotent."""
        await self.__aexit__(None, None, None)

    async def _hold(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Own the coredis client: enter it, check the server answers, then wait until the
        cache closes (which cancels this task)."""
        import coredis
        from coredis.exceptions import RedisError
        from coredis.retry import NoRetryPolicy

        failure: BaseException | None = None
        started = False
        try:
            # A plain connect first: a refused or unroutable address fails here, fast and
            # quietly (a failed coredis connection logs an error and leaves streams open).
            await self._can_connect()
            options: dict[str, Any] = {}
            if self.max_connections is not None:
                options["max_connections"] = self.max_connections
            client = coredis.Redis.from_url(
                self._url,
                decode_responses=False,
                connect_timeout=self.timeout,
                stream_timeout=self.timeout,
                retry_policy=NoRetryPolicy(),  # fail fast: the cache is optional
                **options,
            )
            async with client:
                try:
                    with anyio.fail_after(self._backstop):
                        await client.ping()
                except (RedisError, OSError, TimeoutError) as exc:
                    failure = exc  # leave the block normally: coredis would wrap it
                else:
                    self._client = client
                    started = True
                    task_status.started()
                    try:
                        await anyio.sleep_forever()
                    finally:
                        self._client = None
        except Exception as exc:  # noqa: BLE001 - coredis's pool failed (an exception group)
            if started:  # the cache stops answering; the client it serves goes on
                _log.warning("%r: the connection pool failed: %r", self, exc)
                return
            failure = failure or exc
        if failure is not None:
            raise CacheError(
                f"cannot reach Redis at {self.url}: {type(failure).__name__}: {failure}",
                backend=self.name,
            ) from failure

    async def _can_connect(self) -> None:
        parts = urlsplit(self._url)
        with anyio.fail_after(self.timeout):
            if parts.scheme == "unix":
                stream: anyio.abc.ByteStream = await anyio.connect_unix(parts.path)
            else:
                stream = await anyio.connect_tcp(parts.hostname or "127.0.0.1", parts.port or 6379)
        await stream.aclose()

    @property
    def _backstop(self) -> float:
        return 2 * self.timeout + 1

    def _opened(self) -> coredis.Redis[bytes]:
        client = self._client
        if client is None:
            raise CacheError(
                f"{self!r} is not open: use 'async with cache:' or give it to open_client",
                backend=self.name,
            )
        return client

    def _failed(self, what: str, exc: BaseException) -> CacheError:
        return CacheError(
            f"Redis at {self.url}: {what} failed: {type(exc).__name__}: {exc}", backend=self.name
        )

    # ------------------------------------------------------------ the interface

    async def get(self, key: str) -> bytes | None:
        from coredis.exceptions import RedisError

        client = self._opened()
        try:
            with anyio.fail_after(self._backstop):
                value = await client.get(self.prefix + key)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._failed("GET", exc) from exc
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        from coredis.exceptions import RedisError

        client = self._opened()
        try:
            with anyio.fail_after(self._backstop):
                if ttl is None:
                    await client.set(self.prefix + key, value)
                else:
                    await client.set(self.prefix + key, value, px=max(1, round(ttl * 1000)))
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._failed("SET", exc) from exc

    async def delete(self, key: str) -> None:
        from coredis.exceptions import RedisError

        client = self._opened()
        try:
            with anyio.fail_after(self._backstop):
                await client.delete([self.prefix + key])
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._failed("DEL", exc) from exc

    async def clear(self) -> None:
        """Delete every key under ``prefix`` (``SCAN`` and ``DEL`` in batches)."""
        from coredis.exceptions import RedisError

        client = self._opened()
        pattern = _glob_escape(self.prefix) + "*"
        try:
            batch: list[str | bytes] = []
            async for key in client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    with anyio.fail_after(self._backstop):
                        await client.delete(batch)
                    batch = []
            if batch:
                with anyio.fail_after(self._backstop):
                    await client.delete(batch)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._failed("clear", exc) from exc

    async def ttl(self, key: str) -> float | None:
        """Seconds left before ``key`` expires on the server (``None``: missing, or no
        expiry)."""
        from coredis.exceptions import RedisError

        client = self._opened()
        try:
            with anyio.fail_after(self._backstop):
                left = await client.pttl(self.prefix + key)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._failed("PTTL", exc) from exc
        return None if left < 0 else left / 1000
