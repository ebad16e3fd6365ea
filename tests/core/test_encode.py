"""Tests for the request encoders (``openai_chat``): a unified request -> the exact body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ailib_anyio._core._encode import EncoderOptions, encode_request
from ailib_anyio._core._errors import InvalidRequestError
from ailib_anyio._core._types import (
    ChatRequest,
    ContentBlock,
    Message,
    MessageRole,
    ToolCall,
    ToolDefinition,
)
from ailib_anyio._protocol._registry import ProtocolRegistry

PLAIN = EncoderOptions()


def encode(request: ChatRequest, options: EncoderOptions = PLAIN) -> dict[str, Any]:
    return encode_request("openai_chat", request, options)


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="gpt-4o", messages=messages, **kw)


# -- messages ----------------------------------------------------------------------------------


def test_minimal_request() -> None:
    assert encode(req(Message.user("Hi"))) == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_roles() -> None:
    body = encode(
        req(
            Message.system("Be brief."),
            Message.user("2+2?"),
            Message.assistant("4"),
            Message.user("And 3+3?"),
        )
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]


def test_message_name_is_sent() -> None:
    msg = Message(MessageRole.USER, "hi", name="alice")
    assert encode(req(msg))["messages"] == [{"role": "user", "content": "hi", "name": "alice"}]


def test_multimodal_user_content() -> None:
    msg = Message.user(
        [
            ContentBlock.from_text("What is in these?"),
            ContentBlock.image_url("https://example.com/cat.png"),
            ContentBlock.image_base64(b"\x89PNG", "image/png"),
            ContentBlock.image_base64("AAAA", "image/jpeg"),
            ContentBlock.audio_base64(b"RIFF", "audio/wav"),
            ContentBlock.audio_base64("SUQz", "audio/mpeg"),
            ContentBlock.document_base64(b"%PDF", filename="report.pdf"),
            ContentBlock.document_base64("JVBE", "application/pdf"),
        ]
    )
    assert encode(req(msg))["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
                {
                    "type": "file",
                    "file": {
                        "file_data": "data:application/pdf;base64,JVBERg==",
                        "filename": "report.pdf",
                    },
                },
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
            ],
        }
    ]


def test_user_with_image_helper() -> None:
    assert encode(req(Message.user_with_image("Describe", "https://x/y.png")))["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            ContentBlock(type="audio", url="https://x/a.wav"),
            "openai_chat takes audio as base64 data, not by URL",
        ),
        (
            ContentBlock(type="document", url="https://x/a.pdf"),
            "openai_chat takes documents as base64 data, not by URL",
        ),
    ],
)
def test_unsupported_content_blocks(block: ContentBlock, message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        encode(req(Message.user([block])))
    assert str(info.value) == message


# -- tool calls --------------------------------------------------------------------------------


def test_assistant_tool_calls_and_tool_results() -> None:
    calls = [
        ToolCall("call_a", "get_weather", {"city": "Paris", "units": ["c"]}),
        ToolCall("call_b", "get_time", {}),
    ]
    body = encode(
        req(
            Message.user("Weather and time in Paris?"),
            Message.assistant(None, calls),
            Message.tool("call_a", '{"temp": 21}'),
            Message.tool("call_b", "12:00", name="get_time"),
        )
    )
    assistant, tool_a, tool_b = body["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": assistant_args(assistant, 0)},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            },
        ],
    }
    # arguments travel as a JSON string that parses back to the same object
    assert json.loads(assistant_args(assistant, 0)) == {"city": "Paris", "units": ["c"]}
    assert tool_a == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_a"}
    assert tool_b == {"role": "tool", "content": "12:00", "tool_call_id": "call_b"}


def assistant_args(message: dict[str, Any], i: int) -> str:
    args = message["tool_calls"][i]["function"]["arguments"]
    assert isinstance(args, str)
    return args


def test_tool_call_round_trip_keeps_the_raw_arguments() -> None:
    # A call received from the provider goes back exactly as the provider wrote it.
    raw = '{"city":"Zürich", "days": 3}'
    call = ToolCall("call_1", "forecast", {"city": "Zürich", "days": 3}, raw)
    [_, assistant] = encode(req(Message.user("?"), Message.assistant("", [call])))["messages"]
    assert assistant["content"] == ""
    assert assistant["tool_calls"][0]["function"]["arguments"] == raw


def test_non_ascii_arguments_are_not_escaped() -> None:
    call = ToolCall("call_1", "f", {"q": "naïve ☃"})
    [assistant] = encode(req(Message.assistant(None, [call])))["messages"]
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"q": "naïve ☃"}'


@pytest.mark.parametrize("tool_call_id", [None, ""])
def test_tool_message_requires_tool_call_id(tool_call_id: str | None) -> None:
    msg = Message(MessageRole.TOOL, "42", tool_call_id=tool_call_id)
    with pytest.raises(InvalidRequestError) as info:
        encode(req(Message.user("?"), msg))
    assert str(info.value) == "a tool message needs the tool_call_id it answers"


def test_tool_message_without_content_sends_empty_string() -> None:
    msg = Message(MessageRole.TOOL, None, tool_call_id="call_1")
    assert encode(req(msg))["messages"] == [
        {"role": "tool", "content": "", "tool_call_id": "call_1"}
    ]


WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def test_tools() -> None:
    body = encode(
        req(
            Message.user("?"),
            tools=[WEATHER, ToolDefinition("now"), ToolDefinition("strict_one", strict=True)],
        )
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        },
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
        },
        {
            "type": "function",
            "function": {
                "name": "strict_one",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            },
        },
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "encoded"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choice(choice: str, encoded: Any) -> None:
    body = encode(req(Message.user("?"), tools=[WEATHER], tool_choice=choice))
    assert body["tool_choice"] == encoded


# -- parameters --------------------------------------------------------------------------------


def test_sampling_parameters() -> None:
    body = encode(
        req(Message.user("?"), temperature=0.2, max_tokens=100, top_p=0.9, stop=["\n\n", "END"])
    )
    assert body == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "?"}],
        "temperature": 0.2,
        "max_tokens": 100,
        "top_p": 0.9,
        "stop": ["\n\n", "END"],
    }


def test_zero_values_are_sent() -> None:
    body = encode(req(Message.user("?"), temperature=0.0, top_p=0.0))
    assert body["temperature"] == 0.0
    assert body["top_p"] == 0.0


def test_parameter_mappings_rename() -> None:
    options = EncoderOptions(parameter_mappings={"max_tokens": "max_completion_tokens"})
    body = encode(req(Message.user("?"), max_tokens=64, temperature=1.0), options)
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body
    assert body["temperature"] == 1.0


def test_openai_manifest_renames_max_tokens() -> None:
    manifest = ProtocolRegistry().get("openai")
    assert manifest.api_family == "openai_chat"
    options = EncoderOptions(parameter_mappings=manifest.parameter_mappings)
    body = encode_request(manifest.api_family, req(Message.user("?"), max_tokens=5), options)
    assert body["max_completion_tokens"] == 5
    assert "max_tokens" not in body


def test_response_format() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert encode(req(Message.user("?"), response_format=fmt))["response_format"] == fmt


@pytest.mark.parametrize(
    ("stream", "stream_usage", "expected"),
    [
        (False, False, {}),
        (False, True, {}),
        (True, False, {"stream": True}),
        (True, True, {"stream": True, "stream_options": {"include_usage": True}}),
    ],
)
def test_stream_flags(stream: bool, stream_usage: bool, expected: dict[str, Any]) -> None:
    body = encode(req(Message.user("?"), stream=stream), EncoderOptions(stream_usage=stream_usage))
    extra = {k: v for k, v in body.items() if k not in ("model", "messages")}
    assert extra == expected


def test_extra_body_is_merged_last() -> None:
    body = encode(
        req(
            Message.user("?"),
            temperature=0.5,
            stream=True,
            extra_body={"temperature": 0.1, "seed": 7, "stream_options": {"include_usage": False}},
        ),
        EncoderOptions(stream_usage=True),
    )
    assert body["temperature"] == 0.1
    assert body["seed"] == 7
    assert body["stream_options"] == {"include_usage": False}
    assert body["stream"] is True


def test_encoding_does_not_mutate_the_request() -> None:
    params = {"type": "object", "properties": {}}
    extra = {"seed": 1}
    request = req(Message.user("?"), tools=[ToolDefinition("f", None, params)], extra_body=extra)
    body = encode(request)
    body["tools"][0]["function"]["parameters"]["x"] = 1
    body["seed"] = 2
    assert params == {"type": "object", "properties": {}}
    assert extra == {"seed": 1}


# -- errors ------------------------------------------------------------------------------------


def test_empty_messages() -> None:
    with pytest.raises(InvalidRequestError) as info:
        encode(ChatRequest(model="gpt-4o", messages=[]))
    assert str(info.value) == "a chat request needs at least one message"


def test_unknown_family() -> None:
    with pytest.raises(InvalidRequestError) as info:
        encode_request("smoke_signals", req(Message.user("?")), PLAIN)
    assert str(info.value) == "no request encoder for API family 'smoke_signals'"


@pytest.mark.parametrize(
    ("family", "url", "accepted"),
    [
        ("openai_chat", "https://example.com/cat.png", True),
        ("openai_chat", "upload://abc", False),
        ("anthropic_messages", "https://example.com/doc.pdf", True),
        ("anthropic_messages", "upload://abc", False),
        ("anthropic_messages", "file:///etc/passwd", False),
        ("gemini_generate", "gs://bucket/doc.pdf", True),
        ("gemini_generate", "upload://abc", False),
    ],
)
def test_urls_the_api_cannot_fetch_are_rejected_before_sending(
    family: str, url: str, accepted: bool
) -> None:
    block = (
        ContentBlock.document_url(url) if family != "openai_chat" else ContentBlock.image_url(url)
    )
    request = ChatRequest(model="m", messages=[Message.user([block])], max_tokens=10)
    if accepted:
        assert url in json.dumps(encode_request(family, request, EncoderOptions()))
    else:
        with pytest.raises(InvalidRequestError, match=f"{family} cannot fetch '{url}'"):
            encode_request(family, request, EncoderOptions())


def test_an_assistant_turn_with_nothing_to_send_is_left_out() -> None:
    # found by fuzzing (tests/testing/test_fuzz_encode.py): the encoder sent
    # {"role": "assistant", "content": null}, which the API rejects
    messages = [Message.user("hi"), Message.assistant(reasoning="thought"), Message.user("again")]
    body = encode_request("openai_chat", ChatRequest("m", messages), EncoderOptions())
    assert body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "again"},
    ]
    with pytest.raises(InvalidRequestError, match="at least one message with content"):
        encode_request("openai_chat", ChatRequest("m", [Message.assistant()]), EncoderOptions())
