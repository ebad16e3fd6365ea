"""Client cost in CPU instructions (valgrind callgrind), next to raw httpx doing the same work.

    python benchmarks/bench_instructions.py [--backend asyncio|trio] [--requests N]
        [--streams N] [--chunks N] [--sides httpx ailib ...] [--keep DIR] [--jobs N]
        [--json PATH]

Wall-clock CPU on a shared machine is noisy; instruction counts are not. Each side runs in
a fresh ``valgrind --tool=callgrind`` child process against the mock provider (in its own
process, not under valgrind): it opens its client, warms up, then does ``n`` items
(requests, or streams of ``--chunks`` content deltas) between two marks, and the
instructions counted between them divided by ``n`` are the cost of one item (start-up,
imports and warm-up left out). ``n`` is large enough (1,000 requests by default) that the
garbage collector's occasional full collection, which lands in a phase or not by chance,
is spread over it as it is in a long-running program. Per chunk is per stream divided by
the SSE events of one stream on the wire (as in ``bench_client.py``). ``PYTHONHASHSEED=0``
makes the children repeatable.

The sides: ``httpx`` (raw httpx, the loops of ``bench_client.py``), ``ailib`` (the
default client), ``ailib_mw`` (five pass-through middlewares), ``ailib_off``
(``telemetry=False``), ``ailib_sdk`` (tracing and metrics on: the OpenTelemetry SDK
with an in-memory span exporter and metric reader, as ``bench_telemetry.py``),
``ailib_h2`` (httpx2 as the HTTP library, through a ``ConnectionPool``) and ``raw_h2``
(the raw loops on an ``httpx2.AsyncClient``).

It measures, it does not assert. ``--keep DIR`` keeps the callgrind files of the large
runs for ``callgrind_annotate`` (C-level functions: the interpreter, json, re, ...).
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_json
from bench_client import (
    FACTORIES,
    PROVIDER_MODEL,
    ailib_request,
    ailib_stream,
    bind,
    mock_server,
    raw_client,
    raw_request,
    raw_stream,
    stream_headers,
)

SIDES = ("httpx", "ailib", "ailib_mw", "ailib_off", "ailib_sdk", "ailib_h2", "raw_h2")
WARM_UP = 5
#: the sides running the hand-written loops (raw httpx, raw httpx2)
RAW = ("httpx", "raw_h2")


@contextlib.asynccontextmanager
async def side_client(side: str, base: str, headers: dict[str, str] | None) -> Any:
    """The open client of one side."""
    if side in ("httpx", "ailib", "ailib_mw", "ailib_h2", "raw_h2"):
        async with FACTORIES[side](base, headers) as client:
            yield client
        return
    from ailib_anyio import open_client

    extra: dict[str, Any] = {"telemetry": False}
    if side == "ailib_sdk":
        from bench_telemetry import sdk_providers

        tracer_provider, meter_provider, _ = sdk_providers()
        extra = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    async with open_client(PROVIDER_MODEL, base_url=f"{base}/v1", headers=headers, **extra) as c:
        yield c


def mark() -> None:
    """A phase boundary: callgrind runs with ``--dump-before=os_getppid``, so each call
    writes the instructions counted since the previous one to a file of its own."""
    os.getppid()


async def child(side: str, kinds: Sequence[str], n: dict[str, int], base: str, chunks: int) -> None:
    """Warm up, then one phase per kind: ``n[kind]`` items between two marks."""
    async with contextlib.AsyncExitStack() as stack:
        works: dict[str, Callable[[], Awaitable[object]]] = {}
        for kind in kinds:
            headers = stream_headers(chunks) if kind == "stream" else None
            client = await stack.enter_async_context(side_client(side, base, headers))
            if kind == "stream":
                work = raw_stream if side in RAW else ailib_stream
            else:
                work = raw_request if side in RAW else ailib_request
            works[kind] = bind(work, client)
        for kind in kinds:
            for _ in range(WARM_UP):
                await works[kind]()
        for kind in kinds:
            mark()
            for _ in range(n[kind]):
                await works[kind]()
        mark()


def instructions(path: Path) -> int:
    """The instruction total of a callgrind output file."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {path}")


def run_callgrind(side: str, base: str, args: argparse.Namespace, out: Path) -> list[int]:
    """The instructions of each phase of one side's child (in the order of ``--kinds``)."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--dump-before=os_getppid",
        f"--callgrind-out-file={out}",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        side,
        base,
        "--backend",
        args.backend,
        "--chunks",
        str(args.chunks),
        "--requests",
        str(args.requests),
        "--streams",
        str(args.streams),
        "--kinds",
        *args.kinds,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{done.stderr[-3000:]}")
    # out.1: start-up and warm-up; out.2...: one per kind; out: the close.
    return [instructions(Path(f"{out}.{i + 2}")) for i in range(len(args.kinds))]


@contextlib.contextmanager
def work_dir(keep: str | None) -> Iterator[Path]:
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    path = Path(tempfile.mkdtemp(prefix="bench_instr_"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def events_per_stream(base: str, chunks: int) -> int:
    async def go() -> int:
        async with raw_client(base, stream_headers(chunks)) as client:
            return (await raw_stream(client))[0]

    return anyio.run(go)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--requests", type=int, default=1000, help="requests measured per side")
    p.add_argument("--streams", type=int, default=8, help="streams measured per side")
    p.add_argument("--chunks", type=int, default=200, help="content deltas per stream")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=["httpx", "ailib", "ailib_mw"])
    p.add_argument(
        "--kinds", nargs="+", choices=("request", "stream"), default=["request", "stream"]
    )
    p.add_argument("--keep", metavar="DIR", help="keep the callgrind files here")
    p.add_argument("--jobs", type=int, default=2, help="valgrind children at once")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--child", nargs=2, metavar=("SIDE", "BASE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n = {"request": args.requests, "stream": args.streams}
    if args.child:
        side, base = args.child
        anyio.run(child, side, args.kinds, n, base, args.chunks, backend=args.backend)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 1
    started = time.monotonic()
    doc = bench_json.environment(
        "bench_instructions",
        args.backend,
        "full",
        ["ailib-anyio", "httpx", "httpx2", "anyio", "trio", "opentelemetry-sdk"],
    )
    with mock_server() as base, work_dir(args.keep) as tmp:
        per_stream = events_per_stream(base, args.chunks)
        outs = [tmp / f"callgrind.{args.backend}.{side}" for side in args.sides]
        with ThreadPoolExecutor(args.jobs) as pool:
            phases = list(pool.map(lambda s, o: run_callgrind(s, base, args, o), args.sides, outs))
    print(f"instructions per item ({args.backend}; callgrind)")
    for k, kind in enumerate(args.kinds):
        per = n[kind] * (1 if kind == "request" else per_stream)
        unit = "request" if kind == "request" else f"chunk ({per_stream} SSE events per stream)"
        print(f"per {unit}: {n[kind]} {kind}s")
        cost = {side: phases[i][k] / per for i, side in enumerate(args.sides)}
        raw = cost.get("httpx")
        for side in args.sides:
            ratio = f"{cost[side] / raw:5.3f}x httpx" if raw else ""
            extra = ""
            if side == "ailib_mw" and "ailib" in cost:
                extra = f"  {cost[side] / cost['ailib']:5.3f}x ailib"
            print(f"  {side:<10} {cost[side]:12,.0f} Ir  {ratio}{extra}")
        doc["metrics"].append(json_metric(kind, n[kind], per_stream, cost))
    if args.json:
        doc["sides"] = {side: {"label": SIDE_LABELS[side], "peer": False} for side in args.sides}
        doc["settings"] = {
            "requests": args.requests,
            "streams": args.streams,
            "chunks": args.chunks,
        }
        bench_json.write(args.json, bench_json.finish(doc, started, time.monotonic()))
        print(f"figures written to {args.json}")
    return 0


SIDE_LABELS = {
    "httpx": "raw httpx: the hand-written loops of bench_client.py",
    "ailib": "ailib_anyio, the default client",
    "ailib_mw": "ailib_anyio with five pass-through middlewares",
    "ailib_off": "ailib_anyio, telemetry=False",
    "ailib_sdk": "ailib_anyio, OpenTelemetry SDK tracing and metrics on",
    "ailib_h2": "ailib_anyio on httpx2 (a ConnectionPool of httpx2 clients)",
    "raw_h2": "raw httpx2: the same loops on an httpx2.AsyncClient",
}


def json_metric(kind: str, n: int, per_stream: int, cost: dict[str, float]) -> dict[str, Any]:
    """One metric of the ``--json`` document: thousands of instructions per item (one run
    per side: the count does not vary), with the bars of bench_client.py and
    bench_telemetry.py for the sides measured."""
    if kind == "request":
        name, note, limit = "CPU instructions / non-streaming request", f"{n} requests", 1.15
    else:
        name, limit = "CPU instructions / streamed chunk (back to back)", 1.25
        note = f"{n} streams of {per_stream} SSE events"
    runs = {side: [value / 1000] for side, value in cost.items()}
    entry = bench_json.metric(kind, name, "kIr", runs, note=note)
    if "httpx" in runs:
        for side, op, bar, against, source in (
            ("ailib", "<=", limit, "httpx", "DESIGN.md §6"),
            ("ailib_h2", "<", 1.0, "httpx", "ISSUE 11 (httpx2)"),
            ("ailib_mw", "<=", 1.05, "ailib", "ISSUE 11 (middleware)"),
            ("ailib_sdk", "<=", 1.3, "httpx", "DESIGN.md §6"),
        ):
            if side in runs and against in runs:
                bench_json.bar(entry, side, op, bar, against=against, source=source)
    return entry


if __name__ == "__main__":
    raise SystemExit(main())
