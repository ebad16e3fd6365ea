"""Structured output end to end, against the loopback mock provider in its three dialects,
on asyncio and trio: the body each dialect sends for a schema (OpenAI ``response_format``
with strict, Gemini ``responseJsonSchema``, Anthropic a forced tool call), replies parsed
into attrs instances, mismatches raised as ``StructuredOutputError``, streams parsed at
their end, and JSON mode without a schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.from_thread
import attrs
import pytest

from ailib_anyio import (
    ContentDelta,
    Finished,
    InvalidRequestError,
    StructuredOutputError,
    ToolDefinition,
    Usage,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio.testing import MockProvider, ScriptedReply, ScriptedToolCall

pytestmark = pytest.mark.anyio


@attrs.define
class Item:
    name: str
    price: float


@attrs.define
class Order:
    id: int
    items: list[Item]
    note: str | None = None


GOOD = {"id": 7, "items": [{"name": "tea", "price": 2.5}, {"name": "cake", "price": 4}]}
PARSED = Order(7, [Item("tea", 2.5), Item("cake", 4.0)])
#: the price of the third item is a string: the reply breaks the schema at $.items[2].price
BAD = {
    "id": 7,
    "items": [{"name": "a", "price": 1}, {"name": "b", "price": 2}, {"name": "c", "price": "3"}],
}

ITEM = {
    "title": "Item",
    "type": "object",
    "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
    "required": ["name", "price"],
}
#: the schema generated for Order
ORDER = {
    "title": "Order",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
    "required": ["id", "items"],
    "$defs": {"Item": ITEM},
}
#: ... as OpenAI's strict mode takes it
ORDER_STRICT = {
    "title": "Order",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "$defs": {"Item": {**ITEM, "additionalProperties": False}},
    "additionalProperties": False,
    "required": ["id", "items", "note"],
}
REPLY_TOOL = "Give your reply by calling this tool: its input is the reply."

MODELS = {
    "openai": "openai/gpt-4o",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}

#: what each dialect's request body says for ``response_format(Order)``
SCHEMA_BODIES: dict[str, dict[str, Any]] = {
    "openai": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Order", "schema": ORDER_STRICT, "strict": True},
        }
    },
    "anthropic": {
        "tools": [{"name": "Order", "description": REPLY_TOOL, "input_schema": ORDER}],
        "tool_choice": {"type": "tool", "name": "Order"},
    },
    "gemini": {
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": ORDER,
        }
    },
}

#: ... and for JSON mode
JSON_MODE_BODIES: dict[str, dict[str, Any]] = {
    "openai": {"response_format": {"type": "json_object"}},
    "anthropic": {
        "tools": [
            {"name": "json_response", "description": REPLY_TOOL, "input_schema": {"type": "object"}}
        ],
        "tool_choice": {"type": "tool", "name": "json_response"},
    },
    "gemini": {"generationConfig": {"responseMimeType": "application/json"}},
}
_STRUCTURED_KEYS = ("response_format", "tools", "tool_choice", "generationConfig")


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    before = len(anyio.get_running_tasks())
    async with MockProvider() as server:
        yield server
    assert len(anyio.get_running_tasks()) == before


@pytest.fixture(params=list(MODELS))
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(mock: MockProvider, dialect: str) -> Client:
    base_url = getattr(mock, f"{dialect}_base_url")
    return open_client(MODELS[dialect], api_key="sk-test", base_url=base_url, max_retries=0)


def answer(dialect: str, value: Any, tool: str = "Order", **kw: Any) -> ScriptedReply:
    """The model answering ``value`` as the dialect does for structured output: Anthropic
    by calling the reply tool, the others in the content."""
    if dialect == "anthropic":
        return ScriptedReply(tool_calls=[ScriptedToolCall(tool, value)], **kw)
    return ScriptedReply(content=json.dumps(value), **kw)


def structured_part(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in _STRUCTURED_KEYS if key in body}


# -- requests and replies ----------------------------------------------------------------------


async def test_schema_request_and_parsed_reply(mock: MockProvider, dialect: str) -> None:
    mock.enqueue(answer(dialect, GOOD))
    async with client_for(mock, dialect) as client:
        reply = await client.chat().user("My order?").response_format(Order).execute()
    assert structured_part(mock.requests[-1].json) == SCHEMA_BODIES[dialect]
    assert reply.parsed == PARSED
    assert json.loads(reply.content) == GOOD
    assert reply.tool_calls == ()
    assert reply.finish_reason == "stop"


async def test_a_reply_that_does_not_match(mock: MockProvider, dialect: str) -> None:
    mock.enqueue(answer(dialect, BAD))
    async with client_for(mock, dialect) as client:
        with pytest.raises(StructuredOutputError) as info:
            await client.chat().user("My order?").response_format(Order).execute()
    error = info.value
    assert error.path == "$.items[2].price"
    assert error.problem == "'3' is not of type 'number'"
    assert json.loads(error.raw_text) == BAD
    assert error.response is not None and error.response.content == error.raw_text
    assert error.model == MODELS[dialect].split("/")[1]
    assert str(error).startswith(
        "the reply does not match the schema 'Order' at $.items[2].price:"
        " '3' is not of type 'number'"
    )


async def test_a_reply_that_is_not_json(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="Sure! Here is your order: tea."))
    async with client_for(mock, "openai") as client:
        with pytest.raises(StructuredOutputError) as info:
            await client.chat().user("My order?").response_format(Order).execute()
    assert info.value.path == "$"
    assert info.value.raw_text == "Sure! Here is your order: tea."
    assert str(info.value).startswith("the reply is not valid JSON (Expecting value")


async def test_streamed_reply_is_parsed_at_the_end(mock: MockProvider, dialect: str) -> None:
    mock.enqueue(answer(dialect, GOOD, chunk_size=5))
    async with (
        client_for(mock, dialect) as client,
        client.chat().user("My order?").response_format(Order).stream() as stream,
    ):
        events = [event async for event in stream]
        assert structured_part(mock.requests[-1].json) == SCHEMA_BODIES[dialect]
        response = stream.response
    kinds = {type(event) for event in events}
    assert kinds <= {ContentDelta, Usage, Finished}  # a reply-tool call comes as content
    text = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert json.loads(text) == GOOD
    assert response.content == text
    assert response.parsed == PARSED
    assert response.finish_reason == "stop"


async def test_streamed_mismatch_is_raised_at_the_end(mock: MockProvider, dialect: str) -> None:
    mock.enqueue(answer(dialect, BAD))
    async with (
        client_for(mock, dialect) as client,
        client.chat().user("My order?").response_format(Order).stream() as stream,
    ):
        seen = []
        with pytest.raises(StructuredOutputError) as info:
            async for event in stream:
                seen.append(event)
        assert any(isinstance(e, Finished) for e in seen)  # every event came first
        assert stream.response.parsed is None
        assert json.loads(stream.response.content) == BAD
        assert [e async for e in stream] == []  # raised once, then the end
    assert info.value.path == "$.items[2].price"
    assert json.loads(info.value.raw_text) == BAD


async def test_a_stream_left_early_is_not_parsed(mock: MockProvider) -> None:
    mock.enqueue(answer("openai", GOOD, chunk_size=3))
    async with (
        client_for(mock, "openai") as client,
        client.chat().user("?").response_format(Order).stream() as stream,
    ):
        async for _ in stream:
            break
        assert stream.response.parsed is None


async def test_json_mode(mock: MockProvider, dialect: str) -> None:
    value = {"colors": ["red", "green"], "count": 2}
    mock.enqueue(answer(dialect, value, tool="json_response"))
    mock.enqueue(answer(dialect, value, tool="json_response"))
    async with client_for(mock, dialect) as client:
        reply = await client.chat().user("Colors as JSON").json_mode().execute()
        assert structured_part(mock.requests[-1].json) == JSON_MODE_BODIES[dialect]
        assert reply.parsed == value
        async with client.chat().user("Colors as JSON").json_mode().stream() as stream:
            async for _ in stream:
                pass
        assert stream.response.parsed == value


async def test_json_mode_as_a_format_mapping(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="[1, 2, 3]"))
    async with client_for(mock, "openai") as client:
        reply = await client.chat().user("json").response_format({"type": "json_object"}).execute()
    assert mock.requests[-1].json["response_format"] == {"type": "json_object"}
    assert reply.parsed == [1, 2, 3]


async def test_a_dict_schema_gives_the_checked_json_value(mock: MockProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city"],
    }
    mock.enqueue(ScriptedReply(content='{"city": "Tokyo", "population": 37400068}'))
    mock.enqueue(ScriptedReply(content='{"population": 1}'))
    async with client_for(mock, "openai") as client:
        reply = await client.chat().user("?").response_format(schema, name="city").execute()
        assert mock.requests[-1].json["response_format"] == {
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "schema": {
                    **schema,
                    "additionalProperties": False,
                    "required": ["city", "population"],
                },
                "strict": True,
            },
        }
        assert reply.parsed == {"city": "Tokyo", "population": 37400068}
        with pytest.raises(StructuredOutputError) as info:
            await client.chat().user("?").response_format(schema).execute()
    assert (info.value.path, info.value.problem) == ("$", "'city' is a required property")


async def test_a_tool_call_reply_is_left_for_the_tool_loop(
    mock: MockProvider, dialect: str
) -> None:
    weather = ToolDefinition(
        "get_weather", None, {"type": "object", "properties": {"city": {"type": "string"}}}
    )
    mock.enqueue(ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})]))
    async with client_for(mock, dialect) as client:
        builder = client.chat().user("Order tea if sunny").tools([weather])
        reply = await builder.response_format(Order).execute()
    assert reply.parsed is None
    assert [call.name for call in reply.tool_calls] == ["get_weather"]


async def test_a_model_without_structured_output_is_refused_before_io(
    mock: MockProvider,
) -> None:
    async with open_client(
        "groq/llama-3.3-70b-versatile", api_key="k", base_url=mock.openai_base_url
    ) as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.chat().user("?").response_format(Order).execute()
    assert str(info.value).startswith("llama-3.3-70b-versatile does not support structured output")
    assert mock.requests == []


async def test_fallback_to_another_family_gets_its_own_encoding(mock: MockProvider) -> None:
    from ailib_anyio.testing import Reply

    mock.enqueue(Reply.error(503, "busy"), answer("anthropic", GOOD))
    async with open_client(
        "openai/gpt-4o",
        api_key="k",
        base_url=mock.openai_base_url,
        max_retries=0,
        fallbacks=[
            open_client(
                "anthropic/claude-sonnet-4-5", api_key="k2", base_url=mock.anthropic_base_url
            )
        ],
    ) as client:
        reply = await client.chat().user("My order?").response_format(Order).execute()
    assert "response_format" in mock.requests[0].json
    assert structured_part(mock.requests[1].json) == SCHEMA_BODIES["anthropic"]
    assert reply.parsed == PARSED


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sync_client_parses_too(backend: str) -> None:
    from ailib_anyio.sync import open_client as open_sync_client

    # A plain synchronous test: the mock runs in a blocking portal (a thread of its own).
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(MockProvider()) as mock,
    ):
        mock.enqueue(answer("openai", GOOD))
        with open_sync_client(
            "openai/gpt-4o",
            api_key="k",
            base_url=mock.openai_base_url,
            max_retries=0,
            backend=backend,
        ) as client:
            reply = client.chat().user("?").response_format(Order).execute()
    assert reply.parsed == PARSED
