"""Every example in a docstring of the package runs here, the async ones on asyncio and trio.

Collected from every module of ``ailib_anyio`` (module, class, function and method
docstrings, read from the source, so nested and decorated ones are found too); a new
example is picked up without touching this file:

- ``>>>`` examples: found by ``doctest.DocTestFinder`` and run by doctest with the
  module's globals, as ``python -m doctest`` does, each under the module whose source
  defines it (``SourceFinder``: the facade's ``__module__`` says otherwise for the names
  it publishes). A cross-check fails if the finder misses a docstring of the source that
  holds one.
- Python blocks: the indented block after a line ending in ``::`` (a reST literal block),
  a ``.. code-block:: python`` directive, or a fenced block (```` ```python ```` or
  ```` ``` ````). A block that starts with ``>>>`` is a doctest, run as one (once).

Not run, marked where the reader sees it:

- a block that is not Python: ``.. code-block:: text`` (any language but python, py,
  python3, pycon), or a fence naming another language;
- a block whose first line is ``# not run: <reason>``: reported skipped, with the reason.

An indented block after a blank line that is none of these (a reST block quote) is an
error: an example must say what it is, or it would escape this test.

A Python block runs inside an async test, on asyncio and on trio, with a ``MockProvider``
serving:

- top-level ``await``, ``async with`` and ``async for`` are allowed (the block is compiled
  with ``PyCF_ALLOW_TOP_LEVEL_AWAIT``: it is then the body of a coroutine, awaited here);
- environment: every shipped manifest's ``<PROVIDER>_BASE_URL`` points at the mock (the
  base URL its API family expects) and ``<PROVIDER>_API_KEY`` holds a dummy key, so
  ``open_client("openai/gpt-4o")`` talks to the mock; the current directory is a fresh
  one holding ``my-provider.yaml`` (the shipped OpenAI manifest), for examples about the
  reader's own manifest;
- names: the public names of ``ailib_anyio`` and ``ailib_anyio.testing`` and ``anyio``,
  then the globals of the module whose docstring holds the block (as doctest does), then
  ``client``: an open client for ``"openai/gpt-4o"`` on the mock, the client that the
  examples of a client's methods talk about;
- the blocking facade's examples (docstrings of ``ailib_anyio.sync``) run in a worker
  thread: they block, and refuse to run inside an event loop;
- a function named ``test_*`` that a block defines is called after it, as pytest would.
"""

from __future__ import annotations

import ast
import copy
import doctest
import importlib
import inspect
import re
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import ailib_anyio
import ailib_anyio.testing
from ailib_anyio import Client, load_manifest, open_client
from ailib_anyio._protocol._registry import builtin_protocol_dir
from ailib_anyio.testing import MockProvider

PACKAGE = Path(ailib_anyio.__file__).resolve().parent

#: Languages whose blocks run; any other (``text``, ``yaml``, ``json``...) is not Python.
PYTHON_LANGUAGES = frozenset({"", "python", "py", "python3"})
DOCTEST_LANGUAGES = frozenset({"pycon"})
#: A directive whose body is code, in the language it names.
CODE_DIRECTIVE = re.compile(r"\.\.\s+(?:code-block|code|sourcecode)::\s*(\S*)\s*$")
NOT_RUN = re.compile(r"#\s*not run:\s*(.+)")
#: Docstrings whose blocks block, so run in a worker thread.
BLOCKING_MODULES = frozenset({"ailib_anyio.sync"})


@dataclass(frozen=True)
class Docstring:
    module: str  # dotted module name
    qualname: str  # "" for the module's own docstring
    path: Path
    lineno: int  # the source line of the docstring's first line
    text: str

    @property
    def name(self) -> str:
        return f"{self.module}:{self.qualname}" if self.qualname else self.module


@dataclass(frozen=True)
class Block:
    """A code block of a docstring: ``line`` is its first line in the source file."""

    doc: Docstring
    index: int  # 1-based, among the docstring's blocks
    line: int
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.doc.name}#{self.index}"

    @property
    def is_doctest(self) -> bool:
        return self.language in DOCTEST_LANGUAGES or self.code.lstrip().startswith(">>>")

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON_LANGUAGES and not self.is_doctest

    @property
    def not_run(self) -> str | None:
        """The reason given by a ``# not run: <reason>`` first line, if any."""
        found = NOT_RUN.fullmatch(self.code.splitlines()[0].strip())
        return found.group(1) if found else None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _docstrings_in(node: ast.AST, module: str, path: Path, prefix: str) -> Iterator[Docstring]:
    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        text = ast.get_docstring(node, clean=False)
        if text is not None:
            yield Docstring(module, prefix, path, node.body[0].lineno, text)
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}.{child.name}" if prefix else child.name
            yield from _docstrings_in(child, module, path, name)
        else:  # definitions under if/try/with blocks
            yield from _docstrings_in(child, module, path, prefix)


def docstrings() -> Iterator[Docstring]:
    """Every docstring in the package's source, in file order."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        yield from _docstrings_in(tree, module_name(path), path, "")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _body_after(lines: list[str], start: int, indent: int) -> tuple[int, int, list[str]]:
    """The block indented deeper than ``indent`` after line ``start``: (the index after
    it, the index of its first non-blank line, its lines with trailing blanks dropped)."""
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    first = start + 1
    while first < end and not lines[first].strip():
        first += 1
    body = lines[first:end]
    while body and not body[-1].strip():
        body.pop()
    return end, first, body


def parse_blocks(doc: Docstring) -> tuple[list[Block], list[str]]:
    """The code blocks of ``doc``, and its problems (block quotes, unclosed fences)."""
    lines = doc.text.splitlines()
    if not lines:
        return [], []
    # the first line follows the opening quotes: give it the docstring's margin
    margin = min((_indent(line) for line in lines[1:] if line.strip()), default=0)
    lines[0] = " " * margin + lines[0].lstrip()
    blocks: list[Block] = []
    problems: list[str] = []

    def add(first: int, body: list[str], language: str) -> None:
        code = textwrap.dedent("\n".join(body)) + "\n"
        blocks.append(Block(doc, len(blocks) + 1, doc.lineno + first, language, code))

    previous_indent: int | None = None  # of the last line of text outside a block
    after_blank = False
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped:
            after_blank = True
            i += 1
            continue
        indent = _indent(lines[i])
        if stripped.startswith("```"):
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                problems.append(f"{doc.path}:{doc.lineno + i}: a ``` fence is never closed")
            add(i + 1, lines[i + 1 : end], stripped[3:].strip().lower())
            i = end + 1
        elif stripped.startswith(".. ") and "::" in stripped:
            end, first, body = _body_after(lines, i, indent)
            while body and body[0].strip().startswith(":"):  # directive options
                body.pop(0)
                first += 1
            directive = CODE_DIRECTIVE.match(stripped)
            if directive is not None and body:
                add(first, body, directive.group(1).lower())
            i = end
        elif stripped.endswith("::"):
            end, first, body = _body_after(lines, i, indent)
            if body:
                add(first, body, "")
            i = end
        else:
            if after_blank and previous_indent is not None and indent >= previous_indent + 4:
                problems.append(
                    f"{doc.path}:{doc.lineno + i}: an indented block not introduced by '::'"
                    f" in {doc.name} (mark an example as code, or as `.. code-block:: text`)"
                )
            i += 1
        previous_indent = indent
        after_blank = False
    return blocks, problems


def _classes_in(node: ast.AST, prefix: str) -> Iterator[str]:
    """Qualified names of the classes defined by the source under ``node`` (not those
    inside functions: no finder reaches them)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            name = f"{prefix}.{child.name}" if prefix else child.name
            yield name
            yield from _classes_in(child, name)
        elif not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _classes_in(child, prefix)  # under if/try/with blocks


#: module name -> qualified names of the classes its source defines
CLASSES = {
    module_name(path): frozenset(_classes_in(ast.parse(path.read_text(encoding="utf-8")), ""))
    for path in sorted(PACKAGE.rglob("*.py"))
}


class SourceFinder(doctest.DocTestFinder):
    """A ``DocTestFinder`` that finds an object under the module whose source defines it.

    The stock one goes by ``__module__``, which the facade sets to ``ailib_anyio`` on the
    names it publishes: it skips a published class in its own module, and the class's
    methods in both (a method's ``__module__`` is left alone), so their examples never
    run; and it finds a lazily published name under either module, depending on whether
    the name was looked up yet. Here a class belongs to the module whose source defines it
    (and that holds it under that name), a function to the module of its globals
    (unwrapped first, as the stock finder does to tell a function)."""

    def _from_module(self, module: Any, obj: Any) -> bool:
        if inspect.isclass(obj):
            if obj.__qualname__ not in CLASSES.get(module.__name__, ()):
                return False
            held: Any = module
            for part in obj.__qualname__.split("."):
                held = getattr(held, part, None)
            return held is obj
        try:
            function = inspect.unwrap(obj)
        except ValueError:  # a cycle of __wrapped__
            function = obj
        if inspect.isfunction(function):
            return function.__globals__ is vars(module)
        return bool(super()._from_module(module, obj))  # type: ignore[misc]


DOCSTRINGS = list(docstrings())
PARSED = [parse_blocks(doc) for doc in DOCSTRINGS]
BLOCKS = [block for blocks, _ in PARSED for block in blocks]
PYTHON_BLOCKS = [block for block in BLOCKS if block.is_python]


def _find_doctests() -> list[doctest.DocTest]:
    finder = SourceFinder()
    found: list[doctest.DocTest] = []
    for module in sorted({doc.module for doc in DOCSTRINGS}):
        found.extend(test for test in finder.find(importlib.import_module(module)) if test.examples)
    return sorted(found, key=lambda test: test.name)


DOCTESTS = _find_doctests()


# ------------------------------------------------------------------------ the tests


def test_the_package_has_examples_of_each_kind() -> None:
    """The collection works: if it found nothing, every other test would pass vacuously."""
    assert len(DOCTESTS) >= 10
    assert len(PYTHON_BLOCKS) >= 20
    assert any("await" in block.code for block in PYTHON_BLOCKS)


SAMPLE = """Summary line::

        first = 1

    .. code-block:: text

        a diagram

    .. code-block:: python

        second = 2

    ```python
    third = 3
    ```

    ::

        # not run: needs a GPU
        fourth = 4

    ::

        >>> 1 + 1
        2

    A paragraph, then a block quote:

        fifth = 5
    """


def test_the_parser_on_a_sample() -> None:
    doc = Docstring("m", "f", Path("m.py"), 10, SAMPLE)
    blocks, problems = parse_blocks(doc)
    found = [(b.line, b.language, b.is_python, b.not_run, b.code.strip()) for b in blocks]
    assert found == [
        (12, "", True, None, "first = 1"),
        (16, "text", False, None, "a diagram"),
        (20, "python", True, None, "second = 2"),
        (23, "python", True, None, "third = 3"),
        (28, "", True, "needs a GPU", "# not run: needs a GPU\nfourth = 4"),
        (33, "", False, None, ">>> 1 + 1\n2"),
    ]
    assert problems == [
        "m.py:38: an indented block not introduced by '::' in m:f"
        " (mark an example as code, or as `.. code-block:: text`)"
    ]


def test_every_indented_block_is_marked() -> None:
    problems = [problem for _, found in PARSED for problem in found]
    assert problems == []


def test_doctest_finder_sees_every_docstring_with_examples() -> None:
    """``DocTestFinder`` walks live objects; the source may hold a docstring it does not
    reach (a nested function, a wrapper without ``__wrapped__``)."""
    parser = doctest.DocTestParser()
    in_source = {(doc.path, doc.text) for doc in DOCSTRINGS if parser.get_examples(doc.text)}
    found = {(Path(test.filename or "").resolve(), test.docstring) for test in DOCTESTS}
    assert sorted(f"{path}: {text[:60]!r}" for path, text in in_source - found) == []


@pytest.mark.parametrize("test", DOCTESTS, ids=[test.name for test in DOCTESTS])
def test_doctest(test: doctest.DocTest) -> None:
    test = copy.copy(test)
    test.globs = dict(test.globs)  # the runner clears them after the run
    runner = doctest.DocTestRunner()
    output: list[str] = []
    runner.run(test, out=output.append)
    assert runner.summarize(verbose=False).failed == 0, "".join(output)


def _providers() -> list[tuple[str, str]]:
    """(environment-variable prefix, API family) of every shipped manifest."""
    found = []
    for path in sorted(builtin_protocol_dir().glob("*.yaml")):
        manifest = load_manifest(path)
        found.append((re.sub(r"[^A-Z0-9]", "_", manifest.id.upper()), manifest.api_family))
    return found


PROVIDERS = _providers()


def _point_providers_at(mock: MockProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipped provider's base URL at the mock, and a dummy key for each."""
    for prefix, api_family in PROVIDERS:
        base_url = {
            "anthropic_messages": mock.anthropic_base_url,
            "gemini_generate": mock.gemini_base_url,
        }.get(api_family, mock.openai_base_url)
        monkeypatch.setenv(f"{prefix}_BASE_URL", base_url)
        monkeypatch.setenv(f"{prefix}_API_KEY", "docstring-example-key")


def _namespace(block: Block, client: Client) -> dict[str, Any]:
    namespace: dict[str, Any] = {name: getattr(ailib_anyio, name) for name in ailib_anyio.__all__}
    namespace.update(
        {name: getattr(ailib_anyio.testing, name) for name in ailib_anyio.testing.__all__}
    )
    namespace["anyio"] = anyio
    namespace.update(vars(importlib.import_module(block.doc.module)))
    namespace["client"] = client
    return namespace


async def run_block(block: Block, namespace: dict[str, Any]) -> None:
    # padded so that a traceback names the docstring's own line in the source file
    source = "\n" * (block.line - 1) + block.code
    code = compile(
        source, str(block.doc.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    before = set(namespace)
    if block.doc.module in BLOCKING_MODULES:
        await anyio.to_thread.run_sync(eval, code, namespace)
    else:
        result = eval(code, namespace)
        if code.co_flags & inspect.CO_COROUTINE:
            await result
    for name in sorted(set(namespace) - before):
        if name.startswith("test_") and callable(namespace[name]):
            namespace[name]()


@pytest.mark.anyio
@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.id for block in PYTHON_BLOCKS])
async def test_code_block(block: Block, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"{block.id} (line {block.line}) is marked 'not run: {block.not_run}'")
    shutil.copy(builtin_protocol_dir() / "openai.yaml", tmp_path / "my-provider.yaml")
    monkeypatch.chdir(tmp_path)
    async with MockProvider() as mock:
        _point_providers_at(mock, monkeypatch)
        async with open_client("openai/gpt-4o") as client:
            await run_block(block, _namespace(block, client))
