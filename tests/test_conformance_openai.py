"""The OpenAI-dialect cases of the conformance corpus: real provider bytes (OpenAI, DeepSeek,
Groq, Mistral, Ollama) must give the normalized results the corpus expects — here through
the generic ``openai-compatible`` manifest (OpenAI's own traffic through ``openai``), which
must read every server of the dialect; test_conformance_dialects.py drives the same bytes
through each provider's own manifest.

Twice over: through the sans-IO core fed whole, byte by byte and at random split points;
and end to end through ``open_client`` against the loopback mock provider replaying the
exact bytes in random write sizes, under asyncio and trio.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conformance import body_bytes, check, core_result, load_cases, model_for

from ailib_anyio import AiLibError, ChatResponse, open_client
from ailib_anyio._client import Client
from ailib_anyio.testing import MockProvider, Reply

CASES = load_cases("openai-chat")


@pytest.mark.parametrize("how", ["whole", "bytes", "random-1", "random-2", "random-3"])
@pytest.mark.parametrize("case", CASES)
def test_core_replay(case: dict[str, Any], how: str) -> None:
    if case.get("replay"):
        pytest.skip("a replay directive (stall) is a transport behaviour: covered end to end")
    name, _, seed = how.partition("-")
    response, error = core_result(case, name, int(seed or 0))
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
