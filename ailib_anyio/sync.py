"""A blocking facade over the async client, for scripts, notebooks and worker threads.

::

    from ailib_anyio.sync import open_client

    with open_client("openai/gpt-4o") as client:
        reply = client.chat().system("Be brief.").user("2+2?").execute()
        print(reply.content)

        with client.chat().user("Tell a story").stream() as stream:
            for event in stream:  # a plain iterator; `break` is fine
                ...
            print(stream.response.content)

Each ``with open_client(...)`` block starts one anyio blocking portal: an event loop of
its own (asyncio by default, ``backend="trio"`` for trio) in a thread of its own, in which
the ordinary async ``Client`` lives. Every blocking call hands a coroutine to that loop
and waits for its result, so behaviour is exactly the async client's: the same requests,
the same events and the same ``AiLibError`` subclasses, raised unchanged. Leaving a
stream's block (normally, by ``break`` or by an exception) closes its HTTP response at
once; leaving the client's block closes the client, then stops the loop and joins its
thread, even after an exception. An interrupt (Ctrl-C) while waiting cancels the
request in the loop.

Clients that should share connections take a pool from ``open_pool`` (a
``ConnectionPool`` in an event loop of its own): they run in the pool's loop instead of
starting one each, and leaving the pool's block closes those still open::

    with open_pool() as pool:
        with open_client("openai/gpt-4o", pool=pool) as a, open_client(
            "openai/gpt-4o-mini", pool=pool
        ) as b:
            ...

It must not be used from inside a running event loop: a blocking call there would stall
every other task of that loop. Use ``ailib_anyio.open_client`` with ``async with``
instead; ``open_client`` here raises ``RuntimeError`` when it finds a running asyncio or
trio loop in the calling thread. One exception: the asyncio loop a Jupyter (ipykernel)
notebook runs its cells in, whose cells are ordinary blocking code for their users.
Any thread without an event loop, including a worker thread of a sync application, can
use it.
"""

from __future__ import annotations

import asyncio
import enum
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._client._chat import ChatBuilder
from ._client._client import Client
from ._client._config import ClientConfig, config_from
from ._client._state import State
from ._client._stream import ChatStream, not_open_error
from ._core._display import stream_html, stream_markdown, stream_state
from ._core._errors import ConfigurationError
from ._core._types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    Message,
    RateLimitSnapshot,
    StreamingEvent,
    ToolChoice,
    ToolDefinition,
)
from ._services._embeddings import EmbeddingClient, EmbeddingResponse

if TYPE_CHECKING:
    from ._transport._pool import ConnectionPool, PoolConfig, PoolStats

__all__ = [
    "SyncChatBuilder",
    "SyncChatStream",
    "SyncClient",
    "SyncConnectionPool",
    "open_client",
    "open_pool",
]

_T = TypeVar("_T")


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def _running_event_loop() -> str | None:
    """The async library running in this thread (``"asyncio"``/``"trio"``), if any."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if not _is_notebook_loop(loop):
            return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return "trio"
    return None


def _is_notebook_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` is the asyncio loop a Jupyter kernel runs cells in.

    Notebook cells run inside that loop, yet to their authors they are plain blocking
    code (like ``requests`` or ``time.sleep``); blocking it while the portal's own loop
    does the work cannot deadlock.
    """
    if "ipykernel" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return False
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _check_no_running_loop(what: str) -> None:
    library = _running_event_loop()
    if library is not None:
        raise RuntimeError(
            f"{what} blocks, so it cannot be used inside a running {library} event loop; "
            "use 'async with ailib_anyio.open_client(...)' and 'await' there instead"
        )


async def _next_event(stream: ChatStream) -> StreamingEvent | None:
    """One event from ``stream``, or ``None`` at its end (no StopAsyncIteration crosses
    threads)."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


class _PortalScope:
    """What a ``SyncClient`` and a ``SyncConnectionPool`` share: a block that runs an
    async resource in a blocking portal, opened once and closed once (idempotently)."""

    def __init__(self, backend_options: Mapping[str, Any] | None) -> None:
        self._backend_options = dict(backend_options) if backend_options is not None else None
        self._portal: BlockingPortal | None = None
        self._exit_stack: ExitStack | None = None
        self._state = _State.UNOPENED

    def _open(self, entry: str, enter: Callable[[ExitStack], BlockingPortal]) -> None:
        """Open: ``enter`` pushes what closes it onto the stack and gives the portal."""
        _check_no_running_loop(entry)
        if self._state is not _State.UNOPENED:
            raise RuntimeError(f"a {type(self).__name__} can be opened only once")
        with ExitStack() as stack:
            portal = enter(stack)
            self._exit_stack = stack.pop_all()
        self._portal = portal
        self._state = _State.OPEN

    def _close(self, *exc_info: Any) -> bool | None:
        """Unwind the stack (what ``_open`` pushed, last first) with ``__exit__``'s
        arguments; the exception, if any, propagates unchanged."""
        stack, self._exit_stack, self._portal = self._exit_stack, None, None
        assert stack is not None
        return stack.__exit__(*exc_info)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._state is not _State.OPEN:
            return None
        self._state = _State.CLOSED
        return self._close(exc_type, exc, tb)


class SyncClient(_PortalScope):
    """A blocking client for one provider and model. Create it with ``open_client``.

    It wraps an async ``Client`` (``client.async_client``) running in a portal of its
    own (or in its ``SyncConnectionPool``'s); ``with`` opens the portal and the client,
    leaving the block closes both (a pool's portal stays, for the pool's other clients).
    """

    def __init__(
        self,
        client: Client,
        *,
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: Mapping[str, Any] | None = None,
        pool: SyncConnectionPool | None = None,
    ) -> None:
        super().__init__(backend_options)
        self.async_client = client
        self._pool = pool
        self._backend = backend
        self._embeddings: EmbeddingClient | None = None

    def __repr__(self) -> str:
        client = self.async_client
        return f"<SyncClient {client.provider}/{client.model_id} {self._state.value}>"

    @property
    def provider(self) -> str:
        return self.async_client.provider

    @property
    def model_id(self) -> str:
        return self.async_client.model_id

    @property
    def current_inflight(self) -> int:
        """Requests and streams holding an in-flight slot right now."""
        return self.async_client.current_inflight

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> SyncClient:
        self._open("ailib_anyio.sync.open_client", self._enter)
        return self

    def _enter(self, stack: ExitStack) -> BlockingPortal:
        pool = self._pool
        if pool is None:
            portal = stack.enter_context(
                start_blocking_portal(
                    self._backend, self._backend_options, name="ailib_anyio.sync portal"
                )
            )
            self._enter_client(portal, stack)
        else:
            stack.callback(pool._leave, self)
            with pool._admit(self) as portal:
                self._enter_client(portal, stack)
        return portal

    def _enter_client(self, portal: BlockingPortal, stack: ExitStack) -> None:
        client_cm = portal.wrap_async_context_manager(self.async_client)
        client_cm.__enter__()
        # An exception in the block belongs to this thread, not to the client's tasks:
        # the client closes as after a normal exit (handing it the exception would make
        # its task group report it as one of its own, in an ExceptionGroup). On leaving,
        # the client closes first (inside the loop), then the loop stops and its thread
        # is joined; with an exception, tasks still in the loop are cancelled.
        stack.callback(client_cm.__exit__, None, None, None)

    def close(self) -> None:
        """Close the client, stop its event loop and join its thread. Idempotent; inside
        ``with``, leaving the block does this."""
        self.__exit__(None, None, None)

    if not TYPE_CHECKING:  # type checkers keep reporting 'async with' here as an error

        async def __aenter__(self):
            # a hint for the spelling of async code, instead of a bare TypeError
            raise TypeError(
                "a SyncClient is blocking: use 'with open_client(...) as client:' (async"
                " code: 'async with ailib_anyio.open_client(...) as client:')"
            )

        async def __aexit__(self, *exc_info):  # never reached: __aenter__ raises
            return None

    def _call(self, func: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run ``func(*args)`` in the portal's loop and wait for the result; an interrupt
        while waiting cancels the task in the loop."""
        portal = self._portal
        if portal is None:
            if self._state is _State.UNOPENED:
                raise RuntimeError("the client is not open: use it inside 'with open_client(...)'")
            raise RuntimeError("the client is closed")
        future = portal.start_task_soon(func, *args)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt (or another async exception) in this thread: the task
            # must not run on unattended. A no-op when the task itself raised.
            future.cancel()
            raise

    # ------------------------------------------------------------ requests

    def chat(self) -> SyncChatBuilder:
        """Start building a chat request."""
        return SyncChatBuilder(self, self.async_client.chat())

    def embed(
        self,
        inputs: str | Sequence[str],
        *,
        dimensions: int | None = None,
        task_type: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> EmbeddingResponse:
        """Embed one text or several (one request); the client's model is the embedding
        model. See ``EmbeddingClient.embed``."""
        _check_no_running_loop("SyncClient.embed()")
        if self._embeddings is None:
            self._embeddings = EmbeddingClient(self.async_client)
        embeddings = self._embeddings

        async def run() -> EmbeddingResponse:
            return await embeddings.embed(
                inputs,
                dimensions=dimensions,
                task_type=task_type,
                extra_body=extra_body,
                timeout=timeout,
            )

        return self._call(run)


class SyncChatBuilder:
    """The fluent chat builder of the sync facade: the async ``ChatBuilder``'s methods,
    with a blocking ``execute()`` and a ``stream()`` used with ``with``."""

    def __init__(self, client: SyncClient, builder: ChatBuilder) -> None:
        self._client = client
        self._builder = builder

    def message(self, message: Message) -> SyncChatBuilder:
        self._builder.message(message)
        return self

    def messages(self, messages: Sequence[Message]) -> SyncChatBuilder:
        self._builder.messages(messages)
        return self

    def system(self, content: str) -> SyncChatBuilder:
        self._builder.system(content)
        return self

    def user(self, content: str | Sequence[ContentBlock]) -> SyncChatBuilder:
        self._builder.user(content)
        return self

    def assistant(
        self, content: str | None = None, tool_calls: Sequence[Any] = ()
    ) -> SyncChatBuilder:
        self._builder.assistant(content, tool_calls)
        return self

    def tool_result(
        self, tool_call_id: str, content: str, name: str | None = None
    ) -> SyncChatBuilder:
        """A tool's result (see ``ChatBuilder.tool_result``)."""
        self._builder.tool_result(tool_call_id, content, name)
        return self

    def temperature(self, value: float) -> SyncChatBuilder:
        self._builder.temperature(value)
        return self

    def top_p(self, value: float) -> SyncChatBuilder:
        self._builder.top_p(value)
        return self

    def max_tokens(self, value: int) -> SyncChatBuilder:
        self._builder.max_tokens(value)
        return self

    def stop(self, *sequences: str) -> SyncChatBuilder:
        self._builder.stop(*sequences)
        return self

    def tools(self, tools: Sequence[ToolDefinition]) -> SyncChatBuilder:
        self._builder.tools(tools)
        return self

    def tool_choice(self, choice: ToolChoice) -> SyncChatBuilder:
        self._builder.tool_choice(choice)
        return self

    def response_format(
        self,
        schema: Mapping[str, Any] | type,
        *,
        name: str | None = None,
        strict: bool | None = None,
    ) -> SyncChatBuilder:
        """JSON replies parsed into ``reply.parsed`` (see ``ChatBuilder.response_format``)."""
        self._builder.response_format(schema, name=name, strict=strict)
        return self

    def json_mode(self) -> SyncChatBuilder:
        """JSON mode (see ``ChatBuilder.json_mode``)."""
        self._builder.json_mode()
        return self

    def extra_body(self, value: Mapping[str, Any]) -> SyncChatBuilder:
        self._builder.extra_body(value)
        return self

    def timeout(self, seconds: float) -> SyncChatBuilder:
        """Per-request HTTP timeout (connect, read, write), overriding the client's."""
        self._builder.timeout(seconds)
        return self

    def build(self, *, stream: bool = False) -> ChatRequest:
        return self._builder.build(stream=stream)

    def execute(self) -> ChatResponse:
        """Send the request, wait, and return the whole response."""
        _check_no_running_loop("SyncChatBuilder.execute()")
        return self._client._call(self._builder.execute)

    def stream(self) -> SyncChatStream:
        """A streamed response: ``with builder.stream() as stream: for event in stream``."""
        return SyncChatStream(self._client, self._builder.stream())


class SyncChatStream:
    """A streamed chat response. Use it as ``with builder.stream() as stream``.

    Iterating yields ``StreamingEvent`` objects, each fetched from the client's loop when
    asked for; ``stream.response`` holds what has been delivered so far, also after an
    early exit. Leaving the block (``break`` out of the loop, an exception) closes the
    HTTP response at once. Iterating outside the block is a ``RuntimeError``.
    """

    def __init__(self, client: SyncClient, stream: ChatStream) -> None:
        self._client = client
        self._stream = stream
        self._state = _State.UNOPENED
        self._events = 0

    def __enter__(self) -> SyncChatStream:
        _check_no_running_loop("SyncChatStream")
        if self._state is not _State.UNOPENED:
            raise RuntimeError("a SyncChatStream can be entered only once")
        self._state = _State.OPEN
        try:
            # The async stream closes itself when opening fails (an HTTP error status).
            self._client._call(self._stream.__aenter__)
        except BaseException:
            self._state = _State.CLOSED
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP response and release the in-flight slot. Idempotent."""
        if self._state is not _State.OPEN:
            return
        self._state = _State.CLOSED
        if self._client._portal is not None:
            self._client._call(self._stream.aclose)
        # Otherwise the client is closed already, and its connection pool with it.

    @property
    def response(self) -> ChatResponse:
        """Everything delivered so far, accumulated."""
        return self._stream.response

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id

    @property
    def rate_limits(self) -> RateLimitSnapshot | None:
        return self._stream.rate_limits

    def __iter__(self) -> SyncChatStream:
        if self._state is not _State.OPEN:
            raise self._not_open()
        return self

    def __next__(self) -> StreamingEvent:
        if self._state is not _State.OPEN:
            if self._state is _State.UNOPENED:
                raise self._not_open()
            raise StopIteration  # closed under an iteration begun in the block
        event = self._client._call(_next_event, self._stream)
        if event is None:
            raise StopIteration
        self._events += 1
        return event

    def _not_open(self) -> Exception:
        state = State.UNOPENED if self._state is _State.UNOPENED else State.CLOSED
        return not_open_error(state, "with builder.stream() as stream")

    if not TYPE_CHECKING:  # type checkers keep reporting 'async for' here as an error

        def __aiter__(self):
            # a hint for the spelling of async code, instead of a bare TypeError
            raise TypeError(
                "a SyncChatStream is blocking: iterate it with 'for event in stream' inside"
                " 'with builder.stream() as stream' (async code: ailib_anyio.open_client)"
            )

    def _display_state(self) -> str:
        return stream_state(
            self._state is not _State.UNOPENED, self._state is _State.CLOSED, self.response
        )

    def _repr_html_(self) -> str:
        """A card for notebooks: open or finished, the events and text so far."""
        return stream_html("SyncChatStream", self._display_state(), self.response, self._events)

    def _repr_markdown_(self) -> str:
        return stream_markdown("SyncChatStream", self._display_state(), self.response, self._events)


class SyncConnectionPool(_PortalScope):
    """A ``ConnectionPool`` for blocking clients. Create it with ``open_pool``.

    It runs in a portal of its own (an event loop in a thread, like a ``SyncClient``'s);
    the clients opened with ``open_client(model, pool=pool)`` run in that same loop and
    share the pool's connections. ``with`` opens the portal and the pool; leaving the block
    closes the clients still open on it, then the pool, then stops the loop and joins its
    thread.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backend_options)
        self.async_pool = pool
        self.backend = backend
        self._clients: list[SyncClient] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SyncConnectionPool {self.async_pool.config.http_library} {self._state.value}>"

    def __enter__(self) -> SyncConnectionPool:
        self._open("ailib_anyio.sync.open_pool", self._enter)
        return self

    def _enter(self, stack: ExitStack) -> BlockingPortal:
        portal = stack.enter_context(
            start_blocking_portal(
                self.backend, self._backend_options, name="ailib_anyio.sync pool portal"
            )
        )
        stack.enter_context(portal.wrap_async_context_manager(self.async_pool))
        return portal

    def _close(self, *exc_info: Any) -> bool | None:
        # The clients still open close first: their tasks live in this loop. A client
        # being admitted is waited for (the lock), then closed with the others; one that
        # fails to close does not keep the others, the pool or the loop open.
        with self._lock:
            clients, self._clients = self._clients, []
        try:
            with ExitStack() as closing:
                for client in clients:
                    closing.callback(client.close)
        finally:
            suppress = super()._close(*exc_info)
        return suppress

    def close(self) -> None:
        """Close the clients still open on the pool, the pool, and its event loop.
        Idempotent; inside ``with``, leaving the block does this."""
        self.__exit__(None, None, None)

    def get_stats(self, provider: str | None = None) -> PoolStats:
        """The pool's ``ConnectionPool.get_stats``, counted in its event loop."""
        portal = self._portal
        if portal is None:
            return self.async_pool.get_stats(provider)
        return portal.call(self.async_pool.get_stats, provider)

    @contextmanager
    def _admit(self, client: SyncClient) -> Iterator[BlockingPortal]:
        """The portal ``client`` opens in. The pool does not close while the client is
        entering it; once in, the client is closed with the pool if still open."""
        with self._lock:
            if self._state is not _State.OPEN or self._portal is None:
                what = "closed" if self._state is _State.CLOSED else "not open"
                raise RuntimeError(
                    f"the SyncConnectionPool is {what}: open its clients inside"
                    " 'with open_pool(...) as pool:'"
                )
            yield self._portal
            self._clients.append(client)

    def _leave(self, client: SyncClient) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)


def open_pool(
    config: PoolConfig | None = None,
    *,
    backend: Literal["asyncio", "trio"] = "asyncio",
    backend_options: Mapping[str, Any] | None = None,
) -> SyncConnectionPool:
    """A ``ConnectionPool`` (``config``: a ``PoolConfig``) for blocking clients, in an
    event loop of its own; use it as ``with open_pool(...) as pool`` and lend it with
    ``open_client(model, pool=pool)``: those clients run in the pool's loop (its
    ``backend``) and share its connections.

    Example::

        with open_pool(PoolConfig.high_throughput()) as pool:
            with open_client("openai/gpt-4o", pool=pool) as a, open_client(
                "openai/gpt-4o-mini", pool=pool
            ) as b:
                ...  # a and b share one set of connections to api.openai.com
    """
    from ._transport._pool import ConnectionPool  # with the first pool: it imports httpx

    return SyncConnectionPool(
        ConnectionPool(config), backend=backend, backend_options=backend_options
    )


def _shared_pool(
    config: ClientConfig | None,
    settings: dict[str, Any],
    backend: Literal["asyncio", "trio"] | None,
    backend_options: Mapping[str, Any] | None,
) -> SyncConnectionPool | None:
    """The ``SyncConnectionPool`` given as ``pool=`` (replaced in ``settings`` by its
    ``ConnectionPool``), after checking that the loop settings agree with it."""
    # (a config that is not a ClientConfig is refused by config_from, with its message)
    pool = settings.get("pool", config.pool if isinstance(config, ClientConfig) else None)
    if not isinstance(pool, SyncConnectionPool):
        if pool is not None:
            from ._transport._pool import ConnectionPool  # one was made: httpx is loaded

            if isinstance(pool, ConnectionPool):
                raise ConfigurationError(
                    "pool: a ConnectionPool belongs to the event loop it was opened in;"
                    " blocking clients share one made by ailib_anyio.sync.open_pool(...)"
                )
        return None  # no pool, or one ClientConfig refuses with its own message
    if backend is not None and backend != pool.backend:
        raise ConfigurationError(
            f"backend={backend!r} differs from the pool's ({pool.backend!r}): the clients"
            " of a SyncConnectionPool run in its event loop"
        )
    if backend_options is not None:
        raise ConfigurationError(
            "backend_options cannot be given with a SyncConnectionPool: the clients run in"
            " the pool's event loop (give them to open_pool)"
        )
    settings["pool"] = pool.async_pool
    return pool


def open_client(
    model: str,
    config: ClientConfig | None = None,
    *,
    backend: Literal["asyncio", "trio"] | None = None,
    backend_options: Mapping[str, Any] | None = None,
    **settings: Any,
) -> SyncClient:
    """Open a blocking client for ``"provider/model-id"``; use it as ``with open_client(...)``.

    ``backend`` (``"asyncio"``, the default, or ``"trio"``) and ``backend_options`` choose
    the event loop the portal runs (as for ``anyio.run``); the other keyword arguments are
    the async ``open_client``'s settings (``api_key``, ``base_url``, ``timeout``,
    ``max_retries``, ``fallbacks``, ``deadlines``...: the fields of ``ClientConfig``),
    applied over ``config`` when one is given. ``pool=`` takes a ``SyncConnectionPool``
    (``open_pool``): the client then runs in the pool's event loop, whose backend it is.
    Configuration errors are raised here, before any thread starts. Entering the block
    inside a running event loop raises ``RuntimeError``.

    Example::

        with open_client("openai/gpt-4o") as client:
            print(client.chat().user("2+2?").execute().content)
    """
    settings = dict(settings)
    pool = _shared_pool(config, settings, backend, backend_options)
    return SyncClient(
        Client(model, config_from(config, settings)),
        backend=pool.backend if pool is not None else backend or "asyncio",
        backend_options=backend_options,
        pool=pool,
    )
