"""Embeddings the mock provider computes from each request's own texts.

``mock_embedding(text)`` is the vector the mock gives a text: deterministic, so a test can
check which vector came back for which input, whatever order concurrent requests arrived
or finished in. ``ScriptedEmbeddings`` queues such a reply with fault knobs; with nothing
queued the mock answers every embeddings route this way. The route alone picks the shape,
never a provider name:

- ``POST .../embeddings``: ``{"data": [{"index", "embedding"}], "usage"}``; ``input`` is a
  string or a list of strings, ``dimensions`` is honoured, and ``encoding_format: base64``
  gets little-endian float32s in base64;
- ``POST .../models/{model}:batchEmbedContents``: ``{"embeddings": [{"values"}]}``, one per
  entry of ``requests`` (``outputDimensionality`` honoured);
- ``POST .../models/{model}:embedContent``: ``{"embedding": {"values"}}``.

Synchronous and without I/O, like ``_dialects``; ``_mock`` turns the result into a reply.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import attrs

from ._script import HeadersSpec, non_negative, positive

__all__ = ["ScriptedEmbeddings", "embeddings_route", "mock_embedding", "render_embeddings"]

#: Named by the endpoint a route answers, not by any provider.
EmbeddingsRoute: TypeAlias = Literal["embeddings", "batch_embed_contents", "embed_content"]

_GEMINI_EMBED = re.compile(r"/(?:models|tunedModels)/[^/:]+:(batchEmbedContents|embedContent)$")

#: the most dimensions a request may ask the mock for (a bound on the reply's size)
MAX_DIMENSIONS = 65_536


def mock_embedding(text: str, dimensions: int = 8) -> list[float]:
    """The mock provider's vector for ``text``: ``dimensions`` values ``k/128``, ``k`` in
    ``-128..127`` (exact in float32, so base64 replies decode to these very numbers),
    derived from a hash of the text: equal texts, equal vectors."""
    digest = hashlib.shake_256(text.encode("utf-8", "surrogatepass")).digest(dimensions)
    return [(byte - 128) / 128 for byte in digest]


@attrs.frozen
class ScriptedEmbeddings:
    """One embeddings reply computed from the request it answers (see the module docs)::

        async with MockProvider() as mock, open_client(
            "openai/text-embedding-3-small", base_url=mock.openai_base_url, api_key="test"
        ) as client:
            mock.enqueue(ScriptedEmbeddings(dimensions=4, delay_before_headers=0.01))
            response = await EmbeddingClient(client).embed("Hello")
        assert response.first.vector == mock_embedding("Hello", dimensions=4)

    ``dimensions`` is the vector length unless the request asks for one; ``usage`` is
    the prompt's word count (OpenAI shape only), or ``input_tokens`` when given;
    ``model`` overrides the model the reply names. The fault knobs mean the same as on
    ``Reply``.
    """

    dimensions: int = attrs.field(default=8, validator=positive)
    input_tokens: int | None = None
    model: str | None = None
    headers: HeadersSpec = attrs.field(factory=dict)
    delay_before_headers: float = attrs.field(default=0, validator=non_negative)
    close_after_bytes: int | None = attrs.field(default=None, validator=non_negative)


def embeddings_route(target: str) -> EmbeddingsRoute | None:
    """The embeddings route a request target names, or ``None``."""
    route = target.partition("?")[0]
    if route.endswith("/embeddings"):
        return "embeddings"
    match = _GEMINI_EMBED.search(route)
    if match is None:
        return None
    return "batch_embed_contents" if match.group(1) == "batchEmbedContents" else "embed_content"


class BadEmbeddingsRequest(ValueError):
    """The request is not one the route's provider would accept (the mock answers 400)."""


def _dimensions(value: Any, default: int, name: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSIONS:
        raise BadEmbeddingsRequest(f"{name} must be an integer in 1..{MAX_DIMENSIONS}")
    return value


def _content_text(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list) or not parts:
        raise BadEmbeddingsRequest("content must have parts")
    texts = [p.get("text") if isinstance(p, Mapping) else None for p in parts]
    if not all(isinstance(t, str) for t in texts):
        raise BadEmbeddingsRequest("every part must be a text part")
    return "".join(t for t in texts if isinstance(t, str))


def _openai(scripted: ScriptedEmbeddings, request: Mapping[str, Any]) -> dict[str, Any]:
    raw = request.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadEmbeddingsRequest("'input' must be a string or a non-empty list of strings")
    size = _dimensions(request.get("dimensions"), scripted.dimensions, "dimensions")
    packed = request.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = mock_embedding(text, size)
        value: Any = vector
        if packed:
            value = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = scripted.input_tokens
    if tokens is None:
        tokens = sum(max(1, len(text.split())) for text in texts)
    model = scripted.model or request.get("model")
    return {
        "object": "list",
        "data": data,
        "model": model if isinstance(model, str) else "mock",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _gemini_one(scripted: ScriptedEmbeddings, item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise BadEmbeddingsRequest("each request must be an object")
    size = _dimensions(
        item.get("outputDimensionality"), scripted.dimensions, "outputDimensionality"
    )
    return {"values": mock_embedding(_content_text(item.get("content")), size)}


def render_embeddings(
    scripted: ScriptedEmbeddings, request: Any, route: EmbeddingsRoute
) -> dict[str, Any]:
    """The JSON body answering ``request`` on ``route``; ``BadEmbeddingsRequest`` if the
    request is malformed."""
    if not isinstance(request, Mapping):
        raise BadEmbeddingsRequest("the body must be a JSON object")
    if route == "embeddings":
        return _openai(scripted, request)
    if route == "embed_content":
        return {"embedding": _gemini_one(scripted, request)}
    items = request.get("requests")
    if not isinstance(items, list) or not items:
        raise BadEmbeddingsRequest("'requests' must be a non-empty list")
    return {"embeddings": [_gemini_one(scripted, item) for item in items]}
