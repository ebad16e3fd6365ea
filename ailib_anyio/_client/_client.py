"""The client: ``open_client`` and ``Client``, which orchestrates its targets.

``Client`` owns the lifecycle (what it opens, its background task group), the
``max_inflight`` limiter, its ordered targets, their stats and the public entry points.
The rest is elsewhere: the settings (``_config.py``), building the targets
(``_targets.py``), one target's attempts (``_target.py``, ``_targetstream.py``), each
call's race of retries, fallbacks and hedges (``_call.py``), the chat builder
(``_chat.py``), streams as the user reads them (``_stream.py``), batches (``_batch.py``).

A client is an async context manager that owns its connection pool (and anything else it
starts); leaving the block closes everything, even on cancellation. Any task may use it
and close it, unless it runs background work: that binds it to the task that started it.
A request is encoded by the manifest's API family, sent through the transport under the
``max_inflight`` limiter, and decoded by the manifest's rules in the sans-IO core. A
stream is an async context manager too: leaving its block — normally, by ``break``, by
an exception or by cancellation — closes the HTTP response at once, in a shielded scope.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .._core._logging import configure_logging
from .._core._structured import structured_reply
from .._core._types import ChatRequest, ChatResponse
from .._resilience._taskgroups import exit_task_group
from ._call import CallRunner, close_stream
from ._chat import ChatBuilder
from ._config import ClientConfig, config_from, default_max_inflight, takes_settings
from ._middleware import Call, MiddlewareChain, default_middleware
from ._provide import SERVICES
from ._state import State
from ._targets import chain_of

if TYPE_CHECKING:
    from .._core._breaker import CircuitState
    from .._protocol._models import ProviderManifest
    from .._resilience._signals import SignalsSnapshot
    from .._services._health import HealthReport
    from .._services._tokens import TokenCount
    from ._array import ArrayRouter, ModelArray
    from ._batch import BatchResult
    from ._replay import ReplayStream
    from ._target import Target
    from ._targetstream import TargetStream


__all__ = ["Client", "open_client"]


class Client:
    """A client for one provider and model. Create it with ``open_client``, or from a
    ``ClientConfig``: ``Client(model, config)`` (keyword settings given too replace the
    config's)."""

    def __init__(
        self,
        model: str | ModelArray,
        config: ClientConfig | None = None,
        **settings: Any,
    ) -> None:
        """``Client(model, config)``, or ``Client(model, **settings)`` as ``open_client``."""
        config = config_from(config, settings)  # every setting checked here, once
        #: the settings this client was made from
        self.config = config
        router, targets = chain_of(model, config)
        #: a model array's load balancer (None for one model): it orders each call's chain
        self.router: ArrayRouter | None = router
        #: the targets in order: the primary (or the array's endpoints), then the fallbacks
        self.targets: tuple[Target, ...] = targets
        #: the target answering first (an array's first endpoint)
        self.primary = targets[0]
        self.max_inflight: float = (
            config.max_inflight if config.max_inflight is not None else default_max_inflight()
        )
        metrics = () if config.metrics is None else (config.metrics.middleware_for(self),)
        cache = () if config.cache is None else (config.cache.middleware_for(self),)
        #: the middleware, split by level (see ``Middleware``): the services installed by
        #: default (OpenTelemetry, when it is installed), the metrics, ``config.middleware``,
        #: the plugins, and the response cache, innermost
        self.middleware = MiddlewareChain(
            (
                *default_middleware(self),
                *metrics,
                *config.middleware,
                *config.plugins,
                *cache,
            )
        )
        #: what this client opened itself (a cache, a shared state), closed with it
        self._opened = AsyncExitStack()
        self._limiter: anyio.CapacityLimiter | None = None
        self._background: anyio.abc.TaskGroup | None = None
        self._background_task: int | None = None  # the id of the task that entered it
        self._state = State.UNOPENED
        #: runs each call down the targets: retries, fallbacks, hedges, deadlines
        self.calls = CallRunner(self)

    @property
    def state(self) -> State:
        """Unopened, open or closed (a client lent as a fallback must be unopened)."""
        return self._state

    @property
    def provider(self) -> str:
        """The primary target's provider."""
        return self.primary.provider

    @property
    def model_id(self) -> str:
        """The primary target's model id (as sent)."""
        return self.primary.model_id

    @property
    def manifest(self) -> ProviderManifest:
        """The primary target's manifest."""
        return self.primary.manifest

    @property
    def base_url(self) -> str:
        """The primary target's base URL."""
        return self.primary.base_url

    def __repr__(self) -> str:
        if self.router is not None:
            array = self.router.array
            names = ", ".join(array.names)
            return f"<Client ModelArray[{names}] {array.strategy.value} {self._state.value}>"
        return f"<Client {self.provider}/{self.model_id} {self._state.value}>"

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        if self._state is not State.UNOPENED:
            raise RuntimeError("a Client can be opened only once")
        for fallback in self.targets[1:]:  # before anything starts: nothing to undo
            fallback.resolve_credentials(fallback=True)
        for target in self.targets:
            if target.config.pool is not None:
                target.config.pool.check_open()  # a lent pool must be open already
        try:
            # A cache or shared state not open yet is opened here, and one that cannot
            # open (Redis unreachable) fails here; what opened before it is closed again.
            for resource in (self.config.cache, self.config.shared_state):
                if resource is not None and not resource.is_open:
                    await self._opened.enter_async_context(resource)
        except BaseException:
            await self._opened.aclose()
            raise
        limiter = self._limiter = anyio.CapacityLimiter(self.max_inflight)
        configure_logging()
        for target in self.targets:  # one max_inflight for the whole chain
            target.open(limiter)
        self._state = State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._close(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Stop background work and close the connection pool. Idempotent; completes even
        when cancelled. Inside ``async with``, leaving the block does this. With background
        work, only the task that started it may (see ``start_background``)."""
        await self._close(None, None, None)

    async def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._state is State.CLOSED:
            return None
        background = self._background
        if background is not None and anyio.get_current_task().id != self._background_task:
            # Nothing changes: the task that started the background work can still close it.
            raise RuntimeError(
                "this client is closed in another task than the one that started its"
                " background work: background work started with start_background binds a"
                " client to the task that started it; close the client in that task"
            )
        self._state = State.CLOSED
        self._background = None
        try:
            if background is not None:
                # Everything the client started ends with it (structured concurrency).
                background.cancel_scope.cancel()
                return await exit_task_group(background, exc_type, exc, tb)
            return None
        finally:
            try:
                with anyio.CancelScope(shield=True):
                    for target in self.targets:
                        await target.aclose()
            finally:
                # Not in a shielded scope: a cache or a shared state may own a task group
                # entered before this point, which must be left from its own scope (it
                # cancels its own work, so this returns promptly). Last opened, first closed.
                await self._opened.aclose()

    async def start_background(
        self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: str | None = None
    ) -> None:
        """Run ``func(*args)`` in the client's own task group: it is cancelled when the
        client closes, and an error in it cancels the block it was started from
        (structured concurrency).

        The task group is entered on first use, in the calling task, which the client is
        then bound to: close the client in that task, and make that first call where the
        client's block is, not inside a cancel scope or task group that ends before the
        client does. A client without background work can be closed from any task.
        """
        if self._state is not State.OPEN:
            raise RuntimeError("background work needs an open client")
        background = self._background
        if background is None:
            background = anyio.create_task_group()
            await background.__aenter__()
            self._background, self._background_task = background, anyio.get_current_task().id
        background.start_soon(func, *args, name=name)

    def check_open(self) -> None:
        """Raise the error that says why this client cannot send (unopened, closed)."""
        if self._state is not State.OPEN:
            self.primary.opened()  # raises the error that says why

    @property
    def current_inflight(self) -> int:
        """Requests and streams holding an in-flight slot right now."""
        return int(self._limiter.borrowed_tokens) if self._limiter is not None else 0

    @property
    def circuit_state(self) -> CircuitState | None:
        """This client's circuit state (None without a circuit breaker)."""
        breaker = self.primary.guard.breaker
        return breaker.state(anyio.current_time()) if breaker is not None else None

    def get_resilience_stats(self) -> SignalsSnapshot:
        """In-flight requests, each target's circuit and rate-limiter state, the last
        rate-limit headers each target received, and retry/fallback/hedge counters."""
        from .._resilience._signals import SignalsSnapshot

        now = anyio.current_time()
        guards = [t.guard for t in self.targets]
        return SignalsSnapshot(
            inflight=self.current_inflight,
            max_inflight=self.max_inflight,
            circuits={g.name: g.breaker.snapshot(now) for g in guards if g.breaker},
            rate_limiters={g.name: g.limiter.stats() for g in guards if g.limiter},
            last_rate_limits={g.name: g.last_rate_limits for g in guards if g.last_rate_limits},
            retries=sum(g.retries for g in guards),
            fallbacks=self.calls.fallbacks_used,
            hedges=self.calls.hedges_started,
        )

    # ------------------------------------------------------------ requests

    async def count_tokens(
        self, request: ChatRequest | ChatBuilder, *, http_timeout: float | None = None
    ) -> TokenCount:
        """The prompt tokens of ``request`` for this client's model (see
        ``ailib_anyio.tokens.count_tokens``): where the manifest declares the provider's
        counting endpoint, the provider counts it (``exact=True``); elsewhere a local count
        with the model's tokenizer, or an estimate that says so (``exact=False``)."""
        service = SERVICES.get("count_tokens")
        if service is None:  # pragma: no cover - the package's __init__ provides it
            raise RuntimeError("token counting is not wired in: import ailib_anyio")
        count: TokenCount = await service(self, request, http_timeout=http_timeout)
        return count

    def health(self) -> HealthReport:
        """The health of each target: the probes of the ``HealthChecker`` last started for
        this client (``ailib_anyio.health``) with each target's circuit state; without a
        checker, the circuits alone (probe results ``unknown``)."""
        report: HealthReport = SERVICES["health"](self)
        return report

    def chat(self) -> ChatBuilder:
        """Start building a chat request. A model the manifest marks ``chat: false`` (an
        embedding model) raises ``CapabilityNotDeclaredError`` here, before any I/O."""
        if not self.primary.chats:
            raise self.primary.chat_refusal()
        return ChatBuilder(self)

    async def batch(
        self,
        requests: Iterable[ChatBuilder | ChatRequest] | Mapping[str, ChatBuilder | ChatRequest],
        *,
        max_concurrent: int = 10,
        fail_fast: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
        output: str | os.PathLike[str] | None = None,
    ) -> BatchResult[ChatResponse]:
        """Execute many chat requests concurrently, at most ``max_concurrent`` at a time.

        ``requests`` are builders (``client.chat().user(...)``, run with ``execute()``) or
        ``ChatRequest`` objects (sent by this client, never streamed), or a mapping of
        ids to them. The result holds one ``ChatResponse`` or exception per request, in
        input order; ``fail_fast`` and ``on_progress(done, total)`` are as in
        ``BatchExecutor``. The client's own ``max_inflight`` still applies; cancelling
        the caller cancels every request::

            questions = ["2+2?", "Capital of France?"]
            result = await client.batch([client.chat().user(q) for q in questions])
            replies = result.get_successful_results()

        ``output``: a JSONL file that gets one line per finished request, its response or
        its error (``{"key", "index", "result" | "error"}``), as it finishes. Requests
        the file has a response for already are not sent again: their ``ChatResponse``
        is read back from it (``resumed_indices``; ``on_progress`` counts them done), so
        a run cut short — cancelled, crashed — resumes where it stopped. A request's key
        is its id in a mapping, else derived from its encoded body (as
        ``ailib_anyio.batch.derive_custom_ids`` does: the same request, the same key).
        For the provider's own batch API, at half the price, see
        ``ailib_anyio.batch.BatchJob``.
        """
        from ._batch import chat_batch

        return await chat_batch(
            self,
            requests,
            max_concurrent=max_concurrent,
            fail_fast=fail_fast,
            on_progress=on_progress,
            output=output,
        )

    def call_view(self, request: ChatRequest) -> Call:
        """The middleware's view of a call of this client."""
        return Call(request=request, provider=self.provider, model=self.model_id)

    async def execute(
        self, request: ChatRequest, *, http_timeout: float | None = None
    ) -> ChatResponse:
        """Send a ``ChatRequest`` and return the whole response (``ChatBuilder.execute``
        does this): the call middleware, then the race of retries, fallbacks and hedges.
        ``http_timeout`` is this request's HTTP timeout, overriding the client's.

        A request that asked for JSON (``response_format``) gets its reply parsed into
        ``parsed``, or raises ``StructuredOutputError``."""
        hooks, attempt_hooks = self.middleware.active()
        if hooks:
            response = await self.middleware.run(
                hooks,
                self.call_view(request),
                lambda call: self.calls.execute(call.request, http_timeout, attempt_hooks),
                None,
            )
        else:
            response = await self.calls.execute(request, http_timeout, attempt_hooks)
        if request.response_format is not None:
            return structured_reply(request, response)
        return response

    def open_stream(
        self, request: ChatRequest, *, http_timeout: float | None = None
    ) -> Awaitable[TargetStream | ReplayStream]:
        """Open a stream down the fallback chain, up to its first event (inside the call
        middleware when any is installed); ``ChatStream`` does this when entered and then
        iterates the attempt that won. ``http_timeout``: this request's HTTP timeout."""
        hooks, attempt_hooks = self.middleware.active()
        if hooks:
            return self.middleware.run(
                hooks,
                self.call_view(request),
                lambda call: self.calls.open_stream(call.request, http_timeout, attempt_hooks),
                close_stream,
            )
        return self.calls.open_stream(request, http_timeout, attempt_hooks)

    if not TYPE_CHECKING:  # type checkers keep reporting that a Client is not awaitable

        def __await__(self):
            # ``await AiClient.create(...)`` is the reference's spelling: a hint, not
            # "object Client can't be used in 'await' expression".
            raise TypeError(
                "a Client is not awaitable: open it with"
                " 'async with open_client(...) as client:' (the block owns its connections"
                " and tasks, and closes them when it ends)"
            )


@takes_settings(ClientConfig)
def open_client(model: str | ModelArray, **settings: Any) -> Client:
    """Open a client for ``"provider/model-id"``; use it as ``async with open_client(...)``.

    ``model`` may also be a ``ModelArray`` (``ailib_anyio.routing``): the client then
    spreads its calls over the array's endpoints, each call's other endpoints being its
    fallbacks (``client.router.snapshot()`` shows each endpoint's numbers).

    The settings are the fields of ``ClientConfig``, each checked when given (a bad value
    or an unknown name is a ``ConfigurationError`` naming it): ``open_client(model,
    **settings)`` is ``Client(model, ClientConfig(**settings))``. ``ClientConfig`` says
    what each setting does.

    Example::

        async with open_client("openai/gpt-4o", fallbacks=["anthropic/claude-sonnet-5-5"]) as c:
            reply = await c.chat().user("2+2?").execute()
    """
    return Client(model, config_from(None, settings))
