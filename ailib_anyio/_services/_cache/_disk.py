"""``DiskCache``: the cache in one SQLite file, safe for several processes at once.

Every operation is one SQL statement in autocommit mode, run in a worker thread
(``anyio.to_thread.run_sync``), so the event loop never blocks on the disk. A cancelled
``get`` or ``set`` waits for its statement to finish in its thread (the thread is not
abandoned): the statement is atomic, so the file is never left half-written, and nothing
runs on a connection after its caller has gone. Several processes share the file through
SQLite's write-ahead log (``journal_mode=WAL``: readers never block the writer), a busy
timeout (a writer waits for another's lock instead of failing) and an upsert (the last
writer of a key wins, whole). Expiry times are wall-clock (``time.time``), the clock every
process shares; expired rows read as missing and are deleted from time to time.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from ..._core._errors import CacheError, ConfigurationError
from ._backends import CacheBackend

__all__ = ["DiskCache"]

_T = TypeVar("_T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ailib_cache ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " value BLOB NOT NULL,"
    " expires_at REAL"  # NULL: never
    ") WITHOUT ROWID"
)
_GET = "SELECT value, expires_at FROM ailib_cache WHERE key = ?"
_SET = (
    "INSERT INTO ailib_cache (key, value, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)
_DELETE = "DELETE FROM ailib_cache WHERE key = ?"
_CLEAR = "DELETE FROM ailib_cache"
_PURGE = "DELETE FROM ailib_cache WHERE expires_at IS NOT NULL AND expires_at <= ?"

#: expired rows are deleted once every this many writes
_PURGE_EVERY = 256


def _use_wal(connection: sqlite3.Connection, patience: float) -> None:
    """Switch the file to write-ahead logging (persistent: every process opening it later
    uses the log too). While another process holds a lock the switch does not happen (the
    pragma answers the old mode, without waiting): try again for up to ``patience`` s."""
    deadline = time.monotonic() + patience
    while True:
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            mode = None
        if mode is not None and str(mode[0]).lower() == "wal":
            return
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode!r})")
        time.sleep(0.02)  # in a worker thread


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class DiskCache(CacheBackend):
    """A cache in an SQLite file (created with its directory if missing), shared safely
    by every process that opens the same path.

    ``busy_timeout`` (seconds) is how long a write waits for another process's write
    lock before failing; ``clock`` (wall-clock seconds, default ``time.time``) measures
    the time to live: tests pass a fake one. Each worker thread running an operation uses
    its own connection from a small pool; ``aclose()`` closes the idle ones (the cache
    still works after it, opening connections again as needed).
    """

    name = "DiskCache"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise ConfigurationError(f"path must be a file path, got {path!r}")
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, (int, float))
            or not busy_timeout > 0
        ):
            raise ConfigurationError(
                f"busy_timeout must be a positive number of seconds, got {busy_timeout!r}"
            )
        if not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning seconds, got {clock!r}")
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)
        self._clock = clock
        self._lock = threading.Lock()  # guards the pool, the schema flag and the counter
        self._idle: list[sqlite3.Connection] = []
        self._schema_ready = False
        self._writes = 0

    def __repr__(self) -> str:
        return f"DiskCache({str(self.path)!r})"

    # ------------------------------------------------------------ connections (in threads)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,  # SQLite's busy timeout: wait for another's lock
            isolation_level=None,  # autocommit: each statement is its own transaction
            check_same_thread=False,  # used by one thread at a time, from the pool
        )
        try:
            connection.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a cache
            with self._lock:
                ready = self._schema_ready
            if not ready:
                _use_wal(connection, self.busy_timeout)
                connection.execute(_SCHEMA)
                with self._lock:
                    self._schema_ready = True
        except BaseException:
            connection.close()
            raise
        return connection

    def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        """``operation(connection)`` on a pooled connection, in the calling worker thread."""
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        try:
            if connection is None:
                connection = self._connect()
            result = operation(connection)
        except sqlite3.Error as exc:
            if connection is not None:
                connection.close()  # a connection that failed is not reused
            raise CacheError(
                f"DiskCache {str(self.path)!r}: {type(exc).__name__}: {exc}", backend=self.name
            ) from exc
        with self._lock:
            self._idle.append(connection)
        return result

    async def _in_thread(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        # Not abandoned on cancellation: the caller waits for the statement to finish.
        return await anyio.to_thread.run_sync(self._run, operation)

    # ------------------------------------------------------------ the interface

    async def get(self, key: str) -> bytes | None:
        now = self._clock()

        def get(connection: sqlite3.Connection) -> bytes | None:
            row = connection.execute(_GET, (key,)).fetchone()
            if row is None or (row[1] is not None and row[1] <= now):
                return None
            return bytes(row[0])

        return await self._in_thread(get)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        now = self._clock()
        expires_at = None if ttl is None else now + ttl
        with self._lock:
            self._writes += 1
            purge = self._writes % _PURGE_EVERY == 0

        def set_(connection: sqlite3.Connection) -> None:
            connection.execute(_SET, (key, value, expires_at))
            if purge:
                connection.execute(_PURGE, (now,))

        await self._in_thread(set_)

    async def delete(self, key: str) -> None:
        await self._in_thread(lambda connection: connection.execute(_DELETE, (key,)))

    async def clear(self) -> None:
        await self._in_thread(lambda connection: connection.execute(_CLEAR))

    async def purge_expired(self) -> int:
        """Delete the expired rows now; the number deleted."""
        now = self._clock()
        return await self._in_thread(lambda connection: connection.execute(_PURGE, (now,)).rowcount)

    async def aclose(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        if idle:  # closing the last connection checkpoints the log: disk work, in a thread

            def close_all() -> None:
                for connection in idle:
                    connection.close()

            await anyio.to_thread.run_sync(close_all)
