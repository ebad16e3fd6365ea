"""Injection through values that become part of the request (issue 10, items 8a and 8b):
model ids in URL path templates, headers= and extra_body. A loopback server records
every request: a refused value must be refused before any I/O, with a typed error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hostile import Answer, HostileServer, Seen

from ailib_anyio import ConfigurationError, Message, ToolDefinition, open_client
from ailib_anyio._core._embeddings import EmbeddingRequest, encode_embeddings
from ailib_anyio._core._encode import EncoderOptions, encode_request
from ailib_anyio._core._types import ChatRequest
from ailib_anyio._core._wire import expand_path
from ailib_anyio._protocol._registry import builtin_protocol_dir

pytestmark = pytest.mark.anyio

KEY = "AIza-injection-test-key"

GEMINI_OK = {
    "candidates": [
        {"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
}
OPENAI_OK = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
}


def answer(seen: Seen) -> Answer:
    if ":streamGenerateContent" in seen.target:
        body = f"data: {json.dumps(GEMINI_OK)}\r\n\r\n".encode()
        return 200, [("content-type", "text/event-stream")], body
    body = json.dumps(GEMINI_OK if ":generateContent" in seen.target else OPENAI_OK).encode()
    return 200, [("content-type", "application/json")], body


# ------------------------------------------------------------------ 8a: URL paths

REFUSED = [
    ("gemini-2.5-flash/../../../admin?x=1#", "it contains '/'"),
    ("gemini-2.5-flash:generateContent?alt=sse&key=", "it contains '?'"),
    ("gemini-2.5-flash#frag", "it contains '#'"),
    ("..", "'..' is a relative path segment"),
    (".", "'.' is a relative path segment"),
    ("a\\..\\admin", "it contains '\\'"),
]


@pytest.mark.parametrize(("model_id", "problem"), REFUSED)
async def test_ids_that_leave_their_path_segment_are_refused_before_io(
    model_id: str, problem: str
) -> None:
    async with HostileServer(answer) as server:
        with pytest.raises(ConfigurationError) as info:
            open_client(f"gemini/{model_id}", api_key=KEY, base_url=server.base_url)
    assert server.requests == []
    assert info.value.message == (
        f"model {model_id!r} cannot go into the URL path '/models/{{model}}:generateContent'"
        f" of provider 'gemini': {problem}, and it must be exactly one path segment"
    )
    assert info.value.provider == "gemini"


@pytest.mark.parametrize("provider", ["gemini", "openai-compatible"])
@pytest.mark.parametrize("model_id", ["gemini-2.5\r\nX-Injected: 1", "m\x00", "m\n", "m\x7f"])
async def test_ids_with_control_characters_are_refused_everywhere(
    provider: str, model_id: str
) -> None:
    async with HostileServer(answer) as server:
        with pytest.raises(ConfigurationError) as info:
            open_client(f"{provider}/{model_id}", api_key=KEY, base_url=server.base_url)
    assert server.requests == []
    err = info.value
    assert str(err) == (
        f"model id {model_id!r} contains a control character; model ids never do ({provider})"
    )
    assert "\n" not in str(err) and "\r" not in str(err) and "\x00" not in str(err)


@pytest.mark.parametrize(
    ("model_id", "segment"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("tuned.model-1:v2@2024_x~y", "tuned.model-1:v2@2024_x~y"),
        ("a%2Fb", "a%252Fb"),  # never decoded twice into a '/'
        ("a b", "a%20b"),
        ("ünï", "%C3%BCn%C3%AF"),
        ("...", "..."),
    ],
)
async def test_legit_ids_are_sent_as_one_encoded_segment(model_id: str, segment: str) -> None:
    async with (
        HostileServer(answer) as server,
        open_client(
            f"gemini/{model_id}", api_key=KEY, base_url=server.base_url, max_retries=0
        ) as client,
    ):
        reply = await client.chat().user("hi").execute()
        async with client.chat().user("hi").stream() as stream:
            async for _ in stream:
                pass
    assert reply.content == "ok"
    assert [r.target for r in server.requests] == [
        f"/models/{segment}:generateContent",
        f"/models/{segment}:streamGenerateContent?alt=sse",
    ]
    assert all(r.headers["x-goog-api-key"] == KEY for r in server.requests)


@pytest.mark.parametrize(
    "model_id", ["meta-llama/Llama-3.1-8B", "openai/gpt-4o", "org/model?x#y/../../z", "llama3:8b"]
)
async def test_ids_that_only_go_into_the_body_are_sent_as_given(model_id: str) -> None:
    async with (
        HostileServer(answer) as server,
        open_client(
            f"openai-compatible/{model_id}", base_url=server.base_url, max_retries=0
        ) as client,
    ):
        await client.chat().user("hi").execute()
    assert [r.target for r in server.requests] == ["/chat/completions"]
    assert json.loads(server.requests[0].body)["model"] == model_id


def test_expand_path_rules() -> None:
    values = {"model": "m-1"}
    assert expand_path("/models/{model}:x?alt=sse", values, provider="p") == "/models/m-1:x?alt=sse"
    assert expand_path("/chat/completions", values, provider="p") == "/chat/completions"
    with pytest.raises(ConfigurationError) as info:
        expand_path("/models/{model}/{region}:x", values, provider="p")
    assert info.value.message == (
        "endpoint path '/models/{model}/{region}:x' of provider 'p' names an unknown"
        " placeholder {region} (known: {model})"
    )
    with pytest.raises(ConfigurationError, match=r"model '' cannot go .*: it is empty"):
        expand_path("/models/{model}", {"model": ""}, provider="p")


def test_a_manifest_with_an_unknown_placeholder_fails_at_open_client(tmp_path: Path) -> None:
    text = (builtin_protocol_dir() / "gemini.yaml").read_text(encoding="utf-8")
    text = text.replace(
        'path: "/models/{model}:generateContent"',
        'path: "/{region}/models/{model}:generateContent"',
    )
    (tmp_path / "gemini.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"unknown placeholder \{region\}"):
        open_client("gemini/gemini-2.5-flash", api_key=KEY, protocol_path=tmp_path)


# ------------------------------------------------------------------ 8b: headers=


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "v\n", "v\r", "v\x00", "v\x7f"])
async def test_header_values_with_control_characters_are_refused(value: str) -> None:
    async with HostileServer(answer) as server:
        with pytest.raises(ConfigurationError) as info:
            open_client(
                "openai/gpt-4o",
                api_key=KEY,
                base_url=server.base_url,
                headers={"X-Custom": value},
            )
    assert server.requests == []
    assert str(info.value) == (
        "headers: the value of header 'X-Custom' contains a control character (CR, LF, NUL"
        " or similar), which no HTTP header can carry"
    )
    assert value not in str(info.value) + repr(info.value)


@pytest.mark.parametrize("name", ["X Bad", "x:y", "", "x\n", "x\r\ny", "é"])
def test_bad_header_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_client("openai/gpt-4o", api_key=KEY, headers={name: "v"})
    assert str(info.value) == (
        f"headers: {name!r} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
    )


def test_header_values_must_be_strings() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_client("openai/gpt-4o", api_key=KEY, headers={"X-N": 1})  # type: ignore[dict-item]
    assert str(info.value) == "headers: the value of header 'X-N' must be a string, got int"
    with pytest.raises(ConfigurationError, match="headers must be a mapping"):
        open_client("openai/gpt-4o", api_key=KEY, headers=[("a", "b")])  # type: ignore[arg-type]


async def test_legit_headers_are_sent() -> None:
    async with (
        HostileServer(answer) as server,
        open_client(
            "openai/gpt-4o",
            api_key=KEY,
            base_url=server.base_url,
            headers={"X-Trace": "a\tb c", "X-Empty": ""},
        ) as client,
    ):
        await client.chat().user("hi").execute()
    assert server.requests[0].headers["x-trace"] == "a\tb c"
    assert server.requests[0].headers["x-empty"] == ""


# ------------------------------------------------------------------ 8b: extra_body


def encode(family: str, **kw: Any) -> dict[str, Any]:
    request = ChatRequest(model="m", messages=(Message.user("hi"),), **kw)
    return encode_request(family, request, EncoderOptions(defaults={"max_tokens": 16}))


TOOL = ToolDefinition("f", "a tool", {"type": "object", "properties": {}})
MANAGED = "extra_body cannot replace what the library encodes: "
HINT = (
    "; set the model with open_client(), streaming with .stream(), messages and tools with"
    " the builder (extra_body may add new keys, also inside these objects)"
)


@pytest.mark.parametrize(
    ("family", "kw", "names"),
    [
        ("openai_chat", {"extra_body": {"model": "other"}}, "'model'"),
        ("openai_chat", {"extra_body": {"stream": True}}, "'stream'"),
        ("openai_chat", {"extra_body": {"stream": False, "model": "x"}}, "'model', 'stream'"),
        ("openai_chat", {"extra_body": {"messages": []}}, "'messages'"),
        ("openai_chat", {"tools": (TOOL,), "extra_body": {"tools": []}}, "'tools'"),
        ("anthropic_messages", {"extra_body": {"messages": [{"role": "user"}]}}, "'messages'"),
        ("gemini_generate", {"extra_body": {"contents": []}}, "'contents'"),
        ("gemini_generate", {"extra_body": {"model": "x"}}, "'model'"),
        (
            "gemini_generate",
            {
                "messages": (Message.system("s"), Message.user("hi")),
                "extra_body": {"systemInstruction": {"parts": []}},
            },
            "'systemInstruction.parts'",
        ),
    ],
)
def test_extra_body_cannot_replace_what_the_library_manages(
    family: str, kw: dict[str, Any], names: str
) -> None:
    if "messages" in kw:
        request = ChatRequest(model="m", **kw)
        with pytest.raises(ConfigurationError) as info:
            encode_request(family, request, EncoderOptions())
    else:
        with pytest.raises(ConfigurationError) as info:
            encode(family, **kw)
    assert info.value.message == MANAGED + names + HINT


def test_extra_body_may_add_to_managed_objects() -> None:
    body = encode("openai_chat", extra_body={"tools": [{"type": "web_search"}], "seed": 1})
    assert body["tools"] == [{"type": "web_search"}]  # the request has no tools of its own
    request = ChatRequest(
        model="m",
        messages=(Message.system("s"), Message.user("hi")),
        extra_body={"systemInstruction": {"role": "user"}},
    )
    body = encode_request("gemini_generate", request, EncoderOptions())
    assert body["systemInstruction"] == {"role": "user", "parts": [{"text": "s"}]}


async def test_extra_body_conflict_is_raised_before_io() -> None:
    async with (
        HostileServer(answer) as server,
        open_client("openai/gpt-4o", api_key=KEY, base_url=server.base_url) as client,
    ):
        with pytest.raises(ConfigurationError) as info:
            await client.chat().user("hi").extra_body({"model": "gpt-5", "n": 2}).execute()
        with pytest.raises(ConfigurationError):
            async with client.chat().user("hi").extra_body({"stream": False}).stream():
                pass
    assert server.requests == []
    assert info.value.message == MANAGED + "'model'" + HINT
    assert (info.value.provider, info.value.model) == ("openai", "gpt-4o")


@pytest.mark.parametrize(
    ("family", "extra", "names"),
    [
        ("openai_embeddings", {"model": "x", "user": "u"}, "'model'"),
        ("openai_embeddings", {"input": ["y"]}, "'input'"),
        ("gemini_embed", {"requests": []}, "'requests'"),
    ],
)
def test_embeddings_extra_body_cannot_replace_model_or_inputs(
    family: str, extra: dict[str, Any], names: str
) -> None:
    request = EmbeddingRequest(model="m", inputs=("a",), extra_body=extra)
    with pytest.raises(ConfigurationError) as info:
        encode_embeddings(family, request)
    assert info.value.message == (
        f"extra_body cannot replace what the library encodes: {names}; set the model with"
        " open_client() and the texts with the inputs"
    )
    allowed = EmbeddingRequest(model="m", inputs=("a",), extra_body={"user": "u"})
    assert encode_embeddings(family, allowed)["user"] == "u"
