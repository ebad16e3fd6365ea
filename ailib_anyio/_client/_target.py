"""Targets: one provider and model each, running one attempt at a time.

A ``Target`` holds everything one provider endpoint needs — its manifest, URLs, encoder
options, credentials, retry guard, circuit breaker and rate limiter, and (while its client
is open) its transport — and runs one attempt: ``execute_once`` for a request,
``TargetStream.open`` (``_targetstream.py``) for a stream up to its first event. It builds
its errors complete (provider, model, status, request id, rate limits, partial response)
where they happen. The ``Client`` orders its targets (the primary, then its fallbacks;
``_targets.py`` builds them), owns their lifecycle and the ``max_inflight`` limiter they
share (``_client.py``), and races them (``_call.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._core._classify import classify_error, error_from_info
from .._core._cost import ModelPricing
from .._core._encode import EncoderOptions, encode_request
from .._core._errors import (
    AiLibError,
    CapabilityNotDeclaredError,
    ConfigurationError,
    MalformedResponseError,
    RemoteError,
)
from .._core._mapping import ResponseDecoder
from .._core._ratelimit import parse_rate_limits
from .._core._secrets import SECRETS, mask_json, mask_text
from .._core._structured import StructuredOutputRules
from .._core._types import (
    ChatRequest,
    ChatResponse,
    RateLimitSnapshot,
)
from .._core._wire import check_model_id, expand_path
from .._protocol._decoding import response_decoder
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
    transport_errors,
)
from ._config import ClientConfig
from ._state import State

if TYPE_CHECKING:
    from .._core._retry import RetryConfig, RetryPolicy

__all__ = ["Target"]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id")

#: Header names whose values are credentials: masked like the API key.
_SENSITIVE_HEADER = ("auth", "key", "token", "secret", "cookie", "session", "password")


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
        #: ``context()`` made once, for the calls that pass it on without extras (a
        #: stream's request holds it while it waits: one dict per target, not per stream);
        #: read-only
        self.base_context: Mapping[str, Any] = self.context()
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
        pool = self.config.pool
        lease = None if pool is None else pool.lease(self.base_url, self.provider)
        self.transport = Transport(**self._transport_args, lease=lease)
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
                    context=self.base_context,
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
                yield _Chunks(response.chunks(context=context), context, transport)
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

    __slots__ = ("_chunks", "_context", "_transport")

    def __init__(
        self, chunks: AsyncIterator[bytes], context: Mapping[str, Any], transport: Transport
    ) -> None:
        self._chunks, self._context, self._transport = chunks, context, transport

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except transport_errors() as exc:
            raise self._transport.translate_error(exc, **self._context) from exc
