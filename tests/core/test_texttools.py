"""Text tool calls: ``<tool_call>`` blocks (and the dialects models drift into) parsed out of
a reply, and the L2 prompt that teaches the format.

The compliance suite (``10-text-tool-call``) pins one example per variant; these tests pin
the rest of the behaviour the module docstring promises: text around and between blocks,
malformed and unclosed blocks, strings holding braces and tags, unicode, and that no input
makes the parser raise (hypothesis).
"""

from __future__ import annotations

import doctest
import json
import time
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ailib_anyio
from ailib_anyio import TextToolParse, ToolCall, ToolDefinition, text_tool_prompt
from ailib_anyio import parse_text_tool_calls as parse
from ailib_anyio._core import _texttools

BAR = "\uff5c"  # FULLWIDTH VERTICAL LINE, DeepSeek's DSML bar


def block(name: str, arguments: Any, key: str = "arguments") -> str:
    return f"<tool_call>{json.dumps({'name': name, key: arguments})}</tool_call>"


def calls(found: TextToolParse) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, dict(c.arguments)) for c in found.tool_calls]


def dsml(tag: str, attrs: str = "", close: bool = False, bar: str = BAR * 2) -> str:
    return f"<{'/' if close else ''}{bar}DSML{bar}{tag}{attrs}>"


# -- the canonical block (strict, L1) -----------------------------------------------------------


def test_canonical_block_with_text_before() -> None:
    found = parse(
        "I'll list the files for you.\n<tool_call>\n"
        '{"name": "shell", "arguments": {"command": "ls -la"}}\n</tool_call>\n'
    )
    assert found == TextToolParse(
        "I'll list the files for you.",
        (ToolCall(None, "shell", {"command": "ls -la"}, '{"command": "ls -la"}'),),
    )


def test_several_blocks_text_between_kept_in_order() -> None:
    text = (
        "First the listing.\n"
        + block("shell", {"command": "ls"})
        + "\nThen the file.\n"
        + block("file_read", {"path": "a.txt"})
        + block("file_read", {"path": "b.txt"})
        + "\nDone."
    )
    found = parse(text)
    assert calls(found) == [
        ("shell", {"command": "ls"}),
        ("file_read", {"path": "a.txt"}),
        ("file_read", {"path": "b.txt"}),
    ]
    assert found.remaining_text == "First the listing.\n\nThen the file.\n\nDone."


def test_call_fields() -> None:
    (call,) = parse(
        block("search", {"query": "AI", "limit": 10, "deep": {"x": [1, None]}})
    ).tool_calls
    assert call.id is None
    assert call.parse_error is None
    assert call.raw_arguments == '{"query": "AI", "limit": 10, "deep": {"x": [1, null]}}'
    assert json.loads(call.raw_arguments) == call.arguments


def test_blocks_separated_by_whitespace_go_as_one() -> None:
    text = (
        "Calling:\n" + block("a", {}) + "\n" + block("b", {}) + "\n  " + block("c", {}) + "\nDone."
    )
    assert parse(text).remaining_text == "Calling:\n\nDone."
    assert parse("x" + block("a", {}) + " y " + block("b", {}) + "z").remaining_text == "x y z"


def test_only_blocks_leave_empty_text() -> None:
    assert parse("\n  " + block("a", {}) + "\n\n").remaining_text == ""


def test_text_without_calls_comes_back_unchanged() -> None:
    text = "  Nothing to call here.\n\n"
    assert parse(text) == TextToolParse(text)
    assert parse(text, lenient=True) == TextToolParse(text)
    assert parse("") == TextToolParse("")


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call name="shell">{"command": "ls"}</tool_call>',
        '<tool_call id="1">{"name": "shell", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "search", "params": {"query": "x"}}</tool_call>',
        '<tool_call>{"name": "search"}</tool_call>',
        '<tool_call>{"name": "search", "arguments": "{}"}</tool_call>',
        '<tool_call>{"name": "", "arguments": {}}</tool_call>',
        '<tool_call>{"name": " ", "arguments": {}}</tool_call>',
        '<tool_call>{"name": 3, "arguments": {}}</tool_call>',
        '<tool_call>["shell", {}]</tool_call>',
        '<tool_call>{"name": "shell", "arguments": {}}',
        "<shell><command>ls</command></shell>",
        dsml("invoke", ' name="shell"') + dsml("invoke", close=True),
        "<Tool_Call>{}</Tool_Call>",
    ],
)
def test_strict_mode_accepts_only_the_canonical_block(text: str) -> None:
    assert parse(text) == TextToolParse(text)


def test_strict_mode_keeps_wrappers() -> None:
    found = parse("<tool_calls>" + block("a", {}) + "</tool_calls>")
    assert calls(found) == [("a", {})]
    assert found.remaining_text == "<tool_calls></tool_calls>"


# -- lenient variants ---------------------------------------------------------------------------


def test_name_attribute_body_is_the_arguments() -> None:
    found = parse('<tool_call name="shell">{"command": "ls"}</tool_call>', lenient=True)
    assert found == TextToolParse(
        "", (ToolCall(None, "shell", {"command": "ls"}, '{"command": "ls"}'),)
    )


def test_name_attribute_single_quotes_and_canonical_body() -> None:
    text = '<tool_call name=\'shell\' id=\'7\'>{"name": "shell", "arguments": {"a": 1}}</tool_call>'
    assert calls(parse(text, lenient=True)) == [("shell", {"a": 1})]


def test_name_attribute_and_a_body_naming_another_tool_body_is_arguments() -> None:
    text = '<tool_call name="greet">{"name": "Ada", "arguments": 1}</tool_call>'
    assert calls(parse(text, lenient=True)) == [("greet", {"name": "Ada", "arguments": 1})]


def test_name_attribute_empty_body_means_no_arguments() -> None:
    assert calls(parse('<tool_call name="now"></tool_call>', lenient=True)) == [("now", {})]
    assert calls(parse('<tool_call name="now">\n</tool_call>', lenient=True)) == [("now", {})]


def test_id_attribute_ignored() -> None:
    (call,) = parse(
        '<tool_call id="call_1">{"name": "a", "arguments": {}}</tool_call>', lenient=True
    ).tool_calls
    assert call.id is None
    assert call.name == "a"


def test_tool_calls_wrapper_unwrapped() -> None:
    text = (
        "Two calls:\n<tool_calls>\n"
        '<tool_call id="1">{"name": "shell", "parameters": {"command": "ls"}}</tool_call>\n'
        '<tool_call id="2">{"name": "shell", "parameters": {"command": "pwd"}}</tool_call>\n'
        "</tool_calls>\nAfter."
    )
    found = parse(text, lenient=True)
    assert calls(found) == [("shell", {"command": "ls"}), ("shell", {"command": "pwd"})]
    assert found.remaining_text == "Two calls:\n\nAfter."


def test_wrapper_without_calls_stays() -> None:
    text = "<tool_calls>nothing here</tool_calls> " + block("a", {})
    assert parse(text, lenient=True).remaining_text == "<tool_calls>nothing here</tool_calls>"


def test_unclosed_wrapper_around_calls_is_dropped() -> None:
    found = parse("<tool_calls>\n" + block("a", {}), lenient=True)
    assert found.remaining_text == ""
    assert calls(found) == [("a", {})]


@pytest.mark.parametrize("key", ["arguments", "parameters", "params", "args"])
def test_argument_key_aliases(key: str) -> None:
    found = parse(block("search", {"query": "AI protocol", "limit": 10}, key), lenient=True)
    assert calls(found) == [("search", {"query": "AI protocol", "limit": 10})]


def test_arguments_key_wins_over_aliases() -> None:
    text = '<tool_call>{"name": "a", "params": {"x": 1}, "arguments": {"y": 2}}</tool_call>'
    assert calls(parse(text, lenient=True)) == [("a", {"y": 2})]


@pytest.mark.parametrize("body", ['{"name": "now"}', '{"name": "now", "arguments": null}'])
def test_missing_or_null_arguments_are_empty(body: str) -> None:
    (call,) = parse(f"<tool_call>{body}</tool_call>", lenient=True).tool_calls
    assert (call.name, dict(call.arguments), call.raw_arguments) == ("now", {}, "{}")


def test_arguments_as_a_json_string() -> None:
    text = '<tool_call>{"name": "a", "arguments": "{\\"x\\": [1, 2]}"}</tool_call>'
    (call,) = parse(text, lenient=True).tool_calls
    assert dict(call.arguments) == {"x": [1, 2]}
    assert call.raw_arguments == '{"x": [1, 2]}'
    assert call.parse_error is None


@pytest.mark.parametrize(
    ("arguments", "raw", "problem"),
    [
        ('"{not json"', "{not json", "invalid JSON in the tool call"),
        ("[1, 2]", "[1, 2]", "the arguments are a JSON list, not an object"),
        ('"[1]"', "[1]", "the arguments are a JSON list, not an object"),
        ("42", "42", "the arguments are a JSON int, not an object"),
    ],
)
def test_arguments_not_an_object_reported(arguments: str, raw: str, problem: str) -> None:
    text = f'Before <tool_call>{{"name": "a", "arguments": {arguments}}}</tool_call>'
    found = parse(text, lenient=True)
    (call,) = found.tool_calls
    assert (call.name, dict(call.arguments), call.raw_arguments) == ("a", {}, raw)
    assert call.parse_error is not None
    assert call.parse_error.startswith(problem)
    assert found.remaining_text == "Before"


def test_lenient_name_is_stripped() -> None:
    assert calls(parse(block(" shell ", {}), lenient=True)) == [("shell", {})]
    assert parse(block("  ", {}), lenient=True).tool_calls == ()


# -- dialects -----------------------------------------------------------------------------------


def test_shell_dialect() -> None:
    found = parse("Running command:\n<shell><command>ls</command></shell>\n", lenient=True)
    assert found == TextToolParse(
        "Running command:", (ToolCall(None, "shell", {"command": "ls"}, '{"command": "ls"}'),)
    )


def test_shell_dialect_children_stripped_and_kept() -> None:
    text = "<shell>\n  <command>\n    cat a.txt\n  </command>\n  <timeout>30</timeout>\n</shell>"
    assert calls(parse(text, lenient=True)) == [
        ("shell", {"command": "cat a.txt", "timeout": "30"})
    ]


@pytest.mark.parametrize("tag", ["shell", "bash"])
def test_shell_dialect_plain_body_is_the_command(tag: str) -> None:
    text = f"<{tag}>\ngrep -r 'a<b' src | head\n</{tag}>"
    assert calls(parse(text, lenient=True)) == [("shell", {"command": "grep -r 'a<b' src | head"})]


@pytest.mark.parametrize(
    "text", ["<shell></shell>", "<shell>  \n</shell>", "<shell><command>ls</command>", "<shell>"]
)
def test_shell_dialect_empty_or_unclosed_stays(text: str) -> None:
    assert parse(text, lenient=True) == TextToolParse(text)


def test_dsml_dialect() -> None:
    text = (
        "我来检查 piubt 服务器上 pifan 服务的概况。\n\n"
        + dsml("tool_calls")
        + "\n"
        + dsml("invoke", ' name="shell"')
        + "\n"
        + dsml("parameter", ' name="command" string="true"')
        + 'ssh piubt "systemctl status pifan" 2>&1'
        + dsml("parameter", close=True)
        + "\n"
        + dsml("invoke", close=True)
        + "\n"
        + dsml("tool_calls", close=True)
        + "\n"
    )
    found = parse(text, lenient=True)
    assert found.remaining_text == "我来检查 piubt 服务器上 pifan 服务的概况。"
    assert calls(found) == [("shell", {"command": 'ssh piubt "systemctl status pifan" 2>&1'})]


@pytest.mark.parametrize("bar", [BAR, BAR * 2, "|", "||"])
def test_dsml_bars_and_function_calls_wrapper(bar: str) -> None:
    def tag(name: str, attrs: str = "", close: bool = False) -> str:
        return dsml(name, attrs, close, bar)

    def param(attrs: str, value: str) -> str:
        return tag("parameter", attrs) + value + tag("parameter", close=True)

    text = (
        tag("function_calls")
        + tag("invoke", ' name="search"')
        + param(' name="query" string="true"', "  42 ")
        + param(' name="limit" string="false"', "10")
        + param(' name="filters"', '{"lang": "en"}')
        + param(' name="note"', "plain text")
        + param(' name="bad" string="false"', "{oops")
        + param("", "nameless")
        + tag("invoke", close=True)
        + tag("invoke", ' name="now"')
        + tag("invoke", close=True)
        + tag("function_calls", close=True)
    )
    found = parse(text, lenient=True)
    assert found.remaining_text == ""
    assert calls(found) == [
        (
            "search",
            {
                "query": "  42 ",
                "limit": 10,
                "filters": {"lang": "en"},
                "note": "plain text",
                "bad": "{oops",
            },
        ),
        ("now", {}),
    ]


def test_dsml_invoke_without_name_or_close_stays() -> None:
    nameless = dsml("invoke") + dsml("invoke", close=True)
    unclosed = dsml("invoke", ' name="a"') + "text"
    assert parse(nameless, lenient=True) == TextToolParse(nameless)
    assert parse(unclosed, lenient=True) == TextToolParse(unclosed)


def test_dialects_and_blocks_mixed_in_order() -> None:
    text = (
        "<shell>ls</shell> then "
        + block("a", {"x": 1})
        + " and "
        + dsml("invoke", ' name="b"')
        + dsml("invoke", close=True)
        + " end"
    )
    found = parse(text, lenient=True)
    assert calls(found) == [("shell", {"command": "ls"}), ("a", {"x": 1}), ("b", {})]
    assert found.remaining_text == "then  and  end"


# -- malformed and unclosed blocks --------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "<tool_call>{not json}</tool_call>",
        '<tool_call>{"name": "a", "arguments": {"x": 1}</tool_call>',
        '<tool_call>{"name": "a", "arguments": {}} trailing</tool_call>',
        "<tool_call>ls -la</tool_call>",
        "<tool_call></tool_call>",
    ],
)
def test_strict_malformed_block_stays_in_text(bad: str) -> None:
    text = f"Before {bad} between " + block("ok", {"a": 1}) + " after"
    found = parse(text)
    assert calls(found) == [("ok", {"a": 1})]
    assert found.remaining_text == f"Before {bad} between  after"


def test_lenient_malformed_block_with_a_recoverable_name_is_reported() -> None:
    body = '{"name": "write", "arguments": {"path": "a", "text": "x"}'
    found = parse(f"Saving.\n<tool_call>\n{body}\n</tool_call>", lenient=True)
    (call,) = found.tool_calls
    assert found.remaining_text == "Saving."
    assert (call.name, dict(call.arguments), call.raw_arguments) == ("write", {}, body)
    assert call.parse_error is not None
    assert call.parse_error.startswith("invalid JSON in the tool call: Expecting ',' delimiter")


def test_lenient_malformed_block_with_a_name_attribute_is_reported() -> None:
    (call,) = parse('<tool_call name="shell">ls -la</tool_call>', lenient=True).tool_calls
    assert (call.name, call.raw_arguments) == ("shell", "ls -la")
    assert call.parse_error is not None


def test_lenient_malformed_block_without_a_name_stays() -> None:
    text = "<tool_call>{oops}</tool_call> " + block("ok", {})
    found = parse(text, lenient=True)
    assert calls(found) == [("ok", {})]
    assert found.remaining_text == "<tool_call>{oops}</tool_call>"


def test_lenient_valid_json_without_a_name_stays() -> None:
    text = '<tool_call>{"arguments": {}}</tool_call>'
    assert parse(text, lenient=True) == TextToolParse(text)


def test_unclosed_block_followed_by_a_closed_one() -> None:
    text = '<tool_call>{"name": "lost"\n' + block("found", {})
    for lenient in (False, True):
        found = parse(text, lenient=lenient)
        assert calls(found) == [("found", {})]
        assert found.remaining_text == '<tool_call>{"name": "lost"'


def test_unclosed_last_block_strict_stays_lenient_accepted() -> None:
    text = 'Listing.\n<tool_call>\n{"name": "shell", "arguments": {"command": "ls"}}\n'
    assert parse(text) == TextToolParse(text)
    found = parse(text, lenient=True)
    assert found.remaining_text == "Listing."
    assert calls(found) == [("shell", {"command": "ls"})]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "shell", "arguments": {"command": "l',
        '<tool_call>{"name": "shell", "arguments": {}} and more',
        "<tool_call>",
        "</tool_call>",
        "text <tool_call",
    ],
)
def test_truncated_or_stray_tags_stay(text: str) -> None:
    for lenient in (False, True):
        assert parse(text, lenient=lenient) == TextToolParse(text)


# -- strings that look like structure -----------------------------------------------------------


def test_braces_quotes_and_tags_inside_strings() -> None:
    arguments = {
        "code": 'if (a) { b({"c": "}"}); }',
        "doc": "write </tool_call> and <tool_call> literally",
        "quote": 'she said "hi" \\ bye',
    }
    found = parse("x " + block("write", arguments) + " y")
    assert calls(found) == [("write", arguments)]
    assert found.remaining_text == "x  y"


def test_unicode_names_arguments_and_text() -> None:
    arguments = {"城市": "北京", "emoji": "🌧️", "escaped": "\u00e9"}
    text = "天气如何\n" + json.dumps({"name": "天气", "arguments": arguments}, ensure_ascii=True)
    found = parse(text.replace("\n", "\n<tool_call>") + "</tool_call>\n谢谢")
    assert calls(found) == [("天气", arguments)]
    assert found.remaining_text == "天气如何\n\n谢谢"
    assert found.tool_calls[0].raw_arguments == json.dumps(arguments, ensure_ascii=False)


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>" + "[" * 100_000,
        '<tool_call>{"name": "a", "arguments": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001,
        '<tool_call>{"name": "a", "arguments": {"n": ' + "9" * 50_000 + "}}</tool_call>",
        '<tool_call name="a">' + "[" * 100_000 + "</tool_call>",
    ],
)
def test_pathological_json_does_not_raise(text: str) -> None:
    for lenient in (False, True):
        found = parse(text, lenient=lenient)
        assert all(call.parse_error for call in found.tool_calls)


def test_many_broken_blocks_take_linear_time() -> None:
    # each failed JSON decode must cost its own length, not the reply's
    text = '<tool_call>{"' * 20_000 + "</tool_call>" + "<tool_call>{bad}</tool_call>" * 5_000
    started = time.perf_counter()
    for lenient in (False, True):
        parse(text, lenient=lenient)
    assert time.perf_counter() - started < 5


# -- properties ---------------------------------------------------------------------------------

TAGS = [
    "<tool_call>",
    "</tool_call>",
    '<tool_call name="a">',
    "<tool_calls>",
    "</tool_calls>",
    "<shell>",
    "</shell>",
    "<command>",
    "</command>",
    dsml("tool_calls"),
    dsml("tool_calls", close=True),
    dsml("invoke", ' name="a"'),
    dsml("invoke", close=True),
    dsml("parameter", ' name="p" string="false"'),
    dsml("parameter", close=True),
    '{"name": "a", "arguments": {"x": [1, "}"]}}',
    '{"name": ',
    '"params": ',
    "{",
    "}",
    '"',
    "\\",
    ": ",
    "\n",
    " ",
    "ls",
    "é",
]
tag_soup = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=5)), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(), tag_soup), lenient=st.booleans())
def test_any_text_parses_without_raising(text: str, lenient: bool) -> None:
    found = parse(text, lenient=lenient)
    assert isinstance(found.remaining_text, str)
    if not found.tool_calls:
        assert found.remaining_text == text
    assert len(found.remaining_text) <= len(text)
    for call in found.tool_calls:
        assert call.name.strip()
        assert call.id is None
        if call.parse_error is None:
            assert json.loads(call.raw_arguments) == call.arguments
        else:
            assert dict(call.arguments) == {}
    if not lenient:
        assert all(call.parse_error is None for call in found.tool_calls)


@settings(max_examples=200, deadline=None)
@given(text=st.text(), lenient=st.booleans())
def test_text_without_tags_comes_back_unchanged(text: str, lenient: bool) -> None:
    text = text.replace("<tool_call", "") if not lenient else text.replace("<", "")
    assert parse(text, lenient=lenient) == TextToolParse(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
prose = st.text().map(lambda s: s.replace("<", ""))
names = st.text(min_size=1).filter(lambda s: s.strip() == s and s.strip())


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(
        st.tuples(prose, names, st.dictionaries(st.text(), json_values, max_size=4)), max_size=4
    ),
    tail=prose,
    ascii_json=st.booleans(),
    lenient=st.booleans(),
)
def test_written_calls_come_back(
    pieces: list[tuple[str, str, dict[str, Any]]], tail: str, ascii_json: bool, lenient: bool
) -> None:
    text = "".join(
        before
        + "<tool_call>\n"
        + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=ascii_json)
        + "\n</tool_call>"
        for before, name, arguments in pieces
    )
    found = parse(text + tail, lenient=lenient)
    assert calls(found) == [(name, arguments) for _, name, arguments in pieces]
    if not pieces:
        assert found.remaining_text == tail
        return
    # whitespace that only separates two blocks goes
    between = [before for before, _, _ in pieces[1:] if before.strip()]
    assert found.remaining_text == "".join([pieces[0][0], *between, tail]).strip()


# -- the L2 prompt ------------------------------------------------------------------------------


def test_prompt_lists_tools_and_teaches_the_format() -> None:
    tools = [
        ToolDefinition("shell", "Execute shell\n   commands"),
        ToolDefinition(
            "file_read",
            "Read file contents",
            {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        ),
        ToolDefinition("now"),
    ]
    prompt = text_tool_prompt(tools)
    for text in ("<tool_call>", "</tool_call>", "<shell>", "WILL BE IGNORED"):
        assert text in prompt
    assert "- shell: Execute shell commands\n" in prompt
    assert (
        '- file_read: Read file contents\n  parameters: {"type": "object", "properties":'
        ' {"path": {"type": "string"}}, "required": ["path"]}\n'
    ) in prompt
    assert '- now\n  parameters: {"type": "object", "properties": {}}\n' in prompt


def test_prompt_example_is_a_strict_block_and_counterexamples_are_not() -> None:
    found = parse(text_tool_prompt([ToolDefinition("shell")]))
    assert calls(found) == [("TOOL_NAME", {"ARGUMENT": "VALUE"})]
    assert "<shell>ls -la</shell>" in found.remaining_text


def test_no_tools_no_prompt() -> None:
    assert text_tool_prompt([]) == ""


# -- the public surface -------------------------------------------------------------------------


def test_exports_and_frozen_result() -> None:
    assert ailib_anyio.parse_text_tool_calls is _texttools.parse_text_tool_calls
    assert ailib_anyio.text_tool_prompt is _texttools.text_tool_prompt
    assert TextToolParse.__module__ == "ailib_anyio"
    found = parse("x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        found.remaining_text = "y"  # type: ignore[misc]


def test_docstring_examples() -> None:
    assert doctest.testmod(_texttools, raise_on_error=False).failed == 0
