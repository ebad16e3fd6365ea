"""The live batch runner's output file, on asyncio and trio: ``client.batch(...,
output=...)`` and ``BatchExecutor.execute(..., output=...)`` write one JSON line per
finished item (its response, or its error), and a later run over the same items sends
only those without a response: a run cut short (cancelled, failed, killed mid-write)
resumes where it stopped, paying for nothing twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from ailib_anyio import (
    BatchExecutor,
    ChatResponse,
    ConfigurationError,
    RateLimitedError,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio.batch import derive_custom_ids
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    before = len(anyio.get_running_tasks())
    yield
    assert len(anyio.get_running_tasks()) == before


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def client_for(mock: MockProvider) -> Client:
    return open_client(
        "openai/gpt-4o", api_key="sk-test", base_url=mock.openai_base_url, max_retries=0
    )


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def chat_posts(mock: MockProvider) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in mock.requests if r.json]


async def test_each_outcome_is_written_as_it_finishes(mock: MockProvider, tmp_path: Path) -> None:
    output = tmp_path / "run.jsonl"
    mock.enqueue(
        ScriptedReply(content="four", usage=(10, 2)),
        Reply.error(429, "Slow down", type="rate_limit_error", code="rate_limit_exceeded"),
    )
    async with client_for(mock) as client:
        requests = [client.chat().user("2+2?"), client.chat().user("and 3+3?")]
        result = await client.batch(requests, max_concurrent=1, output=output)
        keys = derive_custom_ids(client.primary.encode(r.build()) for r in requests)
    ok, failed = lines_of(output)
    assert ok["key"] == keys[0]
    assert ok["index"] == 0
    assert ok["result"]["content"] == "four"
    assert ok["result"]["usage"] == {
        "input_tokens": 10,
        "output_tokens": 2,
        "cached_input_tokens": None,
        "reasoning_tokens": None,
    }
    assert ok["result"]["finish_reason"] == ["stop", "stop"]
    assert failed == {
        "key": keys[1],
        "index": 1,
        "error": {
            "type": "RateLimitedError",
            "message": "rate_limited: Slow down (status=429, openai/gpt-4o, request_id=req_mock_2)",
            "kind": "rate_limited",
            "status_code": 429,
            "request_id": "req_mock_2",
            "retryable": True,
            "provider": "openai",
            "model": "gpt-4o",
        },
    }
    assert result.failed_indices == (1,)
    assert result.resumed_indices == ()


async def test_a_second_run_sends_only_what_has_no_response(
    mock: MockProvider, tmp_path: Path
) -> None:
    output = tmp_path / "run.jsonl"
    texts = [f"question {i}" for i in range(6)]
    mock.enqueue(
        ScriptedReply(content="a0", usage=(1000, 100)),
        Reply.error(503, "busy", type="server_error"),
        ScriptedReply(content="a2"),
        Reply.error(429, "slow", type="rate_limit_error"),
    )
    async with client_for(mock) as client:
        first = await client.batch(
            [client.chat().user(t) for t in texts], max_concurrent=1, output=output
        )
        assert first.failed_indices == (1, 3)
        sent = len(mock.requests)
        progress: list[tuple[int, int]] = []
        second = await client.batch(
            [client.chat().user(t) for t in texts],
            max_concurrent=1,
            output=output,
            on_progress=lambda done, total: progress.append((done, total)),
        )
    assert chat_posts(mock)[sent:] == ["question 1", "question 3"]
    assert second.failed_indices == ()
    assert second.resumed_indices == (0, 2, 4, 5)
    assert progress == [(4, 6), (5, 6), (6, 6)]
    replies = second.get_successful_results()
    assert [r.content for r in replies] == [
        "a0",
        "Mock reply to: question 1",
        "a2",
        "Mock reply to: question 3",
        "Mock reply to: question 4",
        "Mock reply to: question 5",
    ]
    resumed = replies[0]
    assert isinstance(resumed, ChatResponse)
    assert resumed == first.results[0]  # read back as it was
    assert resumed.cost is not None  # priced again: gpt-4o, 1000 in and 100 out
    assert resumed.cost.total_cost == Decimal("0.0035")
    assert len(lines_of(output)) == 8  # appended: 6 + the 2 sent again


async def test_a_cancelled_run_resumes(mock: MockProvider, tmp_path: Path) -> None:
    output = tmp_path / "run.jsonl"
    texts = {f"k{i}": f"question {i}" for i in range(10)}
    async with client_for(mock) as client:
        with anyio.CancelScope() as scope:

            def stop_at_four(done: int, total: int) -> None:
                if done == 4:
                    scope.cancel()

            await client.batch(
                {k: client.chat().user(t) for k, t in texts.items()},
                max_concurrent=2,
                output=output,
                on_progress=stop_at_four,
            )
        assert scope.cancelled_caught
        written = {line["key"] for line in lines_of(output)}
        assert len(written) >= 4
        sent = len(mock.requests)
        result = await client.batch(
            {k: client.chat().user(t) for k, t in texts.items()}, max_concurrent=2, output=output
        )
    assert len(mock.requests) - sent == 10 - len(written)
    assert {list(texts)[i] for i in result.resumed_indices} == written
    assert [r.content for r in result.get_successful_results()] == [  # type: ignore[union-attr]
        f"Mock reply to: {t}" for t in texts.values()
    ]


async def test_a_line_cut_short_is_ignored(mock: MockProvider, tmp_path: Path) -> None:
    output = tmp_path / "run.jsonl"
    async with client_for(mock) as client:
        requests = {"a": client.chat().user("one"), "b": client.chat().user("two")}
        await client.batch(requests, output=output, max_concurrent=1)  # "b" is the last line
        text = output.read_text(encoding="utf-8")
        cut = next(line for line in text.splitlines() if '"key":"b"' in line)
        output.write_text(text.replace(cut + "\n", cut[:30]), encoding="utf-8")  # killed mid-write
        sent = len(mock.requests)
        result = await client.batch(requests, output=output)
    assert len(mock.requests) == sent + 1
    assert chat_posts(mock)[-1] == "two"
    assert result.resumed_indices == (0,)
    last = output.read_text(encoding="utf-8").splitlines()
    assert json.loads(last[-1])["key"] == "b"  # on its own line, after the cut one
    assert last[-2] == cut[:30]


async def test_structured_replies_are_parsed_again(mock: MockProvider, tmp_path: Path) -> None:
    @attrs.define
    class City:
        name: str
        population: int

    output = tmp_path / "run.jsonl"
    mock.enqueue(ScriptedReply(content='{"name": "Tokyo", "population": 37400068}'))
    async with client_for(mock) as client:
        ask = {"city": client.chat().user("Largest city?").response_format(City)}
        first = await client.batch(ask, output=output)
        second = await client.batch(ask, output=output)
    assert second.resumed_indices == (0,)
    assert second.results[0].parsed == first.results[0].parsed == City("Tokyo", 37400068)  # type: ignore[union-attr]


async def test_the_executor_over_a_plain_function(tmp_path: Path) -> None:
    output = tmp_path / "run.jsonl"
    calls: list[int] = []

    async def square(n: int) -> int:
        calls.append(n)
        if n == 3 and len(calls) < 6:
            raise ValueError("not yet")
        return n * n

    executor = BatchExecutor(square, max_concurrent=2)
    first = await executor.execute(range(5), output=output)
    second = await executor.execute(range(5), output=output)
    assert [type(r).__name__ for r in first.results] == ["int", "int", "int", "ValueError", "int"]
    assert sorted(calls) == [0, 1, 2, 3, 3, 4]
    assert second.results == (0, 1, 4, 9, 16)
    assert second.resumed_indices == (0, 1, 2, 4)
    error = next(line for line in lines_of(output) if "error" in line)
    assert error == {"key": "3", "index": 3, "error": {"type": "ValueError", "message": "not yet"}}


async def test_keys_are_checked(tmp_path: Path) -> None:
    async def echo(n: int) -> int:
        return n

    executor = BatchExecutor(echo, max_concurrent=1)
    with pytest.raises(ConfigurationError, match="2 keys for 3 items"):
        await executor.execute([1, 2, 3], output=tmp_path / "o.jsonl", keys=["a", "b"])
    with pytest.raises(ConfigurationError, match="key 'a' names two items"):
        await executor.execute([1, 2], output=tmp_path / "o.jsonl", keys=["a", "a"])


async def test_without_output_nothing_changes(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(429, "slow", type="rate_limit_error"))
    async with client_for(mock) as client:
        result = await client.batch(
            [client.chat().user("x"), client.chat().user("y")], max_concurrent=1
        )
    assert isinstance(result.results[0], RateLimitedError)
    assert result.resumed_indices == ()
