"""Embeddings: a service over an open client.

::

    async with open_client("openai/text-embedding-3-small") as client:
        result = await EmbeddingClient(client).embed(["Hello, world!"])
        result.vectors[0][:4], result.dimensions, result.usage

The manifest's ``endpoints.embeddings`` names the path and API family, its ``embeddings``
section says where the vectors and usage are in a response; requests go through the
client's transport and ``max_inflight`` limiter like chat requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .._client._client import Client
from .._core._embeddings import (
    EmbeddingRequest,
    EmbeddingRules,
    decode_embeddings,
    encode_embeddings,
)
from .._core._errors import AiLibError, ConfigurationError, MalformedResponseError
from .._core._types import Usage

__all__ = ["EmbeddingClient", "EmbeddingResponse"]


@attrs.frozen
class EmbeddingResponse:
    """One vector per input, in input order."""

    vectors: Sequence[Sequence[float]]
    usage: Usage | None = None
    model: str | None = None
    request_id: str | None = None

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0


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

    async def embed(
        self,
        inputs: str | Sequence[str],
        *,
        dimensions: int | None = None,
        task_type: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> EmbeddingResponse:
        """Embed one text or several (one request)."""
        client = self._client
        target = client.primary
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
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
            raise exc.with_context(**target.context())  # noqa: B904 - chained as exc was
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
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
        if len(vectors) != len(texts):
            raise MalformedResponseError(
                f"{len(texts)} inputs but {len(vectors)} embeddings in the response", **context
            )
        model = data.get("model") if isinstance(data, dict) else None
        return EmbeddingResponse(
            vectors=vectors,
            usage=usage,
            model=model if isinstance(model, str) else client.model_id,
            request_id=request_id,
        )
