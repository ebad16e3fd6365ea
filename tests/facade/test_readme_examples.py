"""Every README and docs/ example that starts the mock provider runs as written, on
asyncio and trio.

A ```python block of README.md or of a page under docs/ that contains ``MockProvider(``
is self-contained: it is run inside a coroutine (its top-level ``await`` and
``async with`` as written), with its output captured. A block that starts its own event
loop (``anyio.run(``), blocking code of the sync facade (``ailib_anyio.sync``, which
refuses a running event loop) or a hypothesis property (``@given(``, no event loop) is run
as a module, in a worker thread. Blocks without the mock need
a real provider key and are not run here (the README's tools snippet has its own test,
``test_readme_tools.py``); the pages written for the documentation site have none."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import textwrap
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
# pages written before the site, with fragments that are not whole programs
FRAGMENT_PAGES = {"architecture.md", "resilience.md", "fuzzing.md", "security.md"}

pytestmark = pytest.mark.anyio


def python_blocks(path: Path) -> list[tuple[str, str]]:
    """``(heading, code)`` of every Python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    found = []
    heading = ""
    for match in re.finditer(r"^(#{1,3} [^\n]*)$|^```python\n(.*?)^```", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            found.append((heading, match.group(2)))
    return found


def is_runnable(code: str, path: Path) -> bool:
    """A block with the mock provider, or a property test on a page of the site."""
    return "MockProvider(" in code or (
        "@given(" in code and path.parent.name == "docs" and path.name not in FRAGMENT_PAGES
    )


def blocks(path: Path = README) -> list[tuple[str, str]]:
    """``(heading, code)`` of every runnable Python block of a Markdown file."""
    return [(heading, code) for heading, code in python_blocks(path) if is_runnable(code, path)]


def runnable() -> list[tuple[Path, str, str]]:
    return [(path, h, code) for path in [README, *DOCS] for h, code in blocks(path)]


def test_the_readme_has_runnable_examples() -> None:
    headings = {heading for heading, _ in blocks()}
    assert {
        "Tokens and cost",
        "Structured output",
        "Embeddings",
        "Plugins",
        "Logging",
        "Tracing",
        "Metrics",
    } <= (headings)


def test_every_example_of_the_site_runs() -> None:
    """The site's own pages have only runnable Python blocks, and most have some."""
    pages = [path for path in DOCS if path.name not in FRAGMENT_PAGES]
    for path in pages:
        for heading, code in python_blocks(path):
            assert is_runnable(code, path), f"{path}: {heading}: a block that is not run"
    with_examples = {path.name for path in pages if blocks(path)}
    assert {
        "index.md",
        "concepts.md",
        "services.md",
        "observability.md",
        "workers.md",
        "batch.md",
        "testing.md",
        "migration.md",
    } <= with_examples


@pytest.mark.parametrize(
    ("path", "heading", "code"),
    runnable(),
    ids=[f"{path.relative_to(ROOT)}: {heading}" for path, heading, _ in runnable()],
)
async def test_example_runs(path: Path, heading: str, code: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    library = logging.getLogger("ailib_anyio")
    level = library.level
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    try:
        with contextlib.redirect_stdout(out):
            if any(mark in code for mark in ("anyio.run(", "ailib_anyio.sync", "@given(")):
                # a program: its own loop, or none
                program = compile(code, f"{path}: {heading}", "exec")
                await anyio.to_thread.run_sync(exec, program, namespace)
            else:
                source = "async def example():\n" + textwrap.indent(code, "    ") + "\n    pass\n"
                exec(compile(source, f"{path}: {heading}", "exec"), namespace)
                await namespace["example"]()
    finally:
        library.setLevel(level)  # an example may turn on DEBUG (setLevel clears the cache)
    assert out.getvalue() or "print(" not in code  # an example that prints printed
