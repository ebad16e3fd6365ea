"""Text tool calls: the tool calls a model writes into its reply, for models without native
tool calling (local models behind OpenAI-compatible servers, older models).

The AI-Protocol format is a ``<tool_call>`` block holding one JSON object:

.. code-block:: text

    I'll list the files for you.
    <tool_call>
    {"name": "shell", "arguments": {"command": "ls -la"}}
    </tool_call>

:func:`text_tool_prompt` writes the instructions that teach a model this format (the spec's
L2 prompt); :func:`parse_text_tool_calls` takes the blocks out of its reply.

Strict parsing (the spec's L1) accepts only the canonical block: ``<tool_call>``, an object
with a non-blank string ``name`` and an object ``arguments``, ``</tool_call>``. Lenient
parsing also accepts what models write when they drift from it:

- a ``name`` attribute, the body then being the arguments:
  ``<tool_call name="shell">{"command": "ls"}</tool_call>`` (a body that is itself a
  canonical object with the same ``name`` is read as one);
- other attributes (``id="1"``) ignored; a ``<tool_calls>`` wrapper around the blocks;
- ``parameters``, ``params`` or ``args`` for ``arguments`` (the first present, in that
  order); arguments missing or ``null`` as ``{}``; arguments sent as a JSON string holding
  an object (the OpenAI wire form) decoded;
- a last block left unclosed at the end of the reply (a ``</tool_call>`` stop sequence
  eats the closing tag) when a whole JSON object follows the opening tag;
- the shell dialect ``<shell><command>ls</command></shell>`` (also ``<bash>``, as the spec's
  DeepSeek manifest lists it): a call of the ``shell`` tool whose arguments are the child
  elements' stripped texts, or ``{"command": <the stripped body>}`` when the body is not
  made of child elements;
- the DeepSeek DSML form: ``<|DSML|invoke name="shell">`` holding
  ``<|DSML|parameter name="command" string="true">ls</|DSML|parameter>`` elements,
  usually inside a ``<|DSML|tool_calls>`` (or ``function_calls``) wrapper, where each bar
  is U+FF5C FULLWIDTH VERTICAL LINE (the ASCII bar is accepted too, single or doubled).
  A parameter marked ``string="true"`` is taken verbatim; any other value is read as JSON
  if it parses and taken verbatim if not.

Malformed input never raises. A block that does not make a call (invalid JSON, no name, no
arguments in strict mode) stays in the remaining text, as does an unclosed block (but for
the lenient last-block rule above). In lenient mode only, a closed ``<tool_call>`` block
whose JSON does not parse but whose tool is known (a ``name`` attribute, or else the
first ``"name": "..."`` pair in the broken text) is reported as a call with empty
``arguments``, the block's body as ``raw_arguments`` and ``parse_error`` saying why, like a
native call with broken arguments, so the caller can tell the model instead of running
anything. Arguments that are not a JSON object are reported the same way.

Text calls carry no id (``id`` is None). ``raw_arguments`` is the arguments as compact JSON
text (what a provider's native call carries), or the body verbatim when it did not parse.
``remaining_text`` is the text outside the blocks (and outside the wrappers' tags) joined
and stripped at both ends; blocks separated only by whitespace go as one, with that
whitespace (``"Calling:\n<block>\n<block>\nDone."`` leaves ``"Calling:\n\nDone."``).
When no call is found it is the input, unchanged.
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._types import ToolCall, ToolDefinition

__all__ = ["TextToolParse", "parse_text_tool_calls", "text_tool_prompt"]


@attrs.frozen
class TextToolParse:
    """What :func:`parse_text_tool_calls` found: the calls, in the order written, and the
    text around them."""

    remaining_text: str
    tool_calls: tuple[ToolCall, ...] = ()


def parse_text_tool_calls(text: str, *, lenient: bool = False) -> TextToolParse:
    """Take the tool calls a model wrote as text out of ``text``.

    ::

        >>> found = parse_text_tool_calls(
        ...     'Listing.\\n<tool_call>{"name": "shell", "arguments": {"command": "ls"}}'
        ...     "</tool_call>"
        ... )
        >>> found.remaining_text, found.tool_calls[0].name, dict(found.tool_calls[0].arguments)
        ('Listing.', 'shell', {'command': 'ls'})

    ``lenient=False`` accepts only the canonical block; ``lenient=True`` also reads the
    variants and dialects the module docstring lists. Never raises on any string.
    """
    scanner = _Scanner(text, lenient)
    spans, calls = scanner.scan()
    if not calls:
        return TextToolParse(text)
    if lenient:
        spans = sorted(spans + _wrapper_tags(text, spans))
    kept = [text[: spans[0][0]]]
    for (_, end), (start, _) in itertools.pairwise(spans):
        between = text[end:start]
        if between.strip():  # only whitespace between two blocks: it separated them
            kept.append(between)
    kept.append(text[spans[-1][1] :])
    return TextToolParse("".join(kept).strip(), tuple(calls))


# ---------------------------------------------------------------- patterns

_CLOSE = "</tool_call>"
_SHELL_TOOL = "shell"  # what the shell dialect's tags map to
_ARGUMENT_KEYS = ("arguments", "parameters", "params", "args")

_WS = re.compile(r"\s*")
_ATTRS = r"""(?:\s+[\w-]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*"""
_ATTR = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_BARS = "[\uff5c|]+"  # DSML bars: FULLWIDTH VERTICAL LINE or ASCII
_DSML = f"{_BARS}DSML{_BARS}"

_STRICT_OPEN = re.compile(r"<tool_call>")
_LENIENT_OPEN = re.compile(
    rf"<tool_call(?P<call>{_ATTRS})>|<(?P<shell>shell|bash)>|<{_DSML}invoke(?P<invoke>{_ATTRS})>"
)
_STRICT_AGAIN = re.compile(r"<tool_call>")
_LENIENT_AGAIN = re.compile(r"<tool_call\b")
_CALL_CLOSE = re.compile(re.escape(_CLOSE))
_INVOKE_CLOSE = re.compile(rf"</{_DSML}invoke\s*>")
_PARAM_OPEN = re.compile(rf"<{_DSML}parameter(?P<attrs>{_ATTRS})>")
_PARAM_CLOSE = re.compile(rf"</{_DSML}parameter\s*>")
_CHILD_OPEN = re.compile(r"<([\w-]+)>")
_NAME_PAIR = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_WRAPPER_TAG = re.compile(
    rf"<(?P<slash>/?)(?:(?P<plain>tool_calls)|{_DSML}(?P<dsml>tool_calls|function_calls))"
    r"(?:\s[^<>]*)?>"
)


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m is not None else pos


def _attributes(raw: str | None) -> dict[str, str]:
    return {m[1]: m[2] if m[2] is not None else m[3] for m in _ATTR.finditer(raw or "")}


class _Finder:
    """The next match of a pattern at or after a position, remembering the last search so
    that a forward scan costs one pass over the text however many blocks fail."""

    def __init__(self, text: str, pattern: re.Pattern[str]) -> None:
        self._text = text
        self._pattern = pattern
        self._searched_from = len(text) + 1
        self._found: re.Match[str] | None = None

    def next(self, pos: int) -> re.Match[str] | None:
        found = self._found
        if self._searched_from <= pos and (found is None or found.start() >= pos):
            return found
        self._searched_from = pos
        self._found = self._pattern.search(self._text, pos)
        return self._found


# ---------------------------------------------------------------- building calls


def _dumps(value: Any) -> str | None:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):  # decoded just below the nesting limit
        return None


def _call(name: str, arguments: dict[str, Any], raw: str | None = None) -> ToolCall:
    raw = raw if raw is not None else _dumps(arguments)
    if raw is None:
        return ToolCall(None, name, parse_error="the arguments are nested too deeply")
    return ToolCall(None, name, arguments, raw)


def _broken(name: str, raw: str, problem: str) -> ToolCall:
    return ToolCall(None, name, raw_arguments=raw, parse_error=problem)


def _json_problem(body: str) -> str:
    try:
        json.loads(body)
    except ValueError as exc:
        return f"invalid JSON in the tool call: {exc}"
    except RecursionError:
        return "invalid JSON in the tool call: nested too deeply"
    return "the tool call does not hold one JSON object"


def _recover_name(body: str) -> str | None:
    m = _NAME_PAIR.search(body)
    if m is None:
        return None
    try:
        name = json.loads(f'"{m[1]}"')
    except ValueError:
        name = m[1]
    return str(name).strip() or None


def _arguments(name: str, value: Any) -> ToolCall:
    """A lenient call from whatever the model gave as arguments."""
    raw = None
    if value is None:
        value = {}
    elif isinstance(value, str):  # the OpenAI wire form: the arguments as JSON text
        raw = value
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return _broken(name, raw, _json_problem(raw))
    if not isinstance(value, dict):
        problem = f"the arguments are a JSON {type(value).__name__}, not an object"
        return _broken(name, raw if raw is not None else _dumps(value) or "", problem)
    return _call(name, value, raw)


def _from_object(obj: Any, name_attr: str | None, lenient: bool) -> ToolCall | None:
    """The call a block's decoded JSON makes, or None when it makes none."""
    if name_attr is not None and not (isinstance(obj, dict) and obj.get("name") == name_attr):
        return _arguments(name_attr, obj)  # the body is the arguments
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if not lenient:
        arguments = obj.get("arguments")
        if not (isinstance(name, str) and name.strip() and isinstance(arguments, dict)):
            return None
        return _call(name, arguments)
    if not isinstance(name, str) or not name.strip():
        return None
    key = next((k for k in _ARGUMENT_KEYS if k in obj), None)
    return _arguments(name.strip(), obj[key] if key is not None else {})


def _dsml_value(raw: str, attributes: Mapping[str, str]) -> Any:
    if attributes.get("string") == "true":
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


# ---------------------------------------------------------------- the scan


@attrs.frozen
class _Found:
    """A block from the opening tag to ``end``: ``call`` None means it makes no call and
    stays in the text (its extent known, so the scan skips it whole)."""

    end: int
    call: ToolCall | None


class _Scanner:
    def __init__(self, text: str, lenient: bool) -> None:
        self.text = text
        self.lenient = lenient
        self.opener = _LENIENT_OPEN if lenient else _STRICT_OPEN
        self.call_close = _Finder(text, _CALL_CLOSE)
        self.call_again = _Finder(text, _LENIENT_AGAIN if lenient else _STRICT_AGAIN)
        self.invoke_close = _Finder(text, _INVOKE_CLOSE)
        self.shell_close = {
            tag: _Finder(text, re.compile(re.escape(f"</{tag}>"))) for tag in ("shell", "bash")
        }

    def scan(self) -> tuple[list[tuple[int, int]], list[ToolCall]]:
        """The spans of the blocks that make calls, and the calls."""
        spans: list[tuple[int, int]] = []
        calls: list[ToolCall] = []
        pos = 0
        while (m := self.opener.search(self.text, pos)) is not None:
            groups = m.groupdict()
            if groups.get("shell") is not None:
                found = self._shell(m, groups["shell"])
            elif groups.get("invoke") is not None:
                found = self._invoke(m, groups["invoke"])
            else:
                found = self._tool_call(m, groups.get("call"))
            if found is None:
                pos = m.end()
                continue
            if found.call is not None:
                spans.append((m.start(), found.end))
                calls.append(found.call)
            pos = found.end
        return spans, calls

    def _tool_call(self, m: re.Match[str], raw_attrs: str | None) -> _Found | None:
        text, lenient = self.text, self.lenient
        name_attr = (_attributes(raw_attrs).get("name") or "").strip() or None
        start = m.end()
        i = _skip_ws(text, start)
        decoded = _decode_object(text, i)
        if decoded is not None:
            obj, j = decoded
            k = _skip_ws(text, j)
            if text.startswith(_CLOSE, k):
                return _Found(k + len(_CLOSE), _from_object(obj, name_attr, lenient))
            if lenient and k == len(text):  # the last block, its closing tag cut off
                return _Found(k, _from_object(obj, name_attr, lenient))
        close = self.call_close.next(start)
        if close is None:
            return None
        again = self.call_again.next(start)
        if again is not None and again.start() < close.start():
            return None  # unclosed: another block opens before the closing tag
        end = close.end()
        if not lenient:
            return _Found(end, None)
        body = text[start : close.start()]
        if name_attr is not None and not body.strip():
            return _Found(end, _call(name_attr, {}))
        name = name_attr or _recover_name(body)
        if name is None:
            return _Found(end, None)
        return _Found(end, _broken(name, body.strip(), _json_problem(body)))

    def _shell(self, m: re.Match[str], tag: str) -> _Found | None:
        close = self.shell_close[tag].next(m.end())
        if close is None:
            return None
        body = self.text[m.end() : close.start()]
        arguments = _children(body)
        if arguments is None:
            command = body.strip()
            if not command:
                return _Found(close.end(), None)
            arguments = {"command": command}
        return _Found(close.end(), _call(_SHELL_TOOL, arguments))

    def _invoke(self, m: re.Match[str], raw_attrs: str) -> _Found | None:
        close = self.invoke_close.next(m.end())
        if close is None:
            return None
        name = (_attributes(raw_attrs).get("name") or "").strip()
        if not name:
            return _Found(close.end(), None)
        body = self.text[m.end() : close.start()]
        arguments: dict[str, Any] = {}
        finder = _Finder(body, _PARAM_CLOSE)
        pos = 0
        while (param := _PARAM_OPEN.search(body, pos)) is not None:
            end = finder.next(param.end())
            if end is None:
                break
            attributes = _attributes(param["attrs"])
            key = attributes.get("name")
            if key:
                arguments[key] = _dsml_value(body[param.end() : end.start()], attributes)
            pos = end.end()
        return _Found(close.end(), _call(name, arguments))


_DECODER = json.JSONDecoder()
_WINDOW = 4096


def _decode_object(text: str, i: int) -> tuple[Any, int] | None:
    """The JSON object at ``text[i]`` and the index after it, or None.

    Decodes a window of the text that doubles while the object runs past its end, not the
    whole rest: a JSON error costs time in proportion to its offset in the decoded string
    (the error counts the lines before it), so decoding the whole reply at each of many
    broken blocks would be quadratic."""
    if not text.startswith("{", i):
        return None
    size = _WINDOW
    while True:
        window = text[i : i + size]
        try:
            obj, end = _DECODER.raw_decode(window)
        except json.JSONDecodeError as exc:
            cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(window) - 6
            if not cut or i + size >= len(text):
                return None
            size *= 2
        except (ValueError, RecursionError):  # an integer too long, nesting too deep
            return None
        else:
            return obj, i + end


def _children(body: str) -> dict[str, Any] | None:
    """``<a>x</a><b>y</b>`` (whitespace around) as ``{"a": "x", "b": "y"}``, or None when
    the body is anything else. Each element ends at the first closing tag of its name."""
    out: dict[str, Any] = {}
    pos = _skip_ws(body, 0)
    while pos < len(body):
        m = _CHILD_OPEN.match(body, pos)
        if m is None:
            return None
        close = f"</{m[1]}>"
        end = body.find(close, m.end())
        if end < 0:
            return None
        out[m[1]] = body[m.end() : end].strip()
        pos = _skip_ws(body, end + len(close))
    return out or None


def _wrapper_tags(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans of the wrapper tags (``<tool_calls>``, ``<|DSML|tool_calls>``) around the
    blocks that made calls: an opening tag goes, with the next closing tag of its kind (or
    the end of the text), when a call lies between them."""
    starts = [s for s, _ in spans]

    def in_block(pos: int) -> bool:
        i = bisect.bisect_right(starts, pos) - 1
        return i >= 0 and pos < spans[i][1]

    opening: list[tuple[str, re.Match[str]]] = []
    closing: dict[str, list[re.Match[str]]] = {}
    for m in _WRAPPER_TAG.finditer(text):
        if in_block(m.start()):
            continue
        kind = m["plain"] or f"dsml:{m['dsml']}"
        if m["slash"]:
            closing.setdefault(kind, []).append(m)
        else:
            opening.append((kind, m))
    out: set[tuple[int, int]] = set()
    close_starts = {kind: [c.start() for c in closes] for kind, closes in closing.items()}
    for kind, m in opening:
        closes = closing.get(kind, [])
        i = bisect.bisect_left(close_starts.get(kind, []), m.end())
        close = closes[i] if i < len(closes) else None
        limit = close.start() if close is not None else len(text)
        j = bisect.bisect_left(starts, m.end())
        if j < len(starts) and starts[j] < limit:
            out.add(m.span())
            if close is not None:
                out.add(close.span())
    return sorted(out)


# ---------------------------------------------------------------- the L2 prompt

_COUNTEREXAMPLES = (
    "<shell>ls -la</shell>",
    "<bash>ls -la</bash>",
    '<function=shell>{"command": "ls -la"}</function>',
    '```json {"name": "shell", "arguments": {"command": "ls -la"}} ```  (no <tool_call> tags)',
)


def text_tool_prompt(tools: Sequence[ToolDefinition]) -> str:
    """Instructions teaching a model without native tool calling to write ``<tool_call>``
    blocks (the AI-Protocol L2 prompt), with the tools it may call; put them in the system
    message and read the reply with :func:`parse_text_tool_calls`. Empty when there are no
    tools.

    ::

        prompt = text_tool_prompt([ToolDefinition("shell", "Execute shell commands")])
    """
    if not tools:
        return ""
    lines = [
        "# Tools",
        "",
        "You can call the tools listed below. To call one, write a <tool_call> block that holds"
        ' one JSON object with the tool\'s "name" and its "arguments", exactly like this:',
        "",
        "<tool_call>",
        '{"name": "TOOL_NAME", "arguments": {"ARGUMENT": "VALUE"}}',
        "</tool_call>",
        "",
        "Rules:",
        '- "name" is one of the tool names below, spelled exactly; "arguments" is a JSON object'
        " matching the tool's parameters ({} when it takes none).",
        "- The JSON must be valid: double quotes, no comments, no trailing commas.",
        "- One block per call; to make several calls, write several blocks.",
        "- You may write a short sentence before your tool calls. After them, stop: the"
        " results come back in the next message.",
        "- Any other format WILL BE IGNORED and no tool will run. For example, these are ignored:",
        *(f"  {example}" for example in _COUNTEREXAMPLES),
        "",
        "Available tools:",
    ]
    for tool in tools:
        description = " ".join((tool.description or "").split())
        lines.append(f"- {tool.name}: {description}" if description else f"- {tool.name}")
        schema = json.dumps(dict(tool.parameters), ensure_ascii=False)
        lines.append(f"  parameters: {schema}")
    return "\n".join(lines) + "\n"
