"""A two-turn tool conversation end to end in each dialect (OpenAI chat, Anthropic
Messages, Gemini generateContent) against the mock provider, streaming and not, on asyncio
and trio: the model asks for tools, the results go back, the model answers."""

from __future__ import annotations

import json
import re

import pytest

from ailib_anyio import Message, ToolCallCompleted, ToolDefinition, open_client
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply, ScriptedToolCall

pytestmark = pytest.mark.anyio

WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)

# model, base-url attribute of the mock, the auth header the manifest sends, chat paths
DIALECTS = {
    "openai": ("openai/gpt-4o", "openai_base_url", "authorization", "/v1/chat/completions"),
    "anthropic": (
        "anthropic/claude-sonnet-4-5",
        "anthropic_base_url",
        "x-api-key",
        "/v1/messages",
    ),
    "gemini": (
        "gemini/gemini-2.5-flash",
        "gemini_base_url",
        "x-goog-api-key",
        "/v1beta/models/gemini-2.5-flash:",
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["execute", "stream"])
@pytest.mark.parametrize("dialect", list(DIALECTS))
async def test_two_turn_tool_conversation(dialect: str, stream: bool) -> None:
    model, base_attr, auth_header, path = DIALECTS[dialect]
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedReply(
                reasoning="Two cities: two calls.",
                tool_calls=[
                    ScriptedToolCall("get_weather", {"city": "Paris"}),
                    ScriptedToolCall("get_weather", {"city": "Oslo"}),
                ],
            ),
            ScriptedReply(content="Paris 18 °C, Oslo 4 °C."),
        )
        async with open_client(
            model, api_key="secret-key", base_url=getattr(mock, base_attr)
        ) as client:
            question = Message.user("Weather in Paris and Oslo?")
            first_turn = client.chat().messages([question]).tools([WEATHER])
            if stream:
                async with first_turn.stream() as s:
                    completed = [e.tool_call async for e in s if isinstance(e, ToolCallCompleted)]
                first = s.response
                assert list(first.tool_calls) == completed
            else:
                first = await first_turn.execute()
            assert [(c.name, dict(c.arguments)) for c in first.tool_calls] == [
                ("get_weather", {"city": "Paris"}),
                ("get_weather", {"city": "Oslo"}),
            ]
            assert first.finish_reason == "tool_calls"
            assert first.reasoning == "Two cities: two calls."
            results = [
                Message.tool(call.id or "", json.dumps({"temp_c": t}), name=call.name)
                for call, t in zip(first.tool_calls, (18, 4), strict=True)
            ]
            answer = await (
                client.chat()
                .messages([question, first.to_message(), *results])
                .tools([WEATHER])
                .execute()
            )
        assert answer.content == "Paris 18 °C, Oslo 4 °C."
        assert answer.finish_reason == "stop"

    first_request, second_request = mock.requests
    for request in (first_request, second_request):
        assert path in request.path
        assert "secret-key" in request.headers[auth_header]
        assert "secret-key" not in request.path  # never a key in the URL
    if dialect == "gemini":
        assert first_request.path.endswith(
            ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        )
    # the tool results reached the provider in its own format
    body = second_request.json
    ids = [call.id for call in first.tool_calls]
    if dialect == "openai":
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "tool"]
        assert [m["tool_call_id"] for m in body["messages"][2:]] == ids
        assert body["messages"][2]["content"] == '{"temp_c": 18}'
    elif dialect == "anthropic":
        assistant, results = body["messages"][1], body["messages"][2]
        assert assistant["content"][0]["type"] == "thinking"
        assert assistant["content"][0]["signature"] == first.reasoning_signature
        assert [b["tool_use_id"] for b in results["content"]] == ids
        assert results["content"][1]["content"] == '{"temp_c": 4}'
    else:
        parts = body["contents"][2]["parts"]
        assert [p["functionResponse"] for p in parts] == [
            {"name": "get_weather", "response": {"temp_c": 18}},
            {"name": "get_weather", "response": {"temp_c": 4}},
        ]


async def test_missing_tool_call_ids_are_generated_where_the_manifest_says() -> None:
    # Some OpenAI-compatible servers stream tool calls without ids; the next turn needs one.
    call = {"index": 0, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    frames = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    async with MockProvider() as mock:
        mock.enqueue(Reply.sse(frames), Reply.sse(frames))
        compatible = open_client("openai-compatible/llama3", base_url=mock.openai_base_url)
        async with compatible as c, c.chat().user("hi").tools([WEATHER]).stream() as stream:
            async for _ in stream:
                pass
        openai = open_client("openai/gpt-4o", api_key="k", base_url=mock.openai_base_url)
        async with openai as c, c.chat().user("hi").tools([WEATHER]).stream() as plain:
            async for _ in plain:
                pass
    (generated,) = stream.response.tool_calls
    assert generated.id is not None and re.fullmatch(r"call_[0-9a-f]{24}", generated.id)
    assert plain.response.tool_calls[0].id is None  # OpenAI always sends ids: none invented
