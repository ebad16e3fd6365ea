"""``import ailib_anyio`` stays light: what the first client needs is loaded by it, not by
the import (DESIGN.md §6: import <= 130 ms; benchmarks/bench_import.py measures it).

Checked by what a fresh interpreter has in ``sys.modules`` after the import, never by
timing: a module-level import added back anywhere on the import path fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

#: Loaded with the first client made (``open_client(...)``, ``Client(...)``), or on first
#: use of a name that needs them (``load_manifest``, ``ProtocolRegistry``...), never by the
#: import: the HTTP libraries (only the transport imports them), the manifest machinery
#: (cattrs, ruamel.yaml, the models, loader and registry), and the target with the
#: encoders, decoders and error classification it stands on.
DEFERRED = (
    "httpx",
    "httpx2",
    "httpcore",
    "h11",
    "cattrs",
    "ruamel",
    "ruamel.yaml",
    "email.utils",
    "ailib_anyio._transport._http",
    "ailib_anyio._protocol._models",
    "ailib_anyio._protocol._loader",
    "ailib_anyio._protocol._registry",
    "ailib_anyio._protocol._credentials",
    "ailib_anyio._client._target",
    "ailib_anyio._client._targetstream",
    "ailib_anyio._core._classify",
    "ailib_anyio._core._encode",
    "ailib_anyio._core._mapping",
)


def loaded_after(code: str) -> set[str]:
    """The modules of ``DEFERRED`` in ``sys.modules`` after running ``code`` in a fresh
    interpreter."""
    probe = textwrap.dedent(code) + (
        f"\nimport json, sys\nprint(json.dumps([m for m in {DEFERRED!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_loads_none_of_the_deferred_modules() -> None:
    assert loaded_after("import ailib_anyio") == set()


def test_what_users_write_before_a_client_loads_none_of_them() -> None:
    # the usual names, a request built by hand, a config checked: still nothing deferred
    code = """
        from ailib_anyio import (
            AiLibError, ChatRequest, ChatResponse, ClientConfig, ContentDelta, Deadlines,
            Message, Middleware, open_client,
        )
        import ailib_anyio.sync
        request = ChatRequest(model="m", messages=(Message.user("hi"),))
        config = ClientConfig(max_retries=2, timeout=5.0, headers={"x-a": "b"})
    """
    assert loaded_after(code) == set()


def test_the_probe_sees_what_a_client_loads() -> None:
    # the other side: making a client loads the transport and the manifest machinery (no
    # I/O: the client is not opened), so the checks above are not vacuous
    code = """
        from ailib_anyio import open_client
        open_client("openai-compatible/m", base_url="http://127.0.0.1:9/v1")
    """
    found = loaded_after(code)
    assert {"httpx", "cattrs", "ruamel.yaml", "ailib_anyio._client._target"} <= found
    assert "httpx2" not in found  # imported only by whoever lends an httpx2 client
