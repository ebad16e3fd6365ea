"""Targets: one provider and model each, running one attempt at a time.

A ``Target`` holds everything one provider endpoint needs — its manifest, URLs, encoder
options, credentials, retry guard, circuit breaker and rate limiter, and (while its client
is open) its transport — and runs one attempt: ``execute_once`` for a request,
``TargetStream.open`` for a stream up to its first event. It builds its errors complete
(provider, model, status, request id, rate limits, partial response) where they happen.
The ``Client`` orders its targets (the primary, then its fallbacks), owns their lifecycle
and the ``max_inflight`` limiter they share, and races them (``_client/_client.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import attrs

from .._core._classify import classify_error, error_from_info
from .._core._cost import ModelPricing
from .._core._encode import EncoderOptions, encode_request
from .._core._errors import (
    AiLibError,
    CapabilityNotDeclaredError,
    ConfigurationError,
    DeadlineExceededError,
    IdleTimeoutError,
    MalformedResponseError,
    MiddlewareError,
    RemoteError,
)
from .._core._mapping import DecodeFailure, ResponseAccumulator, ResponseDecoder, StreamFailure
from .._core._ratelimit import parse_rate_limits
from .._core._secrets import SECRETS, mask_json, mask_text
from .._core._structured import StructuredOutputRules
from .._core._types import (
    ChatRequest,
    ChatResponse,
    ContentDelta,
    RateLimitSnapshot,
    StreamingEvent,
)
from .._core._wire import check_model_id, expand_path
from .._protocol._decoding import response_decoder, stream_pipeline
from .._protocol._models import ProviderManifest
from .._protocol._registry import ProtocolRegistry
from .._protocol._validate import check_request, json_problem
from .._resilience._run import TargetGuard
from .._resilience._shared import SharedScope, fingerprint
from .._transport._http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpResponse,
    Transport,
    base_url_from_env,
    http_timeout,
    resolve_auth,
    translate_transport_error,
    transport_errors,
)
from ._config import ClientConfig
from ._replay import StreamWatcher, close_watchers
from ._state import ClosedOnExit, State

if TYPE_CHECKING:
    from .._core._retry import RetryConfig, RetryPolicy

__all__ = ["Target", "TargetStream"]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id")

#: Header names whose values are credentials: masked like the API key.
_SENSITIVE_HEADER = ("auth", "key", "token", "secret", "cookie", "session", "password")


def _qualname(func: object) -> str:
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) else type(func).__name__


def _sensitive_values(headers: Mapping[str, str]) -> list[str]:
    return [
        value
        for name, value in headers.items()
        if value and any(word in name.lower() for word in _SENSITIVE_HEADER)
    ]


class Target:
    """One provider and model of a client's chain (see the module docstring). Made by the
    client from a model string and a ``ClientConfig``; ``defer_credentials`` leaves the
    key to be resolved when the client opens (``"provider/model"`` fallbacks)."""

    def __init__(
        self, model: str, config: ClientConfig, *, defer_credentials: bool = False
    ) -> None:
        self.config = config
        resolved = ProtocolRegistry(config.protocol_path).resolve(model)
        self.manifest: ProviderManifest = resolved.manifest
        self.provider = resolved.provider
        self.model_id = resolved.model_id
        check_model_id(self.model_id, provider=self.provider)
        base_url = config.base_url
        if base_url is None:
            base_url = base_url_from_env((self.provider, self.manifest.id))
        self.base_url = (base_url or self.manifest.endpoint.base_url).rstrip("/")
        http_timeout(config.timeout, config.http_client)  # a bad AI_HTTP_TIMEOUT_SECS fails now
        self.guard = TargetGuard.build(
            f"{self.provider}/{self.model_id}",
            self.context(),
            self._retry_policy(config.retry, config.max_retries),
            config.circuit_breaker,
            config.rate_limit,
        )
        headers = dict(config.headers)
        #: masked in every error and log record while the client is open (see _secrets)
        self._secrets: tuple[str, ...] = tuple(_sensitive_values(headers))
        #: what keys this target's shared rate limit: the fingerprint of its API key (of
        #: the credential headers given without one), never the key
        self._key_fingerprint: str | None = (
            fingerprint("\n".join(self._secrets)) if self._secrets else None
        )
        self._registered = False
        self._transport_args: dict[str, Any] = {
            "headers": headers,
            "params": {},
            "timeout": config.timeout,
            "http_client": config.http_client,
            "max_response_bytes": config.max_response_bytes,
        }
        api_key, host_supplied_key = config.api_key, config.host_supplied_key
        # A closure, not a partial: its repr must not show the key.
        self._pending_credentials: (
            Callable[[], tuple[dict[str, str], dict[str, str], tuple[str, ...]]] | None
        )
        self._pending_credentials = lambda: resolve_auth(
            self.manifest, self.provider, api_key, host_supplied=host_supplied_key
        )
        if not defer_credentials:
            # Resolve the key now, so a missing key fails at open_client, not mid-request.
            self.resolve_credentials()
        self.state = State.UNOPENED
        self.transport: Transport | None = None
        #: the client's max_inflight limiter, shared by its targets (set when it opens)
        self.limiter: anyio.CapacityLimiter | None = None
        #: requests and streams of this target holding an in-flight slot right now
        self.inflight = 0
        self._encoder_options = EncoderOptions(
            parameter_mappings=self.manifest.parameter_mappings,
            stream_usage=self.manifest.feature_flag("streaming_usage"),
            defaults={
                name: spec.default
                for name, spec in self.manifest.parameters.items()
                if spec.required and spec.default is not None
            },
            request_defaults=self.manifest.parameter_defaults if config.parameter_defaults else {},
            structured=self.manifest.structured_output or StructuredOutputRules(),
        )
        self._response_decoder: ResponseDecoder | None = None
        #: the model's prices from its manifest (None: unpriced): every response this
        #: target builds carries them, and its ``cost`` from them
        self.pricing: ModelPricing | None = self.manifest.model_pricing(self.model_id)
        info = self.manifest.model_info(self.model_id)
        #: False for a model the manifest marks ``chat: false``: chat requests are refused
        self.chats = info is None or info.supports_chat
        chat = self.manifest.chat_endpoint
        self.chat_url = self.base_url + self.expand_path(chat.path)
        self.stream_url = self.base_url + self.expand_path(chat.stream_path or chat.path)

    def __repr__(self) -> str:
        return f"<Target {self.provider}/{self.model_id} {self.state.value}>"

    # ------------------------------------------------------------ lifecycle

    def open(self, limiter: anyio.CapacityLimiter) -> None:
        """Start the transport (the client's ``max_inflight`` limiter is shared); with a
        ``shared_state`` (open by now), take its shared rate limiter and breaker."""
        state = self.config.shared_state
        if state is not None and self.state is State.UNOPENED:
            self.guard.share(state, self.shared_scope())
        self._register_secrets()
        self.transport = Transport(**self._transport_args)
        self.limiter = limiter
        self.state = State.OPEN

    async def aclose(self) -> None:
        """Close the transport and forget the secrets. Idempotent; run shielded."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        if self.transport is not None:
            await self.transport.aclose()
        if self._registered:
            self._registered = False
            SECRETS.discard(self._secrets)

    def opened(self) -> tuple[Transport, anyio.CapacityLimiter]:
        """The transport and limiter of an open target; a clear error otherwise."""
        if self.state is State.UNOPENED:
            raise RuntimeError(
                "the client is not open: use it inside 'async with open_client(...)'"
            )
        if self.state is State.CLOSED or self.transport is None or self.limiter is None:
            raise RuntimeError("the client is closed")
        return self.transport, self.limiter

    # ------------------------------------------------------------ one attempt

    def expand_path(self, template: str) -> str:
        """An endpoint path with the model id as one encoded path segment (refused before
        any I/O when it cannot be one: ``/``, ``?``, ``#``, ``..``, control characters)."""
        return expand_path(
            template, {"model": self.model_id}, provider=self.provider, model=self.model_id
        )

    def _retry_policy(
        self, retry: RetryConfig | None, max_retries: int | None
    ) -> RetryPolicy | None:
        """The configured retry config, else the manifest's ``retry_policy``; ``max_retries``
        overrides the count. None when no retry is allowed."""
        from .._core._retry import RetryConfig, RetryPolicy

        if retry is not None:
            config = retry
        elif self.manifest.retry_policy is not None:
            config = RetryConfig.from_manifest(self.manifest.retry_policy)
        else:
            config = RetryConfig()
        if max_retries is not None:
            config = attrs.evolve(config, max_retries=max_retries)
        return RetryPolicy(config) if config.max_retries > 0 else None

    def resolve_credentials(self, *, fallback: bool = False) -> None:
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
                **self.context(),
            ) from None
        self._secrets = (*secrets, *self._secrets)
        if secrets:  # the key itself comes first
            self._key_fingerprint = fingerprint(secrets[0])
        args = self._transport_args
        args["headers"] = {**auth_headers, **args["headers"]}
        args["params"] = auth_params

    def limit_body(self, max_response_bytes: int) -> Target:
        """A fallback that kept the default body limit takes the chain's."""
        if self._transport_args["max_response_bytes"] == DEFAULT_MAX_RESPONSE_BYTES:
            self._transport_args["max_response_bytes"] = max_response_bytes
            self.config = attrs.evolve(self.config, max_response_bytes=max_response_bytes)
        return self

    def _register_secrets(self) -> None:
        if not self._registered:
            self._registered = True
            SECRETS.add(self._secrets)

    def shared_scope(self) -> SharedScope:
        """What this target's shared rate limit and circuit are keyed by: provider, model,
        the API key's fingerprint and the base URL's."""
        endpoint = fingerprint(self.base_url)
        key = self._key_fingerprint or f"nokey-{endpoint[:10]}"
        return SharedScope(self.provider, self.model_id, key=key, endpoint=endpoint)

    def context(self, **extra: Any) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model_id, **extra}

    def chat_refusal(self) -> CapabilityNotDeclaredError:
        """The error a chat request to a model that cannot chat raises (``chats`` false)."""
        info = self.manifest.model_info(self.model_id)
        hint = (
            "; it is an embedding model: use EmbeddingClient(client).embed(...)"
            if info is not None and info.embeds
            else ""
        )
        return CapabilityNotDeclaredError(
            f"{self.model_id} is not a chat model (its manifest says chat: false){hint}",
            capability="chat",
            **self.context(),
        )

    def check_request(self, request: ChatRequest) -> None:
        """Reject a model that cannot chat, malformed arguments, out-of-range parameters,
        capabilities the model lacks and prompts clearly longer than its context window,
        before I/O."""
        from ._preflight import preflight_error, request_problems  # loaded on first use

        if not self.chats:
            raise self.chat_refusal()
        check_request(request, **self.context())
        problems = request_problems(self.manifest, self.model_id, request)
        if problems:
            raise preflight_error(*problems[0], **self.context())

    def encode(self, request: ChatRequest) -> bytes:
        self.check_request(request)
        try:
            body = encode_request(self.manifest.api_family, request, self._encoder_options)
        except AiLibError as exc:  # the core knows nothing of the target
            raise exc.with_context(**self.context())  # noqa: B904 - chained as exc was
        try:
            return json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
        except (ValueError, TypeError, RecursionError) as exc:  # UnicodeError is a ValueError
            problem = json_problem(body, "the request body") or f"the request body: {exc}"
            raise ConfigurationError(problem, **self.context()) from None

    def rate_limits_of(self, response: HttpResponse) -> RateLimitSnapshot | None:
        return parse_rate_limits(self.manifest.rate_limit_headers, response.headers)

    def request_id_of(self, response: HttpResponse) -> str | None:
        headers = response.headers
        for name in _REQUEST_ID_HEADERS:
            value: str | None = headers.get(name)
            if value:
                return mask_text(value)  # a proxy may echo anything into it
        return None

    async def _read_and_close(self, response: HttpResponse) -> bytes:
        """The whole body (bounded), the response closed whatever happens (shielded)."""
        try:
            return await response.aread(context=self.context(status_code=response.status_code))
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def error_from_response(self, response: HttpResponse) -> RemoteError:
        """Read an error response's body (shielded close) and classify it."""
        raw = await self._read_and_close(response)
        try:
            body: Any = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            body = raw.decode("utf-8", "replace")
        body = mask_json(body)  # before anything cuts it: a server may echo the key
        info = classify_error(
            self.manifest.error_classification, response.status_code, response.headers, body
        )
        return error_from_info(
            info,
            request_id=self.request_id_of(response),
            body=body,
            rate_limits=self.rate_limits_of(response),
            **self.context(),
        )

    async def request_json(
        self,
        url: str,
        content: bytes | None,
        http_timeout: float | None,
        *,
        method: str = "POST",
        content_type: str | None = None,
    ) -> tuple[HttpResponse, Any]:
        """Send a request under the in-flight limiter (POST unless ``method`` says; no body
        when ``content`` is None; ``content_type`` replaces the JSON one); the response
        and its decoded JSON body, or the classified error."""
        transport, limiter = self.opened()
        # a free slot is taken at once (anyio's acquire adds a checkpoint that yields to
        # the event loop: a whole scheduling round per request); a full limiter queues
        try:
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            await limiter.acquire()
        try:
            self.inflight += 1
            try:
                response = await transport.send(
                    url,
                    content,
                    timeout=http_timeout,
                    context=self.context(),
                    method=method,
                    content_type=content_type,
                )
                if response.status_code >= 400:
                    raise await self.error_from_response(response)
                raw = await self._read_and_close(response)
            finally:
                self.inflight -= 1
        finally:
            limiter.release()
        try:
            return response, json.loads(raw)
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                exc.doc = mask_text(exc.doc)  # the whole body, kept on the chained cause
            raise MalformedResponseError(
                f"response body is not valid JSON ({exc}):"
                f" {mask_text(raw.decode('utf-8', 'replace'))[:200]!r}",
                status_code=response.status_code,
                request_id=self.request_id_of(response),
                **self.context(),
            ) from exc

    #: POST ``content`` (``request_json`` with its defaults): the chat and embeddings call
    post_json = request_json

    @asynccontextmanager
    async def open_download(
        self, url: str, http_timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """GET ``url`` under the in-flight limiter and give its body as an iterator of
        chunks (unbounded in total, bounded per chunk: a results file may be large); an
        error status raises the classified error. The response is closed when the block
        ends, whatever happens (shielded)."""
        transport, limiter = self.opened()
        context = self.context()
        async with limiter:
            response = await transport.send(
                url, None, timeout=http_timeout, context=context, method="GET"
            )
            try:
                if response.status_code >= 400:
                    raise await self.error_from_response(response)
                context = self.context(
                    status_code=response.status_code, request_id=self.request_id_of(response)
                )
                yield _Chunks(response.chunks(context=context), context)
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()

    async def execute_once(self, content: bytes, http_timeout: float | None) -> ChatResponse:
        """One attempt of a non-streaming request."""
        decoder = self._response_decoder
        if decoder is None:  # built on first use (stateless): a stream-only manifest is fine
            decoder = self._response_decoder = response_decoder(
                self.manifest, provider=self.provider, model=self.model_id
            )
        response, body = await self.post_json(self.chat_url, content, http_timeout)
        return decoder.decode(
            body,
            status=response.status_code,
            headers=response.headers,
            request_id=self.request_id_of(response),
            rate_limits=self.rate_limits_of(response),
            provider=self.provider,
            model=self.model_id,
            pricing=self.pricing,
        )


class _Chunks:
    """A body's chunks with the HTTP library's errors translated into ours."""

    __slots__ = ("_chunks", "_context")

    def __init__(self, chunks: AsyncIterator[bytes], context: Mapping[str, Any]) -> None:
        self._chunks, self._context = chunks, context

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except transport_errors() as exc:
            raise translate_transport_error(exc, **self._context) from exc


class TargetStream(ClosedOnExit):
    """One stream attempt against one target: the HTTP response, its decoding pipeline and
    what it delivered. ``open()`` sends the request and reads up to the first event, so a
    failure before anything reached the user can still be retried or fall back; the
    ``ChatStream`` the user holds then iterates the winning attempt directly.

    ``idle`` and ``deadline`` (an absolute ``anyio.current_time()``) bound each wait for a
    chunk; without them the per-chunk path has no cancel scope at all.
    """

    # slotted, its watchers' list made on first use: a thousand concurrent streams hold
    # one each while they connect
    __slots__ = (
        "__weakref__",
        "_acc",
        "_chunks",
        "_content",
        "_deadline",
        "_eof",
        "_format",
        "_holds_slot",
        "_idle",
        "_idle_at",
        "_on_close",
        "_pending",
        "_pipeline",
        "_response",
        "_state",
        "_target",
        "_timed",
        "_timeout",
        "_watchers",
        "discarded",
        "error",
        "rate_limits",
        "request_id",
    )

    def __init__(
        self,
        target: Target,
        content: bytes,
        timeout: float | None,
        *,
        idle: float | None = None,
        deadline: float | None = None,
    ) -> None:
        self._target = target
        self._content = content
        self._timeout = timeout
        self._idle = idle
        self._deadline = deadline
        self._timed = idle is not None or deadline is not None
        self._state = State.UNOPENED
        self._response: HttpResponse | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._holds_slot = False
        # a list, not a deque: an empty deque is 760 bytes, which a thousand concurrent
        # streams hold while connecting; the events of one read are few (pop(0) is cheap)
        self._pending: list[StreamingEvent | StreamFailure | DecodeFailure] = []
        self._eof = False
        self._idle_at = math.inf  # when the idle limit runs out (inf: not waiting)
        self._pipeline = stream_pipeline(
            target.manifest, provider=target.provider, model=target.model_id
        )
        self._format = self._pipeline.framing
        self._acc = ResponseAccumulator()
        self._watchers: list[StreamWatcher] | None = None
        self.request_id: str | None = None
        self.rate_limits: RateLimitSnapshot | None = None
        #: what ended the stream early: an error it raised, or the exception (cancellation
        #: included) its block exited with; None when it ended normally or by ``break``
        self.error: BaseException | None = None
        #: closed unused: a hedge that lost a photo finish, or dropped by a middleware
        self.discarded = False
        self._on_close: list[Callable[[TargetStream], None]] | None = None

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> TargetStream:
        """Send the request and wait for the first event (or the first failure); on any
        error or cancellation the response is closed before this returns."""
        target = self._target
        transport, limiter = target.opened()
        content = self._content
        try:  # a free slot at once, without anyio's yield to the event loop
            limiter.acquire_on_behalf_of_nowait(self)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(self)
        self._holds_slot = True
        target.inflight += 1
        self._state = State.OPEN
        error: AiLibError | None = None
        try:
            response = await transport.send(
                target.stream_url, content, timeout=self._timeout, context=target.context()
            )
            self._response = response
            self.request_id = target.request_id_of(response)
            self.rate_limits = target.rate_limits_of(response)
            if response.status_code >= 400:
                error = await target.error_from_response(response)
            else:
                error = self._not_a_stream(response)
                if error is None:
                    context = target.context(status_code=response.status_code)
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
                **self._target.context(),
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
            raise self._failed(translate_transport_error(exc, **self._error_context())) from exc
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
        deadline = False  # which limit runs out first: the total deadline or the idle one
        if self._idle is not None:
            if self._idle_at == math.inf:
                self._idle_at = anyio.current_time() + self._idle
            limit = self._idle_at
        if self._deadline is not None and self._deadline <= limit:
            limit, deadline = self._deadline, True
        with anyio.CancelScope(deadline=limit):
            return await self._chunks.__anext__()
        await anyio.lowlevel.checkpoint_if_cancelled()  # the caller's own cancellation wins
        if deadline:
            raise self._failed(
                DeadlineExceededError(
                    "the request's total deadline ran out", **self._error_context()
                )
            )
        raise self._failed(
            IdleTimeoutError(
                f"no event from the provider for {self._idle:g}s", **self._error_context()
            )
        )

    async def aclose(self) -> None:
        """Close the HTTP response and release the in-flight slot. Idempotent, shielded."""
        if self._state is State.CLOSED:
            return
        self._state = State.CLOSED
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
                if self._holds_slot and self._target.limiter is not None:
                    self._holds_slot = False
                    self._target.inflight -= 1
                    self._target.limiter.release_on_behalf_of(self)
                if self._watchers:
                    close_watchers(self._watchers)
                callbacks, self._on_close = self._on_close, None
                if callbacks:
                    self._closed(callbacks)

    def on_close(self, callback: Callable[[TargetStream], None]) -> None:
        """Call ``callback(stream)`` once, when the stream is closed (its response and
        in-flight slot released): at the end of its block, by ``aclose()``, or at once if
        it already is. It reads ``response`` (all that was delivered), ``error`` and
        ``discarded``. This is how a middleware sees a stream end without a hook per
        event; what a callback raises is a ``MiddlewareError``, raised once all have run."""
        if self._state is State.CLOSED:
            self._closed([callback])
        elif self._on_close is None:
            self._on_close = [callback]
        else:
            self._on_close.append(callback)

    def _closed(self, callbacks: list[Callable[[TargetStream], None]]) -> None:
        failed: tuple[Callable[[TargetStream], None], Exception] | None = None
        for callback in callbacks:
            try:
                callback(self)
            except Exception as exc:  # noqa: BLE001 - every callback runs; the first is raised
                failed = failed or (callback, exc)
        if failed is not None:
            culprit, error = failed
            owner = getattr(culprit, "__self__", None)
            name = type(owner).__name__ if owner is not None else _qualname(culprit)
            raise MiddlewareError(
                f"middleware {name} failed in on_close: {type(error).__name__}: {error}",
                middleware=name,
            ) from error

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

    @property
    def target(self) -> Target:
        """The target this attempt ran against."""
        return self._target

    @property
    def provider(self) -> str:
        return self._target.provider

    @property
    def model(self) -> str:
        return self._target.model_id

    # ------------------------------------------------------------ watchers

    def watch(self, watcher: StreamWatcher) -> None:
        """Follow this stream with ``watcher`` as its user reads it (see ``StreamWatcher``):
        what a call-level middleware does with the stream ``next`` opened."""
        if not isinstance(watcher, StreamWatcher):
            raise TypeError(f"expected a StreamWatcher, got {type(watcher).__name__}")
        if self._watchers is None:
            self._watchers = [watcher]
        else:
            self._watchers.append(watcher)

    @property
    def watchers(self) -> Sequence[StreamWatcher]:
        return self._watchers or ()

    @property
    def complete(self) -> bool:
        """The body ended cleanly and every event reached the user (none was a failure),
        and the stream is still open."""
        return self._state is State.OPEN and self._eof and not self._pending and self.error is None

    # ------------------------------------------------------------ iteration

    @property
    def response(self) -> ChatResponse:
        """Everything delivered so far, accumulated."""
        return self._acc.build(
            mapper=self._pipeline.mapper,
            request_id=self.request_id,
            model=self._target.model_id,
            rate_limits=self.rate_limits,
            pricing=self._target.pricing,
        )

    def __aiter__(self) -> TargetStream:
        return self

    async def __anext__(self) -> StreamingEvent:
        # The per-chunk path: one coroutine, no helper awaits, the common event first.
        pending = self._pending
        while not pending:
            if self._state is not State.OPEN or self._eof:
                if self._state is State.UNOPENED:
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
                raise self._failed(translate_transport_error(exc, **self._error_context())) from exc
            self._pipeline.feed(chunk, pending)
        event = pending.pop(0)
        cls = type(event)
        if cls is ContentDelta:
            self._acc.content.append(event.text)  # type: ignore[union-attr]
            return event  # type: ignore[return-value]
        if cls is StreamFailure:
            raise self._stream_error(event)  # type: ignore[arg-type]
        if cls is DecodeFailure:
            raise self._failed(event.error_with(**self._error_context()))  # type: ignore[union-attr]
        self._acc.add(event)  # type: ignore[arg-type]
        return event  # type: ignore[return-value]

    def _end_of_body(self) -> None:
        self._eof = True
        self._pending.extend(self._pipeline.close())  # a cut-off body ends in a failure

    def _status(self) -> int | None:
        return self._response.status_code if self._response is not None else None

    def _failed(self, exc: AiLibError) -> AiLibError:
        """``exc``, recorded as the stream's error if it is the first."""
        if self.error is None:
            self.error = exc
        return exc

    def _error_context(self) -> dict[str, Any]:
        """Where a failure of this stream happened, for the error built for it: provider,
        model, status code, request id, rate limits and the partial response."""
        return self._target.context(
            status_code=self._status(),
            request_id=self.request_id,
            rate_limits=self.rate_limits,
            response=self.response,
        )

    def _stream_error(self, failure: StreamFailure) -> RemoteError:
        target = self._target
        self.error = error = self._pipeline.error(
            failure,
            status=self._status() or 200,
            headers=self._response.headers if self._response is not None else None,
            partial=self.response,
            request_id=self.request_id,
            rate_limits=self.rate_limits,
            provider=target.provider,
            model=target.model_id,
        )
        return error
