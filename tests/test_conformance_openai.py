"""The OpenAI-dialect cases of the conformance corpus: real provider bytes (OpenAI, DeepSeek,
Groq, Mistral, Ollama) must give the normalized results the corpus expects.

Twice over: through the sans-IO core fed whole, byte by byte and at random split points;
and end to end through ``open_client`` against the loopback mock provider replaying the
exact bytes in random write sizes, under asyncio and trio.
"""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest
from conformance import body_bytes, check, load_cases, model_for, response_headers

from ailib_anyio import AiLibError, ChatResponse, open_client
from ailib_anyio._client import Client
from ailib_anyio._core._classify import classify_error
from ailib_anyio._core._mapping import (
    EventMapper,
    ResponseAccumulator,
    StreamFailure,
    StreamPipeline,
)
from ailib_anyio._errors import ContextLengthExceededError, error_class_for_kind
from ailib_anyio._protocol._registry import ProtocolRegistry, split_model
from ailib_anyio.testing import MockProvider, Reply

CASES = load_cases("openai-chat")


def _splits(data: bytes, how: str, seed: int = 0) -> list[bytes]:
    if how == "whole":
        return [data]
    if how == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 64)
        out.append(data[i : i + n])
        i += n
    return out


def _core_result(
    case: dict[str, Any], how: str, seed: int = 0
) -> tuple[ChatResponse | None, AiLibError | None]:
    """Run a case through the sans-IO core only (no sockets)."""
    manifest = ProtocolRegistry().get(split_model(model_for(case))[0])
    status = case["response"]["status"]
    data = body_bytes(case)
    headers = response_headers(case)

    def failure(
        body: Any, acc: ResponseAccumulator | None, mapper: EventMapper | None
    ) -> AiLibError:
        info = classify_error(
            manifest.error_classification, status, headers, body, mid_stream=status < 400
        )
        cls = ContextLengthExceededError if info.context_length else error_class_for_kind(info.kind)
        partial = acc.build(mapper=mapper) if acc is not None else None
        return cls(
            info.message,
            status_code=status,
            retryable=info.retryable,
            retry_after=info.retry_after,
            response=partial,
        )

    if status >= 400:
        return None, failure(json.loads(data), None, None)
    acc = ResponseAccumulator()
    if case["stream"]:
        assert manifest.streaming is not None
        pipe = StreamPipeline(
            manifest.streaming.event_map,
            decoder_format=manifest.streaming.decoder.format,
            done_signal=manifest.streaming.decoder.done_signal,
            termination=manifest.termination_mapping,
        )
        events: list[Any] = []
        for piece in _splits(data, how, seed):
            events.extend(pipe.feed(piece))
        events.extend(pipe.close())
        mapper = pipe.mapper
    else:
        assert manifest.response is not None
        mapper = EventMapper(manifest.response.event_map, termination=manifest.termination_mapping)
        events = [*mapper.map_object(json.loads(data)), *mapper.finish()]
    for event in events:
        if isinstance(event, StreamFailure):
            return None, failure(event.body, acc, mapper)
        acc.add(event)
    return acc.build(mapper=mapper), None


@pytest.mark.parametrize("how", ["whole", "bytes", "random-1", "random-2", "random-3"])
@pytest.mark.parametrize("case", CASES)
def test_core_replay(case: dict[str, Any], how: str) -> None:
    if case.get("replay"):
        pytest.skip("a replay directive (stall) is a transport behaviour: covered end to end")
    name, _, seed = how.partition("-")
    response, error = _core_result(case, name, int(seed or 0))
    check(case, response, error)


async def _client_result(
    client: Client, case: dict[str, Any]
) -> tuple[ChatResponse | None, AiLibError | None]:
    builder = client.chat().user("conformance")
    try:
        if case["stream"]:
            async with builder.stream() as stream:
                async for _ in stream:
                    pass
            return stream.response, None
        return await builder.execute(), None
    except AiLibError as exc:
        return None, exc


@pytest.mark.anyio
@pytest.mark.parametrize("split", ["whole", "random"])
@pytest.mark.parametrize("case", CASES)
async def test_replay_through_mock_provider(case: dict[str, Any], split: str) -> None:
    replay = case.get("replay") or {}
    reply = Reply(
        status=case["response"]["status"],
        headers=case["response"].get("headers") or {},
        body=body_bytes(case),
        split=split,  # type: ignore[arg-type]
        seed=7,
        max_chunk=64,
        stall_after_bytes=replay.get("stall_after_bytes"),
        close_after_bytes=replay.get("close_after_bytes"),
    )
    # The stalling case needs a short read (idle) timeout; the others a generous one.
    timeout = httpx.Timeout(30.0, read=0.5) if "stall_after_bytes" in replay else 30.0
    async with MockProvider() as mock:
        mock.enqueue(reply)
        async with open_client(
            model_for(case), api_key="test-key", base_url=mock.openai_base_url, timeout=timeout
        ) as client:
            response, error = await _client_result(client, case)
            assert client.current_inflight == 0
        check(case, response, error)
        sent = mock.requests[0]
        assert sent.json["model"] == case["request"]["body"]["model"]
        assert sent.headers["authorization"] == "Bearer test-key"
        assert sent.json.get("stream", False) is bool(case["stream"])
