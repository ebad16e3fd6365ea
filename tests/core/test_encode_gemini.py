"""Tests for the ``gemini_generate`` request encoder: a unified request -> the exact body of
``POST /v1beta/models/{model}:generateContent`` (and ``:streamGenerateContent``)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from conformance import shared_dir
from hypothesis import given, settings
from hypothesis import strategies as st

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
    return encode_request("gemini_generate", request, options)


def req(*messages: Message, **kw: Any) -> ChatRequest:
    return ChatRequest(model="gemini-2.5-flash", messages=messages, **kw)


def contents_of(*messages: Message, **kw: Any) -> Any:
    return encode(req(*messages, **kw))["contents"]


def error_of(request: ChatRequest, options: EncoderOptions = PLAIN) -> str:
    with pytest.raises(InvalidRequestError) as info:
        encode(request, options)
    return str(info.value)


WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


# -- contents and system -----------------------------------------------------------------------


def test_minimal_request_has_neither_model_nor_stream() -> None:
    # The model and streaming are in the URL: the body is the same either way.
    expected = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    assert encode(req(Message.user("Hi"))) == expected
    assert encode(req(Message.user("Hi"), stream=True)) == expected


def test_system_and_roles() -> None:
    body = encode(
        req(
            Message.system("Be brief."),
            Message.user("2+2?"),
            Message.assistant("4", reasoning="easy"),
            Message.system("Answer in French."),
            Message.user("And 3+3?"),
        )
    )
    assert body == {
        "systemInstruction": {"parts": [{"text": "Be brief.\n\nAnswer in French."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "2+2?"}]},
            {"role": "model", "parts": [{"text": "4"}]},
            {"role": "user", "parts": [{"text": "And 3+3?"}]},
        ],
    }


def test_text_signature_goes_back_on_the_last_text_part() -> None:
    msg = Message(
        MessageRole.ASSISTANT,
        [ContentBlock.from_text("a"), ContentBlock.from_text("b")],
        reasoning="thoughts",
        reasoning_signature="sig",
    )
    assert contents_of(Message.user("?"), msg)[1] == {
        "role": "model",
        "parts": [{"text": "a"}, {"text": "b", "thoughtSignature": "sig"}],
    }
    # no text to carry it (a call keeps its own signature): it is not sent
    calls = [ToolCall("c1", "f", {}, signature="call-sig", id_generated=True)]
    msg = Message.assistant(None, calls, reasoning_signature="sig")
    assert contents_of(Message.user("?"), msg)[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "call-sig"}],
    }


def test_consecutive_same_role_messages_are_merged() -> None:
    assert contents_of(
        Message.user("one"),
        Message.system("s"),
        Message.user([ContentBlock.from_text("two")]),
        Message.assistant("three"),
        Message.assistant("four"),
    ) == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}, {"text": "four"}]},
    ]


def test_empty_text_parts_and_empty_model_turns_are_left_out() -> None:
    assert contents_of(
        Message.user(""),
        Message.user("hi"),
        Message.assistant(None, reasoning="unsent"),
        Message.user("there"),
    ) == [{"role": "user", "parts": [{"text": "hi"}, {"text": "there"}]}]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [Message.user(""), Message.assistant("a")],
            "gemini_generate cannot send an empty user message",
        ),
        ([Message.system("only")], "gemini_generate needs at least one message with content"),
        ([], "a chat request needs at least one message"),
        (
            [Message(MessageRole.SYSTEM, [ContentBlock.image_url("https://x/y.png")])],
            "gemini_generate takes only text in system messages, not image",
        ),
    ],
)
def test_message_errors(messages: list[Message], message: str) -> None:
    assert error_of(req(*messages)) == message


# -- multimodal --------------------------------------------------------------------------------


def test_multimodal_parts() -> None:
    msg = Message.user(
        [
            ContentBlock.from_text("What is in these?"),
            ContentBlock.image_base64(b"\x89PNG", "image/png"),
            ContentBlock.audio_base64("UklG", "audio/wav"),
            ContentBlock.document_base64("JVBE"),
            ContentBlock(type="document", data="JVBE"),
            ContentBlock.image_url("data:image/webp;base64,UklG"),
            ContentBlock.image_url("https://example.com/cat.JPG?size=large#top"),
            ContentBlock(type="image", url="gs://bucket/cat", media_type="image/png"),
            ContentBlock(type="document", url="https://example.com/paper.pdf"),
            ContentBlock(type="audio", url="https://example.com/a.mp3"),
        ]
    )
    assert contents_of(msg) == [
        {
            "role": "user",
            "parts": [
                {"text": "What is in these?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
                {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
                {
                    "fileData": {
                        "mimeType": "image/jpeg",
                        "fileUri": "https://example.com/cat.JPG?size=large#top",
                    }
                },
                {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cat"}},
                {
                    "fileData": {
                        "mimeType": "application/pdf",
                        "fileUri": "https://example.com/paper.pdf",
                    }
                },
                {"fileData": {"mimeType": "audio/mp3", "fileUri": "https://example.com/a.mp3"}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            ContentBlock.image_url("https://example.com/picture"),
            "gemini_generate needs a media_type for image URLs whose extension names none",
        ),
        (
            ContentBlock.image_url("https://example.com/v1.2/picture"),
            "gemini_generate needs a media_type for image URLs whose extension names none",
        ),
        (
            ContentBlock(type="image", data="AAAA"),
            "gemini_generate needs the media_type of base64 image data",
        ),
        (
            ContentBlock(type="audio", data="AAAA"),
            "gemini_generate needs the media_type of base64 audio data",
        ),
        (
            ContentBlock.image_url("data:image/png;utf8,<svg/>"),
            "gemini_generate takes data: URLs only when they are base64",
        ),
    ],
)
def test_unsupported_content_blocks(block: ContentBlock, message: str) -> None:
    assert error_of(req(Message.user([block]))) == message


# -- function calling --------------------------------------------------------------------------


def test_two_turn_tool_conversation() -> None:
    calls = [
        ToolCall("call_a", "get_weather", {"city": "Paris"}, signature="sig-a"),
        ToolCall("call_b", "get_time", {"zone": {"name": "CET"}}),
    ]
    body = encode(
        req(
            Message.system("Use tools."),
            Message.user("Weather and time in Paris?"),
            Message.assistant("Let me look.", calls, reasoning="two lookups"),
            Message.tool("call_a", '{"temp": 21}'),
            Message.tool("call_b", "12:00", name="get_time"),
            tools=[WEATHER, ToolDefinition("get_time", "Local time")],
            tool_choice="auto",
            max_tokens=2048,
        )
    )
    assert body == {
        "systemInstruction": {"parts": [{"text": "Use tools."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Let me look."},
                    {
                        "functionCall": {
                            "id": "call_a",
                            "name": "get_weather",
                            "args": {"city": "Paris"},
                        },
                        "thoughtSignature": "sig-a",
                    },
                    {
                        "functionCall": {
                            "id": "call_b",
                            "name": "get_time",
                            "args": {"zone": {"name": "CET"}},
                        }
                    },
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "call_a",
                            "name": "get_weather",
                            "response": {"temp": 21},
                        }
                    },
                    {
                        "functionResponse": {
                            "id": "call_b",
                            "name": "get_time",
                            "response": {"result": "12:00"},
                        }
                    },
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather for a city",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                    {"name": "get_time", "description": "Local time"},
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {"maxOutputTokens": 2048},
    }


@pytest.mark.parametrize(
    ("content", "response"),
    [
        ('{"temp": 21, "unit": "C"}', {"temp": 21, "unit": "C"}),
        ("[1, 2]", {"result": "[1, 2]"}),
        ("42", {"result": "42"}),
        ("not json", {"result": "not json"}),
        ("", {"result": ""}),
        (None, {"result": ""}),
        ([ContentBlock.from_text('{"a":'), ContentBlock.from_text(" 1}")], {"a": 1}),
    ],
)
def test_function_response_is_always_an_object(content: Any, response: Any) -> None:
    msg = Message(MessageRole.TOOL, content, tool_call_id="c1", name="f")
    assert contents_of(Message.user("?"), msg)[0]["parts"][1] == {
        "functionResponse": {"name": "f", "response": response}
    }


def test_function_response_name_comes_from_the_matching_call() -> None:
    contents = contents_of(
        Message.user("?"),
        Message.assistant(None, [ToolCall("c1", "first", {})]),
        Message.tool("c1", "1"),
        Message.assistant(None, [ToolCall("c2", "second", {})]),
        Message.tool("c2", "2"),
        Message.tool("c1", "again"),
    )
    names = [
        p["functionResponse"]["name"]
        for c in contents
        for p in c["parts"]
        if "functionResponse" in p
    ]
    assert names == ["first", "second", "first"]


def test_function_response_without_a_name() -> None:
    assert error_of(req(Message.user("?"), Message.tool("c9", "1"))) == (
        "gemini_generate cannot match tool result 'c9' to a function: no earlier assistant"
        " turn has a tool call with that id; send the assistant turn with its tool_calls"
        " before the result, or set the tool message's name"
    )


def test_function_call_without_id_answered_by_name() -> None:
    contents = contents_of(
        Message.user("?"),
        Message.assistant(None, [ToolCall(None, "f", {})]),
        Message(MessageRole.TOOL, "ok", name="f"),
    )
    assert contents[1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "f", "response": {"result": "ok"}}}],
        },
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        ("get_weather", {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
def test_tool_choice(choice: str, config: dict[str, Any]) -> None:
    body = encode(req(Message.user("?"), tools=[WEATHER], tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_function_declarations() -> None:
    body = encode(
        req(
            Message.user("?"),
            tools=[
                ToolDefinition("now"),
                ToolDefinition("shout", "", {"type": "OBJECT", "properties": {}}),
                ToolDefinition("anything", None, {"type": "string"}),
            ],
        )
    )
    # functions without arguments go without parameters: Gemini rejects empty properties
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "now"},
                {"name": "shout", "description": ""},
                {"name": "anything", "parameters": {"type": "string"}},
            ]
        }
    ]


# -- generation config -------------------------------------------------------------------------


def test_generation_config() -> None:
    body = encode(
        req(Message.user("?"), temperature=0.0, max_tokens=100, top_p=0.9, stop=["\n\n", "END"])
    )
    assert body["generationConfig"] == {
        "temperature": 0.0,
        "topP": 0.9,
        "maxOutputTokens": 100,
        "stopSequences": ["\n\n", "END"],
    }


def test_defaults_are_not_required_by_gemini() -> None:
    body = encode(req(Message.user("?")), EncoderOptions(defaults={"max_tokens": 10}))
    assert "generationConfig" not in body


def test_parameter_mappings_from_the_upstream_v1_manifest() -> None:
    # Plain names rename in place, dotted names are paths from the top of the body: both
    # spellings of the upstream manifest land where Gemini wants them.
    options = EncoderOptions(
        parameter_mappings={
            "temperature": "generationConfig.temperature",
            "max_tokens": "generationConfig.maxOutputTokens",
            "top_p": "generationConfig.topP",
            "stop": "stopSequences",
            "tools": "tools",
            "tool_choice": "toolConfig",
        }
    )
    request = req(
        Message.user("?"),
        temperature=0.5,
        max_tokens=5,
        top_p=0.1,
        stop=["x"],
        tools=[WEATHER],
        tool_choice="none",
    )
    assert encode(request, options) == encode(request)


def test_gemini_manifest_selects_this_encoder() -> None:
    manifest = ProtocolRegistry().get("gemini")
    assert manifest.api_family == "gemini_generate"
    options = EncoderOptions(parameter_mappings=manifest.parameter_mappings)
    body = encode_request(manifest.api_family, req(Message.user("?"), max_tokens=5), options)
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "?"}]}],
        "generationConfig": {"maxOutputTokens": 5},
    }


def test_parameter_mapping_to_another_place() -> None:
    options = EncoderOptions(parameter_mappings={"max_tokens": "maxTokens", "top_p": "sampling.p"})
    body = encode(req(Message.user("?"), max_tokens=5, top_p=0.1), options)
    assert body["generationConfig"] == {"maxTokens": 5}
    assert body["sampling"] == {"p": 0.1}


SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("fmt", "config"),
    [
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}},
            {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA},
        ),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        ({"type": "text"}, None),
    ],
)
def test_response_format(fmt: dict[str, Any], config: dict[str, Any] | None) -> None:
    body = encode(req(Message.user("?"), response_format=fmt))
    assert body.get("generationConfig") == config


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ({"type": "xml"}, "gemini_generate cannot encode response_format 'xml'"),
        ({}, "gemini_generate cannot encode response_format None"),
        (
            {"type": "json_schema", "json_schema": {"name": "a"}},
            "gemini_generate needs response_format json_schema.schema to be a JSON schema object",
        ),
        (
            {"type": "json_schema", "schema": SCHEMA},
            "gemini_generate needs response_format json_schema.schema to be a JSON schema object",
        ),
    ],
)
def test_response_format_errors(fmt: dict[str, Any], message: str) -> None:
    assert error_of(req(Message.user("?"), response_format=fmt)) == message


def test_extra_body_is_merged_last_and_recursively() -> None:
    body = encode(
        req(
            Message.user("?"),
            temperature=0.5,
            max_tokens=100,
            extra_body={
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "temperature": 1.0},
                "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}],
            },
        )
    )
    assert body["generationConfig"] == {
        "temperature": 1.0,
        "maxOutputTokens": 100,
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]


def test_encoding_does_not_share_state_with_the_request() -> None:
    params = {"type": "object", "properties": {"a": {"type": "string"}}}
    args = {"a": {"b": 1}}
    extra = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}
    request = req(
        Message.user("?"),
        Message.assistant(None, [ToolCall("t1", "f", args)]),
        Message.tool("t1", "ok"),
        tools=[ToolDefinition("f", None, params)],
        extra_body=extra,
    )
    body = encode(request)
    body["tools"][0]["functionDeclarations"][0]["parameters"]["properties"]["a"]["x"] = 1
    body["contents"][1]["parts"][0]["functionCall"]["args"]["a"]["b"] = 2
    body["generationConfig"]["thinkingConfig"]["thinkingBudget"] = 9
    assert params == {"type": "object", "properties": {"a": {"type": "string"}}}
    assert args == {"a": {"b": 1}}
    assert extra == {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}


# -- the conformance corpus's recorded requests -------------------------------------------------

RECORDED = {
    "gemini/generate_text": req(Message.user("What is 4200 + 42?")),
    "gemini/error_429_resource_exhausted": req(Message.user("Hello")),
    "gemini/stream_text_sse": req(Message.user("What is 4200 + 42?"), stream=True),
    "gemini/generate_max_tokens": req(Message.user("List all U.S. states."), max_tokens=50),
    "gemini/generate_safety_blocked": req(
        Message.system("You hate the world!"),
        Message.user("Tell me a joke about a Brazilians."),
        extra_body={
            "generationConfig": {},
            "safetySettings": [
                {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_LOW_AND_ABOVE"}
            ],
            "systemInstruction": {"role": "user"},
        },
    ),
}


@pytest.mark.parametrize("case_id", sorted(RECORDED))
def test_recorded_request_bodies(case_id: str) -> None:
    root = shared_dir()
    if root is None:
        pytest.skip("../shared/conformance not found")
    yaml = pytest.importorskip("yaml")
    path = root / "conformance" / "cases" / f"{case_id}.yaml"
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert encode(RECORDED[case_id]) == case["request"]["body"]


# -- property ----------------------------------------------------------------------------------

KNOWN_KEYS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
}
GENERATION_KEYS = {
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "responseMimeType",
    "responseJsonSchema",
    "candidateCount",
    "seed",
    "thinkingConfig",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
# mostly valid input, with the occasional empty text or block the API cannot take
texts = st.one_of(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8), st.just(""))
tool_results = st.one_of(texts, json_values.map(json.dumps))
blocks = st.one_of(
    texts.map(ContentBlock.from_text),
    texts.map(ContentBlock.from_text),
    st.sampled_from(
        [
            ContentBlock.image_url("https://x/a.png"),
            ContentBlock.image_base64("AAAA", "image/jpeg"),
            ContentBlock.audio_base64("AAAA"),
            ContentBlock.document_base64("JVBE"),
            ContentBlock(type="document", url="https://x/a.pdf"),
        ]
    ),
    st.sampled_from(
        [ContentBlock(type="image", data="AAAA"), ContentBlock.image_url("https://x/a")]
    ),
)
contents = st.one_of(texts, st.lists(blocks, min_size=1, max_size=3), st.just(None))


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """System, user and assistant messages; an assistant's tool calls are followed by results."""
    out = [Message.user(draw(st.text(min_size=1, max_size=8)))]
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["system", "user", "assistant", "tools"]))
        if kind == "system":
            out.append(Message(MessageRole.SYSTEM, draw(st.one_of(texts, st.none()))))
        elif kind == "user":
            out.append(Message(MessageRole.USER, draw(contents)))
        elif kind == "assistant":
            out.append(
                Message.assistant(
                    draw(st.one_of(st.none(), texts)),
                    reasoning=draw(st.one_of(st.none(), texts)),
                    reasoning_signature=draw(st.one_of(st.none(), texts)),
                )
            )
        else:
            names = draw(st.lists(st.sampled_from(["f", "g", "h"]), min_size=1, max_size=3))
            calls = [
                ToolCall(
                    draw(st.sampled_from([f"call_{i}_{j}", None])),
                    name,
                    draw(st.dictionaries(st.text(max_size=4), json_values, max_size=3)),
                    signature=draw(st.one_of(st.none(), texts)),
                )
                for j, name in enumerate(names)
            ]
            out.append(Message.assistant(draw(st.one_of(st.none(), texts)), calls))
            for j, call in enumerate(calls):
                named = draw(st.booleans()) or call.id is None
                out.append(
                    Message(
                        MessageRole.TOOL,
                        draw(tool_results),
                        tool_call_id=call.id or f"unknown_{j}",
                        name=call.name if named else None,
                    )
                )
    return out


@st.composite
def requests(draw: st.DrawFn) -> ChatRequest:
    fmt = st.sampled_from(
        [
            None,
            None,
            {"type": "text"},
            {"type": "json_object"},
            {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
        ]
    )
    return ChatRequest(
        model="gemini",
        messages=draw(conversations()),
        temperature=draw(st.one_of(st.none(), st.floats(0, 2))),
        max_tokens=draw(st.one_of(st.none(), st.integers(1, 10_000))),
        top_p=draw(st.one_of(st.none(), st.floats(0, 1))),
        stop=draw(st.lists(texts, max_size=2)),
        tools=draw(
            st.lists(st.builds(ToolDefinition, st.sampled_from(["f", "g", "h"])), max_size=2)
        ),
        tool_choice=draw(st.one_of(st.none(), st.sampled_from(["auto", "none", "required", "f"]))),
        response_format=draw(fmt),
        stream=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(requests())
def test_encoder_returns_json_or_invalid_request(request: ChatRequest) -> None:
    try:
        body = encode(request)
    except InvalidRequestError:
        return
    assert set(body) <= KNOWN_KEYS
    assert set(body.get("generationConfig", {})) <= GENERATION_KEYS
    assert json.loads(json.dumps(body)) == body
    roles = [c["role"] for c in body["contents"]]
    assert set(roles) <= {"user", "model"}
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert all(c["parts"] for c in body["contents"])
    for content in body["contents"]:
        for part in content["parts"]:
            if "functionResponse" in part:
                assert isinstance(part["functionResponse"]["response"], dict)


def test_a_generated_id_pairs_the_result_but_is_not_sent() -> None:
    """Gemini before 3 sends calls without ids; the generated one (``id_generated``) pairs
    the result with its call, and neither part carries it."""
    call = ToolCall("call_made_up", "get_weather", {"city": "Paris"}, id_generated=True)
    contents = contents_of(
        Message.user("?"), Message.assistant(None, [call]), Message.tool("call_made_up", "18")
    )
    assert contents[1:] == [
        {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "18"}}}],
        },
    ]


def test_the_id_wins_over_the_tool_message_name() -> None:
    contents = contents_of(
        Message.user("?"),
        Message.assistant(None, [ToolCall("g1", "f", {}), ToolCall("g2", "f", {})]),
        Message.tool("g2", "two", name="wrong"),
        Message.tool("g1", "one"),
    )
    assert contents[2]["parts"] == [
        {"functionResponse": {"id": "g2", "name": "f", "response": {"result": "two"}}},
        {"functionResponse": {"id": "g1", "name": "f", "response": {"result": "one"}}},
    ]


def test_an_unknown_id_falls_back_to_the_name() -> None:
    contents = contents_of(
        Message.user("?"),
        Message.assistant(None, [ToolCall("g1", "f", {})]),
        Message.tool("elsewhere", "x", name="h"),
    )
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "h", "response": {"result": "x"}}}
    ]


def test_a_tool_result_without_id_or_name() -> None:
    msg = Message(MessageRole.TOOL, "1")
    assert error_of(req(Message.user("?"), msg)) == (
        "gemini_generate needs the function name of a tool result without tool_call_id:"
        " set the tool message's name"
    )
