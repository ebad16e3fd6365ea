"""End-to-end behaviour of ``open_client`` against the loopback mock provider, on asyncio
and trio: requests, streams, early exits closing the connection, errors, limits."""

from __future__ import annotations

import builtins
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from ailib_anyio import (
    AiLibError,
    AuthenticationError,
    ConfigurationError,
    ContentDelta,
    Deadlines,
    Finished,
    IdleTimeoutError,
    InvalidRequestError,
    MalformedResponseError,
    Message,
    RateLimitedError,
    ServerError,
    ToolCallCompleted,
    ToolDefinition,
    TransportError,
    Usage,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio._protocol._registry import builtin_protocol_dir
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply, ScriptedToolCall

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

pytestmark = pytest.mark.anyio

LONG = "word " * 400  # enough chunks that the stream is still going when the test leaves it


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    before = len(anyio.get_running_tasks())
    async with MockProvider() as server:
        yield server
    # Nothing the server or the client started may outlive the block.
    assert len(anyio.get_running_tasks()) == before


def client_for(mock: MockProvider, model: str = "openai/gpt-4o", **kw: object) -> Client:
    kw.setdefault("max_retries", 0)  # each test scripts one reply per request
    return open_client(model, api_key="sk-test-secret-123", base_url=mock.openai_base_url, **kw)  # type: ignore[arg-type]


def pool_connections(client: Client) -> int:
    """Open connections in the client's httpx pool (httpcore internals, test-only)."""
    assert client.primary.transport is not None
    pool = client.primary.transport.client._transport._pool  # type: ignore[attr-defined]
    return len(pool.connections)


async def assert_disconnected(mock: MockProvider, client: Client) -> None:
    with anyio.fail_after(5):
        await mock.requests[-1].wait_disconnected()
    assert mock.requests[-1].client_disconnected
    assert not mock.requests[-1].completed
    assert client.current_inflight == 0
    assert pool_connections(client) == 0


# ------------------------------------------------------------------ happy paths


async def test_chat_execute(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="Four.", usage=(12, 2)))
    async with client_for(mock) as client:
        reply = (
            await client.chat()
            .system("Be brief.")
            .user("2+2?")
            .temperature(0.2)
            .max_tokens(50)
            .execute()
        )
    assert reply.content == "Four."
    assert reply.finish_reason == "stop"
    assert reply.finish_reason is not None and reply.finish_reason.raw == "stop"
    assert reply.usage == Usage(input_tokens=12, output_tokens=2)
    assert reply.request_id == "req_mock_1"
    sent = mock.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
        ],
        "temperature": 0.2,
        "max_completion_tokens": 50,
    }
    assert sent.headers["authorization"] == "Bearer sk-test-secret-123"


async def test_stream_events_and_accumulated_response(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="Hello streaming world", chunk_size=5, usage=(3, 4)))
    async with client_for(mock) as client, client.chat().user("hi").stream() as stream:
        events = [event async for event in stream]
    texts = [e.text for e in events if isinstance(e, ContentDelta)]
    assert "".join(texts) == "Hello streaming world"
    assert len(texts) == 5
    assert events[-2:] == [Usage(3, 4), Finished(events[-1].finish_reason)]  # type: ignore[union-attr]
    assert stream.response.content == "Hello streaming world"
    assert stream.response.usage == Usage(3, 4)
    assert mock.requests[0].json["stream_options"] == {"include_usage": True}


async def test_two_turn_tool_call(mock: MockProvider) -> None:
    tool = ToolDefinition(
        "get_weather",
        "Weather for a city",
        {"type": "object", "properties": {"city": {"type": "string"}}},
    )
    mock.enqueue(
        ScriptedReply(
            tool_calls=[
                ScriptedToolCall("get_weather", {"city": "Paris"}, id="call_a"),
                ScriptedToolCall("get_weather", {"city": "Oslo"}, id="call_b"),
            ]
        ),
        ScriptedReply(content="Paris 18 °C, Oslo 4 °C."),
    )
    async with client_for(mock) as client:
        question = Message.user("Weather in Paris and Oslo?")
        async with (
            client.chat().messages([question]).tools([tool]).tool_choice("auto").stream() as stream
        ):
            completed = [e.tool_call async for e in stream if isinstance(e, ToolCallCompleted)]
        assert [(c.id, c.name, dict(c.arguments)) for c in completed] == [
            ("call_a", "get_weather", {"city": "Paris"}),
            ("call_b", "get_weather", {"city": "Oslo"}),
        ]
        assert stream.response.finish_reason == "tool_calls"
        follow_up = [question, Message.assistant(tool_calls=completed)]
        follow_up += [Message.tool(c.id or "", json.dumps({"temp": 18})) for c in completed]
        answer = await client.chat().messages(follow_up).tools([tool]).execute()
    assert answer.content == "Paris 18 °C, Oslo 4 °C."
    second = mock.requests[1].json
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool", "tool"]
    assert second["messages"][1]["tool_calls"][0] == {
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    assert second["messages"][2] == {
        "role": "tool",
        "content": '{"temp": 18}',
        "tool_call_id": "call_a",
    }
    assert mock.requests[0].json["tool_choice"] == "auto"


# ------------------------------------------------------- early exits close the stream


async def test_break_closes_the_connection(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content=LONG, chunk_size=4, delay_between_chunks=0.005))
    async with client_for(mock) as client:
        async with client.chat().user("long story").stream() as stream:
            async for event in stream:
                if isinstance(event, ContentDelta):
                    break
        assert stream.response.content == "word"  # what was delivered before the break
        await assert_disconnected(mock, client)


async def test_exception_in_block_closes_the_connection(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content=LONG, chunk_size=4, delay_between_chunks=0.005))
    async with client_for(mock) as client:
        with pytest.raises(KeyError, match="boom"):
            async with client.chat().user("long story").stream() as stream:
                async for _ in stream:
                    raise KeyError("boom")
        await assert_disconnected(mock, client)


async def test_cancel_scope_closes_the_connection(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content=LONG, chunk_size=4, delay_between_chunks=0.005))
    async with client_for(mock) as client:
        with anyio.CancelScope() as scope:
            async with client.chat().user("long story").stream() as stream:
                async for _ in stream:
                    scope.cancel()
        assert scope.cancelled_caught
        await assert_disconnected(mock, client)


async def test_caller_deadline_is_not_converted(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
    async with client_for(mock) as client:
        with pytest.raises(builtins.TimeoutError) as info:
            with anyio.fail_after(0.3):
                await client.chat().user("hi").execute()
        # anyio's own TimeoutError from fail_after, not a library error
        assert not isinstance(info.value, AiLibError)
        with anyio.fail_after(5):
            await mock.requests[-1].wait_finished()
        assert client.current_inflight == 0


async def test_reset_mid_stream_keeps_partial_output(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content=LONG, chunk_size=4, close_after_bytes=900))
    async with client_for(mock) as client:
        with pytest.raises(TransportError) as info:
            async with client.chat().user("long").stream() as stream:
                async for _ in stream:
                    pass
        partial = info.value.response
        assert partial is not None and partial.content.startswith("word")
        assert partial.content == stream.response.content
        assert client.current_inflight == 0


# --------------------------------------------------------------------------- errors


async def test_garbage_stream_is_a_typed_error(mock: MockProvider) -> None:
    mock.enqueue(
        Reply.sse([{"choices": [{"index": 0, "delta": {"content": "ok"}}]}, "data: {not json\n\n"])
    )
    async with client_for(mock) as client:
        with pytest.raises(MalformedResponseError, match="not valid JSON") as info:
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass
    assert info.value.response is not None and info.value.response.content == "ok"
    assert info.value.status_code == 200


MID_STREAM_HEADERS = {"x-request-id": "req-mid", "x-ratelimit-remaining-requests": "41"}
HELLO = {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}


@pytest.mark.parametrize("fault", ["cut", "cut-timed", "malformed", "truncated", "idle"])
async def test_a_mid_stream_failure_carries_where_it_happened(
    mock: MockProvider, fault: str
) -> None:
    # Each error is built with its context where it is raised, by whichever path: the
    # transport's error (untimed and timed reads), the decoder's failure, the idle limit.
    headers = MID_STREAM_HEADERS
    replies: dict[str, Reply | ScriptedReply] = {
        "cut": ScriptedReply(content=LONG, chunk_size=4, close_after_bytes=900, headers=headers),
        "cut-timed": ScriptedReply(
            content=LONG, chunk_size=4, close_after_bytes=900, headers=headers
        ),
        "malformed": Reply.sse([HELLO, "data: {not json\n\n"], headers=headers),
        "truncated": Reply.sse([HELLO], done=False, headers=headers),
        "idle": ScriptedReply(content=LONG, chunk_size=4, stall_after_bytes=900, headers=headers),
    }
    expected: dict[str, type[AiLibError]] = {
        "cut": TransportError,
        "cut-timed": TransportError,
        "malformed": MalformedResponseError,
        "truncated": TransportError,
        "idle": IdleTimeoutError,
    }
    limits = {"cut-timed": Deadlines(idle=60), "idle": Deadlines(idle=0.3)}
    mock.enqueue(replies[fault])
    seen: list[str] = []
    async with client_for(mock, deadlines=limits.get(fault)) as client:
        with pytest.raises(expected[fault]) as info:
            async with client.chat().user("hi").stream() as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        seen.append(event.text)
    error = info.value
    assert type(error) is expected[fault]
    assert (error.provider, error.model) == ("openai", "gpt-4o")
    assert (error.status_code, error.request_id) == (200, "req-mid")
    assert error.rate_limits is not None and error.rate_limits.requests_remaining == 41
    assert seen and error.response is not None
    assert error.response.content == "".join(seen) == stream.response.content
    assert error.response.request_id == "req-mid"


async def test_garbage_json_body_is_a_typed_error(mock: MockProvider) -> None:
    mock.enqueue(Reply(body=b"<html>oops</html>", headers={"content-type": "text/html"}))
    async with client_for(mock) as client:
        with pytest.raises(MalformedResponseError, match="not valid JSON"):
            await client.chat().user("hi").execute()


async def test_stream_without_end_is_a_typed_error(mock: MockProvider) -> None:
    mock.enqueue(
        Reply(
            body=b"\xff\xfe binary junk\r\n\x00\x01", headers={"content-type": "text/event-stream"}
        )
    )
    async with client_for(mock) as client:
        with pytest.raises(TransportError, match="ended before"):
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass


async def test_html_error_page_is_classified(mock: MockProvider) -> None:
    mock.enqueue(
        Reply(status=502, body=b"<html>Bad gateway</html>", headers={"content-type": "text/html"})
    )
    async with client_for(mock) as client:
        with pytest.raises(ServerError) as info:
            await client.chat().user("hi").execute()
    assert info.value.status_code == 502
    assert info.value.retryable is True
    assert "Bad gateway" in str(info.value)


async def test_error_on_stream_open_releases_the_slot(mock: MockProvider) -> None:
    mock.enqueue(
        Reply.error(
            429,
            "Rate limit reached",
            code="rate_limit_exceeded",
            headers={"retry-after-ms": "1500"},
        )
    )
    async with client_for(mock, max_inflight=1) as client:
        with pytest.raises(RateLimitedError) as info:
            async with client.chat().user("hi").stream():
                pass  # pragma: no cover - the error is raised on entry
        assert client.current_inflight == 0
        assert info.value.retry_after == 1.5
        assert info.value.retryable is True
        assert info.value.code == "rate_limit_exceeded"
        assert info.value.request_id == "req_mock_1"


async def test_secrets_never_leak(mock: MockProvider) -> None:
    mock.enqueue(
        Reply.error(
            401, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key"
        )
    )
    async with client_for(mock) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.chat().user("hi").execute()
        texts = [
            repr(client),
            str(info.value),
            repr(info.value),
            repr(client.primary.transport),
            repr(info.value.__dict__),
        ]
    assert all("sk-test-secret-123" not in text for text in texts)


async def test_invalid_parameters_fail_before_any_io(mock: MockProvider) -> None:
    async with client_for(mock) as client:
        with pytest.raises(
            InvalidRequestError, match=r"temperature=3\.5 is outside the range \[0, 2\]"
        ):
            await client.chat().user("hi").temperature(3.5).execute()
        with pytest.raises(InvalidRequestError, match="exceeds gpt-4o's maximum output of 16384"):
            await client.chat().user("hi").max_tokens(100_000).execute()
        with pytest.raises(ConfigurationError, match="at least one message"):
            await client.chat().execute()
    assert mock.requests == []


async def test_missing_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="pass api_key= or set OPENAI_API_KEY"):
        open_client("openai/gpt-4o")
    # the generic OpenAI-compatible manifest needs no key (local servers)
    async with open_client("openai-compatible/llama3", base_url="http://127.0.0.1:9/v1") as client:
        assert client.model_id == "llama3"


async def test_unknown_provider_and_bad_model() -> None:
    with pytest.raises(ConfigurationError, match="unknown provider 'nope'"):
        open_client("nope/model")
    with pytest.raises(ConfigurationError, match="provider/model-id"):
        open_client("gpt-4o")


async def test_connect_failure_is_transport_error() -> None:
    async with open_client("openai-compatible/m", base_url="http://127.0.0.1:9/v1") as client:
        with pytest.raises(TransportError) as info:
            await client.chat().user("hi").execute()
    assert isinstance(info.value.__cause__, httpx.ConnectError)


# ------------------------------------------------------------------- lifecycle, limits


async def test_client_lifecycle_errors(mock: MockProvider) -> None:
    client = client_for(mock)
    with pytest.raises(RuntimeError, match="not open"):
        await client.chat().user("hi").execute()
    async with client:
        stream = client.chat().user("hi").stream()
        with pytest.raises(RuntimeError, match="inside its block"):
            stream.__aiter__()
    with pytest.raises(RuntimeError, match="closed"):
        await client.chat().user("hi").execute()
    await client.aclose()  # idempotent


async def test_max_inflight_bounds_concurrency(mock: MockProvider) -> None:
    for _ in range(8):
        mock.enqueue(ScriptedReply(content="slow", delay_before_headers=0.05))
    seen: list[int] = []
    async with client_for(mock, max_inflight=3) as client:

        async def one() -> None:
            await client.chat().user("hi").execute()
            seen.append(client.current_inflight)

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
        assert client.current_inflight == 0
    assert mock.max_active_requests <= 3
    assert max(seen) <= 3
    assert len(mock.requests) == 8


async def test_protocol_path_adds_manifests(mock: MockProvider, tmp_path: Path) -> None:
    source = builtin_protocol_dir() / "openai-compatible.yaml"
    text = (
        source.read_text()
        .replace("id: openai-compatible", "id: acme")
        .replace("aliases: [vllm, ollama, llamacpp, lmstudio]", "aliases: []")
    )
    (tmp_path / "acme.yaml").write_text(text)
    mock.enqueue(ScriptedReply(content="from acme"))
    async with open_client(
        "acme/m1", base_url=mock.openai_base_url, protocol_path=tmp_path
    ) as client:
        assert client.manifest.id == "acme"
        assert (await client.chat().user("hi").execute()).content == "from acme"


async def test_background_work_ends_with_the_client_block(mock: MockProvider) -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async with client_for(mock) as client:
        await client.start_background(forever, name="sweeper")
        await started.wait()
        assert not cancelled.is_set()
    assert cancelled.is_set()
    with pytest.raises(RuntimeError, match="needs an open client"):
        await client.start_background(forever)


async def test_a_failing_background_task_cancels_the_block(mock: MockProvider) -> None:
    async def broken() -> None:
        raise ValueError("background failure")

    with pytest.raises(BaseExceptionGroup) as info:
        async with client_for(mock) as client:
            await client.start_background(broken)
            await anyio.sleep_forever()
    assert info.group_contains(ValueError, match="background failure")


async def test_a_client_opened_in_one_task_is_closed_in_another(mock: MockProvider) -> None:
    # e.g. opened lazily by the first request handler, closed at shutdown by another task
    for i in range(3):
        mock.enqueue(ScriptedReply(content=f"reply {i}"))
    client = client_for(mock)
    replies: list[str] = []

    async def ask() -> None:
        replies.append((await client.chat().user("hi").execute()).content or "")

    async with anyio.create_task_group() as tg:
        tg.start_soon(client.__aenter__)
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(ask)
    assert client.current_inflight == 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.aclose)
    assert sorted(replies) == ["reply 0", "reply 1", "reply 2"]
    assert repr(client).endswith(" closed>")
    with pytest.raises(RuntimeError, match="the client is closed"):
        await client.chat().user("hi").execute()


async def test_clients_opened_in_gathered_tasks(mock: MockProvider) -> None:
    for _ in range(4):
        mock.enqueue(ScriptedReply(content="ok"))
    replies: list[str | None] = []

    async def handler() -> None:
        async with client_for(mock) as client:
            replies.append((await client.chat().user("hi").execute()).content)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(handler)
    assert replies == ["ok"] * 4


async def test_background_work_binds_the_client_to_the_task_that_started_it(
    mock: MockProvider,
) -> None:
    mock.enqueue(ScriptedReply(content="still open"))
    client = client_for(mock)
    await client.__aenter__()  # opened in this task
    running, cancelled, close_now = anyio.Event(), anyio.Event(), anyio.Event()

    async def worker() -> None:
        running.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async def owner() -> None:
        await client.start_background(worker)  # binds the client to this task
        await close_now.wait()
        await client.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(owner)
        await running.wait()
        # This task opened the client, but the background work is the owner's.
        with pytest.raises(RuntimeError) as info:
            await client.aclose()
        assert str(info.value) == (
            "this client is closed in another task than the one that started its background"
            " work: background work started with start_background binds a client to the"
            " task that started it; close the client in that task"
        )
        # Nothing changed: the client still works and its background work still runs.
        assert (await client.chat().user("hi").execute()).content == "still open"
        assert not cancelled.is_set()
        close_now.set()
    assert cancelled.is_set()
    assert repr(client).endswith(" closed>")
    await client.aclose()  # idempotent, from any task once closed


async def test_the_block_s_own_exception_propagates_unchanged(mock: MockProvider) -> None:
    # with background work the client enters a task group; the caller's exception must
    # not come out wrapped in an exception group
    with pytest.raises(KeyError, match="mine"):
        async with client_for(mock) as client:
            await client.start_background(anyio.sleep_forever)
            raise KeyError("mine")
    with pytest.raises(KeyError, match="mine"):
        async with client_for(mock):
            raise KeyError("mine")
    with pytest.raises(KeyError, match="mock"):
        async with MockProvider():
            raise KeyError("mock")
