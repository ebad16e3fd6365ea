"""The client: ``open_client``, the chat builder, responses and streams.

A client is an async context manager that owns its connection pool (and anything else it
starts); leaving the block closes everything, even on cancellation. A request is encoded
by the manifest's API family, sent through the transport under the ``max_inflight``
limiter, and decoded by the manifest's rules in the sans-IO core. A stream is an async
context manager too: leaving its block — normally, by ``break``, by an exception or by
cancellation — closes the HTTP response at once, in a shielded scope.
"""

from __future__ import annotations

import enum
import json
import math
import os
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from ._config import ClientConfig, config_from, takes_settings
from ._core._classify import ErrorInfo, classify_error, error_from_info
from ._core._encode import EncoderOptions, encode_request
from ._core._mapping import DecodeFailure, ResponseAccumulator, StreamFailure
from ._core._ratelimit import parse_rate_limits
from ._core._wire import check_model_id, expand_path
from ._errors import (
    AiLibError,
    ConfigurationError,
    DeadlineExceededError,
    FirstTokenTimeoutError,
    IdleTimeoutError,
    MalformedResponseError,
    RemoteError,
)
from ._middleware import Call, MiddlewareChain
from ._protocol._decoding import response_decoder, stream_pipeline
from ._protocol._models import ProviderManifest, StreamingSpec
from ._protocol._registry import ProtocolRegistry
from ._resilience import Deadlines, TargetGuard, race, within
from ._secrets import SECRETS, install_log_redaction, mask_json, mask_text
from ._taskgroups import exit_task_group
from ._transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpResponse,
    Transport,
    base_url_from_env,
    http_timeout,
    resolve_auth,
    translate_transport_error,
    transport_errors,
)
from ._types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    ContentDelta,
    Message,
    RateLimitSnapshot,
    StreamingEvent,
    ToolChoice,
    ToolDefinition,
)
from ._validate import (
    check_mapping,
    check_number,
    check_request,
    check_response_format,
    check_tool_choice,
    json_problem,
)

if TYPE_CHECKING:
    from ._batch import BatchExecutor, BatchResult
    from ._core._breaker import CircuitState
    from ._core._retry import RetryConfig, RetryPolicy
    from ._signals import SignalsSnapshot


__all__ = ["ChatBuilder", "ChatStream", "Client", "open_client"]

_R = TypeVar("_R")

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id")


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


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


class _ClosedOnExit:
    """``async with`` support for streams: ``aclose()`` is idempotent and shielded."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Client:
    """A client for one provider and model. Create it with ``open_client``, or from a
    ``ClientConfig``: ``Client(model, config)`` (keyword settings given too replace the
    config's)."""

    def __init__(
        self,
        model: str,
        config: ClientConfig | None = None,
        *,
        _defer_credentials: bool = False,
        **settings: Any,
    ) -> None:
        """``Client(model, config)``, or ``Client(model, **settings)`` as ``open_client``."""
        config = config_from(config, settings)  # every setting checked here, once
        #: the settings this client was made from
        self.config = config
        resolved = ProtocolRegistry(config.protocol_path).resolve(model)
        self.manifest: ProviderManifest = resolved.manifest
        self.provider = resolved.provider
        self.model_id = resolved.model_id
        check_model_id(self.model_id, provider=self.provider)
        self.max_inflight: float = (
            config.max_inflight if config.max_inflight is not None else _default_max_inflight()
        )
        base_url = config.base_url
        if base_url is None:
            base_url = base_url_from_env((self.provider, self.manifest.id))
        self.base_url = (base_url or self.manifest.endpoint.base_url).rstrip("/")
        timeout, http_client = config.timeout, config.http_client
        http_timeout(timeout, http_client)  # a bad AI_HTTP_TIMEOUT_SECS fails here, not later
        max_response_bytes = config.max_response_bytes
        api_key, host_supplied_key = config.api_key, config.host_supplied_key
        self._hedge = config.hedge
        self._deadlines = config.deadlines or Deadlines()
        self._middleware = MiddlewareChain(config.middleware)
        self._guard = TargetGuard.build(
            f"{self.provider}/{self.model_id}",
            self._context(),
            self._retry_policy(config.retry, config.max_retries),
            config.circuit_breaker,
            config.rate_limit,
        )
        self._fallbacks = tuple(self._fallback(spec, config) for spec in config.fallbacks)
        headers = dict(config.headers)
        #: masked in every error and log record while the client is open (see _secrets)
        self._secrets: tuple[str, ...] = tuple(_sensitive_values(headers))
        self._registered = False
        self._transport_args: dict[str, Any] = {
            "headers": headers,
            "params": {},
            "timeout": timeout,
            "http_client": http_client,
            "max_response_bytes": max_response_bytes,
        }
        # A closure, not a partial: its repr must not show the key.
        self._pending_credentials: (
            Callable[[], tuple[dict[str, str], dict[str, str], tuple[str, ...]]] | None
        )
        self._pending_credentials = lambda: resolve_auth(
            self.manifest, self.provider, api_key, host_supplied=host_supplied_key
        )
        if not _defer_credentials:
            # Resolve the key now, so a missing key fails at open_client, not mid-request
            # (a "provider/model" fallback's when the client opens: _resolve_credentials).
            self._resolve_credentials()
        self._transport: Transport | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._background: anyio.abc.TaskGroup | None = None
        self._state = _State.UNOPENED
        self._fallbacks_used = 0
        self._hedges_started = 0
        self._encoder_options = EncoderOptions(
            parameter_mappings=self.manifest.parameter_mappings,
            stream_usage=self.manifest.feature_flag("streaming_usage"),
            defaults={
                name: spec.default
                for name, spec in self.manifest.parameters.items()
                if spec.required and spec.default is not None
            },
            request_defaults=self.manifest.parameter_defaults if config.parameter_defaults else {},
        )
        chat = self.manifest.chat_endpoint
        self._chat_url = self.base_url + self._expand_path(chat.path)
        self._stream_url = self.base_url + self._expand_path(chat.stream_path or chat.path)

    def _expand_path(self, template: str) -> str:
        """An endpoint path with the model id as one encoded path segment (refused before
        any I/O when it cannot be one: ``/``, ``?``, ``#``, ``..``, control characters)."""
        try:
            return expand_path(template, {"model": self.model_id}, provider=self.provider)
        except ConfigurationError as exc:
            exc.model = self.model_id
            raise

    def _retry_policy(
        self, retry: RetryConfig | None, max_retries: int | None
    ) -> RetryPolicy | None:
        """The client's retry config, else the manifest's ``retry_policy``; ``max_retries``
        overrides the count. None when no retry is allowed."""
        from ._core._retry import RetryConfig, RetryPolicy

        if retry is not None:
            config = retry
        elif self.manifest.retry_policy is not None:
            config = RetryConfig.from_manifest(self.manifest.retry_policy)
        else:
            config = RetryConfig()
        if max_retries is not None:
            config = attrs.evolve(config, max_retries=max_retries)
        return RetryPolicy(config) if config.max_retries > 0 else None

    @staticmethod
    def _fallback(spec: str | Client, config: ClientConfig) -> Client:
        """A fallback target: a ``"provider/model"`` (its key from its own credential chain,
        resolved when the client opens; the settings ``ClientConfig.for_fallback`` keeps)
        or an unopened ``Client`` (its own settings; the chain's body limit if it left
        its own at the default)."""
        if isinstance(spec, str):
            # the key is resolved when the client opens
            return Client(spec, config.for_fallback(), _defer_credentials=True)
        if spec._state is not _State.UNOPENED:
            raise ConfigurationError(f"fallback {spec!r} is already open; pass it unopened")
        if spec._fallbacks:
            raise ConfigurationError(f"fallback {spec!r} has fallbacks of its own")
        return spec._limit_body(config.max_response_bytes)

    def _resolve_credentials(self, *, fallback: bool = False) -> None:
        """Add the credential chain's headers and query parameters to the transport's, once.
        A fallback's missing key is a ``ConfigurationError`` that names the fallback."""
        resolve, self._pending_credentials = self._pending_credentials, None
        if resolve is None:
            return
        try:
            auth_headers, auth_params, secrets = resolve()
        except ConfigurationError as exc:
            if not fallback:
                raise
            name = f"{self.provider}/{self.model_id}"
            raise ConfigurationError(
                f"fallback {name!r}: {exc.message} (to give a fallback its own key or"
                f" base_url: fallbacks=[open_client({name!r}, api_key=...)])",
                **self._context(),
            ) from None
        self._secrets = (*secrets, *self._secrets)
        args = self._transport_args
        args["headers"] = {**auth_headers, **args["headers"]}
        args["params"] = auth_params

    def _limit_body(self, max_response_bytes: int) -> Client:
        """A fallback made from a string takes the chain's body limit."""
        if self._transport_args["max_response_bytes"] == DEFAULT_MAX_RESPONSE_BYTES:
            self._transport_args["max_response_bytes"] = max_response_bytes
            self.config = attrs.evolve(self.config, max_response_bytes=max_response_bytes)
        return self

    def __repr__(self) -> str:
        return f"<Client {self.provider}/{self.model_id} {self._state.value}>"

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("a Client can be opened only once")
        for fallback in self._fallbacks:  # before anything starts: nothing to undo
            fallback._resolve_credentials(fallback=True)
        self._limiter = anyio.CapacityLimiter(self.max_inflight)
        install_log_redaction()
        self._register_secrets()
        background = anyio.create_task_group()
        await background.__aenter__()
        self._background = background
        self._transport = Transport(**self._transport_args)
        self._state = _State.OPEN
        for fallback in self._fallbacks:
            # No task group of its own (it would not nest with ours): a transport, and
            # one max_inflight for the whole chain.
            fallback._register_secrets()
            fallback._transport = Transport(**fallback._transport_args)
            fallback._limiter = self._limiter
            fallback._state = _State.OPEN
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
        when cancelled. Inside ``async with``, leaving the block does this."""
        await self._close(None, None, None)

    async def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._state is _State.CLOSED:
            return None
        self._state = _State.CLOSED
        background, self._background = self._background, None
        try:
            if background is not None:
                # Everything the client started ends with its block (structured concurrency).
                background.cancel_scope.cancel()
                return await exit_task_group(background, exc_type, exc, tb)
            return None
        finally:
            with anyio.CancelScope(shield=True):
                for fallback in self._fallbacks:
                    await fallback.aclose()
                if self._transport is not None:
                    await self._transport.aclose()
                if self._registered:
                    self._registered = False
                    SECRETS.discard(self._secrets)

    def _register_secrets(self) -> None:
        if not self._registered:
            self._registered = True
            SECRETS.add(self._secrets)

    def start_background(
        self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: str | None = None
    ) -> None:
        """Run ``func(*args)`` in the client's own task group: it is cancelled when the
        client's block exits, and an error in it cancels the block (structured concurrency).
        """
        if self._state is not _State.OPEN or self._background is None:
            raise RuntimeError("background work needs an open client")
        self._background.start_soon(func, *args, name=name)

    def _open_transport(self) -> tuple[Transport, anyio.CapacityLimiter]:
        if self._state is _State.UNOPENED:
            raise RuntimeError(
                "the client is not open: use it inside 'async with open_client(...)'"
            )
        if self._state is _State.CLOSED or self._transport is None or self._limiter is None:
            raise RuntimeError("the client is closed")
        return self._transport, self._limiter

    @property
    def current_inflight(self) -> int:
        """Requests and streams holding an in-flight slot right now."""
        return int(self._limiter.borrowed_tokens) if self._limiter is not None else 0

    @property
    def circuit_state(self) -> CircuitState | None:
        """This client's circuit state (None without a circuit breaker)."""
        breaker = self._guard.breaker
        return breaker.state(anyio.current_time()) if breaker is not None else None

    @property
    def _targets(self) -> tuple[Client, ...]:
        return (self, *self._fallbacks)

    def get_resilience_stats(self) -> SignalsSnapshot:
        """In-flight requests, each target's circuit and rate-limiter state, the last
        rate-limit headers each target received, and retry/fallback/hedge counters."""
        from ._signals import SignalsSnapshot

        now = anyio.current_time()
        guards = [t._guard for t in self._targets]
        return SignalsSnapshot(
            inflight=self.current_inflight,
            max_inflight=self.max_inflight,
            circuits={g.name: g.breaker.snapshot(now) for g in guards if g.breaker},
            rate_limiters={g.name: g.limiter.stats() for g in guards if g.limiter},
            last_rate_limits={g.name: g.last_rate_limits for g in guards if g.last_rate_limits},
            retries=sum(g.retries for g in guards),
            fallbacks=self._fallbacks_used,
            hedges=self._hedges_started,
        )

    # ------------------------------------------------------------ requests

    def chat(self) -> ChatBuilder:
        """Start building a chat request."""
        return ChatBuilder(self)

    async def batch(
        self,
        requests: Iterable[ChatBuilder | ChatRequest],
        *,
        max_concurrent: int = 10,
        fail_fast: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> BatchResult[ChatResponse]:
        """Execute many chat requests concurrently, at most ``max_concurrent`` at a time.

        ``requests`` are builders (``client.chat().user(...)``, run with ``execute()``) or
        ``ChatRequest`` objects (sent by this client, never streamed). The result holds one
        ``ChatResponse`` or exception per request, in input order; ``fail_fast`` and
        ``on_progress(done, total)`` are as in ``BatchExecutor``. The client's own
        ``max_inflight`` still applies; cancelling the caller cancels every request::

            result = await client.batch([client.chat().user(q) for q in questions])
            replies = result.get_successful_results()
        """

        async def run(request: ChatBuilder | ChatRequest) -> ChatResponse:
            if isinstance(request, ChatBuilder):
                return await request.execute()
            if request.stream:
                request = attrs.evolve(request, stream=False)
            return await self._execute(request, None)

        from ._batch import BatchExecutor

        executor: BatchExecutor[ChatBuilder | ChatRequest, ChatResponse] = BatchExecutor(
            run, max_concurrent=max_concurrent, fail_fast=fail_fast, on_progress=on_progress
        )
        return await executor.execute(requests)

    def _context(self, **extra: Any) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model_id, **extra}

    def _check_request(self, request: ChatRequest) -> None:
        """Reject malformed arguments, out-of-range parameters, capabilities the model
        lacks and prompts clearly longer than its context window, before I/O."""
        from ._preflight import preflight_error, request_problems  # loaded on first use

        try:
            check_request(request)
        except ConfigurationError as exc:
            exc.provider, exc.model = self.provider, self.model_id
            raise
        problems = request_problems(self.manifest, self.model_id, request)
        if problems:
            raise preflight_error(*problems[0], **self._context())

    def _encode(self, request: ChatRequest) -> bytes:
        self._check_request(request)
        try:
            body = encode_request(self.manifest.api_family, request, self._encoder_options)
        except AiLibError as exc:
            exc.provider, exc.model = self.provider, self.model_id
            raise
        try:
            return json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
        except (ValueError, TypeError, RecursionError) as exc:  # UnicodeError is a ValueError
            problem = json_problem(body, "the request body") or f"the request body: {exc}"
            raise ConfigurationError(problem, **self._context()) from None

    def _rate_limits(self, response: HttpResponse) -> RateLimitSnapshot | None:
        return parse_rate_limits(self.manifest.rate_limit_headers, response.headers)

    def _request_id(self, response: HttpResponse) -> str | None:
        headers = response.headers
        for name in _REQUEST_ID_HEADERS:
            value: str | None = headers.get(name)
            if value:
                return mask_text(value)  # a proxy may echo anything into it
        return None

    def _remote_error(
        self,
        info: ErrorInfo,
        *,
        request_id: str | None,
        body: Any,
        partial: ChatResponse | None = None,
        mid_stream: bool = False,
    ) -> RemoteError:
        return error_from_info(
            info,
            request_id=request_id,
            body=body,
            partial=partial,
            mid_stream=mid_stream,
            provider=self.provider,
            model=self.model_id,
        )

    async def _error_from_response(self, response: HttpResponse) -> RemoteError:
        """Read an error response's body (shielded close) and classify it."""
        try:
            raw = await response.aread(context=self._context(status_code=response.status_code))
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()
        try:
            body: Any = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            body = raw.decode("utf-8", "replace")
        body = mask_json(body)  # before anything cuts it: a server may echo the key
        info = classify_error(
            self.manifest.error_classification, response.status_code, response.headers, body
        )
        error = self._remote_error(info, request_id=self._request_id(response), body=body)
        error.rate_limits = self._rate_limits(response)
        return error

    async def _post_json(
        self, url: str, content: bytes, http_timeout: float | None
    ) -> tuple[HttpResponse, Any]:
        """POST under the in-flight limiter; the response and its decoded JSON body, or the
        classified error."""
        transport, limiter = self._open_transport()
        async with limiter:
            response = await transport.send(
                url, content, timeout=http_timeout, context=self._context()
            )
            if response.status_code >= 400:
                raise await self._error_from_response(response)
            try:
                raw = await response.aread(context=self._context(status_code=response.status_code))
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        try:
            return response, json.loads(raw)
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                exc.doc = mask_text(exc.doc)  # the whole body, kept on the chained cause
            raise MalformedResponseError(
                f"response body is not valid JSON ({exc}):"
                f" {mask_text(raw.decode('utf-8', 'replace'))[:200]!r}",
                status_code=response.status_code,
                request_id=self._request_id(response),
                **self._context(),
            ) from exc

    async def _resilient(
        self,
        run: Callable[[Client], Awaitable[_R]],
        errors: list[AiLibError],
        discard: Callable[[_R], Awaitable[None]] | None = None,
    ) -> _R:
        """Run ``run(target)`` down the fallback chain (hedged if configured) within the
        total deadline; a final error carries every attempt's error in ``attempts``."""

        def count(hedged: bool) -> None:
            if hedged:
                self._hedges_started += 1
            else:
                self._fallbacks_used += 1

        async def chain() -> _R:
            hedge = self._hedge.delay if self._hedge is not None else None
            return await race(
                self._targets, run, hedge_delay=hedge, discard=discard, errors=errors, on_next=count
            )

        total = self._deadlines.total
        try:
            if total is None:  # the common cases without a task group or extra frame
                return await (chain() if self._fallbacks else run(self))
            return await within(
                total,
                chain,
                lambda: DeadlineExceededError(
                    f"the request's total deadline of {total:g}s ran out", **self._context()
                ),
            )
        except AiLibError as exc:
            if exc not in errors:
                errors.append(exc)
            exc.attempts = tuple(errors)
            raise

    def _call_view(self, request: ChatRequest) -> Call:
        return Call(request=request, provider=self.provider, model=self.model_id)

    def _attempt(
        self,
        target: Client,
        request: ChatRequest,
        content: bytes,
        send: Callable[[bytes], Awaitable[_R]],
        counter: list[int],
        discard: Callable[[Any], Awaitable[None]] | None,
    ) -> Callable[[], Awaitable[_R]]:
        """One attempt of ``target``: ``send(content)``, inside the attempt middleware when
        any is installed (a request it replaces is encoded again, and checked)."""
        hooks = self._middleware.attempt_hooks
        if not hooks:
            return lambda: send(content)
        index = self._targets.index(target)

        def last(call: Call) -> Awaitable[_R]:
            if call.request is request:
                return send(content)
            return send(target._encode(call.request))

        def attempt() -> Awaitable[_R]:
            counter[0] += 1
            view = Call(
                request=request,
                provider=target.provider,
                model=target.model_id,
                attempt=counter[0],
                target=index,
            )
            return self._middleware.run(hooks, view, last, discard)

        return attempt

    async def _execute(self, request: ChatRequest, http_timeout: float | None) -> ChatResponse:
        hooks = self._middleware.call_hooks
        if hooks:
            return await self._middleware.run(
                hooks,
                self._call_view(request),
                lambda call: self._execute_call(call.request, http_timeout),
                None,
            )
        return await self._execute_call(request, http_timeout)

    async def _execute_call(self, request: ChatRequest, http_timeout: float | None) -> ChatResponse:
        self._open_transport()
        errors: list[AiLibError] = []
        counter = [0]

        def run(target: Client) -> Awaitable[ChatResponse]:
            req = request if target is self else attrs.evolve(request, model=target.model_id)
            content = target._encode(req)

            def send(body: bytes) -> Awaitable[ChatResponse]:
                return target._execute_once(body, http_timeout)

            return target._guard.call(
                self._attempt(target, req, content, send, counter, None),
                errors,
                tokens=_token_estimate(content, req),
                rate_limits=_response_rate_limits,
            )

        return await self._resilient(run, errors)

    async def _execute_once(self, content: bytes, http_timeout: float | None) -> ChatResponse:
        """One attempt of a non-streaming request."""
        decoder = response_decoder(self.manifest, provider=self.provider, model=self.model_id)
        response, body = await self._post_json(self._chat_url, content, http_timeout)
        return decoder.decode(
            body,
            status=response.status_code,
            headers=response.headers,
            request_id=self._request_id(response),
            rate_limits=self._rate_limits(response),
            provider=self.provider,
            model=self.model_id,
        )

    def _open_stream(
        self, request: ChatRequest, http_timeout: float | None
    ) -> Awaitable[_TargetStream]:
        """Open a stream down the fallback chain, up to its first event (inside the call
        middleware when any is installed)."""
        hooks = self._middleware.call_hooks
        if hooks:
            return self._middleware.run(
                hooks,
                self._call_view(request),
                lambda call: self._open_stream_call(call.request, http_timeout),
                _close_stream,
            )
        return self._open_stream_call(request, http_timeout)

    def _open_stream_call(
        self, request: ChatRequest, http_timeout: float | None
    ) -> Awaitable[_TargetStream]:
        """The closures here return awaitables instead of awaiting them, so the only
        coroutine frames a stream holds while it connects are ``_resilient``, its target's
        retry loop and the attempt: at a thousand concurrent streams, frames are memory.
        """
        self._open_transport()
        errors: list[AiLibError] = []
        limits = self._deadlines
        deadline = None if limits.total is None else anyio.current_time() + limits.total
        first_token, idle = limits.first_token, limits.idle
        counter = [0]

        def run(target: Client) -> Awaitable[_TargetStream]:
            req = request if target is self else attrs.evolve(request, model=target.model_id)
            content = target._encode(req)

            def send(body: bytes) -> Awaitable[_TargetStream]:
                live = _TargetStream(target, body, http_timeout, idle=idle, deadline=deadline)
                if first_token is not None:
                    return within(
                        first_token,
                        live.open,
                        lambda: FirstTokenTimeoutError(
                            f"no first event within {first_token:g}s", **target._context()
                        ),
                    )
                if idle is not None:  # without first_token, idle bounds the first wait too
                    return within(
                        idle,
                        live.open,
                        lambda: IdleTimeoutError(
                            f"no event from the provider for {idle:g}s", **target._context()
                        ),
                    )
                return live.open()

            return target._guard.call(
                self._attempt(target, req, content, send, counter, _close_stream),
                errors,
                tokens=_token_estimate(content, req),
                rate_limits=_stream_rate_limits,
            )

        return self._resilient(run, errors, _close_stream)


class ChatBuilder:
    """Fluent chat request builder: ``client.chat().system(...).user(...).execute()``."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._messages: list[Message] = []
        self._params: dict[str, Any] = {}
        self._timeout: float | None = None

    def message(self, message: Message) -> ChatBuilder:
        if not isinstance(message, Message):
            raise ConfigurationError(f"message must be a Message, got {type(message).__name__}")
        self._messages.append(message)
        return self

    def messages(self, messages: Sequence[Message]) -> ChatBuilder:
        for m in messages:
            self.message(m)
        return self

    def system(self, content: str) -> ChatBuilder:
        return self.message(Message.system(content))

    def user(self, content: str | Sequence[ContentBlock]) -> ChatBuilder:
        return self.message(Message.user(content))

    def assistant(self, content: str | None = None, tool_calls: Sequence[Any] = ()) -> ChatBuilder:
        return self.message(Message.assistant(content, tool_calls))

    def tool_result(self, tool_call_id: str, content: str, name: str | None = None) -> ChatBuilder:
        """A tool's result; ``name`` (the function's) matters to dialects that match by
        name (Gemini), and is otherwise found from the assistant turn that made the call."""
        return self.message(Message.tool(tool_call_id, content, name=name))

    def _set(self, name: str, value: Any) -> ChatBuilder:
        self._params[name] = value
        return self

    def temperature(self, value: float) -> ChatBuilder:
        return self._set("temperature", _number("temperature", value))

    def top_p(self, value: float) -> ChatBuilder:
        return self._set("top_p", _number("top_p", value))

    def max_tokens(self, value: int) -> ChatBuilder:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"max_tokens must be a positive integer, got {value!r}")
        return self._set("max_tokens", value)

    def stop(self, *sequences: str) -> ChatBuilder:
        flat: list[str] = []
        for s in sequences:
            flat.extend([s] if isinstance(s, str) else s if isinstance(s, (list, tuple)) else [s])
        for s in flat:
            if not isinstance(s, str):
                raise ConfigurationError(f"stop sequences must be strings, got {s!r}")
        return self._set("stop", tuple(flat))

    def tools(self, tools: Sequence[ToolDefinition]) -> ChatBuilder:
        for t in tools:
            if not isinstance(t, ToolDefinition):
                raise ConfigurationError(
                    f"tools must be ToolDefinition objects, got {type(t).__name__}"
                )
        return self._set("tools", tuple(tools))

    def tool_choice(self, choice: ToolChoice) -> ChatBuilder:
        """``"auto"``, ``"none"``, ``"required"`` or the name of one of the request's tools
        (checked by ``build``)."""
        if not isinstance(choice, str):
            raise ConfigurationError(f"tool_choice must be a string, got {choice!r}")
        return self._set("tool_choice", choice)

    def response_format(self, value: Mapping[str, Any]) -> ChatBuilder:
        """An OpenAI-style format: ``{"type": "json_object"}``, ``{"type": "json_schema",
        "json_schema": {...}}`` or ``{"type": "text"}``."""
        check_response_format(value)
        return self._set("response_format", value)

    def extra_body(self, value: Mapping[str, Any]) -> ChatBuilder:
        """Provider-specific fields merged into the encoded body last, objects key by key;
        other values replace what the encoder wrote (``temperature``, ``stream_options``).

        What the library manages is never overridden silently: ``model`` and ``stream``,
        and any value already encoded under ``messages``, ``contents``, ``system``,
        ``systemInstruction`` or ``tools``, raise ``ConfigurationError`` naming the keys
        (before any I/O). New keys inside those objects, or ``tools`` on a request without
        tools (a provider's built-in tools), are allowed. There is no opt-in: set the
        model with ``open_client``, streaming with ``.stream()``, messages and tools with
        the builder."""
        check_mapping("extra_body", value)
        return self._set("extra_body", value)

    def timeout(self, seconds: float) -> ChatBuilder:
        """Per-request HTTP timeout (connect, read, write), overriding the client's."""
        self._timeout = _number("timeout", seconds)
        if self._timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number, got {seconds!r}")
        return self

    def build(self, *, stream: bool = False) -> ChatRequest:
        if not self._messages:
            raise ConfigurationError("a chat request needs at least one message")
        if "tool_choice" in self._params:
            check_tool_choice(self._params["tool_choice"], self._params.get("tools", ()))
        return ChatRequest(
            model=self._client.model_id,
            messages=tuple(self._messages),
            stream=stream,
            **self._params,
        )

    async def execute(self) -> ChatResponse:
        """Send the request and return the whole response."""
        return await self._client._execute(self.build(), self._timeout)

    def stream(self) -> ChatStream:
        """An async context manager streaming the response: ``async with ... as stream``."""
        return ChatStream(self._client, self.build(stream=True), self._timeout)


def _response_rate_limits(response: ChatResponse) -> RateLimitSnapshot | None:
    return response.rate_limits


def _stream_rate_limits(stream: _TargetStream) -> RateLimitSnapshot | None:
    return stream.rate_limits


async def _close_stream(stream: _TargetStream) -> None:
    await stream.aclose()


def _token_estimate(content: bytes, request: ChatRequest) -> int:
    """Tokens a request may use, for a tokens-per-minute limiter: about 4 bytes of body
    per input token, plus the output it allows."""
    return len(content) // 4 + (request.max_tokens or 0)


#: Header names whose values are credentials: masked like the API key.
_SENSITIVE_HEADER = ("auth", "key", "token", "secret", "cookie", "session", "password")


def _sensitive_values(headers: Mapping[str, str]) -> list[str]:
    return [
        value
        for name, value in headers.items()
        if value and any(word in name.lower() for word in _SENSITIVE_HEADER)
    ]


def _number(name: str, value: Any) -> float:
    return check_number(name, value)


class _TargetStream(_ClosedOnExit):
    """One stream attempt against one target: the HTTP response, its decoding pipeline and
    what it delivered. ``open()`` sends the request and reads up to the first event, so a
    failure before anything reached the user can still be retried or fall back; the
    ``ChatStream`` the user holds then iterates the winning attempt directly.

    ``idle`` and ``deadline`` (an absolute ``anyio.current_time()``) bound each wait for a
    chunk; without them the per-chunk path has no cancel scope at all.
    """

    def __init__(
        self,
        client: Client,
        content: bytes,
        timeout: float | None,
        *,
        idle: float | None = None,
        deadline: float | None = None,
    ) -> None:
        self._client = client
        self._content = content
        self._timeout = timeout
        self._idle = idle
        self._deadline = deadline
        self._timed = idle is not None or deadline is not None
        self._state = _State.UNOPENED
        self._response: HttpResponse | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._holds_slot = False
        self._pending: deque[StreamingEvent | StreamFailure | DecodeFailure] = deque()
        self._eof = False
        self._idle_at = math.inf  # when the idle limit runs out (inf: not waiting)
        self._pipeline = stream_pipeline(
            client.manifest, provider=client.provider, model=client.model_id
        )
        self._format = self._pipeline.framing
        self._acc = ResponseAccumulator()
        self.request_id: str | None = None
        self.rate_limits: RateLimitSnapshot | None = None

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> _TargetStream:
        """Send the request and wait for the first event (or the first failure); on any
        error or cancellation the response is closed before this returns."""
        client = self._client
        transport, limiter = client._open_transport()
        content = self._content
        await limiter.acquire_on_behalf_of(self)
        self._holds_slot = True
        self._state = _State.OPEN
        error: AiLibError | None = None
        try:
            response = await transport.send(
                client._stream_url, content, timeout=self._timeout, context=client._context()
            )
            self._response = response
            self.request_id = client._request_id(response)
            self.rate_limits = client._rate_limits(response)
            if response.status_code >= 400:
                error = await client._error_from_response(response)
            else:
                error = self._not_a_stream(response)
                if error is None:
                    context = client._context(status_code=response.status_code)
                    self._chunks = response.chunks(context=context)
        except BaseException:
            await self.aclose()
            raise
        if error is not None:
            await self.aclose()
            raise error
        try:
            await self._first_event()
        except BaseException:
            await self.aclose()
            raise
        return self

    def _not_a_stream(self, response: HttpResponse) -> MalformedResponseError | None:
        """A 2xx answer that is a web page, or a plain JSON document where SSE was asked
        for, is a malformed response (not a transport cut): no stream will come from it.

        Not retryable: the same endpoint will answer the same way (a proxy's page, a wrong
        base_url); it still counts against the circuit and may fall back elsewhere."""
        media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media == "text/html" or (media == "application/json" and self._format == "sse"):
            return MalformedResponseError(
                f"the provider answered a stream request with {media!r}, not a stream",
                status_code=response.status_code,
                request_id=self.request_id,
                **self._client._context(),
            )
        return None

    async def _first_event(self) -> None:
        """Read until an event is decoded; a failure that comes first is raised here."""
        pending = self._pending
        while not pending and not self._eof:
            await self._read_chunk()
        if pending and isinstance(pending[0], (StreamFailure, DecodeFailure)):
            await self.__anext__()  # raises it, as iteration would

    async def _read_chunk(self) -> None:
        """Read one network chunk and decode it into the pending events."""
        assert self._chunks is not None
        try:
            chunk = await (self._timed_chunk() if self._timed else self._chunks.__anext__())
        except StopAsyncIteration:
            self._end_of_body()
            return
        except transport_errors() as exc:
            context = self._client._context(status_code=self._status())
            raise self._with_partial(translate_transport_error(exc, **context)) from exc
        pending = self._pending
        self._pipeline.feed(chunk, pending)
        if pending:
            self._idle_at = math.inf  # an event: the next wait for one starts afresh

    async def _timed_chunk(self) -> bytes:
        """The next chunk, within the idle limit and the total deadline.

        The idle limit runs from the start of a wait for an event (the consumer asked and
        nothing was pending) until a chunk completes one: chunks that complete none (a
        trickle) do not reset it."""
        assert self._chunks is not None
        limit = math.inf
        error: AiLibError | None = None
        if self._idle is not None:
            if self._idle_at == math.inf:
                self._idle_at = anyio.current_time() + self._idle
            limit = self._idle_at
            error = IdleTimeoutError(f"no event from the provider for {self._idle:g}s")
        if self._deadline is not None and self._deadline <= limit:
            limit = self._deadline
            error = DeadlineExceededError("the request's total deadline ran out")
        with anyio.CancelScope(deadline=limit):
            return await self._chunks.__anext__()
        await anyio.lowlevel.checkpoint_if_cancelled()  # the caller's own cancellation wins
        assert error is not None
        raise self._with_partial(error)

    async def aclose(self) -> None:
        """Close the HTTP response and release the in-flight slot. Idempotent, shielded."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        with anyio.CancelScope(shield=True):
            try:
                if self._response is not None:
                    if self._eof:
                        self._response.forget_if_unclean()
                    # Closing a response whose body is unread closes its connection.
                    await self._response.aclose()
                if self._chunks is not None and not self._eof:
                    await self._drain_iterators()
            finally:
                if self._holds_slot and self._client._limiter is not None:
                    self._holds_slot = False
                    self._client._limiter.release_on_behalf_of(self)

    async def _drain_iterators(self) -> None:
        """Run httpx's chain of body generators to their end on the closed connection.

        httpx reads bodies through several nested async generators; closing only the
        outermost one leaves the inner ones suspended until garbage collection (which trio
        reports as a ResourceWarning). With the connection already closed, the next read
        fails at the bottom of the chain and every generator finishes, deterministically.
        """
        assert self._chunks is not None
        for _ in range(10_000):  # bounded: only bytes already buffered can still arrive
            try:
                await self._chunks.__anext__()
            except StopAsyncIteration:
                return
            except Exception:  # noqa: BLE001 - the connection is closed: any error ends it
                return
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    # ------------------------------------------------------------ iteration

    @property
    def response(self) -> ChatResponse:
        """Everything delivered so far, accumulated."""
        return self._acc.build(
            mapper=self._pipeline.mapper,
            request_id=self.request_id,
            model=self._client.model_id,
            rate_limits=self.rate_limits,
        )

    def __aiter__(self) -> _TargetStream:
        return self

    async def __anext__(self) -> StreamingEvent:
        # The per-chunk path: one coroutine, no helper awaits, the common event first.
        pending = self._pending
        while not pending:
            if self._state is not _State.OPEN or self._eof:
                if self._state is _State.UNOPENED:
                    raise RuntimeError(
                        "iterate a stream inside its block: 'async with builder.stream() as stream'"
                    )
                raise StopAsyncIteration
            if self._timed:  # the idle clock is kept per event there
                await self._read_chunk()
                continue
            # _read_chunk() inlined: one coroutine frame less per chunk on the hot path.
            assert self._chunks is not None
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._end_of_body()
                continue
            except transport_errors() as exc:
                context = self._client._context(status_code=self._status())
                raise self._with_partial(translate_transport_error(exc, **context)) from exc
            self._pipeline.feed(chunk, pending)
        event = pending.popleft()
        cls = type(event)
        if cls is ContentDelta:
            self._acc.content.append(event.text)  # type: ignore[union-attr]
            return event  # type: ignore[return-value]
        if cls is StreamFailure:
            raise self._stream_error(event)  # type: ignore[arg-type]
        if cls is DecodeFailure:
            raise self._with_partial(event.error)  # type: ignore[union-attr]
        self._acc.add(event)  # type: ignore[arg-type]
        return event  # type: ignore[return-value]

    def _end_of_body(self) -> None:
        self._eof = True
        self._pending.extend(self._pipeline.close())  # a cut-off body ends in a failure

    def _status(self) -> int | None:
        return self._response.status_code if self._response is not None else None

    def _with_partial(self, exc: AiLibError) -> AiLibError:
        client = self._client
        exc.provider, exc.model = client.provider, client.model_id
        exc.status_code = exc.status_code or self._status()
        exc.response = self.response
        exc.request_id = exc.request_id or self.request_id
        exc.rate_limits = exc.rate_limits or self.rate_limits
        return exc

    def _stream_error(self, failure: StreamFailure) -> RemoteError:
        client = self._client
        return self._pipeline.error(
            failure,
            status=self._status() or 200,
            headers=self._response.headers if self._response is not None else None,
            partial=self.response,
            request_id=self.request_id,
            rate_limits=self.rate_limits,
            provider=client.provider,
            model=client.model_id,
        )


class ChatStream(_ClosedOnExit):
    """A streamed chat response. Use it as ``async with builder.stream() as stream``.

    Entering the block sends the request (with the client's retries, fallbacks, hedging
    and deadlines) and returns once the first event is ready; iterating yields
    ``StreamingEvent`` objects. Retries and fallbacks only happen before that first event:
    a failure after it is raised with the partial response. ``stream.response`` holds what
    has been delivered so far (content, reasoning, tool calls, usage, finish reason), also
    after an early exit; ``stream.provider`` and ``stream.model`` say which target answered.
    Leaving the block closes the HTTP response immediately.
    """

    def __init__(self, client: Client, request: ChatRequest, timeout: float | None) -> None:
        self._client = client
        self._request = request
        self._timeout = timeout
        self._state = _State.UNOPENED
        self._live: _TargetStream | None = None
        _stream_rules(client)

    async def __aenter__(self) -> ChatStream:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("a ChatStream can be entered only once")
        self._state = _State.OPEN
        try:
            self._live = await self._client._open_stream(self._request, self._timeout)
        except BaseException:
            self._state = _State.CLOSED
            raise
        return self

    async def aclose(self) -> None:
        """Close the HTTP response and release the in-flight slot. Idempotent, shielded."""
        self._state = _State.CLOSED
        if self._live is not None:
            await self._live.aclose()

    def __aiter__(self) -> AsyncIterator[StreamingEvent]:
        if self._state is _State.UNOPENED:
            raise RuntimeError(
                "iterate a stream inside its block: 'async with builder.stream() as stream'"
            )
        if self._live is None:
            return _EmptyStream()
        chain = self._client._middleware
        if chain.event_hooks:
            return _Observed(self._live, chain, self._client._call_view(self._request))
        # The attempt that won iterates itself: no extra frame per event.
        return self._live

    async def __anext__(self) -> StreamingEvent:
        return await self.__aiter__().__anext__()

    @property
    def response(self) -> ChatResponse:
        """Everything delivered so far, accumulated."""
        if self._live is None:
            return ChatResponse(model=self._client.model_id)
        return self._live.response

    @property
    def request_id(self) -> str | None:
        return self._live.request_id if self._live is not None else None

    @property
    def rate_limits(self) -> RateLimitSnapshot | None:
        return self._live.rate_limits if self._live is not None else None

    @property
    def provider(self) -> str:
        """The provider that answered (a fallback's, when the chain moved on)."""
        return (self._live._client if self._live is not None else self._client).provider

    @property
    def model(self) -> str:
        """The model that answered."""
        return (self._live._client if self._live is not None else self._client).model_id


def _stream_rules(client: Client) -> StreamingSpec:
    streaming = client.manifest.streaming
    if streaming is None or not streaming.event_map:
        raise ConfigurationError(
            f"manifest {client.manifest.id!r} has no streaming rules", **client._context()
        )
    return streaming


class _Observed:
    """Iteration that hands each event to the middleware's ``on_event`` hooks (only
    when some are installed: otherwise the stream iterates itself)."""

    __slots__ = ("_call", "_chain", "_live")

    def __init__(self, live: _TargetStream, chain: MiddlewareChain, call: Call) -> None:
        self._live, self._chain, self._call = live, chain, call

    def __aiter__(self) -> _Observed:
        return self

    async def __anext__(self) -> StreamingEvent:
        event = await self._live.__anext__()
        self._chain.observe(self._call, event)
        return event


class _EmptyStream:
    def __aiter__(self) -> _EmptyStream:
        return self

    async def __anext__(self) -> StreamingEvent:
        raise StopAsyncIteration


@takes_settings(ClientConfig)
def open_client(model: str, **settings: Any) -> Client:
    """Open a client for ``"provider/model-id"``; use it as ``async with open_client(...)``.

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

    Example::

        async with open_client("openai/gpt-4o", fallbacks=["anthropic/claude-sonnet-5-5"]) as c:
            reply = await c.chat().user("2+2?").execute()
    """
    return Client(model, config_from(None, settings))
