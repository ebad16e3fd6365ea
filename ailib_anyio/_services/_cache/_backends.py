"""Cache backends: one small async interface over bytes, and the in-process ones.

A backend stores opaque bytes under string keys with an optional time to live; what the
bytes mean (``_codec``) and how keys are made (``_manager``) is the ``CacheManager``'s
business. ``NullCache`` stores nothing; ``MemoryCache`` is an LRU with a time to live per
entry on cachetools' ``TLRUCache``. ``DiskCache`` (SQLite) and ``RedisCache`` live in
their own modules.
"""

from __future__ import annotations

import abc
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar

from ..._core._errors import ConfigurationError

__all__ = ["CacheBackend", "MemoryCache", "NullCache"]


class CacheBackend(abc.ABC):
    """Where a ``CacheManager`` keeps its entries: bytes under string keys.

    ``ttl`` is in seconds (``None``: no expiry); an entry past it reads as missing. A
    backend that holds a connection opens it in ``__aenter__`` and closes it in
    ``__aexit__``/``aclose()`` (``RedisCache``); the others work without being opened.
    Failures are ``CacheError``s naming the backend.
    """

    #: the backend's name in errors and logs
    name: ClassVar[str] = "CacheBackend"

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or ``None`` (missing or expired)."""

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` under ``key`` (replacing any), for ``ttl`` seconds."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is missing)."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Forget every entry this backend holds (for a shared backend: under its prefix)."""

    async def aclose(self) -> None:
        """Release what the backend holds. Idempotent."""
        return None

    async def __aenter__(self) -> CacheBackend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None


class NullCache(CacheBackend):
    """Stores nothing: every lookup misses. Turns caching off where a backend is needed
    (single flight still works: concurrent identical requests still share one call)."""

    name = "NullCache"

    def __repr__(self) -> str:
        return "NullCache()"

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        return None

    async def delete(self, key: str) -> None:
        return None

    async def clear(self) -> None:
        return None


def _expiry(_key: Any, item: tuple[bytes, float], now: float) -> float:
    return now + item[1]


class MemoryCache(CacheBackend):
    """An in-process LRU cache with a time to live per entry (cachetools ``TLRUCache``).

    ``max_size`` entries at most: storing one more evicts expired entries first, then the
    least recently used. ``clock`` (seconds, monotonic; default ``time.monotonic``) is
    what the time to live is measured with: tests pass a fake one. Entries are bytes, so
    a cached reply cannot be changed by whoever received it. Safe to share between
    threads (event loops); not shared between processes: use ``DiskCache`` or
    ``RedisCache`` for that.
    """

    name = "MemoryCache"

    def __init__(
        self, max_size: int = 1000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ConfigurationError(f"max_size must be a positive integer, got {max_size!r}")
        if not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning seconds, got {clock!r}")
        from cachetools import TLRUCache  # loaded with the first memory cache

        self.max_size = max_size
        self._lock = threading.Lock()  # cachetools caches are not thread-safe
        self._entries: TLRUCache[str, tuple[bytes, float]] = TLRUCache(
            maxsize=max_size, ttu=_expiry, timer=clock
        )

    def __repr__(self) -> str:
        return f"MemoryCache(max_size={self.max_size})"

    def __len__(self) -> int:
        with self._lock:
            self._entries.expire()
            return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._entries.get(key)
        return None if item is None else item[0]

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._lock:
            self._entries[key] = (value, math.inf if ttl is None else ttl)

    async def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    async def clear(self) -> None:
        with self._lock:
            self._entries.clear()
