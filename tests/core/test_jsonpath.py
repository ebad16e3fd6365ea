"""Tests for the manifest JSONPath selector and ``match`` expression compiler.

Selectors run on untrusted provider JSON, so beside the exact results they are fuzzed
with arbitrary JSON values: a compiled selector or predicate must never raise.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ailib_anyio._core._jsonpath import JSONPathError, Selector, compile_match, compile_path

DOC: dict[str, Any] = {
    "id": "chatcmpl-1",
    "choices": [
        {
            "index": 0,
            "delta": {
                "content": [
                    {"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]},
                    {"type": "text", "text": "Hello"},
                    {"type": "text", "text": " world"},
                ],
                "tool_calls": [
                    {"index": 0, "function": {"name": "a", "arguments": "{}"}},
                    {"index": 1, "function": {"name": "b", "arguments": None}},
                ],
            },
            "finish_reason": None,
        },
        {"index": 1, "delta": {"content": "second"}},
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 5},
    "weird key": {"a.b": 1},
    "x-dash": {"$ref": "r"},
    "flag": False,
    "zero": 0,
}

# -- plain paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.id", "chatcmpl-1"),
        ("$.usage.prompt_tokens", 3),
        ("$.choices[0].index", 0),
        ("$.choices[1].delta.content", "second"),
        ("$.choices[-1].index", 1),
        ("$.choices[-2].index", 0),
        ("$['weird key']['a.b']", 1),
        ('$["weird key"]["a.b"]', 1),
        ("$.x-dash.$ref", "r"),
        ("$.flag", False),
        ("$.zero", 0),
        # the v1 spelling: no leading "$"
        ("choices[0].delta.content[1].text", "Hello"),
        ("usage.completion_tokens", 5),
        ("id", "chatcmpl-1"),
        # surrounding whitespace is ignored
        ("  $.id  ", "chatcmpl-1"),
    ],
)
def test_get_single(path: str, expected: Any) -> None:
    sel = compile_path(path)
    assert sel.multi is False
    assert sel.get(DOC) == expected
    assert sel.all(DOC) == [expected]


@pytest.mark.parametrize(
    "path",
    [
        "$.missing",
        "$.id.deeper",  # a key on a string
        "$.choices.index",  # a key on a list
        "$.usage[0]",  # an index on a dict
        "$.choices[2]",  # out of range
        "$.choices[-3]",  # out of range, negative
        "$.choices[0].finish_reason",  # present but null
        "$.choices[0].delta.tool_calls[1].function.arguments",  # null
        "$.zero.x",
        "$.flag[0]",
    ],
)
def test_get_misses_return_none(path: str) -> None:
    sel = compile_path(path)
    assert sel.get(DOC) is None
    assert sel.all(DOC) == []


def test_indexes_do_not_apply_to_strings_or_dicts_with_int_keys() -> None:
    assert compile_path("$[0]").get("abc") is None
    assert compile_path("$.a[0]").get({"a": {0: "x", "0": "y"}}) is None
    assert compile_path("$.a['0']").get({"a": {"0": "y"}}) == "y"


# -- wildcards and filters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.choices[*].index", [0, 1]),
        ("$.choices.*.index", [0, 1]),
        ("$.usage.*", [3, 5]),
        ("$.usage[*]", [3, 5]),
        ("$.choices[0].delta.tool_calls[*].function.name", ["a", "b"]),
        # null values are dropped from .all
        ("$.choices[0].delta.tool_calls[*].function.arguments", ["{}"]),
        ("$.choices[0].delta.content[?(@.type == 'text')].text", ["Hello", " world"]),
        ('$.choices[0].delta.content[?(@.type == "text")].text', ["Hello", " world"]),
        ("$.choices[0].delta.content[?(@.type == 'thinking')].thinking[*].text", ["hm"]),
        ("$.choices[0].delta.content[?(@.type != 'text')].type", ["thinking"]),
        ("$.choices[0].delta.content[?(@.thinking)].type", ["thinking"]),
        ("$.choices[0].delta.tool_calls[?(@.index >= 1)].function.name", ["b"]),
        ("$.choices[?(@.delta.content == 'second')].index", [1]),
        ("$.choices[0].delta.content[?(@.type == 'image')].text", []),
        ("$.choices[*].missing[*]", []),
        ("$.id[*]", []),  # a string has no elements
        ("$.usage[?(@ > 4)]", [5]),  # filters over a mapping's values
        ("choices[*].index", [0, 1]),  # bare v1 path with a wildcard
    ],
)
def test_all_multi(path: str, expected: list[Any]) -> None:
    sel = compile_path(path)
    assert sel.multi is True
    assert sel.all(DOC) == expected
    assert sel.get(DOC) == (expected[0] if expected else None)


def test_wildcard_over_content_list() -> None:
    # $.choices[*].delta.content selects the first choice's content list as one value
    sel = compile_path("$.choices[*].delta.content")
    assert sel.all(DOC) == [DOC["choices"][0]["delta"]["content"], "second"]


def test_filter_with_boolean_logic() -> None:
    items = [
        {"type": "a", "n": 1},
        {"type": "b", "n": 2},
        {"type": "a", "n": 3},
        {"type": "c"},
    ]
    sel = compile_path("$[?(@.type == 'a' && @.n > 1 || @.type == 'c')]")
    assert sel.all(items) == [{"type": "a", "n": 3}, {"type": "c"}]
    assert compile_path("$[?(!(@.type == 'a'))].type").all(items) == ["b", "c"]
    assert compile_path("$[?(exists(@.n))].n").all(items) == [1, 2, 3]


def test_selector_identity_and_repr() -> None:
    a = compile_path("$.a[0]")
    assert a == compile_path("$.a[0]")
    assert a != compile_path("$.a[1]")
    assert hash(a) == hash(compile_path("$.a[0]"))
    assert repr(a) == "Selector('$.a[0]')"
    assert isinstance(a, Selector)
    assert a.path == "$.a[0]"


# -- never raising on shapes ------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.sampled_from(["text", "thinking", "a", "0"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "b", "type", "text", "0", "choices", "delta", "content", "n"])
            | st.text(max_size=3),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)

FUZZ_PATHS = [
    "$",
    "$.a",
    "$.a.b.text",
    "$[0]",
    "$[-1]",
    "$.a[0].b[-2]",
    "$.choices[0].delta.content",
    "$[*]",
    "$.*",
    "$.a[*].b",
    "$.*.*.type",
    "$[?(@.type == 'text')].text",
    "$.content[?(@.type == 'thinking')].thinking[*].text",
    "$[?(@.n > 1)]",
    "$[?(@.a)]",
    "$[?(!@.a || @.b != null)][0]",
    "a.b[0]",
]

FUZZ_EXPRS = [
    "exists($.a)",
    "$.a.b",
    "$.type == 'text'",
    "$.n != 3",
    "$.n < 2",
    "$.n >= -1.5",
    "$.a == true && !$.b",
    "($.a || $.b) && exists($[*].type)",
    "$.a[0] == null || $.b == false",
    "exists($[?(@.type == 'a')])",
]


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_selectors_never_raise(value: Any) -> None:
    for path in FUZZ_PATHS:
        sel = compile_path(path)
        found = sel.all(value)
        assert isinstance(found, list)
        assert None not in found
        first = sel.get(value)
        assert first == (found[0] if found else None)


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_predicates_never_raise(value: Any) -> None:
    for expr in FUZZ_EXPRS:
        assert compile_match(expr)(value) in (True, False)


# -- match expressions ------------------------------------------------------------------------

FRAME: dict[str, Any] = {
    "type": "content_block_delta",
    "index": 2,
    "score": 0.5,
    "ok": True,
    "off": False,
    "nothing": None,
    "error": {"type": "overloaded_error"},
    "list": [1, 2],
    "empty": "",
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("exists($.error)", True),
        ("exists($.missing)", False),
        ("exists($.nothing)", False),  # present but null: not there
        ("exists($.off)", True),
        ("exists( $.error.type )", True),
        ("exists($.list[*])", True),
        ("exists($.missing[*])", False),
        ("$.error", True),  # bare path: selects something non-null
        ("$.off", True),  # false is a value
        ("$.empty", True),
        ("$.nothing", False),
        ("$.missing", False),
        ("$.type == 'content_block_delta'", True),
        ('$.type == "content_block_delta"', True),
        ("$.type == 'message_stop'", False),
        ("$.type != 'message_stop'", True),
        ("$.missing != 'x'", True),
        ("$.index == 2", True),
        ("$.index == 2.0", True),
        ("$.index < 3", True),
        ("$.index < 2", False),
        ("$.index <= 2", True),
        ("$.index > 2", False),
        ("$.index >= 2", True),
        ("$.score > 0.25", True),
        ("$.score < -1", False),
        ("$.score >= 5e-1", True),
        ("$.type > 1", False),  # ordering on a string is simply false
        ("$.missing < 1", False),
        ("$.ok == true", True),
        ("$.off == false", True),
        ("$.ok == false", False),
        ("$.nothing == null", True),
        ("$.missing == null", True),
        ("$.index == null", False),
        ("$.error.type == 'overloaded_error'", True),
        ("$.type == 'content_block_delta' && $.index == 2", True),
        ("$.type == 'content_block_delta' && $.index == 3", False),
        ("$.type == 'x' || $.index == 2", True),
        ("$.type == 'x' || $.index == 3", False),
        ("!exists($.error)", False),
        ("!$.missing", True),
        ("!!$.error", True),
        ("!($.type == 'x')", True),
        ("$.index!=3", True),
        ("$.type=='content_block_delta'&&$.ok==true", True),
        # && binds tighter than ||
        ("$.type == 'x' && $.index == 2 || $.ok == true", True),
        ("$.type == 'x' && ($.index == 2 || $.ok == true)", False),
        ("($.type == 'x' || $.index == 2) && $.ok == true", True),
        ("(($.ok))", True),
        ("type == 'content_block_delta'", True),  # bare v1 path
        ("exists(error.type)", True),
        ("list[0] == 1", True),
        ("$.list[-1] == 2", True),
    ],
)
def test_match_expressions(expr: str, expected: bool) -> None:
    assert compile_match(expr)(FRAME) is expected


def test_match_on_non_mapping_frames() -> None:
    pred = compile_match("exists($.error) || $.type == 'error'")
    assert pred({"type": "error"}) is True
    assert pred({"error": {}}) is True
    for value in (None, "error", 3, [], [{"type": "error"}], True):
        assert pred(value) is False


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("$.a == true", 1),
        ("$.a == 1", True),
    ],
)
def test_booleans_and_numbers_are_different_json_types(expr: str, value: Any) -> None:
    # JSON (and RFC 9535 comparisons) keep true and 1 apart; Python's == does not.
    assert compile_match(expr)({"a": value}) is False


# -- syntax errors ------------------------------------------------------------------------------


def test_path_error_message_exact() -> None:
    with pytest.raises(JSONPathError) as info:
        compile_path("$.choices[0")
    err = info.value
    assert str(err) == "expected ']' at offset 11 in '$.choices[0'"
    assert err.pos == 11
    assert err.text == "$.choices[0"
    assert isinstance(err, ValueError)


def test_recursive_descent_message_exact() -> None:
    with pytest.raises(JSONPathError) as info:
        compile_path("$..content")
    assert str(info.value) == "recursive descent '..' is not supported at offset 2 in '$..content'"
    assert info.value.pos == 2


def test_match_error_message_exact() -> None:
    with pytest.raises(JSONPathError) as info:
        compile_match("$.type ==")
    assert str(info.value) == (
        "expected a literal (string, number, true, false or null) at offset 9 in '$.type =='"
    )
    assert info.value.pos == 9


@pytest.mark.parametrize(
    ("path", "pos"),
    [
        ("", 0),
        ("   ", 0),
        ("$.", 2),
        ("$.a[", 4),
        ("$.a[x]", 4),
        ("$.a]", 3),
        ("$.a b", 3),
        ("$['a", 2),
        ("$[?@.a]", 3),
        ("$[?(@.a == 1]", 12),
        ("$[?($.a)]", 4),  # filters are relative: '@', not '$'
        ("$[*", 3),
        ("[0]", 0),
    ],
)
def test_path_errors_carry_the_offset(path: str, pos: int) -> None:
    with pytest.raises(JSONPathError) as info:
        compile_path(path)
    assert info.value.pos == pos
    assert info.value.text == path


@pytest.mark.parametrize(
    ("expr", "pos"),
    [
        ("", 0),
        ("$.a ==", 6),
        ("$.a = 1", 4),
        ("$.a == 1 $.b", 9),
        ("($.a", 4),
        ("exists($.a", 10),
        ("$.a == 1 &&", 11),
        ("$.a == 'x", 7),
        ("$.a == yes", 7),
        ("$.a ||", 6),
    ],
)
def test_match_errors_carry_the_offset(expr: str, pos: int) -> None:
    with pytest.raises(JSONPathError) as info:
        compile_match(expr)
    assert info.value.pos == pos
    assert info.value.text == expr


def test_ordering_needs_a_number_and_points_into_the_expression() -> None:
    expr = "$.x == 1 && $.a < 'x'"
    with pytest.raises(JSONPathError) as info:
        compile_match(expr)
    assert "operator < needs a number" in str(info.value)
    # The error must locate the problem in the expression the manifest author wrote.
    assert info.value.text == expr
    assert expr.index("<") <= info.value.pos <= expr.index("'x'")


@pytest.mark.parametrize("expr", ["$.a > true", "$.a <= null", "$.a >= 'b'"])
def test_ordering_against_non_numbers_is_rejected(expr: str) -> None:
    with pytest.raises(JSONPathError, match=r"needs a number"):
        compile_match(expr)


@pytest.mark.parametrize("bad", [None, 3, ["$.a"]])
def test_non_string_inputs_are_rejected(bad: Any) -> None:
    with pytest.raises(JSONPathError):
        compile_path(bad)
    with pytest.raises(JSONPathError):
        compile_match(bad)
