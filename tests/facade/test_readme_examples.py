"""Every README example that starts the mock provider runs as written, on asyncio and trio.

A ```python block of README.md that contains ``MockProvider(`` is self-contained: it is run
inside a coroutine (its top-level ``await`` and ``async with`` as written), with its output
captured. Blocks without the mock need a real provider key and are not run here (the tools
snippet has its own test, ``test_readme_tools.py``)."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.anyio


def blocks() -> list[tuple[str, str]]:
    """``(heading, code)`` of every runnable Python block of the README."""
    text = README.read_text(encoding="utf-8")
    found = []
    heading = ""
    for match in re.finditer(r"^(#{2,3} [^\n]*)$|^```python\n(.*?)^```", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        elif "MockProvider(" in match.group(2):
            found.append((heading, match.group(2)))
    return found


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


@pytest.mark.parametrize(("heading", "code"), blocks(), ids=[h for h, _ in blocks()])
async def test_readme_example_runs(heading: str, code: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(README.parent)
    source = "async def example():\n" + textwrap.indent(code, "    ") + "\n    pass\n"
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(source, f"{README}: {heading}", "exec"), namespace)
    out = io.StringIO()
    library = logging.getLogger("ailib_anyio")
    level = library.level
    try:
        with contextlib.redirect_stdout(out):
            await namespace["example"]()
    finally:
        library.setLevel(level)  # an example may turn on DEBUG (setLevel clears the cache)
    assert out.getvalue() or "print(" not in code  # an example that prints printed
