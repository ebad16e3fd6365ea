"""Compile manifest JSONPath selectors and ``match`` expressions into plain callables.

Manifests say where things are in a provider's JSON (``$.choices[0].delta.content``) and
when a rule applies (``exists($.error) || $.type == 'error'``). Both are compiled once, when
the manifest loads; streaming then calls ordinary Python functions per chunk, with no
parsing or interpretation on the hot path.

Supported path syntax: ``$`` (optional), ``.name``, ``['name']``, ``[N]`` (negative allowed),
``[*]`` / ``.*`` (every element or value), and filters ``[?(@.a.b == 'x')]`` /
``[?(@.a)]``. A path that does not lead anywhere selects nothing: selectors never raise on
unexpected shapes, because provider JSON is untrusted input.

Expression syntax: ``exists(path)``, a bare ``path`` (true when it selects a non-null
value), comparisons ``path == literal`` / ``!=`` / ``<`` / ``<=`` / ``>`` / ``>=`` with
string, number, ``true``, ``false`` or ``null`` literals, ``!``, ``&&``, ``||`` and
parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["JSONPathError", "Predicate", "Selector", "compile_match", "compile_path"]

Predicate = Callable[[Any], bool]


class JSONPathError(ValueError):
    """A path or expression in a manifest has a syntax error; ``pos`` is the offset."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        super().__init__(f"{message} at offset {pos} in {text!r}")
        self.text = text
        self.pos = pos


_NAME = re.compile(r"[A-Za-z0-9_\-$@]+")


# A step is ("key", str) | ("index", int) | ("all", None) | ("filter", Predicate).
Step = tuple[str, Any]


class _PathParser:
    def __init__(self, text: str, pos: int = 0, *, relative: bool = False) -> None:
        self.text = text
        self.pos = pos
        self.relative = relative

    def error(self, message: str) -> JSONPathError:
        return JSONPathError(message, self.text, self.pos)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> list[Step]:
        text = self.text
        root = "@" if self.relative else "$"
        steps: list[Step] = []
        if self.peek() == root:
            self.pos += 1
        elif self.relative:
            raise self.error("expected '@'")
        else:
            # Bare "a.b[0]" (the v1 spelling) is read as "$.a.b[0]".
            name = self.read_name()
            steps.append(("key", name))
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == ".":
                self.pos += 1
                if self.peek() == ".":
                    raise self.error("recursive descent '..' is not supported")
                if self.peek() == "*":
                    self.pos += 1
                    steps.append(("all", None))
                else:
                    steps.append(("key", self.read_name()))
            elif ch == "[":
                steps.append(self.read_bracket())
            else:
                break
        return steps

    def parse_full(self) -> list[Step]:
        steps = self.parse()
        if self.pos != len(self.text):
            raise self.error("unexpected character")
        return steps

    def read_name(self) -> str:
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.error("expected a field name")
        self.pos = m.end()
        return m.group()

    def read_bracket(self) -> Step:
        text = self.text
        self.pos += 1  # '['
        ch = self.peek()
        if ch == "*":
            self.pos += 1
            step: Step = ("all", None)
        elif ch in ("'", '"'):
            step = ("key", self.read_string())
        elif ch == "?":
            self.pos += 1
            if self.peek() != "(":
                raise self.error("expected '(' after '?'")
            self.pos += 1
            expr = _ExprParser(text, self.pos, relative=True)
            pred = expr.parse_or()
            expr.skip_ws()
            if expr.peek() != ")":
                raise expr.error("expected ')' closing the filter")
            self.pos = expr.pos + 1
            step = ("filter", pred)
        else:
            m = re.compile(r"-?\d+").match(text, self.pos)
            if not m:
                raise self.error("expected an index, '*', a quoted name or a filter")
            self.pos = m.end()
            step = ("index", int(m.group()))
        if self.peek() != "]":
            raise self.error("expected ']'")
        self.pos += 1
        return step

    def read_string(self) -> str:
        return _read_string(self)


def _read_string(p: _PathParser | _ExprParser) -> str:
    quote = p.text[p.pos]
    end = p.text.find(quote, p.pos + 1)
    if end < 0:
        raise p.error("unterminated string")
    value = p.text[p.pos + 1 : end]
    p.pos = end + 1
    return value


# ------------------------------------------------------------------ code generation
#
# A path without wildcards becomes straight-line code: one type check and one lookup per
# step, no loops, no exceptions. That keeps per-chunk selection to a fraction of a
# microsecond, which matters because every streamed chunk runs every rule of a manifest.


def gen_single(steps: list[Step], *, exists: bool = False) -> Callable[[Any], Any]:
    """Straight-line code for a wildcard-free path; ``exists`` makes it a predicate."""
    miss = "False" if exists else "None"
    lines = ["def get(o):"]
    indent = "    "
    for kind, arg in steps:
        if kind == "key":
            lines.append(f"{indent}if type(o) is not dict: return {miss}")
            lines.append(f"{indent}o = o.get({arg!r})")
        else:  # index
            lines.append(f"{indent}if type(o) is not list: return {miss}")
            bound = f"len(o) > {arg}" if arg >= 0 else f"len(o) >= {-arg}"
            lines.append(f"{indent}if not ({bound}): return {miss}")
            lines.append(f"{indent}o = o[{arg}]")
    lines.append(f"{indent}return o is not None" if exists else f"{indent}return o")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), "<jsonpath>", "exec"), namespace)
    fn: Callable[[Any], Any] = namespace["get"]
    return fn


def _gen_multi(steps: list[Step]) -> Callable[[Any], list[Any]]:
    def select(obj: Any) -> list[Any]:
        current = [obj]
        for kind, arg in steps:
            nxt: list[Any] = []
            for o in current:
                if kind == "key":
                    if type(o) is dict and arg in o:
                        nxt.append(o[arg])
                elif kind == "index":
                    if type(o) is list and -len(o) <= arg < len(o):
                        nxt.append(o[arg])
                elif kind == "all":
                    if type(o) is list:
                        nxt.extend(o)
                    elif type(o) is dict:
                        nxt.extend(o.values())
                else:  # filter
                    if type(o) is list:
                        nxt.extend(x for x in o if arg(x))
                    elif type(o) is dict:
                        nxt.extend(x for x in o.values() if arg(x))
            if not nxt:
                return nxt
            current = nxt
        return [o for o in current if o is not None]

    return select


def _gen_trailing_all(prefix: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def select(obj: Any) -> list[Any]:
        found = prefix(obj)
        if type(found) is list:
            return [x for x in found if x is not None]
        if type(found) is dict:
            return [x for x in found.values() if x is not None]
        return []

    return select


class Selector:
    """A compiled path. ``get`` returns the first match (or None); ``all`` every non-null one."""

    __slots__ = ("all", "get", "multi", "path", "steps")

    def __init__(self, path: str, steps: list[Step] | None = None) -> None:
        if steps is None:
            steps = _PathParser(path.strip()).parse_full()
        self.path = path
        self.steps = steps
        self.multi = any(kind in ("all", "filter") for kind, _ in steps)
        if (
            self.multi
            and steps[-1][0] == "all"
            and not any(kind in ("all", "filter") for kind, _ in steps[:-1])
        ):
            # The common "$.a.b[*]": generated code to reach the list, then one pass.
            select_all = _gen_trailing_all(gen_single(steps[:-1]))
        elif self.multi:
            select_all = _gen_multi(steps)
        if self.multi:
            self.all: Callable[[Any], list[Any]] = select_all

            def first(obj: Any) -> Any:
                found = select_all(obj)
                return found[0] if found else None

            self.get: Callable[[Any], Any] = first
        else:
            get = gen_single(steps)
            self.get = get

            def all_(obj: Any) -> list[Any]:
                value = get(obj)
                return [] if value is None else [value]

            self.all = all_

    def __repr__(self) -> str:
        return f"Selector({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selector) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def compile_path(path: str) -> Selector:
    """Compile a JSONPath selector; raises ``JSONPathError`` with the offending offset."""
    if not isinstance(path, str) or not path.strip():
        raise JSONPathError("empty path", str(path), 0)
    return Selector(path)


# ------------------------------------------------------------------ match expressions

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_MISSING = object()


class _ExprParser:
    def __init__(self, text: str, pos: int = 0, *, relative: bool = False) -> None:
        self.text = text
        self.pos = pos
        self.relative = relative

    def error(self, message: str) -> JSONPathError:
        return JSONPathError(message, self.text, self.pos)

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def parse_or(self) -> Predicate:
        terms = [self.parse_and()]
        self.skip_ws()
        while self.peek(2) == "||":
            self.pos += 2
            terms.append(self.parse_and())
            self.skip_ws()
        if len(terms) == 1:
            return terms[0]
        alts = tuple(terms)
        return lambda o: any(t(o) for t in alts)

    def parse_and(self) -> Predicate:
        terms = [self.parse_not()]
        self.skip_ws()
        while self.peek(2) == "&&":
            self.pos += 2
            terms.append(self.parse_not())
            self.skip_ws()
        if len(terms) == 1:
            return terms[0]
        alls = tuple(terms)
        return lambda o: all(t(o) for t in alls)

    def parse_not(self) -> Predicate:
        self.skip_ws()
        if self.peek() == "!" and self.peek(2) != "!=":
            self.pos += 1
            inner = self.parse_not()
            return lambda o: not inner(o)
        return self.parse_atom()

    def parse_atom(self) -> Predicate:
        self.skip_ws()
        if self.peek() == "(":
            self.pos += 1
            inner = self.parse_or()
            self.skip_ws()
            if self.peek() != ")":
                raise self.error("expected ')'")
            self.pos += 1
            return inner
        if self.text.startswith("exists(", self.pos):
            self.pos += len("exists(")
            self.skip_ws()
            sel = self.parse_path()
            self.skip_ws()
            if self.peek() != ")":
                raise self.error("expected ')' closing exists(")
            self.pos += 1
            return _exists(sel)
        sel = self.parse_path()
        self.skip_ws()
        op = self.read_op()
        if op is None:
            return _exists(sel)
        self.skip_ws()
        start = self.pos
        literal = self.parse_literal()
        if op not in ("==", "!=") and (literal is None or isinstance(literal, (bool, str))):
            self.pos = start
            raise self.error(f"operator {op} needs a number")
        return _comparison(sel, op, literal)

    def parse_path(self) -> Selector:
        start = self.pos
        parser = _PathParser(self.text, self.pos, relative=self.relative)
        steps = parser.parse()
        self.pos = parser.pos
        return Selector(self.text[start : self.pos], steps)

    def read_op(self) -> str | None:
        for op in ("==", "!=", "<=", ">=", "<", ">"):
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        return None

    def parse_literal(self) -> Any:
        ch = self.peek()
        if ch in ("'", '"'):
            return _read_string(self)
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        m = _NUMBER.match(self.text, self.pos)
        if m:
            self.pos = m.end()
            return float(m.group()) if (m.group(1) or m.group(2)) else int(m.group())
        raise self.error("expected a literal (string, number, true, false or null)")


def _exists(sel: Selector) -> Predicate:
    if sel.multi:
        select_all = sel.all
        return lambda o: bool(select_all(o))
    predicate: Predicate = gen_single(sel.steps, exists=True)
    return predicate


def _json_equal(a: Any, b: Any) -> bool:
    # JSON keeps true and 1 apart; Python's == does not.
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return bool(a == b)


def _comparison(sel: Selector, op: str, literal: Any) -> Predicate:
    get = sel.get
    if op == "==":
        return lambda o: _json_equal(get(o), literal)
    if op == "!=":
        return lambda o: not _json_equal(get(o), literal)

    def ordered(o: Any) -> bool:
        value = get(o)
        if type(value) not in (int, float):
            return False
        if op == "<":
            return bool(value < literal)
        if op == "<=":
            return bool(value <= literal)
        if op == ">":
            return bool(value > literal)
        return bool(value >= literal)

    return ordered


def compile_match(expr: str) -> Predicate:
    """Compile a ``match`` expression into a predicate over a decoded JSON frame."""
    if not isinstance(expr, str) or not expr.strip():
        raise JSONPathError("empty expression", str(expr), 0)
    parser = _ExprParser(expr)
    pred = parser.parse_or()
    parser.skip_ws()
    if parser.pos != len(expr):
        raise parser.error("unexpected text")
    return pred
