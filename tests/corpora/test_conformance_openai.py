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

import pytest
from conformance import (
    check,
    core_result,
    load_cases,
    model_for,
    replay_end_to_end,
)

CASES = load_cases("openai-chat")


@pytest.mark.parametrize("how", ["whole", "bytes", "random-1", "random-2", "random-3"])
@pytest.mark.parametrize("case", CASES)
def test_core_replay(case: dict[str, Any], how: str) -> None:
    if case.get("replay"):
        pytest.skip("a replay directive (stall) is a transport behaviour: covered end to end")
    name, _, seed = how.partition("-")
    response, error = core_result(case, name, int(seed or 0))
    check(case, response, error)


@pytest.mark.anyio
@pytest.mark.parametrize("split", ["whole", "random"])
@pytest.mark.parametrize("case", CASES)
async def test_replay_through_mock_provider(case: dict[str, Any], split: str) -> None:
    sent = await replay_end_to_end(case, model_for(case), split, seed=7)
    assert sent.json["model"] == case["request"]["body"]["model"]
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.json.get("stream", False) is bool(case["stream"])
