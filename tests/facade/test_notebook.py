"""``examples/notebook.ipynb`` runs in a real Jupyter kernel (ipykernel's ``python3``,
executed by nbclient) against the mock provider, with the sync facade on asyncio and on
trio, and its reply, stream and error show as HTML and markdown cards.

A cell put before the notebook's own checks what the sync facade's exception for
notebooks is about: the kernel runs cells in the main thread with its asyncio loop
running there, and the sync facade works all the same. One kernel per backend (a kernel
takes a few seconds to start).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="the jupyter extra is not installed")
nbclient = pytest.importorskip("nbclient", reason="the jupyter extra is not installed")
pytest.importorskip("ipykernel", reason="the jupyter extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"

PROBE = """\
import asyncio, sys, threading
try:
    asyncio.get_running_loop()
except RuntimeError:
    loop = "none"
else:
    loop = "asyncio"
print(sys.executable, threading.current_thread() is threading.main_thread(), loop)
"""


def run(backend: str) -> list[Any]:
    """The notebook's code cells after running it in a fresh kernel, the probe first."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    env = dict(os.environ, AILIB_NOTEBOOK_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",  # ipykernel's own: this interpreter, whatever is installed
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute(env=env)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def data(cell: Any, output_type: str = "execute_result") -> dict[str, str]:
    """The mime bundle of the cell's one output of ``output_type``."""
    found = [out for out in cell.outputs if out.output_type == output_type]
    assert len(found) == 1, cell.outputs
    return dict(found[0].data)


def cards(cell: Any, output_type: str = "execute_result") -> tuple[str, str]:
    bundle = data(cell, output_type)
    return bundle["text/html"], bundle["text/markdown"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_notebook_runs_in_a_kernel_and_shows_cards(backend: str) -> None:
    probe, setup, chat, stream, error, close = run(backend)
    for cell in (probe, setup, chat, stream, error, close):
        assert not [out for out in cell.outputs if out.output_type == "error"], cell.outputs
    # the kernel: this interpreter, cells in the main thread, its asyncio loop running
    assert probe.outputs[0].text == f"{sys.executable} True asyncio\n"
    assert data(setup) == {"text/plain": "<SyncClient openai/gpt-4o open>"}

    html, markdown = cards(chat)
    assert html.startswith('<div class="ailib-anyio"><strong>ChatResponse</strong>')
    assert "2 + 2 = 4 &lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt;</pre>" in html
    assert "<script" not in html
    assert '>tokens</th><td style="text-align:left">12 in, 7 out</td>' in html
    assert ">cost</th>" in html
    assert markdown.startswith(
        "**ChatResponse**\n\n> 2 + 2 = 4 &lt;script&gt;alert('hi')&lt;/script&gt;\n\n"
        "- model: gpt-4o\n- finish: stop\n- tokens: 12 in, 7 out\n- cost: "
    )

    html, markdown = cards(stream, "display_data")  # displayed inside the block
    assert "<strong>SyncChatStream (open)</strong>" in html
    assert "- state: open\n- events so far: 1\n- text so far: 10 characters\n" in markdown
    html, markdown = cards(stream)  # the cell's value, after the block
    assert "<strong>SyncChatStream (closed)</strong>" in html
    assert "Once upon a time, a stream was read to its end.</pre>" in html
    assert "- state: closed\n- events so far: 7\n- text so far: 47 characters\n" in markdown

    html, markdown = cards(error)
    assert "<strong>RateLimitedError</strong>" in html
    assert "rate_limited: Slow down, &lt;redacted&gt;</pre>" in html
    assert markdown.endswith(
        "- kind: rate\\_limited (E2001)\n- provider: openai/gpt-4o\n- status: 429\n"
        "- request id: req\\_mock\\_3\n- retryable: yes, after 7 s\n"
        "- hint: wait before retrying, or lower the concurrency: max\\_inflight=,"
        " rate\\_limit=\n"
    )
    everything = str([cell.outputs for cell in (chat, stream, error)])
    assert "sk-notebook-demo" not in everything  # the key the server echoed: masked
    assert close.outputs == []
