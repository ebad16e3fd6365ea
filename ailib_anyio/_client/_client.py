"""The client: ``open_client`` and ``Client``, which orchestrates its targets.

The chat builder is in ``_chat.py``, streams as the user reads them in ``_stream.py``, one
provider+model and its attempts in ``_target.py``.

A client is an async context manager that owns its connection pool (and anything else it
starts); leaving the block closes everything, even on cancellation. Any task may use it
and close it, unless it runs background work: that binds it to the task that started it.
A request is encoded by the manifest's API family, sent through the transport under the
``max_inflight`` limiter, and decoded by the manifest's rules in the sans-IO core. A
stream is an async context manager too: leaving its block — normally, by ``break``, by
an exception or by cancellation — closes the HTTP response at once, in a shielded scope.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from .._core._errors import (
    ConfigurationError,
)
from .._core._logging import configure_logging
from .._core._structured import (
    structured_reply,
)
from .._core._types import (
    ChatRequest,
    ChatResponse,
)
from .._resilience._taskgroups import exit_task_group
from ._call import CallRunner, close_stream
from ._chat import ChatBuilder
from ._config import ClientConfig, config_from, takes_settings
from ._middleware import Call, MiddlewareChain, default_middleware
from ._replay import ReplayStream
from ._state import State

if TYPE_CHECKING:
    from .._core._breaker import CircuitState
    from .._protocol._models import ProviderManifest
    from .._resilience._signals import SignalsSnapshot
    from .._services._health import HealthReport
    from .._services._tokens import TokenCount
    from ._array import ArrayRouter, ModelArray
    from ._batch import BatchExecutor, BatchResult
    from ._target import Target
    from ._targetstream import TargetStream


__all__ = ["Client", "open_client", "provide"]

_R = TypeVar("_R")


#: Services the package's facade wires in by name (``provide``): the client layer calls
#: them without importing the layer above it.
_SERVICES: dict[str, Callable[..., Any]] = {}


def provide(name: str, service: Callable[..., Any]) -> None:
    """Make ``service`` the client's ``name`` service (done by ``ailib_anyio/__init__``)."""
    _SERVICES[name] = service


def _default_max_inflight() -> float:
    raw = os.environ.get("AI_LIB_MAX_INFLIGHT")
    if not raw:
        return math.inf
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"AI_LIB_MAX_INFLIGHT must be a positive integer, got {raw!r}"
        ) from None
    if value < 1:
        raise ConfigurationError(f"AI_LIB_MAX_INFLIGHT must be a positive integer, got {raw!r}")
    return value


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
        # Loaded with the first client, not with the package: the target brings in the
        # transport (httpx), the manifest models and loader, the encoders and decoders.
        from ._target import Target

        #: the settings this client was made from
        self.config = config
        #: a model array's load balancer (None for one model): it orders each call's chain
        self.router: ArrayRouter | None = None
        members: tuple[Target, ...]
        if isinstance(model, str) or not _is_array(model):
            members = (Target(model, config),)  # type: ignore[arg-type]  # refused there
        else:
            from ._array import open_router  # loaded only for model arrays

            self.router = open_router(model, config)
            members = self.router.members
        #: the target answering first (an array's first endpoint)
        self.primary = members[0]
        #: the targets in order: the primary (or the array's endpoints), then the fallbacks
        self.targets: tuple[Target, ...] = (
            *members,
            *(self._fallback(spec, config) for spec in config.fallbacks),
        )
        self.max_inflight: float = (
            config.max_inflight if config.max_inflight is not None else _default_max_inflight()
        )
        cache = () if config.cache is None else (config.cache.middleware_for(self),)
        #: the middleware, split by level (see ``Middleware``): the services installed by
        #: default (OpenTelemetry, when it is installed), the metrics, ``config.middleware``,
        #: the plugins, and the response cache, innermost
        self.middleware = MiddlewareChain(
            (
                *default_middleware(self),
                *self._metrics(),
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

    def _metrics(self) -> tuple[object, ...]:
        collector = self.config.metrics
        return () if collector is None else (collector.middleware_for(self),)

    @staticmethod
    def _fallback(spec: str | Client, config: ClientConfig) -> Target:
        """A fallback target: a ``"provider/model"`` (its key from its own credential chain,
        resolved when the client opens; the settings ``ClientConfig.for_fallback`` keeps)
        or an unopened ``Client`` without fallbacks, whose primary target it takes (its own
        settings; the chain's body limit if it left its own at the default)."""
        from ._target import Target

        if isinstance(spec, str):
            return Target(spec, config.for_fallback(), defer_credentials=True)
        if spec._state is not State.UNOPENED:
            raise ConfigurationError(f"fallback {spec!r} is already open; pass it unopened")
        if len(spec.targets) > 1:
            raise ConfigurationError(f"fallback {spec!r} has fallbacks of its own")
        return spec.primary.limit_body(config.max_response_bytes)

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
        service = _SERVICES.get("count_tokens")
        if service is None:  # pragma: no cover - the package's __init__ provides it
            raise RuntimeError("token counting is not wired in: import ailib_anyio")
        count: TokenCount = await service(self, request, http_timeout=http_timeout)
        return count

    def health(self) -> HealthReport:
        """The health of each target: the probes of the ``HealthChecker`` last started for
        this client (``ailib_anyio.health``) with each target's circuit state; without a
        checker, the circuits alone (probe results ``unknown``)."""
        report: HealthReport = _SERVICES["health"](self)
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
        from ._batch import BatchExecutor, response_from_record, response_record

        keys: list[str] | None = None
        if isinstance(requests, Mapping):
            keys, items = list(requests), list(requests.values())
        else:
            items = list(requests)
        if output is not None and keys is None:
            # Each request's key is its body's: built and encoded (and so checked) now.
            from .._protocol._batch import derive_custom_ids

            keys = derive_custom_ids(self.primary.encode(_built(item)) for item in items)

        async def run(request: ChatBuilder | ChatRequest) -> ChatResponse:
            if isinstance(request, ChatBuilder):
                return await request.execute()
            return await self.execute(_built(request))

        def read_back(record: Any, request: ChatBuilder | ChatRequest) -> ChatResponse:
            response = response_from_record(record, pricing=self.primary.pricing)
            built = _built(request)
            if built.response_format is not None:
                response = structured_reply(built, response)
            return response

        executor: BatchExecutor[ChatBuilder | ChatRequest, ChatResponse] = BatchExecutor(
            run,
            max_concurrent=max_concurrent,
            fail_fast=fail_fast,
            on_progress=on_progress,
            to_json=response_record,
            from_json=read_back,
        )
        return await executor.execute(items, output=output, keys=keys)

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


def _built(request: object) -> ChatRequest:
    """A batch item as the request it sends (never streamed)."""
    if isinstance(request, ChatBuilder):
        return request.build()
    if not isinstance(request, ChatRequest):
        raise ConfigurationError(
            f"a batch request is a ChatBuilder or a ChatRequest, got {type(request).__name__}"
        )
    return attrs.evolve(request, stream=False) if request.stream else request


def _is_array(model: object) -> bool:
    """Whether ``model`` is a ``ModelArray`` (whose module is loaded only if one was made)."""
    array = getattr(sys.modules.get(f"{__package__}._array"), "ModelArray", None)
    return array is not None and isinstance(model, array)


@takes_settings(ClientConfig)
def open_client(model: str | ModelArray, **settings: Any) -> Client:
    """Open a client for ``"provider/model-id"``; use it as ``async with open_client(...)``.

    ``model`` may also be a ``ModelArray`` (``ailib_anyio.routing``): the client then
    spreads its calls over the array's endpoints, each call's other endpoints being its
    fallbacks (``client.router.snapshot()`` shows each endpoint's numbers).

    The settings are the fields of ``ClientConfig``, each checked when given (a bad value
    or an unknown name is a ``ConfigurationError`` naming it): ``open_client(model,
    **settings)`` is ``Client(model, ClientConfig(**settings))``.

    - ``api_key`` defaults to the manifest's credential chain (e.g. ``OPENAI_API_KEY``);
      ``base_url`` overrides the manifest's (OpenAI-compatible servers); ``headers`` are
      added to every request (a name that is not an HTTP token or a value with a control
      character raises ``ConfigurationError``; values of names with ``auth``, ``key``,
      ``token``, ``secret``... are masked like the key); ``protocol_path`` adds manifest
      directories searched first; ``http_client`` lends a pool the caller owns.
    - ``base_url`` comes from, first to last: ``base_url=``, the environment variable
      ``<PROVIDER>_BASE_URL`` (the provider as written, then the manifest's id, upper-cased
      with every character but A-Z and 0-9 as ``_``: ``OPENAI_BASE_URL``,
      ``OPENAI_COMPATIBLE_BASE_URL``), the manifest.
    - ``timeout``: the HTTP timeout in seconds (or an ``httpx.Timeout``). Without it, a lent
      ``http_client`` keeps its own timeout; otherwise ``AI_HTTP_TIMEOUT_SECS`` (seconds)
      is the default, else 600 s to read (10 s to connect).
    - ``max_inflight``: at most this many HTTP requests open at once, fallbacks and hedges
      included (default: ``AI_LIB_MAX_INFLIGHT``, else unbounded).
    - ``retry`` (a ``RetryConfig``) replaces the manifest's ``retry_policy``, which is the
      default; ``max_retries`` overrides just the count (0: never retry).
    - ``fallbacks``: targets tried in order on a retryable or fallbackable error, as
      ``"provider/model"`` (the key from that provider's credential chain, e.g.
      ``ANTHROPIC_API_KEY``, looked up when this client opens; this client's timeout,
      retry and breaker settings) or, with settings of their own, unopened clients:
      ``fallbacks=[open_client("anthropic/...", api_key=..., base_url=...)]``. This client
      opens and closes them.
    - ``hedge``: a ``HedgeConfig`` racing the next fallback when the current target is slow.
    - ``rate_limit``: a ``RateLimiterConfig`` (FIFO token bucket adapting to rate-limit
      headers and 429s); ``circuit_breaker``: a ``CircuitBreakerConfig``.
    - ``deadlines``: ``Deadlines(total=, first_token=, idle=)``, each raising its own error.
    - ``parameter_defaults``: send the manifest's ``parameters.<name>.default`` for the
      temperature, max_tokens and top_p a request leaves out (off: the provider's own
      defaults apply, and a model that rejects a parameter is not sent it).
    - ``host_supplied_key``: ``api_key`` is the only credential source, no environment
      variable is read (a host or sandbox that hands credentials over).
    - ``max_response_bytes``: the largest decoded body of a non-streamed response (default
      32 MiB); a larger one, or one that inflates past it, is ``MalformedResponseError``.
    - ``middleware``: ``Middleware`` objects or ``async def mw(call, next)`` functions
      around each call and attempt, outermost first; ``plugins``: ``ailib_anyio.plugins``
      objects (a plugin is a call-level middleware), inside the ``middleware``.
    - OpenTelemetry (see ``ailib_anyio.telemetry``): when ``opentelemetry-api`` is
      installed, every call is traced and measured with the GenAI semantic conventions,
      through the global providers or ``tracer_provider`` / ``meter_provider``;
      ``telemetry=False`` turns it off; ``capture_content=True`` records the messages
      on the spans (default: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, else
      off). ``metrics``: a ``MetricsCollector`` (``ailib_anyio.telemetry``) this client
      fills, per provider and model.
    - ``cache``: a ``CacheManager`` (``ailib_anyio.cache``) answering repeated requests and
      streams without any HTTP request, and making concurrent identical ones share one
      upstream call; opened with the client unless already open.
    - ``shared_state``: a ``RedisState`` (``ailib_anyio.shared``) holding the
      ``rate_limit`` buckets and the ``circuit_breaker`` state, so that every process
      using the same Redis, provider, API key and model shares one limit and one circuit;
      opened with the client unless already open (an unreachable Redis is a
      ``SharedStateError`` there, unless ``RedisState(fallback_to_local=True)``).

    Example::

        async with open_client("openai/gpt-4o", fallbacks=["anthropic/claude-sonnet-5-5"]) as c:
            reply = await c.chat().user("2+2?").execute()
    """
    return Client(model, config_from(None, settings))
