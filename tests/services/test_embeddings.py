"""Embeddings: the conformance corpus's recorded responses (OpenAI base64, Gemini batch)
replayed through the mock provider, the failure modes, the reference's surface
(``embed``/``embed_batch``, split by the manifest's per-request limit, in order under
concurrency) and the refusal to chat with an embedding model."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from conformance import body_bytes, load_cases

from ailib_anyio import (
    AiLibError,
    CapabilityNotDeclaredError,
    ChatRequest,
    ConfigurationError,
    InvalidRequestError,
    MalformedResponseError,
    Message,
    PreflightChecker,
    RemoteInvalidRequestError,
    Usage,
    open_client,
)
from ailib_anyio.embeddings import (
    Embedding,
    EmbeddingClient,
    EmbeddingResponse,
    open_embedding_client,
)
from ailib_anyio.testing import MockProvider, Reply, ScriptedEmbeddings, mock_embedding

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


# -------------------------------------------------- the reference's surface, on the mock


def acme_manifest(tmp_path: Path, limit: int | None = 3) -> Path:
    """A provider no code knows by name: its manifest alone says how to embed, how many
    texts a request takes, and that its embedding model cannot chat."""
    line = "" if limit is None else f"  max_inputs_per_request: {limit}\n"
    (tmp_path / "acme.yaml").write_text(
        'id: acme\nprotocol_version: "2.0"\nresponse_format: openai\n'
        "endpoint:\n  base_url: https://acme.invalid/v1\n"
        "endpoints:\n"
        "  chat: {path: /chat/completions, adapter: openai_chat}\n"
        "  embeddings: {path: /embeddings, adapter: openai_embeddings}\n"
        "embeddings:\n  input_tokens: $.usage.prompt_tokens\n" + line + "metadata:\n  models:\n"
        "    acme-embed:\n      context_window: 512\n"
        "      model_capabilities: {chat: false, embeddings: true}\n"
        "    acme-chat:\n      context_window: 512\n",
        encoding="utf-8",
    )
    return tmp_path


def texts_of(n: int) -> list[str]:
    return [f"text number {i}" for i in range(n)]


def inputs_sent(mock: MockProvider) -> list[list[str]]:
    """Each embeddings request's texts, in the order the mock received them."""
    out = []
    for request in mock.requests:
        body = request.json
        if "input" in body:
            out.append(body["input"])
        else:
            out.append([r["content"]["parts"][0]["text"] for r in body["requests"]])
    return out


@pytest.fixture
async def no_leftover_tasks() -> AsyncIterator[None]:
    before = len(anyio.get_running_tasks())
    yield
    assert len(anyio.get_running_tasks()) == before


async def test_embed_one_text() -> None:
    async with (
        MockProvider() as mock,
        open_embedding_client(
            "openai/text-embedding-3-small", api_key="k", base_url=mock.openai_base_url
        ) as embedder,
    ):
        response = await embedder.embed("Hello, world!")
    assert isinstance(response, EmbeddingResponse)
    # base64 float32 on the wire (the manifest asks for it), decoded to the exact values
    assert mock.requests[0].json["encoding_format"] == "base64"
    assert response.first == Embedding(index=0, vector=mock_embedding("Hello, world!"))
    assert response.embeddings == (response.first,)
    assert response.first.dimensions == response.dimensions == 8
    assert response.vectors == [mock_embedding("Hello, world!")]
    assert response.usage == Usage(input_tokens=2)
    assert response.model == "text-embedding-3-small"
    assert response.request_id == "req_mock_1"
    assert (response.requests, len(response)) == (1, 1)
    # 2 input tokens at $0.02 per 1M (openai.yaml), by hand
    assert response.cost is not None
    assert response.cost.total_cost == Decimal("0.02") * 2 / 1_000_000


@pytest.mark.parametrize(
    ("model", "base", "limit", "count", "sizes"),
    [
        ("qwen/text-embedding-v4", "openai_base_url", 10, 25, [10, 10, 5]),
        ("gemini/gemini-embedding-001", "gemini_base_url", 100, 150, [100, 50]),
        ("openai/text-embedding-3-small", "openai_base_url", 2048, 2049, [2048, 1]),
    ],
)
async def test_embed_batch_splits_by_the_manifest_limit(
    model: str, base: str, limit: int, count: int, sizes: list[int]
) -> None:
    texts = texts_of(count)
    async with (
        MockProvider() as mock,
        open_client(model, api_key="k", base_url=getattr(mock, base)) as client,
    ):
        embedder = EmbeddingClient(client)
        assert embedder.max_inputs_per_request == limit
        response = await embedder.embed_batch(texts)
    assert len(mock.requests) == len(sizes) == response.requests
    sent = inputs_sent(mock)
    assert sorted(map(len, sent), reverse=True) == sizes
    assert sorted(t for part in sent for t in part) == sorted(texts)
    assert [e.index for e in response.embeddings] == list(range(count))
    assert [e.vector for e in response.embeddings] == [mock_embedding(t) for t in texts]
    if base == "openai_base_url":  # the mock counts one token a word: 3 a text
        assert response.usage == Usage(input_tokens=3 * count)
    else:
        assert response.usage is None  # Gemini reports no usage for embeddings


async def test_a_manifest_limit_drives_the_split(tmp_path: Path) -> None:
    texts = texts_of(7)
    async with (
        MockProvider() as mock,
        open_client(
            "acme/acme-embed",
            api_key="k",
            base_url=mock.openai_base_url,
            protocol_path=acme_manifest(tmp_path, limit=3),
        ) as client,
    ):
        embedder = EmbeddingClient(client)
        response = await embedder.embed_batch(texts, max_concurrent=1)
        assert inputs_sent(mock) == [texts[0:3], texts[3:6], texts[6:7]]  # one at a time
        smaller = await embedder.embed_batch(texts, batch_size=2)
        assert len(mock.requests) == 3 + 4
        with pytest.raises(InvalidRequestError) as info:
            await embedder.embed(texts[:4])
        assert info.value.message == (
            "4 texts are more than acme takes in one request (3); embed_batch() splits them"
        )
        assert len(mock.requests) == 7  # refused before any I/O
    assert response.vectors == smaller.vectors == [mock_embedding(t) for t in texts]
    assert response.usage == Usage(input_tokens=21)


async def test_without_a_limit_one_request(tmp_path: Path) -> None:
    async with (
        MockProvider() as mock,
        open_client(
            "acme/acme-embed",
            api_key="k",
            base_url=mock.openai_base_url,
            protocol_path=acme_manifest(tmp_path, limit=None),
        ) as client,
    ):
        embedder = EmbeddingClient(client)
        assert embedder.max_inputs_per_request is None
        response = await embedder.embed_batch(texts_of(300))
        split = await embedder.embed_batch(texts_of(300), batch_size=100)
    assert (response.requests, split.requests, len(mock.requests)) == (1, 3, 4)
    assert response.vectors == split.vectors


@pytest.mark.parametrize("workers", [1, 2, 4])
async def test_order_is_kept_under_concurrency(workers: int) -> None:
    texts = texts_of(40)  # four requests of ten on qwen
    async with MockProvider() as mock:
        # the first request to arrive answers last, the last first
        mock.enqueue(*(ScriptedEmbeddings(delay_before_headers=d) for d in (0.3, 0.2, 0.1, 0)))
        async with open_client(
            "qwen/text-embedding-v4", api_key="k", base_url=mock.openai_base_url
        ) as client:
            response = await EmbeddingClient(client).embed_batch(texts, max_concurrent=workers)
    assert mock.max_active_requests == workers  # bounded, and really concurrent
    assert [e.index for e in response.embeddings] == list(range(40))
    assert response.vectors == [mock_embedding(t) for t in texts]
    assert response.requests == 4
    assert response.request_id is not None


async def test_a_failing_part_raises_its_typed_error_and_cancels_the_rest(
    no_leftover_tasks: None,
) -> None:
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedEmbeddings(delay_before_headers=30),  # still waiting when the 400 comes
            Reply.error(400, "input 13 is too long", code="invalid_input"),
            ScriptedEmbeddings(delay_before_headers=30),
        )
        async with open_client(
            "qwen/text-embedding-v4", api_key="k", base_url=mock.openai_base_url, max_retries=0
        ) as client:
            with anyio.fail_after(10):
                with pytest.raises(RemoteInvalidRequestError) as info:
                    await EmbeddingClient(client).embed_batch(texts_of(30))
            assert info.value.status_code == 400
            assert info.value.message.endswith("input 13 is too long")
            assert (info.value.provider, info.value.model) == ("qwen", "text-embedding-v4")
            # the other parts were cancelled: their connections closed, no task left
            assert client.current_inflight == 0
            with anyio.fail_after(5):
                for record in (mock.requests[0], mock.requests[2]):
                    await record.wait_disconnected()
            assert [t for t in anyio.get_running_tasks() if "BatchExecutor" in (t.name or "")] == []
    assert len(mock.requests) == 3


async def test_cancelling_the_caller_cancels_every_part(no_leftover_tasks: None) -> None:
    async with MockProvider() as mock:
        mock.enqueue(*(ScriptedEmbeddings(delay_before_headers=30) for _ in range(3)))
        async with open_client(
            "qwen/text-embedding-v4", api_key="k", base_url=mock.openai_base_url
        ) as client:
            with anyio.move_on_after(0.5) as scope:
                await EmbeddingClient(client).embed_batch(texts_of(30))
            assert scope.cancelled_caught
            assert client.current_inflight == 0
            with anyio.fail_after(5):
                for record in mock.requests:
                    await record.wait_disconnected()
    assert len(mock.requests) == 3


async def test_bad_batch_arguments_fail_before_any_io(tmp_path: Path) -> None:
    async with (
        MockProvider() as mock,
        open_client("qwen/text-embedding-v4", api_key="k", base_url=mock.openai_base_url) as client,
    ):
        embedder = EmbeddingClient(client)
        with pytest.raises(ConfigurationError, match=r"^batch_size=11 is more than qwen"):
            await embedder.embed_batch(["a"], batch_size=11)
        for bad in (0, -1, True, 2.5):
            with pytest.raises(ConfigurationError, match="batch_size must be a positive"):
                await embedder.embed_batch(["a"], batch_size=bad)  # type: ignore[arg-type]
            with pytest.raises(ConfigurationError, match="max_concurrent must be a posit"):
                await embedder.embed_batch(["a"], max_concurrent=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="takes a sequence of strings; embed"):
            await embedder.embed_batch("one text")
        with pytest.raises(ConfigurationError, match="got int"):
            await embedder.embed(5)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match="at least one input"):
            await embedder.embed_batch([])
        # a bad text in the last part: nothing is sent for the first parts either
        with pytest.raises(InvalidRequestError, match="inputs must be strings"):
            await embedder.embed_batch([*texts_of(20), None])  # type: ignore[list-item]
        with pytest.raises(InvalidRequestError, match="more than qwen takes in one request"):
            await embedder.embed(texts_of(11))
    assert mock.requests == []


# ------------------------------------------------------ embedding models cannot chat


async def test_chat_on_an_embedding_model_is_refused_before_any_io(tmp_path: Path) -> None:
    request = ChatRequest(model="gemini-embedding-001", messages=[Message.user("hi")])
    async with (
        MockProvider() as mock,
        open_client(
            "gemini/gemini-embedding-001", api_key="k", base_url=mock.gemini_base_url
        ) as client,
    ):
        with pytest.raises(CapabilityNotDeclaredError) as info:
            client.chat()
        error = info.value
        assert error.message == (
            "gemini-embedding-001 is not a chat model (its manifest says chat: false);"
            " it is an embedding model: use EmbeddingClient(client).embed(...)"
        )
        assert (error.capability, error.provider, error.model) == (
            "chat",
            "gemini",
            "gemini-embedding-001",
        )
        assert error.status_code is None
        with pytest.raises(CapabilityNotDeclaredError, match="not a chat model"):
            await client.execute(request)
        with pytest.raises(CapabilityNotDeclaredError, match="not a chat model"):
            await client.open_stream(attrs.evolve(request, stream=True))
        issues = PreflightChecker(client).issues(request)
        assert [(i.check, type(i.error)) for i in issues] == [
            ("capability", CapabilityNotDeclaredError)
        ]
        assert mock.requests == []
        # the same client embeds
        response = await EmbeddingClient(client).embed("hi")
    assert response.first.vector == mock_embedding("hi")


@pytest.mark.parametrize(
    "model", ["mistral/mistral-embed", "qwen/text-embedding-v4", "gemini/gemini-embedding-001"]
)
def test_the_shipped_embedding_models_are_marked(model: str) -> None:
    client = open_client(model, api_key="k")
    with pytest.raises(CapabilityNotDeclaredError, match="it is an embedding model"):
        client.chat()


async def test_the_marker_is_manifest_data(tmp_path: Path) -> None:
    protocols = acme_manifest(tmp_path)
    async with MockProvider() as mock:
        base = mock.openai_base_url
        kw: dict[str, Any] = {"api_key": "k", "base_url": base, "protocol_path": protocols}
        async with open_client("acme/acme-chat", **kw) as client:
            reply = await client.chat().user("hi").execute()  # unmarked: chats
        assert reply.content == "Mock reply to: hi"
        async with open_client("acme/acme-embed", **kw) as client:
            with pytest.raises(CapabilityNotDeclaredError, match=r"^acme-embed is not a chat"):
                client.chat()
        # a chat model whose fallback cannot chat: the fallback is refused, not sent
        mock.enqueue(Reply.error(503, "overloaded", type="server_error"))
        async with open_client(
            "acme/acme-chat", fallbacks=[open_client("acme/acme-embed", **kw)], max_retries=0, **kw
        ) as client:
            with pytest.raises(AiLibError) as info:
                await client.chat().user("hi").execute()
        kinds = [type(e) for e in info.value.attempts]
        assert kinds[-1] is CapabilityNotDeclaredError
        assert len(mock.requests) == 2  # the chat above and the primary's attempt
