"""Embeddings, sans-IO: request bodies by API family, vectors out of a response body.

Families: ``openai_embeddings`` (OpenAI and compatible servers; a manifest may ask for
base64 vectors, the compact form, decoded here) and ``gemini_embed``
(``batchEmbedContents``).
Where the vectors and the usage are in a response, and how many texts one request may
carry, is manifest data (``embeddings`` section), compiled into ``EmbeddingRules``.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._errors import ConfigurationError, InvalidRequestError, MalformedResponseError
from ._jsonpath import Selector, compile_path
from ._rules import FieldSpec
from ._types import Usage

__all__ = [
    "EMBEDDING_ENCODERS",
    "EmbeddingRequest",
    "EmbeddingRules",
    "decode_embeddings",
    "encode_embeddings",
]


@attrs.frozen
class EmbeddingRequest:
    model: str
    inputs: Sequence[str]
    dimensions: int | None = None
    #: what the vectors are for (Gemini ``taskType``: RETRIEVAL_QUERY, RETRIEVAL_DOCUMENT...)
    task_type: str | None = None
    #: ``base64`` asks OpenAI-style servers for the compact form (decoded here)
    encoding_format: str | None = None
    extra_body: Mapping[str, Any] | None = None


_OPENAI_VECTORS = compile_path("$.data[*].embedding")


@attrs.frozen
class EmbeddingRules:
    """Where a response keeps its vectors (one per input, in order) and its usage."""

    vectors: Selector = _OPENAI_VECTORS
    input_tokens: FieldSpec | None = None
    encoding_format: str | None = None
    #: the most texts the provider takes in one request (``None``: no stated limit);
    #: ``embed_batch`` splits longer lists into requests of at most this many
    max_inputs_per_request: int | None = None


def _openai_embeddings(request: EmbeddingRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "input": list(request.inputs)}
    if request.encoding_format is not None:
        body["encoding_format"] = request.encoding_format
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def _gemini_embed(request: EmbeddingRequest) -> dict[str, Any]:
    model = request.model if request.model.startswith("models/") else f"models/{request.model}"
    requests = []
    for text in request.inputs:
        item: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
        if request.dimensions is not None:
            item["outputDimensionality"] = request.dimensions
        if request.task_type is not None:
            item["taskType"] = request.task_type
        requests.append(item)
    return {"requests": requests}


EMBEDDING_ENCODERS: Mapping[str, Callable[[EmbeddingRequest], dict[str, Any]]] = {
    "openai_embeddings": _openai_embeddings,
    "gemini_embed": _gemini_embed,
}


def encode_embeddings(family: str, request: EmbeddingRequest) -> dict[str, Any]:
    if not request.inputs:
        raise InvalidRequestError("embeddings need at least one input text")
    if any(not isinstance(text, str) for text in request.inputs):
        raise InvalidRequestError("embedding inputs must be strings")
    if request.dimensions is not None and request.dimensions < 1:
        raise InvalidRequestError(f"dimensions must be positive, got {request.dimensions}")
    try:
        encoder = EMBEDDING_ENCODERS[family]
    except KeyError:
        raise InvalidRequestError(f"no embeddings encoder for API family {family!r}") from None
    body = encoder(request)
    if request.extra_body:
        replaced = [k for k in _MANAGED if k in request.extra_body and k in body]
        if replaced:
            names = ", ".join(map(repr, replaced))
            raise ConfigurationError(
                f"extra_body cannot replace what the library encodes: {names}; set the model"
                " with open_client() and the texts with the inputs"
            )
        body.update(request.extra_body)
    return body


#: Body keys an embeddings encoder writes that ``extra_body`` may not replace.
_MANAGED = ("model", "input", "requests")


def _vector(value: Any, position: int) -> list[float]:
    if isinstance(value, str):
        # base64 of little-endian float32s (OpenAI's encoding_format=base64)
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedResponseError(f"embedding {position} is not valid base64") from exc
        if len(raw) % 4:
            raise MalformedResponseError(
                f"embedding {position} has {len(raw)} bytes, not a whole number of float32s"
            )
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if isinstance(value, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
    ):
        return [float(x) for x in value]
    raise MalformedResponseError(f"embedding {position} is neither a list of numbers nor base64")


def decode_embeddings(rules: EmbeddingRules, body: Any) -> tuple[list[list[float]], Usage | None]:
    """The vectors (one per input) and the usage in a response body."""
    found = rules.vectors.all(body)
    if not found:
        raise MalformedResponseError(f"no embeddings at {rules.vectors.path} in the response")
    vectors = [_vector(value, i) for i, value in enumerate(found)]
    usage = None
    if rules.input_tokens is not None:
        tokens = rules.input_tokens.total(body)
        if tokens is not None:
            usage = Usage(input_tokens=tokens, output_tokens=0)
    return vectors, usage
