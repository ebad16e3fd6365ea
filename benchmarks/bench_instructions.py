"""Client cost in CPU instructions (valgrind callgrind), next to raw httpx doing the same work.

    python benchmarks/bench_instructions.py [--backend asyncio|trio] [--requests N]
        [--streams N] [--chunks N] [--concurrent N] [--concurrent-chunks N]
        [--kinds request stream concurrent] [--sides httpx ailib ...] [--keep DIR]
        [--jobs N] [--json PATH]

Wall-clock CPU on a shared machine is noisy; instruction counts are not. Each side runs in
a fresh ``valgrind --tool=callgrind`` child process against the mock provider (in its own
process, not under valgrind): it opens its client, warms up, then does ``n`` items
(requests, or streams of ``--chunks`` content deltas) between two marks, and the
instructions counted between them divided by ``n`` are the cost of one item (start-up,
imports and warm-up left out). ``n`` is large enough (1,000 requests by default) that the
garbage collector's occasional full collection, which lands in a phase or not by chance,
is spread over it as it is in a long-running program. Per chunk is per stream divided by
the SSE events of one stream on the wire (as in ``bench_client.py``). The ``concurrent``
phase starts ``--concurrent`` streams (1,000 by default, of 50 deltas) at once in one task
group on one client, as ``bench_client.py``'s concurrency rows do, and counts the whole
phase: the pool's bookkeeping for a thousand connections is in it. Its wall-clock
counterpart swings by a factor of two from run to run on a two-CPU machine, for the same
work (docs/performance.md); the count does not. ``PYTHONHASHSEED=0``
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
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_client
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
#: Every timeout of every side's client in the callgrind children (seconds).
SLOW_TIMEOUT = 3600.0
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


def concurrently(work: Callable[[], Awaitable[object]], n: int) -> Callable[[], Awaitable[None]]:
    """``n`` copies of ``work`` started at once in one task group (one client, one pool)."""

    async def one() -> None:
        await work()

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)

    return run


async def child(args: argparse.Namespace, side: str, base: str) -> None:
    """Warm up, then one phase per kind between two marks: ``--requests`` requests one
    after the other, ``--streams`` streams one after the other, or (``concurrent``) one
    task group of ``--concurrent`` streams of ``--concurrent-chunks`` deltas."""
    bench_client.TIMEOUT = httpx.Timeout(SLOW_TIMEOUT)
    async with contextlib.AsyncExitStack() as stack:
        works: dict[str, Callable[[], Awaitable[object]]] = {}
        warm: dict[str, Callable[[], Awaitable[object]]] = {}
        for kind in args.kinds:
            chunks = {"stream": args.chunks, "concurrent": args.concurrent_chunks}.get(kind)
            headers = stream_headers(chunks) if chunks else None
            client = await stack.enter_async_context(side_client(side, base, headers))
            work: Callable[[Any], Awaitable[object]]
            if kind == "request":
                work = raw_request if side in RAW else ailib_request
            else:
                work = raw_stream if side in RAW else ailib_stream
            warm[kind] = bind(work, client)
            if kind == "concurrent":
                works[kind] = concurrently(warm[kind], args.concurrent)
            else:
                works[kind] = warm[kind]
        for kind in args.kinds:
            for _ in range(WARM_UP):
                await warm[kind]()
        for kind in args.kinds:
            mark()
            for _ in range(PHASE_ITEMS[kind](args)):
                await works[kind]()
        mark()


#: How many times each kind's work runs in its phase.
PHASE_ITEMS: dict[str, Callable[[argparse.Namespace], int]] = {
    "request": lambda a: a.requests,
    "stream": lambda a: a.streams,
    "concurrent": lambda a: 1,
}


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
        "--concurrent",
        str(args.concurrent),
        "--concurrent-chunks",
        str(args.concurrent_chunks),
        "--kinds",
        *args.kinds,
    ]
    # Under valgrind the client runs some fifty times slower than the mock server: a
    # thousand streams opened at once wait longer than 10 s for their turn to connect.
    # Every side gets the same generous timeouts (ailib's through AI_HTTP_TIMEOUT_SECS,
    # the raw sides' in child()); the work counted is the same.
    env = {**os.environ, "PYTHONHASHSEED": "0", "AI_HTTP_TIMEOUT_SECS": str(SLOW_TIMEOUT)}
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--requests", type=int, default=1000, help="requests measured per side")
    p.add_argument("--streams", type=int, default=8, help="streams measured per side")
    p.add_argument("--chunks", type=int, default=200, help="content deltas per stream")
    p.add_argument(
        "--concurrent",
        type=int,
        default=1000,
        help="streams started at once in the concurrent phase",
    )
    p.add_argument(
        "--concurrent-chunks",
        type=int,
        default=50,
        help="content deltas per stream of the concurrent phase",
    )
    p.add_argument("--sides", nargs="+", choices=SIDES, default=["httpx", "ailib", "ailib_mw"])
    p.add_argument(
        "--kinds",
        nargs="+",
        choices=tuple(PHASE_ITEMS),
        default=list(PHASE_ITEMS),
        help="the phases (concurrent: the whole task group of --concurrent streams)",
    )
    p.add_argument("--keep", metavar="DIR", help="keep the callgrind files here")
    p.add_argument("--jobs", type=int, default=2, help="valgrind children at once")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--child", nargs=2, metavar=("SIDE", "BASE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        side, base = args.child
        anyio.run(child, args, side, base, backend=args.backend)
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
        events = {
            "stream": events_per_stream(base, args.chunks),
            "concurrent": events_per_stream(base, args.concurrent_chunks),
        }
        outs = [tmp / f"callgrind.{args.backend}.{side}" for side in args.sides]
        with ThreadPoolExecutor(args.jobs) as pool:
            phases = list(pool.map(lambda s, o: run_callgrind(s, base, args, o), args.sides, outs))
    report(args, phases, events, doc)
    if args.json:
        bench_json.write(args.json, bench_json.finish(doc, started, time.monotonic()))
        print(f"figures written to {args.json}")
    return 0


def report(
    args: argparse.Namespace,
    phases: Sequence[Sequence[int]],
    events: Mapping[str, int],
    doc: dict[str, Any],
) -> None:
    """Print each phase's figures per side (``phases[i][k]``: side ``i``, kind ``k``) and
    fill ``doc``'s metrics, sides and settings."""
    print(f"instructions ({args.backend}; callgrind)")
    for k, kind in enumerate(args.kinds):
        if kind == "request":
            per, what = args.requests, f"per request ({args.requests} requests)"
        elif kind == "stream":
            per = args.streams * events["stream"]
            what = f"per chunk ({args.streams} streams of {events['stream']} SSE events)"
        else:
            per = 1
            what = (
                f"for {args.concurrent} concurrent streams of {events['concurrent']}"
                " SSE events, in all"
            )
        print(what)
        cost = {side: phases[i][k] / per for i, side in enumerate(args.sides)}
        raw = cost.get("httpx")
        for side in args.sides:
            ratio = f"{cost[side] / raw:5.3f}x httpx" if raw else ""
            extra = ""
            if side == "ailib_mw" and "ailib" in cost:
                extra = f"  {cost[side] / cost['ailib']:5.3f}x ailib"
            print(f"  {side:<10} {cost[side]:16,.0f} Ir  {ratio}{extra}")
        doc["metrics"].append(json_metric(kind, args, events.get(kind, 0), cost))
    doc["sides"] = {side: {"label": SIDE_LABELS[side], "peer": False} for side in args.sides}
    doc["settings"] = {
        "requests": args.requests,
        "streams": args.streams,
        "chunks": args.chunks,
        "concurrent": args.concurrent,
        "concurrent_chunks": args.concurrent_chunks,
    }


SIDE_LABELS = {
    "httpx": "raw httpx: the hand-written loops of bench_client.py",
    "ailib": "ailib_anyio, the default client",
    "ailib_mw": "ailib_anyio with five pass-through middlewares",
    "ailib_off": "ailib_anyio, telemetry=False",
    "ailib_sdk": "ailib_anyio, OpenTelemetry SDK tracing and metrics on",
    "ailib_h2": "ailib_anyio on httpx2 (a ConnectionPool of httpx2 clients)",
    "raw_h2": "raw httpx2: the same loops on an httpx2.AsyncClient",
}


def json_metric(
    kind: str, args: argparse.Namespace, per_stream: int, cost: dict[str, float]
) -> dict[str, Any]:
    """One metric of the ``--json`` document: thousands of instructions per request or
    chunk, millions for the concurrent phase (one run per side: the count does not
    vary), with the bars of bench_client.py and bench_telemetry.py for the sides
    measured (per request and per chunk), or DESIGN.md's bar on concurrent streams."""
    scale, unit = 1000, "kIr"
    if kind == "request":
        name, limit = "CPU instructions / non-streaming request", 1.15
        note = f"{args.requests} requests"
    elif kind == "stream":
        name, limit = "CPU instructions / streamed chunk (back to back)", 1.25
        note = f"{args.streams} streams of {per_stream} SSE events"
    else:
        scale, unit, limit = 1_000_000, "MIr", 1.2
        name = f"CPU instructions / {args.concurrent} concurrent streams"
        note = (
            f"{args.concurrent} streams of {per_stream} SSE events started at once in one"
            " task group, one client; the whole phase"
        )
    runs = {side: [value / scale] for side, value in cost.items()}
    entry = bench_json.metric(kind, name, unit, runs, note=note)
    if "httpx" in runs:
        bars: list[tuple[str, str, float, str, str]] = [
            ("ailib", "<=", limit, "httpx", "DESIGN.md §6"),
            ("ailib_h2", "<", 1.0, "httpx", "ISSUE 11 (httpx2)"),
        ]
        if kind != "concurrent":
            bars += [
                ("ailib_mw", "<=", 1.05, "ailib", "ISSUE 11 (middleware)"),
                ("ailib_sdk", "<=", 1.3, "httpx", "DESIGN.md §6"),
            ]
        for side, op, bar, against, source in bars:
            if side in runs and against in runs:
                bench_json.bar(entry, side, op, bar, against=against, source=source)
    return entry


if __name__ == "__main__":
    raise SystemExit(main())
