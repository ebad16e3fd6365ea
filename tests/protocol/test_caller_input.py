"""Bad input from the caller (issue 10): each gets a typed error naming the argument, before
any I/O; local refusals are never ``RemoteError``s; no NaN or infinity reaches the wire."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ailib_anyio
from ailib_anyio import (
    ChatRequest,
    ConfigurationError,
    ContentBlock,
    ContextLengthExceededError,
    InvalidRequestError,
    Message,
    RemoteContextLengthExceededError,
    RemoteError,
    RemoteInvalidRequestError,
    RequestTooLargeError,
    ToolCall,
    ToolDefinition,
    open_client,
)
from ailib_anyio._client._chat import ChatBuilder
from ailib_anyio._client._client import Client
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-test-secret-123"
WEATHER = ToolDefinition("get_weather", "Weather", {"type": "object", "properties": {}})


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def openai(mock: MockProvider, model: str = "openai/gpt-4o") -> Client:
    return open_client(model, api_key=KEY, base_url=mock.openai_base_url, max_retries=0)


def gemini(mock: MockProvider) -> Client:
    return open_client(
        "gemini/gemini-3.8-flash", api_key=KEY, base_url=mock.gemini_base_url, max_retries=0
    )


# -- malformed arguments: ConfigurationError where they are passed ------------------------------

NOT_JSON = "which is not JSON"

#: (what the caller does to a fresh builder, the exact message)
BUILDER_CASES: list[tuple[str, Callable[[ChatBuilder], object], str]] = [
    (
        "user-int",
        lambda b: b.user(123),  # type: ignore[arg-type]
        "content must be a string or a list of ContentBlock, got int",
    ),
    (
        "user-bytes",
        lambda b: b.user(b"hi"),  # type: ignore[arg-type]
        "content must be a string or a list of ContentBlock, got bytes",
    ),
    (
        "user-dict",
        lambda b: b.user({"text": "hi"}),  # type: ignore[arg-type]
        "content must be a string or a list of ContentBlock, got dict",
    ),
    (
        "user-list-of-str",
        lambda b: b.user(["hi"]),  # type: ignore[list-item]
        "content[0] must be a ContentBlock, got str",
    ),
    (
        "message-not-a-message",
        lambda b: b.message("hi"),  # type: ignore[arg-type]
        "message must be a Message, got str",
    ),
    (
        "temperature-nan",
        lambda b: b.temperature(math.nan),
        "temperature must be a finite number, got nan",
    ),
    (
        "temperature-inf",
        lambda b: b.temperature(math.inf),
        "temperature must be a finite number, got inf",
    ),
    ("top-p-neg-inf", lambda b: b.top_p(-math.inf), "top_p must be a finite number, got -inf"),
    (
        "extra-body-nan",
        lambda b: b.extra_body({"options": [1, math.nan]}),
        "extra_body['options'][1] is nan: NaN and infinity are not JSON",
    ),
    (
        "extra-body-object",
        lambda b: b.extra_body({"seed": object()}),
        f"extra_body['seed'] is of type object, {NOT_JSON}",
    ),
    (
        "extra-body-set",
        lambda b: b.extra_body({"stop": {"a"}}),
        f"extra_body['stop'] is of type set, {NOT_JSON}",
    ),
    (
        "extra-body-int-key",
        lambda b: b.extra_body({"logit_bias": {50256: -100}}),  # type: ignore[dict-item]
        "extra_body['logit_bias'] has a key 50256 that is not a string",
    ),
    (
        "extra-body-not-mapping",
        lambda b: b.extra_body([("n", 1)]),  # type: ignore[arg-type]
        "extra_body must be a mapping (a JSON object), got [('n', 1)]",
    ),
    (
        "response-format-str",
        lambda b: b.response_format("json"),  # type: ignore[arg-type]
        "response_format takes a JSON schema (a mapping), an attrs class, or a format such"
        ' as {"type": "json_object"}, got \'json\'',
    ),
    (
        "response-format-inf",
        lambda b: b.response_format({"type": "json_object", "x": math.inf}),
        "response_format['x'] is inf: NaN and infinity are not JSON",
    ),
    (
        "tool-choice-not-str",
        lambda b: b.tool_choice({"name": "f"}),  # type: ignore[arg-type]
        "tool_choice must be a string, got {'name': 'f'}",
    ),
    (
        "tool-choice-unknown",
        lambda b: b.user("q").tools([WEATHER]).tool_choice("get_time").build(),
        "tool_choice 'get_time' names no tool of the request (tools: 'get_weather')",
    ),
    (
        "tool-choice-without-tools",
        lambda b: b.user("q").tool_choice("get_time").build(),
        "tool_choice 'get_time' names no tool of the request (tools: none are set)",
    ),
    ("stop-int", lambda b: b.stop(7), "stop sequences must be strings, got 7"),  # type: ignore[arg-type]
    (
        "stop-list-of-int",
        lambda b: b.stop(["a", 7]),  # type: ignore[arg-type]
        "stop sequences must be strings, got 7",
    ),
    ("timeout-inf", lambda b: b.timeout(math.inf), "timeout must be a finite number, got inf"),
    ("timeout-zero", lambda b: b.timeout(0), "timeout must be a positive number, got 0"),
    (
        "tools-not-definitions",
        lambda b: b.tools([{"name": "f"}]),  # type: ignore[list-item]
        "tools must be ToolDefinition objects, got dict",
    ),
]


@pytest.mark.parametrize(
    ("make", "message"), [(c[1], c[2]) for c in BUILDER_CASES], ids=[c[0] for c in BUILDER_CASES]
)
async def test_builder_refuses_bad_arguments_before_io(
    mock: MockProvider, make: Callable[[ChatBuilder], object], message: str
) -> None:
    async with openai(mock) as client:
        with pytest.raises(ConfigurationError) as info:
            make(client.chat())
        assert info.value.message == message
        assert not isinstance(info.value, RemoteError)
    assert mock.requests == []


#: (what the caller builds, the exact message), for data classes made by hand
CONSTRUCTOR_CASES: list[tuple[str, Callable[[], object], str]] = [
    (
        "role-wizard",
        lambda: Message("wizard", "hi"),  # type: ignore[arg-type]
        "role must be one of 'system', 'user', 'assistant', 'tool', got 'wizard'",
    ),
    (
        "image-without-url-or-data",
        lambda: ContentBlock(type="image"),
        "ContentBlock(type='image') needs a url or data, got neither",
    ),
    (
        "image-base64-none",
        lambda: ContentBlock.image_base64(None),  # type: ignore[arg-type]
        "ContentBlock(type='image') needs a url or data, got neither",
    ),
    (
        "text-without-text",
        lambda: ContentBlock(type="text"),
        "ContentBlock(type='text') needs text, got None",
    ),
    (
        "block-type-video",
        lambda: ContentBlock(type="video", url="https://x/v.mp4"),  # type: ignore[arg-type]
        "ContentBlock type must be one of text, image, audio, document, got 'video'",
    ),
    (
        "block-url-bytes",
        lambda: ContentBlock(type="image", url=b"https://x"),  # type: ignore[arg-type]
        "ContentBlock url must be a string, got bytes",
    ),
    (
        "tool-parameters-str",
        lambda: ToolDefinition("f", "d", '{"type": "object"}'),  # type: ignore[arg-type]
        "tool 'f' parameters must be a JSON schema object (a mapping), got str",
    ),
    (
        "tool-parameters-list",
        lambda: ToolDefinition("f", "d", ["city"]),  # type: ignore[arg-type]
        "tool 'f' parameters must be a JSON schema object (a mapping), got list",
    ),
    (
        "tool-parameters-nan",
        lambda: ToolDefinition("f", None, {"type": "number", "maximum": math.nan}),
        "tool 'f' parameters['maximum'] is nan: NaN and infinity are not JSON",
    ),
    (
        "tool-name-empty",
        lambda: ToolDefinition(""),
        "a tool's name must be a non-empty string, got ''",
    ),
    (
        "tool-name-none",
        lambda: ToolDefinition(None),  # type: ignore[arg-type]
        "a tool's name must be a non-empty string, got None",
    ),
    (
        "tool-call-id-int",
        lambda: Message.tool(7, "42"),  # type: ignore[arg-type]
        "tool_call_id must be a string, got int",
    ),
]


@pytest.mark.parametrize(
    ("make", "message"),
    [(c[1], c[2]) for c in CONSTRUCTOR_CASES],
    ids=[c[0] for c in CONSTRUCTOR_CASES],
)
def test_data_classes_refuse_bad_arguments(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make()
    assert info.value.message == message


def test_role_accepts_its_string_values() -> None:
    assert Message("user", "hi") == Message.user("hi")  # type: ignore[arg-type]


# -- problems found when the request is checked or encoded: still before any I/O ---------------


async def test_tool_message_without_tool_call_id(mock: MockProvider) -> None:
    async with openai(mock) as client:
        for call_id in (None, ""):
            builder = client.chat().user("q").tool_result(call_id, "42")  # type: ignore[arg-type]
            with pytest.raises(InvalidRequestError) as info:
                await builder.execute()
            assert info.value.message == "a tool message needs the tool_call_id it answers"
            assert not isinstance(info.value, RemoteError)
            assert info.value.status_code is None
    assert mock.requests == []


async def test_several_choices_are_refused(mock: MockProvider) -> None:
    async with openai(mock) as client:
        with pytest.raises(ConfigurationError) as info:
            await client.chat().user("q").extra_body({"n": 2}).execute()
        assert info.value.message == (
            "extra_body['n']=2 asks for several choices, but a response holds one: "
            "leave it at 1 and send several requests"
        )
        assert (info.value.provider, info.value.model) == ("openai", "gpt-4o")
    async with gemini(mock) as client:
        extra = {"generationConfig": {"candidateCount": 3}}
        with pytest.raises(ConfigurationError) as info:
            await client.chat().user("q").extra_body(extra).execute()
        assert info.value.message.startswith(
            "extra_body['generationConfig']['candidateCount']=3 asks for several choices"
        )
    assert mock.requests == []
    async with openai(mock) as client:  # n=1 is one choice: it goes
        mock.enqueue(ScriptedReply(content="one"))
        response = await client.chat().user("q").extra_body({"n": 1}).execute()
    assert response.content == "one"
    assert mock.requests[0].json["n"] == 1


async def test_tool_call_arguments_with_nan_never_reach_the_wire(mock: MockProvider) -> None:
    call = ToolCall("c1", "get_weather", {"lat": math.nan})
    async with openai(mock) as client:
        turn = client.chat().user("q").assistant(None, [call]).tool_result("c1", "rain")
        with pytest.raises(ConfigurationError) as info:
            await turn.execute()
        assert info.value.message == (
            "tool call 'get_weather' arguments['lat'] is nan: NaN and infinity are not JSON"
        )
    async with gemini(mock) as client:
        turn = client.chat().user("q").assistant(None, [call]).tool_result("c1", "rain")
        with pytest.raises(ConfigurationError) as info:
            await turn.execute()
        assert info.value.message == (
            "the request body['contents'][1]['parts'][0]['functionCall']['args']['lat'] is nan:"
            " NaN and infinity are not JSON"
        )
    assert mock.requests == []


async def test_lone_surrogate_is_a_typed_error(mock: MockProvider) -> None:
    async with openai(mock) as client:
        with pytest.raises(ConfigurationError) as info:
            await client.chat().user("a\ud800b").execute()
    assert info.value.message == (
        "the request body['messages'][0]['content'] holds a lone surrogate, which UTF-8 "
        "cannot encode"
    )
    assert mock.requests == []


async def test_hand_made_requests_get_the_builder_checks(mock: MockProvider) -> None:
    bad = [
        (
            ChatRequest("gpt-4o", [Message.user("q")], tool_choice="nope"),
            "tool_choice 'nope' names no tool of the request (tools: none are set)",
        ),
        (
            ChatRequest("gpt-4o", [Message.user("q")], temperature=math.inf),
            "temperature must be a finite number, got inf",
        ),
        (
            ChatRequest("gpt-4o", [Message.user("q")], extra_body={"x": math.nan}),
            "extra_body['x'] is nan: NaN and infinity are not JSON",
        ),
        (
            ChatRequest("gpt-4o", ["hi"]),  # type: ignore[list-item]
            "messages[0] must be a Message, got 'hi'",
        ),
    ]
    async with openai(mock) as client:
        outcome = await client.batch([request for request, _ in bad])
    assert outcome.failed_indices == (0, 1, 2, 3)
    for (_, message), error in zip(bad, outcome.results, strict=True):
        assert isinstance(error, ConfigurationError)
        assert error.message == message
    assert mock.requests == []


# -- base_url ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("api.example.com/v1", "base_url must start with http:// or https://"),
        ("ftp://example.com", "base_url must start with http:// or https://"),
        ("https://", "base_url has no host"),
        ("https://:8080/v1", "base_url has no host"),
        ("https://example.com:99999/v1", "base_url is not a valid URL (Port out of range 0-65535)"),
        ("https://example.com:0/v1", "base_url port must be 1-65535"),
        ("https://example.com:http/v1", "base_url is not a valid URL"),
        ("http://[::1/v1", "base_url is not a valid URL (Invalid IPv6 URL)"),
        ("https://exa mple.com/v1", "base_url must not contain whitespace or control characters"),
        ("https://example.com/v1\n", "base_url must not contain whitespace or control characters"),
        ("https://example.com/v1?x=1", "base_url must not have a query or fragment"),
    ],
)
async def test_malformed_base_url(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_client("openai/gpt-4o", api_key=KEY, base_url=url)
    assert info.value.message.startswith(message)
    assert info.value.message.endswith(f"got {url!r}")


async def test_base_url_not_a_string() -> None:
    with pytest.raises(ConfigurationError, match=r"^base_url must be a string, got bytes$"):
        open_client("openai/gpt-4o", api_key=KEY, base_url=b"https://x")  # type: ignore[arg-type]


async def test_good_base_urls_still_work(mock: MockProvider) -> None:
    for url in (mock.openai_base_url, mock.openai_base_url + "/", "https://[::1]:8443/v1"):
        open_client("openai/gpt-4o", api_key=KEY, base_url=url)


# -- context window ---------------------------------------------------------------------------


async def test_prompt_clearly_over_the_context_window(mock: MockProvider) -> None:
    # gpt-4o: 128000 tokens; 6 non-space characters a token is the lower bound.
    prompt = "x" * (6 * 128_000 + 6)
    async with openai(mock) as client:
        with pytest.raises(ContextLengthExceededError) as info:
            await client.chat().system("be brief").user(prompt).execute()
    error = info.value
    assert error.message == (
        # 768006 of the prompt, 7 of the system message
        "the prompt is at least 128002 tokens (768013 characters besides whitespace), "
        "more than gpt-4o's context window of 128000 tokens"
    )
    assert not isinstance(error, RemoteError)
    assert isinstance(error, RequestTooLargeError) and isinstance(error, InvalidRequestError)
    assert (error.status_code, error.provider, error.kind) == (None, "openai", "request_too_large")
    assert not error.fallbackable and not error.retryable
    assert mock.requests == []


async def test_prompt_not_clearly_over_is_sent(mock: MockProvider) -> None:
    # Just under the bound, and a long run of whitespace (one token in many tokenizers):
    # neither is refused here; the provider decides.
    near = "x" * (6 * 128_000)
    spaces = " " * (7 * 128_000) + "hi"
    mock.enqueue(ScriptedReply(content="a"), ScriptedReply(content="b"))
    async with openai(mock) as client:
        assert (await client.chat().user(near).execute()).content == "a"
        assert (await client.chat().user(spaces).execute()).content == "b"
    assert len(mock.requests) == 2


async def test_preflight_checker_reports_context_length(mock: MockProvider) -> None:
    from ailib_anyio import PreflightChecker

    async with openai(mock) as client:
        issues = PreflightChecker(client).issues(client.chat().user("x" * 800_000))
    assert [issue.check for issue in issues] == ["context_length"]
    assert isinstance(issues[0].error, ContextLengthExceededError)
    assert not isinstance(issues[0].error, RemoteError)


# -- item 9: what was found locally is not a RemoteError; what the provider said is ----------


async def test_local_and_remote_invalid_requests(mock: MockProvider) -> None:
    async with openai(mock) as client:
        with pytest.raises(InvalidRequestError) as local:
            await client.chat().user("hi").temperature(3.5).execute()
        assert mock.requests == []
        mock.enqueue(Reply.error(400, "Invalid value for 'temperature'"))
        with pytest.raises(InvalidRequestError) as remote:
            await client.chat().user("hi").execute()
        mock.enqueue(Reply.error(400, "Too long", code="context_length_exceeded"))
        with pytest.raises(ContextLengthExceededError) as too_long:
            await client.chat().user("hi").execute()
    assert type(local.value) is InvalidRequestError
    assert not isinstance(local.value, RemoteError)
    assert local.value.status_code is None
    assert type(remote.value) is RemoteInvalidRequestError
    assert isinstance(remote.value, RemoteError)
    assert remote.value.status_code == 400
    assert type(too_long.value) is RemoteContextLengthExceededError
    assert isinstance(too_long.value, RemoteError)
    assert too_long.value.kind == "request_too_large"


def test_remote_classes_are_both() -> None:
    from ailib_anyio import RemoteRequestTooLargeError
    from ailib_anyio._core._errors import error_class_for_kind

    assert error_class_for_kind("invalid_request") is RemoteInvalidRequestError
    assert error_class_for_kind("request_too_large") is RemoteRequestTooLargeError
    assert error_class_for_kind("invalid_request", context_length=True) is (
        RemoteContextLengthExceededError
    )
    assert issubclass(RemoteRequestTooLargeError, RequestTooLargeError)
    assert issubclass(RemoteContextLengthExceededError, RemoteRequestTooLargeError)
    for cls in (InvalidRequestError, RequestTooLargeError, ContextLengthExceededError):
        assert not issubclass(cls, RemoteError)
    assert RemoteContextLengthExceededError("m").kind == "request_too_large"


def test_errors_docstring_draws_the_tree() -> None:
    doc = ailib_anyio._core._errors.__doc__ or ""
    for name in ("RemoteInvalidRequestError", "RemoteContextLengthExceededError"):
        assert name in doc


# -- no NaN or infinity on the wire, whatever the float -----------------------------------------


@functools.cache
def _offline_client() -> Client:
    """A client that is never opened: ``_encode`` makes the wire bytes without I/O."""
    return open_client("openai/gpt-4o", api_key=KEY, base_url="http://127.0.0.1:9/v1")


def _strict_json(content: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} on the wire")

    return json.loads(content, parse_constant=refuse)


@given(
    temperature=st.floats(allow_nan=True, allow_infinity=True),
    extra=st.dictionaries(
        st.text(max_size=5), st.floats(allow_nan=True, allow_infinity=True), max_size=3
    ),
)
def test_no_float_reaches_the_wire_as_nan_or_infinity(
    temperature: float, extra: dict[str, float]
) -> None:
    client = _offline_client()
    finite = math.isfinite(temperature) and all(math.isfinite(v) for v in extra.values())
    in_range = 0 <= temperature <= 2  # the openai manifest's range

    def encode() -> bytes:
        builder = client.chat().user("q").temperature(temperature)
        return client.primary.encode(builder.extra_body({"metadata": extra, **extra}).build())

    if not finite:
        with pytest.raises(ConfigurationError, match=r"finite number|NaN and infinity"):
            encode()
        return
    if not in_range:
        with pytest.raises(InvalidRequestError, match="outside the range") as info:
            encode()
        assert not isinstance(info.value, RemoteError)
        return
    body = _strict_json(encode())
    assert body["temperature"] == temperature
    assert body["metadata"] == extra


async def test_nan_request_never_reaches_the_mock(mock: MockProvider) -> None:
    async with openai(mock) as client:
        for make in (
            lambda: client.chat().user("q").temperature(math.nan),
            lambda: client.chat().user("q").extra_body({"temperature": math.inf}),
        ):
            with pytest.raises(ConfigurationError):
                await make().execute()
        request = ChatRequest("gpt-4o", [Message.user("q")], top_p=math.nan)
        outcome = await client.batch([request])
        assert isinstance(outcome.results[0], ConfigurationError)
    assert mock.requests == []


# -- item 15: py.typed, docstrings that run ------------------------------------------------------


def test_py_typed_ships() -> None:
    package = Path(ailib_anyio.__file__).parent
    assert (package / "py.typed").is_file()


def test_content_block_docstring_example_runs() -> None:
    doc = ContentBlock.__doc__ or ""
    lines = [line.strip() for line in doc.splitlines() if line.strip().startswith("ContentBlock.")]
    assert len(lines) == 3
    for line in lines:
        assert isinstance(eval(line), ContentBlock)
