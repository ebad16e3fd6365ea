"""Import time of ailib_anyio next to raw httpx, and what the first client costs on top.

    python benchmarks/bench_import.py [--runs 20] [--quick]

Each statement runs in a fresh ``python -c`` process; the runs are interleaved (every
round runs each statement once, the order rotated each round) and each figure is the
median wall time of its runs minus the median of ``python -c pass``: the cost net of bare
Python (DESIGN.md §6: ``import ailib_anyio`` <= 130 ms). The children run with bytecode
caching on (``PYTHONDONTWRITEBYTECODE`` removed) and a warm-up run first, as an installed
package has its ``.pyc`` files.

The rows:

- ``import ailib_anyio``, ``from ailib_anyio import open_client, ...`` (what users write),
  ``import httpx`` (the reference: raw httpx alone) and ``import httpx2`` when installed;
- the first request, from an empty process: import, open a client, one request to the
  loopback mock provider (in its own process), close — for ailib_anyio and for raw httpx
  (``AsyncClient`` + ``post`` + ``json.loads``). The package defers the transport (httpx),
  the manifest machinery (cattrs, ruamel.yaml, the models) and the decoders to the first
  client made; these rows show that cost where it moved.

Under the table, the heavy third-party modules each statement leaves loaded are listed.
It measures, it never asserts: the exit code is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Third-party modules whose presence after a statement says what it loaded.
HEAVY = ("httpx", "httpx2", "httpcore", "h11", "anyio", "cattrs", "ruamel", "asyncio", "attrs")

IMPORTS: dict[str, str] = {
    "import ailib_anyio": "import ailib_anyio",
    "from ailib_anyio import open_client, ...": (
        "from ailib_anyio import ChatRequest, ContentDelta, Message, open_client"
    ),
    "import httpx": "import httpx",
}
IMPORT_HTTPX2 = {"import httpx2": "import httpx2"}

FIRST_AILIB = """
import anyio
from ailib_anyio import open_client
async def main():
    async with open_client("openai-compatible/bench-model", base_url=BASE + "/v1") as c:
        reply = await c.chat().user("hi").execute()
    assert reply.content == "Mock reply to: hi", reply.content
anyio.run(main)
"""
FIRST_HTTPX = """
import json
import anyio
import httpx
async def main():
    async with httpx.AsyncClient(base_url=BASE) as c:
        body = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}
        r = await c.post("/v1/chat/completions", json=body)
        text = json.loads(r.content)["choices"][0]["message"]["content"]
    assert text == "Mock reply to: hi", text
anyio.run(main)
"""


def child_env() -> dict[str, str]:
    """The environment of the measured children: bytecode caching on, no import profiling."""
    drop = {"PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def wall(code: str, env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(env))
    return time.perf_counter() - start


def net_times(
    statements: Mapping[str, str], runs: int, env: Mapping[str, str] | None = None
) -> dict[str, list[float]]:
    """Wall ms of each statement, ``runs`` interleaved runs each (order rotated per round),
    after one warm-up run of each; ``"pass"`` is included as the baseline."""
    env = child_env() if env is None else env
    codes = {"pass": "pass", **statements}
    for code in codes.values():  # warm-up: .pyc files, the OS's file cache
        wall(code, env)
    times: dict[str, list[float]] = {name: [] for name in codes}
    names = list(codes)
    for r in range(runs):
        k = r % len(names)
        for name in [*names[k:], *names[:k]]:
            times[name].append(wall(codes[name], env) * 1e3)
    return times


def net_median(times: Mapping[str, list[float]], name: str) -> float:
    """The median of ``name``'s runs minus the median of ``pass``'s (ms, >= 0)."""
    return max(0.0, statistics.median(times[name]) - statistics.median(times["pass"]))


def import_ms(statement: str, runs: int) -> tuple[float, float]:
    """``(net ms of statement, net ms of import httpx)``, measured in the same runs (the
    import row of bench_client.py)."""
    times = net_times({"stmt": statement, "httpx": "import httpx"}, runs)
    return net_median(times, "stmt"), net_median(times, "httpx")


def loaded(code: str, env: Mapping[str, str]) -> str:
    """The heavy third-party top-level modules ``code`` leaves in ``sys.modules``."""
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] for m in sys.modules}}))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, env=dict(env), capture_output=True, text=True
    )
    present = set(eval(out.stdout.strip().splitlines()[-1]))  # a list literal we printed
    return ", ".join(m for m in HEAVY if m in present) or "none of them"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="interleaved runs per statement")
    p.add_argument("--quick", action="store_true", help="5 runs, no first-request rows")
    args = p.parse_args(argv)
    runs = 5 if args.quick else args.runs

    try:
        import httpx2  # noqa: F401
    except ImportError:
        has_httpx2 = False
    else:
        has_httpx2 = True
    statements = {**IMPORTS, **(IMPORT_HTTPX2 if has_httpx2 else {})}
    env = child_env()
    started = time.monotonic()
    if args.quick:
        times = net_times(statements, runs, env)
    else:
        from bench_client import mock_server

        with mock_server() as base:
            prefix = f"BASE = {base!r}\n"
            statements["first request: ailib_anyio"] = prefix + FIRST_AILIB
            statements["first request: raw httpx"] = prefix + FIRST_HTTPX
            times = net_times(statements, runs, env)
    base_ms = statistics.median(times["pass"])
    httpx_ms = net_median(times, "import httpx")
    print(
        f"import time, net of `python -c pass` ({base_ms:.1f} ms): median of {runs} "
        f"interleaved runs each; python {sys.version.split()[0]}; "
        f"{time.monotonic() - started:.0f} s"
    )
    width = max(len(name) for name in statements)
    print(f"{'statement'.ljust(width)}  {'net ms':>7}  {'vs import httpx':>15}  min..max ms")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 15}  -----------")
    for name in statements:
        net = net_median(times, name)
        ratio = f"{net / httpx_ms:.2f}x" if httpx_ms > 0 else "n/a"
        spread = f"{min(times[name]) - base_ms:.0f}..{max(times[name]) - base_ms:.0f}"
        bar = (
            "  (bar <= 130 ms: " + ("ok)" if net <= 130 else "OVER)")
            if name == "import ailib_anyio"
            else ""
        )
        print(f"{name.ljust(width)}  {net:7.1f}  {ratio:>15}  {spread}{bar}")
    first = ("first request: ailib_anyio", "first request: raw httpx")
    if all(name in times for name in first):
        a, h = (net_median(times, name) for name in first)
        print(f"\nfirst request from an empty process: ailib_anyio - raw httpx = {a - h:+.1f} ms")
    print("\nheavy modules loaded by each import:")
    for name in IMPORTS:
        print(f"  {name}: {loaded(IMPORTS[name], env)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
