"""Embeddings: the conformance corpus's recorded responses (OpenAI base64, Gemini batch)
replayed through the mock provider, and the failure modes."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest
from conformance import body_bytes, load_cases

from ailib_anyio import (
    ConfigurationError,
    EmbeddingClient,
    InvalidRequestError,
    MalformedResponseError,
    Usage,
    open_client,
)
from ailib_anyio.testing import MockProvider, Reply

pytestmark = pytest.mark.anyio

CASES = [*load_cases("openai-embeddings"), *load_cases("gemini-embeddings")]


def _model(case: dict[str, Any]) -> tuple[str, str]:
    """(provider/model, the mock's base-url attribute) for a case."""
    provider = case["id"].split("/")[0]
    if provider == "gemini":
        model = case["request"]["path"].split("/models/", 1)[1].split(":", 1)[0]
        return f"gemini/{model}", "gemini_base_url"
    return f"openai/{case['request']['body']['model']}", "openai_base_url"


@pytest.mark.parametrize("split", ["whole", "bytes", "random"])
@pytest.mark.parametrize("case", CASES)
async def test_recorded_embeddings(case: dict[str, Any], split: str) -> None:
    model, base = _model(case)
    request = case["request"]["body"]
    dimensions = (
        request["requests"][0].get("outputDimensionality") if "requests" in request else None
    )
    task_type = request["requests"][0].get("taskType") if "requests" in request else None
    async with MockProvider() as mock:
        mock.enqueue(
            Reply(
                status=case["response"]["status"],
                headers=case["response"]["headers"],
                body=body_bytes(case),
                split=split,  # type: ignore[arg-type]
                seed=3,
            )
        )
        async with open_client(model, api_key="k", base_url=getattr(mock, base)) as client:
            result = await EmbeddingClient(client).embed(
                ["Hello, world!"], dimensions=dimensions, task_type=task_type
            )
        sent = mock.requests[0]
    expect = case["expect"]
    assert len(result.vectors) == expect["embeddings"]["count"]
    assert [len(v) for v in result.vectors] == expect["embeddings"]["dims"]
    heads = [[round(x, 6) for x in v[:4]] for v in result.vectors]
    assert heads == expect["embeddings"]["head"]
    want_usage = expect.get("usage")
    assert result.usage == (None if want_usage is None else Usage(**want_usage))
    # the request we sent is the one the provider received in the recording
    assert sent.path.endswith(case["request"]["path"].split("/", 2)[2])
    assert sent.json == request


async def test_float_vectors_and_count_mismatch() -> None:
    async with MockProvider() as mock:
        mock.enqueue(
            Reply.json({"data": [{"embedding": [0.5, -1, 2]}], "usage": {"prompt_tokens": 2}}),
            Reply.json({"data": [{"embedding": [0.5]}]}),
            Reply.json({"data": [{"embedding": "not base64!"}]}),
            Reply.json({"data": []}),
        )
        async with open_client(
            "mistral/mistral-embed", api_key="k", base_url=mock.openai_base_url
        ) as c:
            embeddings = EmbeddingClient(c)
            result = await embeddings.embed("one text")
            assert result.vectors == [[0.5, -1.0, 2.0]]
            assert result.dimensions == 3
            assert result.usage == Usage(input_tokens=2)
            assert "encoding_format" not in mock.requests[0].json  # float by default
            with pytest.raises(MalformedResponseError, match="2 inputs but 1 embeddings"):
                await embeddings.embed(["a", "b"])
            with pytest.raises(MalformedResponseError, match="not valid base64"):
                await embeddings.embed("x")
            with pytest.raises(MalformedResponseError, match="no embeddings at"):
                await embeddings.embed("x")
            with pytest.raises(InvalidRequestError, match="at least one input"):
                await embeddings.embed([])
    assert len(mock.requests) == 4


async def test_base64_vectors_are_little_endian_float32() -> None:
    values = [0.25, -3.5, 1e-3]
    encoded = base64.b64encode(struct.pack("<3f", *values)).decode()
    async with MockProvider() as mock:
        mock.enqueue(Reply.json({"data": [{"embedding": encoded}], "usage": {"prompt_tokens": 1}}))
        async with open_client(
            "openai/text-embedding-3-small", api_key="k", base_url=mock.openai_base_url
        ) as c:
            result = await EmbeddingClient(c).embed("x")
    assert result.vectors[0] == pytest.approx(values, rel=1e-6)
    assert mock.requests[0].json["encoding_format"] == "base64"


async def test_provider_without_embeddings() -> None:
    async with open_client("anthropic/claude-sonnet-4-5", api_key="k") as client:
        with pytest.raises(ConfigurationError, match="no embeddings endpoint"):
            EmbeddingClient(client)
