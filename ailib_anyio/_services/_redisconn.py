"""One Redis connection pool, owned by a task of its own: what ``RedisCache`` and
``RedisState`` stand on (extra ``redis``).

Built on coredis, whose client runs on anyio and so under asyncio and trio alike
(redis-py's asyncio client does not run under trio). A coredis client must be entered
(``async with client:``) by one task, which owns its connection pool's task group; here
that task is a holder started in the connection's own task group: it connects, sends a
``PING`` (an unreachable server fails there, within about ``timeout`` seconds: both the
connect and the read timeouts are set, and coredis's retries are off), then waits until
the connection closes. Any task may then send commands. Every command has a backstop
deadline too (:attr:`RedisConnection.backstop`), so nothing waits on Redis past a few
``timeout``s.

An exception leaving ``async with client:`` comes out of coredis wrapped in an exception
group, so failures are caught inside the block and reported by the holder as the owner's
own error class (``error(message)``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.abc

from .._core._checks import positive_seconds
from .._core._errors import AiLibError, ConfigurationError
from .._core._logging import get_logger
from .._resilience._taskgroups import exit_task_group

if TYPE_CHECKING:
    import coredis

__all__ = ["RedisConnection", "check_redis_settings", "safe_url"]

_SCHEMES = ("redis", "rediss", "unix")


def safe_url(url: str) -> str:
    """``url`` without its credentials (``redis://user:password@host`` -> ``redis://host``)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def check_redis_settings(owner: str, url: object, timeout: object, max_connections: object) -> None:
    """Refuse a URL, timeout or pool size that cannot work, and a missing coredis, with a
    ``ConfigurationError`` (never showing the URL's password)."""
    if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
        shown = safe_url(url) if isinstance(url, str) else repr(url)
        raise ConfigurationError(f"url must be a redis://, rediss:// or unix:// URL, got {shown!r}")
    positive_seconds("timeout", timeout)
    if max_connections is not None and (
        isinstance(max_connections, bool)
        or not isinstance(max_connections, int)
        or max_connections < 1
    ):
        raise ConfigurationError(
            f"max_connections must be a positive integer, got {max_connections!r}"
        )
    if importlib.util.find_spec("coredis") is None:
        raise ConfigurationError(f"{owner} needs coredis: pip install 'ailib-anyio[redis]'")


def failures() -> tuple[type[BaseException], ...]:
    """The exceptions a failed command raises: coredis's, the socket's, the backstop's."""
    from coredis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


class RedisConnection:
    """A coredis client owned by a holder task in this object's task group.

    ``async with connection:`` enters the task group (in the task that will leave it);
    :meth:`connect` starts the holder, from any task while the group is open, and raises
    ``error(message)`` when the server cannot be reached. :attr:`client` is the live
    client (None before :meth:`connect` succeeded, and after the pool failed).
    :meth:`start_soon` runs background work in the same task group, cancelled on close.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_connections: int | None,
        owner: str,
        error: Callable[[str], AiLibError],
        logger: str = "ailib_anyio.redis",
    ) -> None:
        self._url = url  # may hold a password: never shown
        self.url = safe_url(url)
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self._owner = owner
        self._error = error
        self._log = get_logger(logger)
        self._task_group: anyio.abc.TaskGroup | None = None
        self.client: coredis.Redis[bytes] | None = None

    @property
    def is_open(self) -> bool:
        """Whether the task group is entered (whether or not the server answered)."""
        return self._task_group is not None

    @property
    def backstop(self) -> float:
        """The deadline of one command: both coredis timeouts and a margin."""
        return 2 * self.timeout + 1

    async def __aenter__(self) -> RedisConnection:
        if self._task_group is not None:
            raise RuntimeError(f"{self._owner} is already open")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
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

    async def connect(self) -> None:
        """Start the holder: connect, check the server answers, publish :attr:`client`.
        Raises ``error(...)`` (within about ``timeout`` seconds) when it cannot."""
        if self._task_group is None:
            raise RuntimeError(f"{self._owner} is not open")
        await self._task_group.start(self._hold)

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> bool:
        """Run ``func(*args)`` in the background until the connection closes; False (and
        nothing started) when it is closed."""
        if self._task_group is None:
            return False
        self._task_group.start_soon(func, *args)
        return True

    async def _hold(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        import coredis
        from coredis.retry import NoRetryPolicy

        failure: BaseException | None = None
        started = False
        try:
            # A plain connect first: a refused or unroutable address fails here, fast and
            # quietly (a failed coredis connection logs an error and leaves streams open).
            await self.can_connect()
            options: dict[str, Any] = {}
            if self.max_connections is not None:
                options["max_connections"] = self.max_connections
            client = coredis.Redis.from_url(
                self._url,
                decode_responses=False,
                connect_timeout=self.timeout,
                stream_timeout=self.timeout,
                retry_policy=NoRetryPolicy(),  # fail fast: the caller decides what next
                **options,
            )
            async with client:
                try:
                    with anyio.fail_after(self.backstop):
                        await client.ping()
                except failures() as exc:
                    failure = exc  # leave the block normally: coredis would wrap it
                else:
                    self.client = client
                    started = True
                    task_status.started()
                    try:
                        await anyio.sleep_forever()
                    finally:
                        self.client = None
        except Exception as exc:  # noqa: BLE001 - coredis's pool failed (an exception group)
            if started:  # Redis stops answering; the client it serves goes on
                self._log.warning(
                    "the Redis connection pool failed", owner=self._owner, error=repr(exc)
                )
                return
            failure = failure or exc
        if failure is not None:
            raise self._error(
                f"cannot reach Redis at {self.url}: {type(failure).__name__}: {failure}"
            ) from failure

    async def can_connect(self) -> None:
        """Open and close a plain socket to the server (``OSError``/``TimeoutError`` when
        it cannot): a cheap check that never involves coredis."""
        parts = urlsplit(self._url)
        with anyio.fail_after(self.timeout):
            if parts.scheme == "unix":
                stream: anyio.abc.ByteStream = await anyio.connect_unix(parts.path)
            else:
                stream = await anyio.connect_tcp(parts.hostname or "127.0.0.1", parts.port or 6379)
        await stream.aclose()
