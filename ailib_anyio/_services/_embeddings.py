"""Embeddings: a service over an open client.

::

    texts = ["a cat", "a dog", "a car"]
    async with open_client("openai/text-embedding-3-small") as client:
        embedder = EmbeddingClient(client)
        one = await embedder.embed("Hello, world!")            # one request
        one.first.vector[:4], one.dimensions, one.usage
        many = await embedder.embed_batch(texts)                # split as the provider needs
        assert len(many.vectors) == len(texts)                  # in input order

The manifest's ``endpoints.embeddings`` names the path and API family; its ``embeddings``
section says where the vectors and usage are in a response and how many texts one request
may carry (``max_inputs_per_request``). Requests go through the client's transport, retry
policy, circuit breaker, rate limiter and ``max_inflight`` limiter like chat requests; its
fallbacks do not apply (another model's vectors live in another space).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs

from .._client._batch import BatchExecutor
from .._client._client import Client
from .._core._cost import CostEstimate, cost_of_usage
from .._core._embeddings import (
    EmbeddingRequest,
    EmbeddingRules,
    decode_embeddings,
    encode_embeddings,
)
from .._core._errors import (
    AiLibError,
    ConfigurationError,
    InvalidRequestError,
    MalformedResponseError,
)
from .._core._types import Usage

__all__ = ["Embedding", "EmbeddingClient", "EmbeddingResponse", "open_embedding_client"]

#: ``embed_batch``'s default bound on the requests it has open at once (the client's own
#: ``max_inflight`` applies too)
DEFAULT_MAX_CONCURRENT = 4


@attrs.frozen
class Embedding:
    """One input's vector; ``index`` is the input's position in the call."""

    index: int
    vector: Sequence[float]

    @property
    def dimensions(self) -> int:
        return len(self.vector)


@attrs.frozen
class EmbeddingResponse:
    """One ``Embedding`` per input, in input order.

    ``usage`` is the input tokens billed (summed over the requests of an ``embed_batch``;
    ``None`` unless every request reported it). ``request_id`` is the provider's id of
    the first request, ``requests`` how many HTTP requests the call made.
    """

    embeddings: tuple[Embedding, ...]
    usage: Usage | None = None
    model: str | None = None
    request_id: str | None = None
    #: the call's cost at the model's manifest prices, from the reported usage; ``None``
    #: without a price or a usage, never a guess
    cost: CostEstimate | None = None
    requests: int = 1

    @property
    def first(self) -> Embedding:
        """The first input's embedding (a call has at least one input)."""
        return self.embeddings[0]

    @property
    def vectors(self) -> list[Sequence[float]]:
        """Every vector, in input order."""
        return [e.vector for e in self.embeddings]

    @property
    def dimensions(self) -> int:
        return len(self.embeddings[0].vector) if self.embeddings else 0

    def __len__(self) -> int:
        return len(self.embeddings)


@attrs.frozen
class _Part:
    """What one request returned."""

    vectors: list[list[float]]
    usage: Usage | None
    model: str | None
    request_id: str | None


def _texts(inputs: object, method: str) -> list[str]:
    if isinstance(inputs, str):
        return [inputs]
    if not isinstance(inputs, Sequence):
        raise ConfigurationError(
            f"{method}() takes a string or a sequence of strings, got {type(inputs).__name__}"
        )
    return list(inputs)


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
    return value


class EmbeddingClient:
    """Embeddings through an open ``Client`` (whose model is the embedding model)."""

    def __init__(self, client: Client) -> None:
        manifest = client.manifest
        endpoint, family = manifest.embeddings_endpoint, manifest.embeddings_family
        if endpoint is None or family is None:
            raise ConfigurationError(
                f"provider {client.provider!r} has no embeddings endpoint in its manifest",
                provider=client.provider,
            )
        self._client = client
        self._family = family
        self._rules = manifest.embeddings or EmbeddingRules()
        self._url = client.base_url + client.primary.expand_path(endpoint.path)

    @property
    def max_inputs_per_request(self) -> int | None:
        """The most texts the provider takes in one request (the manifest's
        ``embeddings.max_inputs_per_request``; ``None``: no stated limit)."""
        return self._rules.max_inputs_per_request

    async def embed(
        self,
        inputs: str | Sequence[str],
        *,
        dimensions: int | None = None,
        task_type: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> EmbeddingResponse:
        """Embed one text or several in one request (more texts than the provider takes
        in one request are refused before any I/O: ``embed_batch`` splits them)."""
        texts = _texts(inputs, "embed")
        limit = self._rules.max_inputs_per_request
        if limit is not None and len(texts) > limit:
            raise InvalidRequestError(
                f"{len(texts)} texts are more than {self._client.provider} takes in one"
                f" request ({limit}); embed_batch() splits them",
                **self._client.primary.context(),
            )
        content = self._encode(texts, dimensions, task_type, extra_body)
        part = await self._send(content, len(texts), timeout)
        return self._response([part])

    async def embed_batch(
        self,
        texts: Sequence[str],
        *,
        dimensions: int | None = None,
        task_type: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        batch_size: int | None = None,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    ) -> EmbeddingResponse:
        """Embed many texts: split into requests of at most ``batch_size`` texts (default
        and upper bound: the manifest's ``max_inputs_per_request``; without one, a single
        request), sent at most ``max_concurrent`` at a time in one task group.

        The embeddings come back in input order, ``index`` counting across the requests.
        Every request body is built before the first is sent, so a bad input fails before
        any I/O. The first request to fail cancels the others and its error (typed, as
        from ``embed``) is raised; nothing started here outlives the call, and cancelling
        the caller cancels every request.
        """
        if isinstance(texts, str):
            raise ConfigurationError("embed_batch() takes a sequence of strings; embed() one")
        items = _texts(texts, "embed_batch")
        limit = self._rules.max_inputs_per_request
        size = limit if batch_size is None else _positive(batch_size, "batch_size")
        if limit is not None and size is not None and size > limit:
            raise ConfigurationError(
                f"batch_size={size} is more than {self._client.provider} takes in one"
                f" request ({limit})",
                **self._client.primary.context(),
            )
        workers = _positive(max_concurrent, "max_concurrent")
        if not items:
            # encode() says what is wrong with no input
            self._encode(items, dimensions, task_type, extra_body)
        step = size or len(items)
        chunks = [items[i : i + step] for i in range(0, len(items), step)]
        bodies = [(self._encode(c, dimensions, task_type, extra_body), len(c)) for c in chunks]
        if len(bodies) == 1:
            return self._response([await self._send(*bodies[0], timeout)])

        async def send(body: tuple[bytes, int]) -> _Part:
            return await self._send(*body, timeout)

        executor = BatchExecutor(send, max_concurrent=workers, fail_fast=True)
        outcome = await executor.execute(bodies)
        return self._response(outcome.get_successful_results())

    # ------------------------------------------------------------ one request

    def _encode(
        self,
        texts: Sequence[str],
        dimensions: int | None,
        task_type: str | None,
        extra_body: Mapping[str, Any] | None,
    ) -> bytes:
        client = self._client
        request = EmbeddingRequest(
            model=client.model_id,
            inputs=texts,
            dimensions=dimensions,
            task_type=task_type,
            encoding_format=self._rules.encoding_format,
            extra_body=extra_body,
        )
        try:
            body = encode_embeddings(self._family, request)
        except AiLibError as exc:  # the core knows nothing of the target
            raise exc.with_context(**client.primary.context())  # noqa: B904 - chained as exc was
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def _send(self, content: bytes, count: int, timeout: float | None) -> _Part:
        target = self._client.primary
        # The client's retry policy, circuit breaker and rate limiter apply; its fallbacks
        # do not (another model's vectors live in another space).
        errors: list[AiLibError] = []
        try:
            response, data = await target.guard.call(
                lambda: target.post_json(self._url, content, timeout),
                errors,
                tokens=len(content) // 4,
            )
        except AiLibError as exc:
            exc.attempts = tuple(errors)
            raise
        request_id = target.request_id_of(response)
        context: dict[str, Any] = target.context(
            request_id=request_id, status_code=response.status_code
        )
        try:
            vectors, usage = decode_embeddings(self._rules, data)
        except MalformedResponseError as exc:
            raise MalformedResponseError(exc.message, **context) from exc
        if len(vectors) != count:
            raise MalformedResponseError(
                f"{count} inputs but {len(vectors)} embeddings in the response", **context
            )
        model = data.get("model") if isinstance(data, dict) else None
        return _Part(vectors, usage, model if isinstance(model, str) else None, request_id)

    def _response(self, parts: Sequence[_Part]) -> EmbeddingResponse:
        """The parts' vectors, numbered across them in order, and their summed usage."""
        embeddings: list[Embedding] = []
        for part in parts:
            embeddings.extend(Embedding(len(embeddings), v) for v in part.vectors)
        usages = [p.usage for p in parts]
        usage = None
        if all(u is not None for u in usages):
            usage = Usage(input_tokens=sum(u.input_tokens for u in usages if u is not None))
        first = parts[0]
        return EmbeddingResponse(
            embeddings=tuple(embeddings),
            usage=usage,
            model=first.model or self._client.model_id,
            request_id=first.request_id,
            cost=cost_of_usage(self._client.primary.pricing, usage),
            requests=len(parts),
        )


@asynccontextmanager
async def open_embedding_client(model: str, **settings: Any) -> AsyncIterator[EmbeddingClient]:
    """Open a client for an embedding model and give its ``EmbeddingClient``; the
    settings are ``open_client``'s::

        async with open_embedding_client("openai/text-embedding-3-small") as embedder:
            response = await embedder.embed("Hello, world!")
    """
    async with Client(model, **settings) as client:
        yield EmbeddingClient(client)
