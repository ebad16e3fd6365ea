"""The loopback mock provider, driven by a raw httpx client under asyncio and trio."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

import ailib_anyio.testing
from ailib_anyio import EmbeddingClient, open_client
from ailib_anyio.testing import (
    MockProvider,
    Reply,
    ScriptedReply,
    ScriptedToolCall,
    serve_forever,
)

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "Say hello"}]}
STREAM_CHAT = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


def client_for(mock: MockProvider, **kw: Any) -> httpx.AsyncClient:
    # trust_env=False: a proxy from the environment must never see loopback traffic.
    return httpx.AsyncClient(base_url=mock.openai_base_url, trust_env=False, **kw)


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [
        line[len("data: ") :]
        for block in text.split("\n\n")
        for line in block.splitlines()
        if line.startswith("data: ")
    ]


def sse_chunks(text: str) -> list[dict[str, Any]]:
    payloads = sse_data(text)
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


async def wait_until(predicate: Callable[[], bool]) -> None:
    # The counters have no event to wait on; poll them under a deadline.
    with anyio.fail_after(5):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def read_raw(client: httpx.AsyncClient, received: bytearray, **request: Any) -> None:
    """Stream a POST to /chat/completions, collecting raw body bytes as they arrive."""
    async with client.stream("POST", "/chat/completions", **request) as response:
        async for piece in response.aiter_raw():
            received += piece


# ------------------------------------------------------------------ scripted replies


async def test_non_stream_scripted_reply() -> None:
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(ScriptedReply(content="Hello there", usage=(3, 2)))
        response = await client.post("/chat/completions", json=CHAT)

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-request-id"] == "req_mock_1"
        body = response.json()
        assert body["id"] == "chatcmpl-mock-1"
        assert body["object"] == "chat.completion"
        assert isinstance(body["created"], int)
        assert body["model"] == "gpt-test"
        choice = body["choices"][0]
        assert choice["message"]["role"] == "assistant"
        assert choice["message"]["content"] == "Hello there"
        assert "tool_calls" not in choice["message"]
        assert choice["finish_reason"] == "stop"
        assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}

        (recorded,) = mock.requests
        assert recorded.method == "POST"
        assert recorded.path == "/v1/chat/completions"
        assert recorded.json == CHAT
        assert json.loads(recorded.body) == CHAT
        assert recorded.headers["content-type"] == "application/json"
        assert recorded.completed
        assert recorded.finished
        assert not recorded.client_disconnected
        assert mock.errors == []


async def test_default_reply_echoes_the_last_user_message() -> None:
    parts = [{"type": "text", "text": "look at"}, {"type": "image_url", "image_url": {}}]
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": parts},
    ]
    async with MockProvider() as mock, client_for(mock) as client:
        plain = await client.post("/chat/completions", json=CHAT)
        multi = await client.post("/chat/completions", json={"model": "m", "messages": messages})

    assert plain.json()["choices"][0]["message"]["content"] == "Mock reply to: Say hello"
    assert multi.json()["choices"][0]["message"]["content"] == "Mock reply to: look at"
    usage = plain.json()["usage"]
    assert usage["prompt_tokens"] >= 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_stream_scripted_reply_with_usage() -> None:
    scripted = ScriptedReply(content="Hello, streaming world!", reasoning="Hmm", chunk_size=5)
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(scripted, scripted)
        with_usage = await client.post("/chat/completions", json=STREAM_CHAT)
        without = await client.post("/chat/completions", json={**CHAT, "stream": True})

    assert with_usage.headers["content-type"].startswith("text/event-stream")
    assert with_usage.headers["transfer-encoding"] == "chunked"
    chunks = sse_chunks(with_usage.text)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert {c["id"] for c in chunks} == {"chatcmpl-mock-1"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning_at = [i for i, d in enumerate(deltas) if "reasoning_content" in d]
    content_at = [i for i, d in enumerate(deltas[1:], 1) if d.get("content")]
    assert max(reasoning_at) < min(content_at)
    assert "".join(deltas[i]["reasoning_content"] for i in reasoning_at) == "Hmm"
    assert [deltas[i]["content"] for i in content_at] == [
        "Hello",
        ", str",
        "eamin",
        "g wor",
        "ld!",
    ]
    finish = chunks[-2]
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    plain_chunks = sse_chunks(without.text)
    assert all(c["choices"] for c in plain_chunks)
    assert all("usage" not in c for c in plain_chunks)
    assert plain_chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_x_mock_chunks_header_sets_the_number_of_deltas() -> None:
    headers = {"x-mock-chunks": "7", "x-mock-delay-ms": "1"}
    async with MockProvider() as mock, client_for(mock) as client:
        streamed = await client.post(
            "/chat/completions", json={**CHAT, "stream": True}, headers=headers
        )
        whole = await client.post("/chat/completions", json=CHAT, headers={"x-mock-chunks": "3"})

    deltas = [c["choices"][0]["delta"].get("content") for c in sse_chunks(streamed.text)]
    assert [d for d in deltas if d] == ["tok "] * 7
    assert whole.json()["choices"][0]["message"]["content"] == "tok tok tok "


async def test_tool_calls_stream_and_non_stream() -> None:
    weather = {"city": "Paris", "units": "celsius", "days": [1, 2, 3]}
    scripted = ScriptedReply(
        tool_calls=[
            ("get_weather", weather),
            ScriptedToolCall("lookup", {"q": "naïve ☃"}, id="call_custom"),
        ],
        chunk_size=4,
    )
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(scripted, scripted)
        streamed = await client.post("/chat/completions", json={**CHAT, "stream": True})
        whole = await client.post("/chat/completions", json=CHAT)

    calls: dict[int, dict[str, Any]] = {}
    finish_reasons = []
    for chunk in sse_chunks(streamed.text):
        choice = chunk["choices"][0]
        finish_reasons.append(choice["finish_reason"])
        for fragment in choice["delta"].get("tool_calls", ()):
            call = calls.setdefault(fragment["index"], {"arguments": ""})
            if "id" in fragment:
                assert fragment["type"] == "function"
                assert fragment["function"]["arguments"] == ""
                call["id"] = fragment["id"]
                call["name"] = fragment["function"]["name"]
            call["arguments"] += fragment["function"]["arguments"]
            assert len(fragment["function"]["arguments"]) <= 4
    assert calls[0]["id"] == "call_1"
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == weather
    assert calls[1]["id"] == "call_custom"
    assert json.loads(calls[1]["arguments"]) == {"q": "naïve ☃"}
    assert finish_reasons[-1] == "tool_calls"

    message = whole.json()["choices"][0]["message"]
    assert message["content"] is None
    assert [c["id"] for c in message["tool_calls"]] == ["call_2", "call_custom"]
    first = message["tool_calls"][0]
    assert first["type"] == "function"
    assert first["function"]["name"] == "get_weather"
    assert json.loads(first["function"]["arguments"]) == weather
    assert whole.json()["choices"][0]["finish_reason"] == "tool_calls"


# ------------------------------------------------------------------ other dialects

ANTHROPIC = {"model": "claude-test", "messages": [{"role": "user", "content": "Say hello"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}
GEMINI_PATH = "/models/gemini-test:generateContent"
GEMINI_STREAM_PATH = "/models/gemini-test:streamGenerateContent?alt=sse"

#: Text, reasoning and two tool calls, one with an id of its own.
FULL_TURN = ScriptedReply(
    content="Sunny, 21 degrees.",
    reasoning="Check the weather.",
    tool_calls=[
        ("get_weather", {"city": "Paris"}),
        ScriptedToolCall("get_time", {"tz": "Europe/Paris"}, id="toolu_given"),
    ],
    usage=(12, 34),
    chunk_size=8,
)


def anthropic_client(mock: MockProvider, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=mock.anthropic_base_url, trust_env=False, **kw)


def gemini_client(mock: MockProvider, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=mock.gemini_base_url, trust_env=False, **kw)


def anthropic_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` of each event of an Anthropic SSE body, checking the framing."""
    text = body.decode()
    assert "\r" not in text
    *blocks, rest = text.split("\n\n")
    assert rest == ""
    events = []
    for block in blocks:
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ")
        assert data_line.startswith("data: ")
        name, data = event_line[len("event: ") :], json.loads(data_line[len("data: ") :])
        assert data["type"] == name
        events.append((name, data))
    return events


def gemini_events(body: bytes) -> list[dict[str, Any]]:
    """The JSON of each ``data:`` event of a Gemini SSE body, checking its CRLF framing."""
    *frames, rest = body.split(b"\r\n\r\n")
    assert rest == b""
    assert frames
    for frame in frames:
        assert frame.startswith(b"data: ")
        assert b"\n" not in frame
        assert b"\r" not in frame
    return [json.loads(frame[len(b"data: ") :]) for frame in frames]


def block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": delta},
    )


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


async def test_anthropic_non_stream() -> None:
    async with MockProvider() as mock, anthropic_client(mock) as client:
        mock.enqueue(FULL_TURN, ScriptedReply(content="Plain"))
        response = await client.post("/messages", json=ANTHROPIC)
        plain = await client.post("/messages", json=ANTHROPIC)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["request-id"] == "req_mock_1"
    assert "x-request-id" not in response.headers
    body = response.json()
    thinking = body["content"][0]
    signature = thinking.pop("signature")
    assert isinstance(signature, str)
    assert signature
    assert body == {
        "id": "msg_mock_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [
            {"type": "thinking", "thinking": "Check the weather."},
            {"type": "text", "text": "Sunny, 21 degrees."},
            {
                "type": "tool_use",
                "id": "toolu_mock_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {
                "type": "tool_use",
                "id": "toolu_given",
                "name": "get_time",
                "input": {"tz": "Europe/Paris"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 34},
    }
    plain_body = plain.json()
    assert plain_body["content"] == [{"type": "text", "text": "Plain"}]
    assert plain_body["stop_reason"] == "end_turn"
    assert plain_body["id"] == "msg_mock_2"
    assert plain_body["usage"] == {"input_tokens": 2, "output_tokens": 1}  # word counts
    assert [r.path for r in mock.requests] == ["/v1/messages", "/v1/messages"]
    assert mock.errors == []


async def test_anthropic_stream() -> None:
    async with MockProvider() as mock, anthropic_client(mock) as client:
        mock.enqueue(FULL_TURN)
        response = await client.post("/messages", json={**ANTHROPIC, "stream": True})

    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["request-id"] == "req_mock_1"
    events = anthropic_events(response.content)
    signature = events[6][1]["delta"]["signature"]
    assert isinstance(signature, str)
    assert signature
    start: dict[str, Any] = {
        "id": "msg_mock_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    tool_use = {"type": "tool_use", "id": "toolu_mock_1", "name": "get_weather", "input": {}}
    given = {"type": "tool_use", "id": "toolu_given", "name": "get_time", "input": {}}
    assert events == [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(0, {"type": "thinking_delta", "thinking": "Check th"}),
        block_delta(0, {"type": "thinking_delta", "thinking": "e weathe"}),
        block_delta(0, {"type": "thinking_delta", "thinking": "r."}),
        block_delta(0, {"type": "signature_delta", "signature": signature}),
        block_stop(0),
        block_start(1, {"type": "text", "text": ""}),
        block_delta(1, {"type": "text_delta", "text": "Sunny, 2"}),
        block_delta(1, {"type": "text_delta", "text": "1 degree"}),
        block_delta(1, {"type": "text_delta", "text": "s."}),
        block_stop(1),
        block_start(2, tool_use),
        block_delta(2, {"type": "input_json_delta", "partial_json": '{"city":'}),
        block_delta(2, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
        block_stop(2),
        block_start(3, given),
        block_delta(3, {"type": "input_json_delta", "partial_json": '{"tz":"E'}),
        block_delta(3, {"type": "input_json_delta", "partial_json": "urope/Pa"}),
        block_delta(3, {"type": "input_json_delta", "partial_json": 'ris"}'}),
        block_stop(3),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 34},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


async def test_anthropic_stream_text_only_and_given_finish_reason() -> None:
    scripted = ScriptedReply(content="Hi", finish_reason="max_tokens", model="claude-other")
    async with MockProvider() as mock, anthropic_client(mock) as client:
        mock.enqueue(scripted)
        response = await client.post("/messages", json={**ANTHROPIC, "stream": True})

    events = anthropic_events(response.content)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["model"] == "claude-other"
    assert events[5][1]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}


async def test_gemini_non_stream() -> None:
    # The model is the one in the URL path, whatever the body says.
    async with MockProvider() as mock, gemini_client(mock) as client:
        mock.enqueue(FULL_TURN, ScriptedReply(content="Plain", usage=(3, 2)))
        response = await client.post(GEMINI_PATH, json={**GEMINI, "model": "not-this"})
        plain = await client.post(GEMINI_PATH, json=GEMINI)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.headers["x-request-id"] == "req_mock_1"
    assert response.json() == {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Check the weather.", "thought": True},
                        {"text": "Sunny, 21 degrees."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        # Gemini counts thoughts apart: output = candidates + thoughts = 34.
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 31,
            "totalTokenCount": 46,
            "thoughtsTokenCount": 3,
        },
        "modelVersion": "gemini-test",
        "responseId": "mock-1",
    }
    assert plain.json() == {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Plain"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
        "modelVersion": "gemini-test",
        "responseId": "mock-2",
    }
    assert mock.requests[0].path == "/v1beta/models/gemini-test:generateContent"


async def test_gemini_stream_uses_crlf_framing() -> None:
    async with MockProvider() as mock, gemini_client(mock) as client:
        mock.enqueue(FULL_TURN)
        response = await client.post(GEMINI_STREAM_PATH, json=GEMINI)

    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    assert b"[DONE]" not in response.content
    frames = gemini_events(response.content)

    def frame(part: dict[str, Any]) -> dict[str, Any]:
        return {
            "candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
            "modelVersion": "gemini-test",
            "responseId": "mock-1",
        }

    last = frame({"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}})
    last["candidates"][0] = {**last["candidates"][0], "finishReason": "STOP"}
    last["usageMetadata"] = {
        "promptTokenCount": 12,
        "candidatesTokenCount": 31,
        "totalTokenCount": 46,
        "thoughtsTokenCount": 3,
    }
    assert frames == [
        frame({"text": "Check th", "thought": True}),
        frame({"text": "e weathe", "thought": True}),
        frame({"text": "r.", "thought": True}),
        frame({"text": "Sunny, 2"}),
        frame({"text": "1 degree"}),
        frame({"text": "s."}),
        frame({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}),
        last,
    ]
    # The key order of the real API, finishReason before index.
    assert list(frames[-1]["candidates"][0]) == ["content", "finishReason", "index"]
    assert mock.requests[0].path == "/v1beta" + GEMINI_STREAM_PATH


async def test_gemini_stream_without_alt_sse_is_a_json_array() -> None:
    scripted = ScriptedReply(content="Hello there", chunk_size=6, finish_reason="MAX_TOKENS")
    async with MockProvider() as mock, gemini_client(mock) as client:
        mock.enqueue(scripted)
        response = await client.post("/models/g:streamGenerateContent", json=GEMINI)

    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.headers["transfer-encoding"] == "chunked"
    items = response.json()
    assert [item["candidates"][0]["content"]["parts"] for item in items] == [
        [{"text": "Hello "}],
        [{"text": "there"}],
    ]
    assert "finishReason" not in items[0]["candidates"][0]
    assert items[1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert items[1]["usageMetadata"]["promptTokenCount"] == 2


async def test_dialect_error_helpers() -> None:
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
    async with MockProvider() as mock, anthropic_client(mock) as client:
        mock.enqueue(
            Reply.anthropic_error(529, "Overloaded", type="overloaded_error"),
            Reply.anthropic_error(400, "bad", headers={"x-should-retry": "false"}),
            Reply.gemini_error(
                429, "Quota", grpc_status="RESOURCE_EXHAUSTED", details=[retry], split="bytes"
            ),
            Reply.gemini_error(400, "API key not valid.", headers={"content-type": "text/x"}),
        )
        overloaded = await client.post("/messages", json=ANTHROPIC)
        invalid = await client.post("/messages", json=ANTHROPIC)
        quota = await client.post(mock.gemini_base_url + GEMINI_PATH, json=GEMINI)
        bad_key = await client.post(mock.gemini_base_url + GEMINI_PATH, json=GEMINI)

    assert overloaded.status_code == 529
    assert overloaded.headers["content-type"] == "application/json"
    assert overloaded.headers["request-id"] == "req_mock_1"
    assert overloaded.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert invalid.status_code == 400
    assert invalid.headers["x-should-retry"] == "false"
    assert invalid.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad"},
    }
    assert quota.status_code == 429
    assert quota.headers["content-type"] == "application/json; charset=UTF-8"
    assert quota.json() == {
        "error": {
            "code": 429,
            "message": "Quota",
            "status": "RESOURCE_EXHAUSTED",
            "details": [retry],
        }
    }
    assert bad_key.headers["content-type"] == "text/x"
    assert bad_key.json() == {
        "error": {
            "code": 400,
            "message": "API key not valid.",
            "status": "INVALID_ARGUMENT",
            "details": [],
        }
    }


async def test_default_reply_in_each_dialect() -> None:
    anthropic = {
        "model": "claude-test",
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look at"},
                    {"type": "image", "source": {}},
                    {"type": "text", "text": "this"},
                ],
            },
        ],
    }
    gemini = {
        "contents": [
            {"role": "user", "parts": [{"text": "first"}]},
            {"role": "model", "parts": [{"text": "ok"}]},
            {"parts": [{"text": "look at"}, {"inlineData": {}}, {"text": "this"}]},
        ]
    }
    async with MockProvider() as mock, anthropic_client(mock) as client:
        messages = await client.post("/messages", json=anthropic)
        generated = await client.post(mock.gemini_base_url + GEMINI_PATH, json=gemini)
        vertex = await client.post(
            mock.base_url
            + "/v1/projects/p/locations/l/publishers/google/models/gv:generateContent",
            json=GEMINI,
        )
        missing = await client.get("/messages")

    body = messages.json()
    assert body["content"] == [{"type": "text", "text": "Mock reply to: look at this"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"] == {"input_tokens": 7, "output_tokens": 6}  # rough word counts
    candidate = generated.json()["candidates"][0]
    assert candidate["content"]["parts"] == [{"text": "Mock reply to: look at this"}]
    assert generated.json()["usageMetadata"]["promptTokenCount"] == 5
    assert vertex.json()["modelVersion"] == "gv"
    assert vertex.json()["candidates"][0]["content"]["parts"] == [
        {"text": "Mock reply to: Say hello"}
    ]
    assert missing.status_code == 404  # only POSTs get a default reply


async def test_x_mock_chunks_header_in_each_dialect() -> None:
    headers = {"x-mock-chunks": "3", "x-mock-delay-ms": "1"}
    async with MockProvider() as mock, anthropic_client(mock) as client:
        messages = await client.post(
            "/messages", json={**ANTHROPIC, "stream": True}, headers=headers
        )
        generated = await client.post(
            mock.gemini_base_url + GEMINI_STREAM_PATH, json=GEMINI, headers=headers
        )

    texts = [
        data["delta"]["text"]
        for name, data in anthropic_events(messages.content)
        if name == "content_block_delta"
    ]
    assert texts == ["tok "] * 3
    parts = [
        frame["candidates"][0]["content"]["parts"] for frame in gemini_events(generated.content)
    ]
    assert parts == [[{"text": "tok "}]] * 3


@pytest.mark.parametrize(
    ("base", "path", "request_json"),
    [
        ("openai", "/chat/completions", {**CHAT, "stream": True}),
        ("anthropic", "/messages", {**ANTHROPIC, "stream": True}),
        ("gemini", GEMINI_STREAM_PATH, GEMINI),
    ],
    ids=["openai", "anthropic", "gemini"],
)
async def test_faults_apply_in_every_dialect(
    base: str, path: str, request_json: dict[str, Any]
) -> None:
    reply = ScriptedReply(content="x" * 200, chunk_size=10, close_after_bytes=150)
    async with MockProvider() as mock:
        base_url = getattr(mock, f"{base}_base_url")
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
            mock.enqueue(reply)
            received = bytearray()
            with pytest.raises(httpx.RemoteProtocolError):
                async with client.stream("POST", path, json=request_json) as response:
                    async for piece in response.aiter_raw():
                        received += piece
            (recorded,) = mock.requests
            with anyio.fail_after(5):
                await recorded.wait_finished()

    assert len(received) == 150
    assert not recorded.completed
    assert mock.errors == []


# ---------------------------------------------------------------------- exact bytes

RECORDED = (
    b'data: {"choices":[{"delta":{"content":"h\xc3\xa9llo"}}]}\n\n'
    b": keep-alive comment\r\n\r\n"
    b'data: {"choices":[{"delta":{"content":" \xe2\x98\x83 world"}}]}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize(
    "options",
    [
        {"split": "whole"},
        {"split": "bytes"},
        {"split": "lines"},
        {"split": "random", "seed": 7, "max_chunk": 9},
        {"split": "random"},
        {"chunk_sizes": [1, 5, 2]},
    ],
    ids=["whole", "bytes", "lines", "random-seeded", "random", "chunk-sizes"],
)
@pytest.mark.parametrize("content_type", ["text/event-stream", "application/octet-stream"])
async def test_reply_bytes_replay_identically(options: dict[str, Any], content_type: str) -> None:
    reply = Reply(headers={"content-type": content_type}, body=RECORDED, **options)
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(reply)
        async with client.stream("POST", "/chat/completions", json=CHAT) as response:
            received = b"".join([piece async for piece in response.aiter_raw()])
        if content_type == "text/event-stream":
            assert response.headers["transfer-encoding"] == "chunked"
        else:
            assert response.headers["content-length"] == str(len(RECORDED))
    assert received == RECORDED


async def test_reply_headers_repeated_and_hop_by_hop_dropped() -> None:
    reply = Reply(
        status=201,
        headers={
            "X-Multi": ["one", "two"],
            "content-length": "999",
            "connection": "close",
            "content-encoding": "gzip",
            "x-request-id": "req_given",
        },
        body=b"plain",
    )
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(reply)
        response = await client.post("/anything", content=b"x")
        again = await client.get("/_mock/health")

    assert response.status_code == 201
    assert response.content == b"plain"
    assert response.headers.get_list("x-multi") == ["one", "two"]
    assert response.headers["content-length"] == "5"
    assert "content-encoding" not in response.headers
    assert response.headers["x-request-id"] == "req_given"
    assert again.json() == {"ok": True}
    assert mock.connections_accepted == 1  # "connection: close" was not passed on


async def test_reply_error_and_json_shapes() -> None:
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(
            Reply.error(429, "Slow down", type="rate_limit_error", headers={"retry-after": "2"}),
            Reply.json({"data": [1, 2]}, status=202),
            Reply.sse([{"a": 1}, "event: ping\ndata: x\n\n"], done=False),
        )
        limited = await client.post("/chat/completions", json=CHAT)
        accepted = await client.post("/embeddings", json={})
        events = await client.post("/chat/completions", json=CHAT)

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json() == {
        "error": {"message": "Slow down", "type": "rate_limit_error", "param": None, "code": None}
    }
    assert accepted.status_code == 202
    assert accepted.content == b'{"data":[1,2]}'
    assert events.content == b'data: {"a":1}\n\nevent: ping\ndata: x\n\n'


def test_reply_validates_its_knobs() -> None:
    with pytest.raises(ValueError, match="'split' must be in"):
        Reply(split="words")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_chunk must be >= 1, got 0"):
        Reply(max_chunk=0)
    with pytest.raises(ValueError, match="chunk_sizes must be a non-empty sequence"):
        Reply(chunk_sizes=[3, 0])
    with pytest.raises(ValueError, match="close_after_bytes must be >= 0, got -1"):
        ScriptedReply(close_after_bytes=-1)


# ---------------------------------------------------------------------- faults


async def test_delay_before_headers_and_between_chunks() -> None:
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(
            Reply.json({"ok": 1}, delay_before_headers=0.3),
            Reply.sse([{"n": 1}, {"n": 2}, {"n": 3}], chunk_sizes=[13], delay_between_chunks=0.15),
        )
        start = anyio.current_time()
        await client.post("/chat/completions", json=CHAT)
        slow_first_byte = anyio.current_time() - start

        start = anyio.current_time()
        response = await client.post("/chat/completions", json=CHAT)
        slow_chunks = anyio.current_time() - start

    # Lower bounds only: a loaded machine may be slower, never faster.
    assert slow_first_byte >= 0.25
    assert slow_chunks >= 0.45  # four body writes, three pauses between them
    assert sse_data(response.text) == ['{"n":1}', '{"n":2}', '{"n":3}', "[DONE]"]


async def test_close_after_bytes_cuts_the_stream() -> None:
    reply = ScriptedReply(content="x" * 200, chunk_size=10, close_after_bytes=150)
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(reply)
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            await read_raw(client, received, json={**CHAT, "stream": True})
        (recorded,) = mock.requests
        with anyio.fail_after(5):
            await recorded.wait_finished()

    assert len(received) == 150
    assert not recorded.completed
    assert not recorded.client_disconnected
    assert mock.open_connections == 0


async def test_close_after_bytes_with_content_length() -> None:
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(Reply.json({"long": "y" * 100}, close_after_bytes=10))
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/chat/completions", json=CHAT)


async def test_stall_after_bytes_until_the_client_gives_up() -> None:
    reply = Reply.sse([{"n": i} for i in range(5)], stall_after_bytes=20)
    timeout = httpx.Timeout(10, read=0.3)
    async with MockProvider() as mock, client_for(mock, timeout=timeout) as client:
        mock.enqueue(reply)
        received = bytearray()
        with pytest.raises(httpx.ReadTimeout):
            await read_raw(client, received, json=CHAT)
        (recorded,) = mock.requests
        with anyio.fail_after(5):
            await recorded.wait_disconnected()
            await recorded.wait_finished()

    assert received == b'data: {"n":0}\n\ndata:'  # exactly 20 body bytes
    assert recorded.client_disconnected
    assert recorded.disconnected_at is not None
    assert not recorded.completed


async def test_early_disconnect_is_detected() -> None:
    reply = ScriptedReply(content="word " * 50, chunk_size=5, delay_between_chunks=0.05)
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(reply)
        # Leave the block mid-stream. (Breaking out of httpx's aiter_* would leave its
        # nested async generators to the GC, which trio reports as a ResourceWarning.)
        async with client.stream(
            "POST", "/chat/completions", json={**CHAT, "stream": True}
        ) as response:
            assert response.status_code == 200
            await wait_until(lambda: mock.active_requests == 1)
            left_at = anyio.current_time()
        (recorded,) = mock.requests
        with anyio.fail_after(5):
            await recorded.wait_disconnected()
            await recorded.wait_finished()
        assert recorded.client_disconnected
        assert not recorded.completed
        assert recorded.disconnected_at is not None
        assert recorded.disconnected_at >= left_at
        await wait_until(lambda: mock.open_connections == 0)
        assert mock.active_requests == 0
        # The server keeps serving after the hang-up.
        assert (await client.post("/chat/completions", json=CHAT)).status_code == 200
    assert mock.errors == []


async def test_early_disconnect_after_reading_the_first_event() -> None:
    reply = Reply.sse([{"n": i} for i in range(100)], split="lines", delay_between_chunks=0.05)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\n"
        b"content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    )
    async with MockProvider() as mock:
        mock.enqueue(reply)
        async with await anyio.connect_tcp(mock.host, mock.port) as sock:
            received = b""
            with anyio.fail_after(5):
                await sock.send(request)
                while b"data: " not in received:
                    received += await sock.receive()
            left_at = anyio.current_time()
        (recorded,) = mock.requests
        with anyio.fail_after(5):
            await recorded.wait_disconnected()
        assert recorded.disconnected_at is not None
        assert recorded.disconnected_at >= left_at
        assert not recorded.completed
        await wait_until(lambda: mock.open_connections == 0)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in received.lower()


# ----------------------------------------------------------------- connections


async def test_keep_alive_reuses_one_connection_and_reads_chunked_bodies() -> None:
    async def chunked_body() -> AsyncIterator[bytes]:
        yield b'{"model": "m", '
        yield b'"messages": []}'

    async with MockProvider() as mock, client_for(mock) as client:
        for _ in range(3):
            response = await client.post("/chat/completions", json=CHAT)
            assert response.status_code == 200
        streamed = await client.post("/chat/completions", content=chunked_body())
        assert streamed.status_code == 200
        assert mock.connections_accepted == 1
        assert mock.open_connections == 1

    assert mock.requests[-1].headers["transfer-encoding"] == "chunked"
    assert mock.requests[-1].json == {"model": "m", "messages": []}
    assert len(mock.requests) == 4


async def test_repeated_request_headers_are_joined() -> None:
    headers = [("X-Dup", "a"), ("x-dup", "b"), ("Authorization", "Bearer k")]
    async with MockProvider() as mock, client_for(mock) as client:
        await client.post("/chat/completions?api-version=1", json=CHAT, headers=headers)
    (recorded,) = mock.requests
    assert recorded.headers["x-dup"] == "a, b"
    assert recorded.headers["authorization"] == "Bearer k"
    assert recorded.path == "/v1/chat/completions?api-version=1"


async def test_max_active_requests_counts_concurrent_requests() -> None:
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(*[ScriptedReply(content="slow", delay_before_headers=60)] * 5)

        async def call() -> None:
            await client.post("/chat/completions", json=CHAT)

        async with anyio.create_task_group() as task_group:
            for _ in range(5):
                task_group.start_soon(call)
            await wait_until(lambda: mock.active_requests == 5)
            task_group.cancel_scope.cancel()

        assert mock.max_active_requests == 5
        with anyio.fail_after(5):
            for recorded in mock.requests:
                await recorded.wait_disconnected()
        assert mock.active_requests == 0
        mock.reset_stats()
        assert mock.max_active_requests == 0
        await client.post("/chat/completions", json=CHAT)
        assert mock.max_active_requests == 1


async def test_embeddings_endpoints_answer_by_default() -> None:
    """OpenAI's /embeddings and Gemini's :batchEmbedContents answer with one vector per
    input: the same text gives the same vector, sizes and base64 as asked; the library's
    ``EmbeddingClient`` reads both."""
    async with MockProvider() as mock, client_for(mock) as client:
        floats = await client.post("/embeddings", json={"model": "m", "input": ["a b", "c"]})
        again = await client.post("/embeddings", json={"model": "m", "input": "a b"})
        packed = await client.post(
            "/embeddings",
            json={"model": "m", "input": ["a b"], "dimensions": 3, "encoding_format": "base64"},
        )
        gemini = await client.post(
            mock.gemini_base_url + "/models/gemini-embedding-001:batchEmbedContents",
            json={
                "requests": [
                    {"content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 4},
                    {"content": {"parts": [{"text": "c"}]}},
                ]
            },
        )
        async with open_client(
            "gemini/gemini-embedding-001", api_key="k", base_url=mock.gemini_base_url
        ) as gemini_client:
            via_library = await EmbeddingClient(gemini_client).embed("a b")
        async with open_client(
            "openai/text-embedding-3-small", api_key="k", base_url=mock.openai_base_url
        ) as openai_client:  # the manifest asks for base64
            via_base64 = await EmbeddingClient(openai_client).embed("a b")
    body = floats.json()
    first, second = (item["embedding"] for item in body["data"])
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert len(first) == len(second) == 8
    assert first != second
    assert all(-1 <= x < 1 for x in first)
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert again.json()["data"][0]["embedding"] == first
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == first[:3]
    vectors = [item["values"] for item in gemini.json()["embeddings"]]
    assert vectors == [first[:4], second]
    assert list(via_library.vectors[0]) == list(via_base64.vectors[0]) == first


async def test_unknown_route_is_a_recorded_404_and_health_is_not_recorded() -> None:
    async with MockProvider() as mock, client_for(mock) as client:
        health = await client.get(mock.base_url + "/_mock/health")
        missing = await client.get("/models")

    assert health.json() == {"ok": True}
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "Unknown route: GET /v1/models",
        "type": "invalid_request_error",
        "param": None,
        "code": "unknown_url",
    }
    assert [(r.method, r.path) for r in mock.requests] == [("GET", "/v1/models")]


async def test_exit_closes_every_connection() -> None:
    errors: list[Exception] = []

    async def stalled(client: httpx.AsyncClient, url: str) -> None:
        try:
            async with client.stream("POST", url, json=CHAT) as response:
                async for _ in response.aiter_raw():
                    pass
        except httpx.HTTPError as exc:
            errors.append(exc)

    # The client's task group encloses the mock: a server must not be closed from inside
    # a task group opened after it.
    async with httpx.AsyncClient(trust_env=False) as client, anyio.create_task_group() as tg:
        async with MockProvider() as mock:
            mock.enqueue(Reply.sse([{"n": 1}, {"n": 2}], stall_after_bytes=5))
            tg.start_soon(stalled, client, mock.openai_base_url + "/chat/completions")
            await wait_until(lambda: mock.active_requests == 1)
            await client.get(mock.base_url + "/_mock/health")  # leaves an idle connection
            assert mock.open_connections == 2
            await mock.aclose()
            assert mock.open_connections == 0
            await mock.aclose()  # idempotent, and __aexit__ after it too

        assert mock.open_connections == 0
        assert mock.active_requests == 0
        assert mock.requests[0].finished
        assert not mock.requests[0].completed
    # The stalled stream saw the server go away mid-message.
    assert [type(exc) for exc in errors] == [httpx.RemoteProtocolError]
    with pytest.raises(RuntimeError, match="only be started once"):
        await mock.__aenter__()


async def test_survives_garbage_and_abrupt_clients() -> None:
    async with MockProvider() as mock:
        # Not HTTP at all: answered with a 400, then closed.
        async with await anyio.connect_tcp(mock.host, mock.port) as sock:
            await sock.send(b"\x00\x01 nonsense\r\n\r\n")
            answer = b""
            with anyio.fail_after(5):
                try:
                    while True:
                        answer += await sock.receive()
                except anyio.EndOfStream:
                    pass
        assert answer.startswith(b"HTTP/1.1 400 ")
        # Connects and leaves at once; leaves halfway through a request body.
        async with await anyio.connect_tcp(mock.host, mock.port):
            pass
        async with await anyio.connect_tcp(mock.host, mock.port) as sock:
            await sock.send(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
            await sock.send(b"content-length: 100\r\n\r\n{")

        async with client_for(mock) as client:
            response = await client.post("/chat/completions", json=CHAT)
        assert response.status_code == 200
        await wait_until(lambda: mock.open_connections == 0)
    assert len(mock.requests) == 1
    assert mock.errors == []


async def test_pipelined_request_sent_mid_response_is_answered_next() -> None:
    first = b"POST /v1/embeddings HTTP/1.1\r\nhost: mock\r\ncontent-length: 0\r\n\r\n"
    second = b"GET /v1/models HTTP/1.1\r\nhost: mock\r\nconnection: close\r\n\r\n"
    async with MockProvider() as mock:
        mock.enqueue(Reply.sse([{"n": 1}, {"n": 2}], split="lines", delay_between_chunks=0.05))
        async with await anyio.connect_tcp(mock.host, mock.port) as sock:
            received = b""
            with anyio.fail_after(5):
                await sock.send(first)
                while b"data: " not in received:
                    received += await sock.receive()
                await sock.send(second)  # arrives while the first answer is being written
                try:
                    while True:
                        received += await sock.receive()
                except anyio.EndOfStream:
                    pass
    assert received.count(b"HTTP/1.1 ") == 2
    assert b"data: [DONE]" in received
    assert received.endswith(b'"code":"unknown_url"}}')
    assert [r.completed for r in mock.requests] == [True, True]
    assert mock.connections_accepted == 1


async def test_a_handler_bug_is_answered_with_500_and_recorded() -> None:
    broken = ScriptedReply(tool_calls=[ScriptedToolCall("f", {"not json": object()})])
    async with MockProvider() as mock, client_for(mock) as client:
        mock.enqueue(broken)
        response = await client.post("/chat/completions", json=CHAT)
        assert response.status_code == 500
        assert (await client.post("/chat/completions", json=CHAT)).status_code == 200
    assert [type(exc) for exc in mock.errors] == [TypeError]
    assert mock.requests[0].finished
    assert not mock.requests[0].completed


async def test_serve_forever_reports_readiness_and_stops_on_cancel() -> None:
    started: list[MockProvider] = []
    ready = anyio.Event()

    def on_ready(mock: MockProvider) -> None:
        started.append(mock)
        ready.set()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(lambda: serve_forever(port=0, ready=on_ready))
        with anyio.fail_after(5):
            await ready.wait()
        (mock,) = started
        async with client_for(mock) as client:
            assert (await client.get("/_mock/health")).json() == {"ok": True}
        task_group.cancel_scope.cancel()
    assert mock.open_connections == 0


def test_all_names_are_exported() -> None:
    names = ailib_anyio.testing.__all__
    assert names == sorted(names)
    public = {name for name in vars(ailib_anyio.testing) if not name.startswith("_")}
    assert public - {"strategies"} == set(names)  # a submodule, imported on its own
    for name in names:
        assert getattr(ailib_anyio.testing, name).__module__.startswith("ailib_anyio.testing")
