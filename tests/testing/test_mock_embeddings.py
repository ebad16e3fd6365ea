"""The mock provider's embeddings routes, driven by a raw httpx client (both backends)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import httpx
import pytest

from ailib_anyio.testing import MockProvider, Reply, ScriptedEmbeddings, mock_embedding

pytestmark = pytest.mark.anyio


async def post(mock: MockProvider, path: str, body: Any, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=mock.base_url, trust_env=False) as http:
        return await http.post(path, json=body, **kw)


def test_mock_embedding_is_deterministic_and_float32_exact() -> None:
    vector = mock_embedding("hello", 16)
    assert vector == mock_embedding("hello", 16) != mock_embedding("hello!", 16)
    assert len(vector) == 16 and all(-1 <= x < 1 for x in vector)
    assert list(struct.unpack("<16f", struct.pack("<16f", *vector))) == vector
    assert mock_embedding("hello", 4) == vector[:4]


async def test_openai_route_float_and_base64() -> None:
    async with MockProvider() as mock:
        floats = await post(mock, "/v1/embeddings", {"model": "m", "input": ["a b", "c"]})
        packed = await post(
            mock,
            "/v1/embeddings",
            {"model": "m", "input": "a b", "dimensions": 3, "encoding_format": "base64"},
        )
    body = floats.json()
    assert floats.status_code == 200
    assert [d["embedding"] for d in body["data"]] == [mock_embedding("a b"), mock_embedding("c")]
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert body["model"] == "m"
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == mock_embedding("a b", 3)
    assert floats.headers["x-request-id"] == "req_mock_1"


async def test_gemini_routes() -> None:
    item = {"model": "models/e", "content": {"parts": [{"text": "hi "}, {"text": "there"}]}}
    async with MockProvider() as mock:
        batch = await post(
            mock,
            "/v1beta/models/e:batchEmbedContents",
            {"requests": [item, {**item, "outputDimensionality": 2}]},
        )
        single = await post(mock, "/v1beta/models/e:embedContent", item)
    assert batch.json() == {
        "embeddings": [
            {"values": mock_embedding("hi there")},
            {"values": mock_embedding("hi there", 2)},
        ]
    }
    assert single.json() == {"embedding": {"values": mock_embedding("hi there")}}
    assert batch.headers["content-type"] == "application/json; charset=UTF-8"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/embeddings", {"input": 5}, "'input' must be a string or a non-empty list"),
        ("/v1/embeddings", {"input": []}, "'input' must be a string or a non-empty list"),
        ("/v1/embeddings", {"input": "x", "dimensions": 0}, "dimensions must be an integer"),
        ("/v1beta/models/e:batchEmbedContents", {"requests": []}, "'requests' must be a non"),
        ("/v1beta/models/e:embedContent", {"content": {"parts": [{"x": 1}]}}, "every part"),
        ("/v1beta/models/e:embedContent", [], "the body must be a JSON object"),
    ],
)
async def test_malformed_requests_get_a_400(path: str, body: Any, message: str) -> None:
    async with MockProvider() as mock:
        response = await post(mock, path, body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)


async def test_scripted_embeddings_knobs_and_queue() -> None:
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedEmbeddings(dimensions=3, input_tokens=42, model="e-1", headers={"x-a": "1"}),
            Reply.error(500, "boom"),
            ScriptedEmbeddings(),
        )
        first = await post(mock, "/v1/embeddings", {"input": "q"})
        second = await post(mock, "/v1/embeddings", {"input": "q"})
        third = await post(mock, "/v1/chat/completions", {"messages": []})
    assert first.json()["data"][0]["embedding"] == mock_embedding("q", 3)
    assert first.json()["usage"]["prompt_tokens"] == 42
    assert (first.json()["model"], first.headers["x-a"]) == ("e-1", "1")
    assert second.status_code == 500
    assert third.status_code == 400
    assert third.json()["error"]["message"] == "ScriptedEmbeddings answers embeddings routes only"
    with pytest.raises(ValueError, match="dimensions must be >= 1"):
        ScriptedEmbeddings(dimensions=0)
