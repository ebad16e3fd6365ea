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

from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from ..._core._errors import CacheError, ConfigurationError
from .._redisconn import RedisConnection, check_redis_settings, failures
from ._backends import CacheBackend

if TYPE_CHECKING:
    import coredis

__all__ = ["RedisCache"]


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
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be a string, got {prefix!r}")
        check_redis_settings("RedisCache", url, timeout, max_connections)
        self._connection = RedisConnection(
            url,
            timeout=timeout,
            max_connections=max_connections,
            owner="RedisCache",
            error=lambda message: CacheError(message, backend=self.name),
            logger="ailib_anyio.cache",
        )
        self.url = self._connection.url
        self.prefix = prefix
        self.timeout = float(timeout)
        self.max_connections = max_connections

    def __repr__(self) -> str:
        return f"RedisCache({self.url!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------ lifecycle

    @property
    def is_open(self) -> bool:
        return self._connection.client is not None

    async def __aenter__(self) -> RedisCache:
        connection = self._connection
        if connection.is_open:
            raise RuntimeError(f"{self!r} is already open")
        await connection.__aenter__()
        try:
            await connection.connect()
        except BaseException:
            await connection.__aexit__(None, None, None)  # nothing runs in it: returns at once
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._connection.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the connections (the task that opened the cache must do it). Idempotent."""
        await self.__aexit__(None, None, None)

    @property
    def _backstop(self) -> float:
        return self._connection.backstop

    def _opened(self) -> coredis.Redis[bytes]:
        client = self._connection.client
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
        client = self._opened()
        try:
            with anyio.fail_after(self._backstop):
                value = await client.get(self.prefix + key)
        except failures() as exc:
            raise self._failed("GET", exc) from exc
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        client = self._opened()
        try:
            with anyio.fail_after(self._backstop):
                if ttl is None:
                    await client.set(self.prefix + key, value)
                else:
                    await client.set(self.prefix + key, value, px=max(1, round(ttl * 1000)))
        except failures() as exc:
            raise self._failed("SET", exc) from exc

    async def delete(self, key: str) -> None:
        client = self._opened()
        try:
            with anyio.fail_after(self._backstop):
                await client.delete([self.prefix + key])
        except failures() as exc:
            raise self._failed("DEL", exc) from exc

    async def clear(self) -> None:
        """Delete every key under ``prefix`` (``SCAN`` and ``DEL`` in batches)."""
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
        except failures() as exc:
            raise self._failed("clear", exc) from exc

    async def ttl(self, key: str) -> float | None:
        """Seconds left before ``key`` expires on the server (``None``: missing, or no
        expiry)."""
        client = self._opened()
        try:
            with anyio.fail_after(self._backstop):
                left = await client.pttl(self.prefix + key)
        except failures() as exc:
            raise self._failed("PTTL", exc) from exc
        return None if left < 0 else left / 1000
