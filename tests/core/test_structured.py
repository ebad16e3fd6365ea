"""Structured output in the sans-IO core: the JSON schema of an attrs class, its adaptation
to strict mode, how each API family sends a response format (native field or forced tool
call, as the manifest's ``structured_output`` says), and the parsing and validation of the
reply, with jsonschema and with the built-in validator."""

from __future__ import annotations

import enum
import json
import sys
from typing import Any, Literal, Optional

import attrs
import pytest

from ailib_anyio import StructuredOutputError
from ailib_anyio._core._encode import EncoderOptions, encode_request
from ailib_anyio._core._errors import ConfigurationError, InvalidRequestError
from ailib_anyio._core._structured import (
    StructuredOutputRules,
    ToolReplyEvents,
    json_schema_of,
    response_format_for,
    schema_problem,
    strict_schema,
    structured_reply,
)
from ailib_anyio._core._types import (
    ChatRequest,
    ChatResponse,
    ContentDelta,
    Finished,
    FinishReason,
    Message,
    ToolCall,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallStarted,
    ToolDefinition,
)
from ailib_anyio._protocol._registry import ProtocolRegistry


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


@attrs.define
class Item:
    """A line of an order."""

    name: str
    price: float = attrs.field(validator=attrs.validators.ge(0))
    tags: list[str] = attrs.field(factory=list)


@attrs.define
class Order:
    id: int
    items: list[Item]
    size: Size
    note: Optional[str] = None  # noqa: UP045 - the spelling users write too
    kind: Literal["pickup", "delivery"] = "pickup"


@attrs.define
class Node:
    value: int
    children: list[Node] = attrs.field(factory=list)


ITEM_SCHEMA = {
    "title": "Item",
    "description": "A line of an order.",
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "price": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}, "default": []},
    },
    "required": ["name", "price"],
}

ORDER_SCHEMA = {
    "title": "Order",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "size": {"$ref": "#/$defs/Size"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "kind": {"enum": ["delivery", "pickup"], "default": "pickup"},
    },
    "required": ["id", "items", "size"],
    "$defs": {
        "Item": ITEM_SCHEMA,
        "Size": {"title": "Size", "enum": ["large", "small"]},
    },
}

#: ORDER_SCHEMA as strict mode takes it: every object closed, every property required,
#: ``default`` left out, the enum typed
ORDER_STRICT = {
    "title": "Order",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "size": {"$ref": "#/$defs/Size"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "kind": {"enum": ["delivery", "pickup"], "type": "string"},
    },
    "$defs": {
        "Item": {
            "title": "Item",
            "description": "A line of an order.",
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "price": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": False,
            "required": ["name", "price", "tags"],
        },
        "Size": {"title": "Size", "enum": ["large", "small"], "type": "string"},
    },
    "additionalProperties": False,
    "required": ["id", "items", "size", "note", "kind"],
}

GOOD = {"id": 7, "items": [{"name": "tea", "price": 2.5}], "size": "small"}


def req(**kw: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=(Message.user("?"),), **kw)


def order_request() -> ChatRequest:
    fmt, cls = response_format_for(Order)
    return req(response_format=fmt, output_type=cls)


@pytest.fixture(params=["jsonschema", "builtin"])
def validator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each validation test runs with jsonschema and with the built-in validator."""
    if request.param == "builtin":
        monkeypatch.setitem(sys.modules, "jsonschema", None)  # import fails
    return str(request.param)


# -- the schema of an attrs class -------------------------------------------------------------


def test_schema_of_an_attrs_class_has_its_root_inlined() -> None:
    assert json_schema_of(Order) == ORDER_SCHEMA


def test_a_recursive_class_keeps_its_definition_for_the_references() -> None:
    schema = json_schema_of(Node)
    assert schema["type"] == "object"
    assert schema["properties"]["children"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Node"},
        "default": [],
    }
    assert schema["$defs"]["Node"]["properties"] == schema["properties"]


class Opaque:
    pass


@attrs.define
class Holder:
    thing: Opaque


def test_schema_of_an_unsupported_field_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        json_schema_of(Holder)
    assert str(info.value).startswith("no JSON schema for Holder: Generating JSON schema for")


def test_schema_of_a_class_whose_annotation_does_not_resolve() -> None:
    @attrs.define
    class Local:
        thing: Unknown  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(ConfigurationError) as info:
        json_schema_of(Local)
    assert str(info.value) == (
        "no JSON schema for test_schema_of_a_class_whose_annotation_does_not_resolve.<locals>"
        ".Local: name 'Unknown' is not defined"
    )


def test_schema_of_a_class_without_msgspec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)
    monkeypatch.setitem(sys.modules, "msgspec.json", None)
    with pytest.raises(ConfigurationError) as info:
        response_format_for(Order)
    assert str(info.value) == (
        "the JSON schema of an attrs class is generated with msgspec: install it with"
        " pip install 'ailib-anyio[structured]', or pass a JSON schema dict"
    )


# -- building a response format ----------------------------------------------------------------


def test_response_format_of_a_class() -> None:
    fmt, cls = response_format_for(Order, strict=False)
    assert cls is Order
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "Order", "schema": ORDER_SCHEMA, "strict": False},
    }


def test_response_format_of_a_dict_schema_is_named_by_title_or_given_name() -> None:
    schema = {"title": "My result!", "type": "object", "properties": {}}
    fmt, cls = response_format_for(schema)
    assert cls is None
    assert fmt == {"type": "json_schema", "json_schema": {"name": "My_result_", "schema": schema}}
    fmt, _ = response_format_for({"type": "array"}, name="rows")
    assert fmt["json_schema"] == {"name": "rows", "schema": {"type": "array"}}
    fmt, _ = response_format_for({"type": "array"})
    assert fmt["json_schema"]["name"] == "response"


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "json_object"},
        {"type": "text"},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    ],
)
def test_an_openai_style_format_is_taken_as_written(fmt: dict[str, Any]) -> None:
    assert response_format_for(fmt) == (fmt, None)


@pytest.mark.parametrize(
    ("value", "kw", "message"),
    [
        (
            "json",
            {},
            "response_format takes a JSON schema (a mapping), an attrs class, or a format such"
            ' as {"type": "json_object"}, got \'json\'',
        ),
        (int, {}, "response_format takes a JSON schema (a mapping), an attrs class, or a"),
        (
            {"type": "json_object"},
            {"strict": True},
            "response_format name= and strict= go with a JSON schema, not 'json_object'",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x"}},
            {},
            'response_format {"type": "json_schema"} needs json_schema.schema, a JSON schema'
            " object, got {'type': 'json_schema', 'json_schema': {'name': 'x'}}",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "strin"}}},
            {},
            "response_format schema is not a valid JSON schema at $.properties.a.type:",
        ),
        (Order, {"name": ""}, "response_format name must be a non-empty string, got ''"),
        (Order, {"strict": 1}, "response_format strict must be True or False, got 1"),
    ],
)
def test_bad_response_formats(value: Any, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        response_format_for(value, **kw)
    assert str(info.value).startswith(message)


# -- strict mode --------------------------------------------------------------------------------


def test_strict_adaptation_closes_objects_and_requires_every_property() -> None:
    assert strict_schema(ORDER_SCHEMA) == (ORDER_STRICT, None)


def test_strict_adaptation_leaves_the_original_alone() -> None:
    before = json.dumps(ORDER_SCHEMA, sort_keys=True)
    strict_schema(ORDER_SCHEMA)
    assert json.dumps(ORDER_SCHEMA, sort_keys=True) == before


def test_strict_adaptation_drops_keywords_strict_mode_rejects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 2, "pattern": "^[A-Z]+$", "examples": ["AB"]},
            "n": {"type": "integer", "minimum": 0, "default": 1},
        },
    }
    assert strict_schema(schema) == (
        {
            "type": "object",
            "properties": {
                "code": {"type": "string", "pattern": "^[A-Z]+$"},
                "n": {"type": "integer", "minimum": 0},
            },
            "additionalProperties": False,
            "required": ["code", "n"],
        },
        None,
    )


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (
            {"type": "object", "properties": {"m": {"type": "object"}}},
            "strict mode takes no free-form objects (no properties) (at $.properties.m)",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "m": {"type": "object", "additionalProperties": {"type": "integer"}}
                },
            },
            "strict mode takes no open objects (additionalProperties) (at $.properties.m)",
        ),
        (
            {"type": "object", "properties": {"t": {"type": "array", "prefixItems": []}}},
            "strict mode does not support prefixItems (at $.properties.t)",
        ),
        (
            {"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}]}}},
            "strict mode does not support oneOf (at $.properties.x)",
        ),
        (
            {"type": "object", "properties": {"x": {}}},
            "strict mode needs a type for every schema (at $.properties.x)",
        ),
        ({"type": "array", "items": {"type": "string"}}, "strict mode needs an object at the root"),
    ],
)
def test_schemas_strict_mode_cannot_express(schema: dict[str, Any], reason: str) -> None:
    adapted, why = strict_schema(schema)
    assert adapted is None
    assert why is not None and why.startswith(reason)


def test_a_class_with_a_free_form_mapping_cannot_be_strict() -> None:
    @attrs.define
    class Counts:
        counts: dict[str, int]

    assert strict_schema(json_schema_of(Counts)) == (
        None,
        "strict mode takes no open objects (additionalProperties) (at $.properties.counts)",
    )


# -- encoding, by the rules of each shipped manifest ---------------------------------------------


def options_of(provider: str) -> tuple[str, EncoderOptions]:
    manifest = ProtocolRegistry().resolve(f"{provider}/some-model").manifest
    rules = manifest.structured_output
    assert rules is not None
    return manifest.api_family, EncoderOptions(defaults={"max_tokens": 100}, structured=rules)


def encode_for(provider: str, request: ChatRequest) -> dict[str, Any]:
    family, options = options_of(provider)
    return encode_request(family, request, options)


def test_openai_sends_the_schema_adapted_to_strict_mode() -> None:
    body = encode_for("openai", order_request())
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Order", "schema": ORDER_STRICT, "strict": True},
    }
    assert "tools" not in body


def test_openai_sends_a_schema_strict_mode_cannot_express_as_written() -> None:
    schema = {"type": "object", "properties": {"m": {"type": "object"}}}
    fmt, _ = response_format_for(schema, name="free")
    body = encode_for("openai", req(response_format=fmt))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "free", "schema": schema},
    }


def test_strict_asked_by_the_request_for_a_schema_it_cannot_take_is_an_error() -> None:
    fmt, _ = response_format_for({"type": "object", "properties": {"m": {"type": "object"}}})
    fmt["json_schema"]["strict"] = True
    with pytest.raises(InvalidRequestError) as info:
        encode_for("gemini", req(response_format=fmt))
    assert str(info.value) == (
        "response_format asks for strict: true, but strict mode cannot express the schema:"
        " strict mode takes no free-form objects (no properties) (at $.properties.m)"
    )


def test_strict_false_in_the_request_overrides_the_manifest() -> None:
    fmt, _ = response_format_for(Order, strict=False)
    body = encode_for("openai", req(response_format=fmt))
    assert body["response_format"]["json_schema"] == {
        "name": "Order",
        "schema": ORDER_SCHEMA,
        "strict": False,
    }


def test_gemini_sends_the_schema_as_written_in_generation_config() -> None:
    body = encode_for("gemini", order_request())
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": ORDER_SCHEMA,
    }
    assert "tools" not in body and "toolConfig" not in body


def test_anthropic_forces_a_call_of_a_tool_named_after_the_schema() -> None:
    body = encode_for("anthropic", order_request())
    assert body["tools"] == [
        {
            "name": "Order",
            "description": "Give your reply by calling this tool: its input is the reply.",
            "input_schema": ORDER_SCHEMA,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "Order"}
    assert "response_format" not in body


def test_anthropic_json_mode_is_a_tool_taking_any_object() -> None:
    body = encode_for("anthropic", req(response_format={"type": "json_object"}))
    assert body["tools"] == [
        {
            "name": "json_response",
            "description": "Give your reply by calling this tool: its input is the reply.",
            "input_schema": {"type": "object"},
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_an_openai_chat_manifest_may_ask_for_the_tool_mode() -> None:
    # DeepSeek's JSON output takes no schema: its manifest says schema: tool.
    body = encode_for("deepseek", order_request())
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Order",
                "parameters": ORDER_SCHEMA,
                "description": "Give your reply by calling this tool: its input is the reply.",
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Order"}}
    assert "response_format" not in body
    # ... and keeps JSON mode native
    body = encode_for("deepseek", req(response_format={"type": "json_object"}))
    assert body["response_format"] == {"type": "json_object"}


def test_tool_mode_with_strict_marks_the_tool_strict() -> None:
    rules = StructuredOutputRules(schema="tool", strict=True)
    body = encode_request("openai_chat", order_request(), EncoderOptions(structured=rules))
    function = body["tools"][0]["function"]
    assert function["parameters"] == ORDER_STRICT
    assert function["strict"] is True


def test_tool_mode_beside_the_requests_own_tools_requires_a_tool_call() -> None:
    weather = ToolDefinition("get_weather", None, {"type": "object", "properties": {}})
    request = attrs.evolve(order_request(), tools=(weather,), tool_choice="auto")
    body = encode_for("anthropic", request)
    assert [tool["name"] for tool in body["tools"]] == ["get_weather", "Order"]
    assert body["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"tools": (ToolDefinition("f"),), "tool_choice": "none"},
            "anthropic_messages sends structured output as a forced tool call, which cannot go"
            " with tool_choice 'none'",
        ),
        (
            {"response_format": response_format_for({"type": "array"})[0]},
            "anthropic_messages sends structured output as a forced tool call, whose input is"
            " a JSON object: the schema's root type must be \"object\", not 'array'",
        ),
    ],
)
def test_what_the_tool_mode_cannot_send(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        encode_for("anthropic", attrs.evolve(order_request(), **change))
    assert str(info.value) == message


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_schema_named_like_a_tool_of_the_request(provider: str) -> None:
    request = attrs.evolve(order_request(), tools=(ToolDefinition("Order"),))
    with pytest.raises(InvalidRequestError) as info:
        encode_for(provider, request)
    assert str(info.value) == (
        "the response format is named 'Order', like a tool of the request: give the schema"
        " another name (response_format(..., name=...))"
    )


def test_without_a_manifest_section_the_family_decides() -> None:
    rules = StructuredOutputRules()
    assert rules.mode("json_schema", "openai_chat") == "native"
    assert rules.mode("json_object", "gemini_generate") == "native"
    assert rules.mode("json_schema", "anthropic_messages") == "tool"
    body = encode_request(
        "anthropic_messages", order_request(), EncoderOptions(defaults={"max_tokens": 5})
    )
    assert body["tool_choice"] == {"type": "tool", "name": "Order"}


def test_encoding_never_changes_the_request() -> None:
    request = order_request()
    before = json.dumps(attrs.asdict(request, recurse=True), sort_keys=True, default=str)
    for provider in ("openai", "anthropic", "gemini", "deepseek"):
        encode_for(provider, request)
    after = json.dumps(attrs.asdict(request, recurse=True), sort_keys=True, default=str)
    assert after == before


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        (
            {**GOOD, "items": [GOOD["items"][0], GOOD["items"][0], {"name": "x", "price": "1"}]},
            "$.items[2].price",
            "'1' is not of type 'number'",
        ),
        ({"id": 1, "size": "small"}, "$", "'items' is a required property"),
        ({**GOOD, "id": True}, "$.id", "True is not of type 'integer'"),
        ({**GOOD, "size": "huge"}, "$.size", "'huge' is not one of ['large', 'small']"),
        ({**GOOD, "note": 3}, "$.note", ""),
        ([], "$", "[] is not of type 'object'"),
    ],
)
def test_schema_problems(validator: str, value: Any, path: str, problem: str) -> None:
    found = schema_problem(ORDER_SCHEMA, value)
    assert found is not None
    assert found[0] == path
    assert found[1].startswith(problem)


@pytest.mark.parametrize(
    "value", [GOOD, {**GOOD, "id": 3.0, "note": None, "kind": "delivery", "extra": [1]}]
)
def test_matching_values(validator: str, value: Any) -> None:
    assert schema_problem(ORDER_SCHEMA, value) is None


@pytest.mark.parametrize(
    ("schema", "value", "path"),
    [
        ({"type": "string", "minLength": 2}, "a", "$"),
        ({"type": "string", "maxLength": 1}, "ab", "$"),
        ({"type": "string", "pattern": "^a"}, "ba", "$"),
        ({"type": "number", "minimum": 1}, 0, "$"),
        ({"type": "number", "exclusiveMaximum": 1}, 1, "$"),
        ({"type": "number", "multipleOf": 0.5}, 0.7, "$"),
        ({"type": "array", "maxItems": 1}, [1, 2], "$"),
        ({"type": "array", "uniqueItems": True}, [1, 1.0], "$"),
        ({"type": "array", "prefixItems": [{"type": "integer"}], "items": False}, [1, 2], "$"),
        ({"type": "array", "prefixItems": [{"type": "integer"}]}, ["a"], "$[0]"),
        ({"const": "x"}, "y", "$"),
        ({"enum": [1]}, True, "$"),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, "$"),
        ({"allOf": [{"type": "object", "required": ["a"]}]}, {}, "$"),
        ({"properties": {"a b": {"type": "string"}}}, {"a b": 1}, "$['a b']"),
        ({"additionalProperties": False}, {"a": 1}, "$"),
        ({"additionalProperties": {"type": "string"}}, {"a": 1}, "$.a"),
    ],
)
def test_keyword_problems(validator: str, schema: dict[str, Any], value: Any, path: str) -> None:
    found = schema_problem(schema, value)
    assert found is not None
    assert found[0] == path


def test_the_builtin_validator_survives_a_reference_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    assert schema_problem({"$ref": "#"}, 1) == (
        "$",
        "the schema or the reply nests too deeply to check",
    )


# -- the reply -----------------------------------------------------------------------------------


def reply_error(request: ChatRequest, response: ChatResponse) -> StructuredOutputError:
    with pytest.raises(StructuredOutputError) as info:
        structured_reply(request, response)
    return info.value


def test_a_matching_reply_is_structured_into_the_class(validator: str) -> None:
    response = structured_reply(order_request(), ChatResponse(content=json.dumps(GOOD)))
    assert response.parsed == Order(7, [Item("tea", 2.5)], Size.SMALL)


def test_a_reply_that_breaks_the_schema(validator: str) -> None:
    bad = {**GOOD, "items": [{"name": "tea", "price": 1}, {"name": "cake", "price": "x"}]}
    text = json.dumps(bad)
    error = reply_error(order_request(), ChatResponse(content=text, model="gpt-4o"))
    assert error.path == "$.items[1].price"
    assert error.problem == "'x' is not of type 'number'"
    assert error.raw_text == text
    assert error.model == "gpt-4o"
    assert error.response is not None and error.response.content == text
    assert str(error) == (
        "the reply does not match the schema 'Order' at $.items[1].price:"
        " 'x' is not of type 'number' (gpt-4o)"
    )


def test_a_reply_the_class_refuses() -> None:
    bad = {**GOOD, "items": [{"name": "tea", "price": -1}]}
    error = reply_error(order_request(), ChatResponse(content=json.dumps(bad)))
    assert error.path == "$.items[0]"
    assert error.problem == "invalid value: 'price' must be >= 0: -1.0"
    assert error.kind == "structured_output"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (ChatResponse(content='{"id": 7,'), "the reply is not valid JSON (Expecting"),
        (
            ChatResponse(content='{"id": 7,', finish_reason=FinishReason("length", "length")),
            "the reply is not valid JSON (Expecting property name enclosed in double quotes:"
            " line 1 column 10 (char 9)) (the reply was cut off: finish_reason length)",
        ),
        (ChatResponse(content=" "), "the reply is empty"),
        (ChatResponse(refusal="I can't."), "no structured reply: the model refused: I can't."),
    ],
)
def test_replies_that_are_not_json(response: ChatResponse, message: str) -> None:
    error = reply_error(order_request(), response)
    assert str(error).startswith(message)
    assert error.path == "$"
    assert error.raw_text == response.content


def test_json_mode_parses_any_json() -> None:
    request = req(response_format={"type": "json_object"})
    assert structured_reply(request, ChatResponse(content="[1, 2]")).parsed == [1, 2]


def test_a_dict_schema_gives_the_json_value() -> None:
    fmt, _ = response_format_for(ORDER_SCHEMA)
    response = structured_reply(req(response_format=fmt), ChatResponse(content=json.dumps(GOOD)))
    assert response.parsed == GOOD


def test_text_and_no_format_are_left_alone() -> None:
    response = ChatResponse(content="plain")
    assert structured_reply(req(), response) is response
    assert structured_reply(req(response_format={"type": "text"}), response) is response


def test_a_tool_mode_reply_is_unwrapped() -> None:
    call = ToolCall("toolu_1", "Order", GOOD, raw_arguments=json.dumps(GOOD))
    response = ChatResponse(
        tool_calls=(call,), finish_reason=FinishReason("tool_calls", "tool_use")
    )
    done = structured_reply(order_request(), response)
    assert done.content == json.dumps(GOOD)
    assert done.tool_calls == ()
    assert done.finish_reason == FinishReason("stop", "tool_use")
    assert done.parsed == Order(7, [Item("tea", 2.5)], Size.SMALL)


def test_a_reply_calling_the_requests_own_tools_is_not_parsed() -> None:
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    response = ChatResponse(tool_calls=(call,), finish_reason=FinishReason("tool_calls", "x"))
    done = structured_reply(order_request(), response)
    assert done.parsed is None
    assert done.tool_calls == (call,)


def test_stream_events_of_the_reply_tool_become_content() -> None:
    events = ToolReplyEvents("Order")
    other = ToolCallStarted(1, "call_2", "get_weather")
    stream = [
        ToolCallStarted(0, "toolu_1", "Order"),
        ToolCallDelta(0, ""),
        ToolCallDelta(0, '{"id":'),
        ToolCallDelta(0, " 7}"),
        ToolCallCompleted(0, ToolCall("toolu_1", "Order", {"id": 7}, '{"id": 7}')),
        Finished(FinishReason("tool_calls", "tool_use")),
    ]
    assert [events.convert(e) for e in stream] == [
        None,
        None,
        ContentDelta('{"id":'),
        ContentDelta(" 7}"),
        None,
        Finished(FinishReason("stop", "tool_use")),
    ]
    assert events.convert(other) is other


def test_a_whole_reply_tool_call_in_a_stream_becomes_one_content_delta() -> None:
    events = ToolReplyEvents("Order")
    done = ToolCallCompleted(0, ToolCall(None, "Order", {"id": 7}))
    assert events.convert(done) == ContentDelta('{"id": 7}')


# -- the manifest section -----------------------------------------------------------------------

MANIFEST = """\
id: tiny
protocol_version: "2.0"
endpoint: {base_url: "https://example.com"}
structured_output:
  schema: {schema}
  json_mode: tool
  strict: true
"""


def test_manifest_section_is_loaded() -> None:
    from ailib_anyio._protocol._loader import load_manifest_text

    manifest = load_manifest_text(MANIFEST.replace("{schema}", "native"), strict=True)
    assert manifest.structured_output == StructuredOutputRules("native", "tool", strict=True)


def test_manifest_section_errors_are_located() -> None:
    from ailib_anyio import ProtocolError
    from ailib_anyio._protocol._loader import load_manifest_text

    text = MANIFEST.replace("{schema}", "xml") + "  extra: 1\n"
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(text, source="tiny.yaml", strict=True)
    assert info.value.issues == [
        "tiny.yaml:5:11: $.structured_output.schema: invalid value (xml not in literal"
        " typing.Literal['native', 'tool'])",
        "tiny.yaml:8:3: $.structured_output.extra: unknown key 'extra'",
    ]
