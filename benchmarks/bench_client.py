"""Client-side cost of ailib_anyio next to raw httpx doing the same work (DESIGN.md §6).

    python benchmarks/bench_client.py [--backend asyncio|trio] [--quick] [--no-httpx2]
        [--no-middleware] [--no-peers] [--json PATH]

The loopback mock provider runs in a separate process (``python -m ailib_anyio
mock-server``), so ``time.process_time()`` in this process counts the client's CPU only.
Every figure is measured for ailib_anyio and for raw httpx in the same run, in alternating
rounds (ailib first in even rounds, httpx first in odd ones), and the median of the rounds
is reported. The concurrency figures come from fresh child processes of this script
(``--child``), one per side and repetition, so that peak RSS is per side.

When httpx2 is installed (``pip install 'ailib-anyio[httpx2]'``), two more sides run in
the same rounds: ailib_anyio on httpx2 (a ``ConnectionPool`` of httpx2 clients) and raw
httpx2 (the same hand-written loops as raw httpx). A second table gives their ratios to
raw httpx.

The in-process rows also run ailib_anyio with five pass-through middlewares installed
(``on_call``, ``on_attempt`` and ``on_event`` each calling through): a third table gives
the seam's cost as ratios to the same client without middleware and to raw httpx.

When the official ``openai`` SDK is installed (the ``bench`` extra), a peer side runs in
the same rounds: ``AsyncOpenAI`` on the mock provider (``chat.completions.create``, and
``stream=True``) with the same request body, pool limits and reading of the stream. A
fourth table gives it as a ratio to raw httpx.

``--json PATH`` writes every figure (the runs of each side, medians, ratios, bars), the
command line, the versions and the machine to PATH (benchmarks/result_schema.json);
``benchmarks/charts.py`` draws the documentation's charts from it.

It measures, it does not assert: the exit code is 0 whatever the figures are (a failed
measurement is printed as ``error`` in its row). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_json
from bench_import import net_times

from ailib_anyio import Call, Middleware
from ailib_anyio._client._middleware import Next

try:
    import httpx2
except ImportError:  # the httpx2 sides are left out
    httpx2 = None
#: The peer side runs when the openai SDK is installed; it is imported by that side only
#: (its import, pydantic's models included, would otherwise enlarge every side's heap).
HAS_OPENAI = importlib.util.find_spec("openai") is not None

MODEL = "bench-model"
PROVIDER_MODEL = f"openai-compatible/{MODEL}"
CHAT_PATH = "/v1/chat/completions"
#: The pool ailib's transport uses (unbounded connections, 100 kept alive); the raw httpx
#: side uses the same so that both do the same work at high concurrency (httpx's default
#: of 100 connections would queue the other 156 streams instead).
POOL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100)
TIMEOUT = httpx.Timeout(600.0, connect=10.0, write=60.0, pool=60.0)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    rounds: int  # alternated rounds per in-process metric (median reported)
    requests: int  # sequential non-streaming requests per round
    burst_chunks: int  # content deltas per stream, sent back to back
    burst_streams: int  # streams per round
    paced_chunks: int  # content deltas per stream, spaced by paced_delay_ms
    paced_streams: int
    paced_delay_ms: float
    conc_streams: tuple[int, ...]  # concurrent streams on one client (one row pair each)
    conc_chunks: int
    conc_delay_ms: float
    conc_reps: int  # child processes per side
    import_reps: int  # interleaved runs per import statement (median reported)


FULL = Settings(
    rounds=7,
    requests=200,
    burst_chunks=200,
    burst_streams=5,
    paced_chunks=100,
    paced_streams=2,
    paced_delay_ms=1.0,
    conc_streams=(256,),
    conc_chunks=50,
    conc_delay_ms=0.0,
    conc_reps=5,
    import_reps=20,
)
QUICK = Settings(
    rounds=3,
    requests=30,
    burst_chunks=50,
    burst_streams=2,
    paced_chunks=20,
    paced_streams=1,
    paced_delay_ms=1.0,
    conc_streams=(64,),
    conc_chunks=10,
    conc_delay_ms=0.0,
    conc_reps=1,
    import_reps=3,
)


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    metric: str
    unit: str  # "us", "ms", "MiB", ...
    bar: str  # the DESIGN.md bar, as text
    limit: float  # the bar's number
    absolute: bool = False  # the bar is on ailib's own figure, not on the ratio
    ailib: list[float] = field(default_factory=list)
    httpx: list[float] = field(default_factory=list)
    ailib_h2: list[float] = field(default_factory=list)  # ailib with httpx2 (its pool)
    raw_h2: list[float] = field(default_factory=list)  # raw httpx2
    ailib_mw: list[float] = field(default_factory=list)  # ailib with 5 no-op middlewares
    openai: list[float] = field(default_factory=list)  # the peer: the openai SDK
    error: str | None = None
    note: str = ""

    def medians(self) -> tuple[float, float] | None:
        if self.error or not self.ailib or not self.httpx:
            return None
        return statistics.median(self.ailib), statistics.median(self.httpx)


def _fmt(value: float, unit: str) -> str:
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def print_table(rows: Sequence[Row], header: str) -> None:
    print()
    print(header)
    cols = ("metric", "ailib", "raw httpx", "ratio", "bar", "")
    lines: list[tuple[str, ...]] = []
    for row in rows:
        m = row.medians()
        if m is None:
            lines.append((row.metric, "error", "error", "n/a", row.bar, ""))
            continue
        a, h = m
        ratio = a / h if h > 0 else float("inf")
        within = (a <= row.limit) if row.absolute else (ratio <= row.limit)
        lines.append(
            (
                row.metric,
                _fmt(a, row.unit),
                _fmt(h, row.unit),
                f"{ratio:.2f}x",
                row.bar,
                "ok" if within else "OVER",
            )
        )
    print_columns(cols, lines, right=3)
    print()
    for row in rows:
        if row.error:
            print(f"  {row.metric}: error: {row.error}")
        if row.note:
            print(f"  {row.metric}: {row.note}")
        m = row.medians()
        if m is not None:
            spread_a = f"{min(row.ailib):.2f}..{max(row.ailib):.2f}"
            spread_h = f"{min(row.httpx):.2f}..{max(row.httpx):.2f}"
            print(
                f"    runs={len(row.ailib)}/{len(row.httpx)}  ailib {spread_a}  "
                f"httpx {spread_h} ({row.unit}); ailib - httpx = {m[0] - m[1]:+.2f} {row.unit}"
            )


def print_columns(cols: Sequence[str], lines: Sequence[Sequence[str]], *, right: int) -> None:
    """A plain-text table: the first column left-aligned, the next ``right`` (figures)
    right-aligned, any others left-aligned."""
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]

    def fmt_line(cells: Sequence[str]) -> str:
        out = [
            cell.rjust(widths[i]) if 1 <= i <= right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(out).rstrip()

    print(fmt_line(cols))
    print(fmt_line(["-" * w for w in widths]))
    for line in lines:
        print(fmt_line(line))


def print_httpx2_table(rows: Sequence[Row], header: str) -> None:
    """The httpx2 sides as ratios to raw httpx of the same run (bar: below 1.00x)."""
    print(header)
    cols = ("metric", "raw httpx", "ailib/httpx2", "ratio", "raw httpx2", "ratio", "bar", "")
    lines: list[tuple[str, ...]] = []
    for row in rows:
        if row.error or not row.httpx or not row.ailib_h2 or not row.raw_h2:
            lines.append((row.metric, "error", "error", "n/a", "error", "n/a", "< 1.00x", ""))
            continue
        h = statistics.median(row.httpx)
        a2, r2 = statistics.median(row.ailib_h2), statistics.median(row.raw_h2)
        ratio_a2 = a2 / h if h > 0 else float("inf")
        ratio_r2 = r2 / h if h > 0 else float("inf")
        lines.append(
            (
                row.metric,
                _fmt(h, row.unit),
                _fmt(a2, row.unit),
                f"{ratio_a2:.2f}x",
                _fmt(r2, row.unit),
                f"{ratio_r2:.2f}x",
                "< 1.00x",
                "ok" if ratio_a2 < 1.0 else "OVER",
            )
        )
    print_columns(cols, lines, right=5)
    print()
    for row in rows:
        if row.ailib_h2 and row.raw_h2:
            print(
                f"  {row.metric}: runs={len(row.ailib_h2)}/{len(row.raw_h2)}  ailib/httpx2 "
                f"{min(row.ailib_h2):.2f}..{max(row.ailib_h2):.2f}  raw httpx2 "
                f"{min(row.raw_h2):.2f}..{max(row.raw_h2):.2f} ({row.unit})"
            )


def print_middleware_table(rows: Sequence[Row], header: str) -> None:
    """ailib with five pass-through middlewares, against ailib without any and raw httpx
    (ISSUE 11: per request <= 1.05x the client without middleware, per chunk unchanged
    within noise: the spreads under the table show the noise)."""
    print(header)
    cols = ("metric", "ailib", "ailib+5 mw", "vs ailib", "vs raw httpx", "bar", "")
    lines: list[tuple[str, ...]] = []
    for row in rows:
        if not row.ailib_mw:
            continue
        m = row.medians()
        if m is None:
            lines.append((row.metric, "error", "error", "n/a", "n/a", "", ""))
            continue
        a, h = m
        mw = statistics.median(row.ailib_mw)
        ratio = mw / a if a > 0 else float("inf")
        lines.append(
            (
                row.metric,
                _fmt(a, row.unit),
                _fmt(mw, row.unit),
                f"{ratio:.2f}x",
                f"{mw / h:.2f}x" if h > 0 else "n/a",
                "<= 1.05x",
                "ok" if ratio <= 1.05 else "OVER",
            )
        )
    if not lines:
        print("  (no middleware figures)")
        return
    print_columns(cols, lines, right=4)
    print()
    for row in rows:
        if row.ailib_mw and row.ailib:
            print(
                f"  {row.metric}: runs={len(row.ailib_mw)}  ailib+5 mw "
                f"{min(row.ailib_mw):.2f}..{max(row.ailib_mw):.2f}  ailib "
                f"{min(row.ailib):.2f}..{max(row.ailib):.2f} ({row.unit}); ailib+5 mw - ailib"
                f" = {statistics.median(row.ailib_mw) - statistics.median(row.ailib):+.2f}"
                f" {row.unit}"
            )


def print_peer_table(rows: Sequence[Row], header: str) -> None:
    """The peer (the openai SDK) beside ailib, both as ratios to raw httpx (no bar: a
    comparison, not a requirement)."""
    print(header)
    cols = ("metric", "raw httpx", "ailib", "ratio", "openai SDK", "ratio")
    lines: list[tuple[str, ...]] = []
    for row in rows:
        m = row.medians()
        if m is None or not row.openai:
            lines.append((row.metric, "error", "error", "n/a", "error", "n/a"))
            continue
        a, h = m
        o = statistics.median(row.openai)
        lines.append(
            (
                row.metric,
                _fmt(h, row.unit),
                _fmt(a, row.unit),
                f"{a / h:.2f}x" if h > 0 else "n/a",
                _fmt(o, row.unit),
                f"{o / h:.2f}x" if h > 0 else "n/a",
            )
        )
    print_columns(cols, lines, right=5)
    print()
    for row in rows:
        if row.openai:
            print(
                f"  {row.metric}: runs={len(row.openai)}  openai SDK "
                f"{min(row.openai):.2f}..{max(row.openai):.2f} ({row.unit})"
            )


def json_document(
    rows: dict[str, Row], args: argparse.Namespace, s: Settings, started: float
) -> dict[str, Any]:
    """Every figure of the run, in the schema of benchmarks/result_schema.json."""
    doc = bench_json.environment(
        "bench_client",
        args.backend,
        "quick" if args.quick else "full",
        ["ailib-anyio", "httpx", "httpx2", "openai", "anyio", "trio", "httpcore", "h11"],
    )
    doc["date"] = START_DATE
    doc["machine"]["load_average_start"] = START_LOAD
    doc["settings"] = dict(vars(s))
    doc["settings"]["conc_streams"] = [int(k.rsplit("_", 1)[1]) for k in rows if "conc_cpu" in k]
    names = [*sides(), *([] if NO_MIDDLEWARE else ["ailib_mw"])]
    doc["sides"] = {name: {"label": SIDE_LABELS[name], "peer": name == "openai"} for name in names}
    for key, row in rows.items():
        runs = {name: getattr(row, name) for name in names}
        entry = bench_json.metric(key, row.metric, row.unit, runs, note=row.note, error=row.error)
        bench_json.bar(entry, "ailib", "<=", row.limit, against=None if row.absolute else "httpx")
        if "ailib_h2" in entry["sides"]:
            bench_json.bar(entry, "ailib_h2", "<", 1.0, source="ISSUE 11 (httpx2)")
        if "ailib_mw" in entry["sides"]:
            bench_json.bar(
                entry, "ailib_mw", "<=", 1.05, against="ailib", source="ISSUE 11 (middleware)"
            )
        doc["metrics"].append(entry)
    return bench_json.finish(doc, started, time.monotonic())


START_DATE = ""  # set by main: the date and load average when the run started
START_LOAD: list[float] | None = None


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mock_server() -> Iterator[str]:
    """Run the mock provider in its own process; yield its base URL (no ``/v1``)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ailib_anyio", "mock-server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(trust_env=False, timeout=1.0) as http:
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"mock server exited with {proc.returncode}: {err}")
                try:
                    if http.get(f"{base}/_mock/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("mock server did not answer /_mock/health within 30 s")
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def stream_headers(chunks: int, delay_ms: float = 0.0) -> dict[str, str]:
    headers = {"x-mock-chunks": str(chunks)}
    if delay_ms:
        headers["x-mock-delay-ms"] = repr(delay_ms)
    return headers


def request_payload(stream: bool) -> dict[str, Any]:
    """The JSON body ailib_anyio sends for ``.user("hi")`` to an openai-compatible server."""
    payload: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return payload


def raw_client(base: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, headers=headers, limits=POOL_LIMITS, timeout=TIMEOUT)


def ailib_client(base: str, headers: dict[str, str] | None = None) -> Any:
    from ailib_anyio import open_client

    return open_client(PROVIDER_MODEL, base_url=f"{base}/v1", headers=headers)


def raw_client_h2(base: str, headers: dict[str, str] | None = None) -> Any:
    """Raw httpx2, with the same pool limits and timeouts as the raw httpx side."""
    assert httpx2 is not None
    return httpx2.AsyncClient(
        base_url=base,
        headers=headers,
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=100),
        timeout=httpx2.Timeout(
            TIMEOUT.read, connect=TIMEOUT.connect, write=TIMEOUT.write, pool=TIMEOUT.pool
        ),
    )


@contextlib.asynccontextmanager
async def ailib_client_h2(base: str, headers: dict[str, str] | None = None) -> Any:
    """ailib_anyio with httpx2 as its HTTP library: a ``ConnectionPool`` building httpx2
    clients, with the pool limits ailib's own client has (a client built by the library
    sends to its transport directly; a lent one goes through its ``send``)."""
    from ailib_anyio import ConnectionPool, PoolConfig, open_client

    config = PoolConfig(
        max_connections=None,
        max_keepalive_connections=100,
        keepalive_expiry=5.0,
        http_library="httpx2",
    )
    async with (
        ConnectionPool(config) as pool,
        open_client(PROVIDER_MODEL, base_url=f"{base}/v1", headers=headers, pool=pool) as client,
    ):
        yield client


class PassThrough(Middleware):
    """A no-op middleware on every level: each hook calls straight through."""

    async def on_call(self, call: Call, next: Next) -> Any:
        return await next(call)

    async def on_attempt(self, call: Call, next: Next) -> Any:
        return await next(call)

    def on_event(self, call: Call, event: Any) -> None:
        pass


#: How many no-op middlewares the ``ailib_mw`` side installs (ISSUE 11: five).
MIDDLEWARES = 5


def ailib_client_mw(base: str, headers: dict[str, str] | None = None) -> Any:
    """ailib_anyio with five pass-through middlewares (otherwise as ``ailib_client``)."""
    from ailib_anyio import open_client

    return open_client(
        PROVIDER_MODEL,
        base_url=f"{base}/v1",
        headers=headers,
        middleware=[PassThrough() for _ in range(MIDDLEWARES)],
    )


@contextlib.asynccontextmanager
async def openai_client(base: str, headers: dict[str, str] | None = None) -> Any:
    """The peer: the official openai SDK's ``AsyncOpenAI`` on the mock provider, on an
    httpx2 client (the library the SDK uses) with the pool limits and timeouts of the
    other sides; otherwise the SDK's defaults."""
    import openai

    async with openai.AsyncOpenAI(
        api_key="bench-key",
        base_url=f"{base}/v1",
        default_headers=headers,
        http_client=raw_client_h2(""),
    ) as client:
        yield client


#: The sides: (client factory, request, stream), filled in below the work functions.
SIDE_NAMES = ("ailib", "httpx", "ailib_h2", "raw_h2", "openai")
#: What each side is, for the JSON output.
SIDE_LABELS = {
    "ailib": "ailib_anyio (its own httpx client)",
    "httpx": "raw httpx (hand-written JSON and SSE loops)",
    "ailib_h2": "ailib_anyio on httpx2 (a ConnectionPool of httpx2 clients)",
    "raw_h2": "raw httpx2 (the raw httpx loops)",
    "ailib_mw": f"ailib_anyio with {MIDDLEWARES} pass-through middlewares",
    "openai": "openai SDK (AsyncOpenAI on an httpx2 client)",
}


def has_httpx2() -> bool:
    return httpx2 is not None and not NO_HTTPX2


def has_peers() -> bool:
    # The SDK is lent an httpx2 client (its own HTTP library), so it needs httpx2 too.
    return HAS_OPENAI and httpx2 is not None and not NO_PEERS


def sides() -> tuple[str, ...]:
    """The sides of every metric (the httpx2 ones and the peer when installed and not left
    out)."""
    found = list(SIDE_NAMES[:2])
    if has_httpx2():
        found += SIDE_NAMES[2:4]
    if has_peers():
        found.append("openai")
    return tuple(found)


def in_process_sides() -> tuple[str, ...]:
    """The sides of the in-process rows: also ailib with five no-op middlewares."""
    return sides() if NO_MIDDLEWARE else (*sides(), "ailib_mw")


NO_HTTPX2 = False  # --no-httpx2
NO_MIDDLEWARE = False  # --no-middleware
NO_PEERS = False  # --no-peers


# ------------------------------------------------------------------- the two sides' work


async def raw_request(client: Any) -> str:
    response = await client.post(CHAT_PATH, json=request_payload(False))
    response.raise_for_status()
    body = json.loads(response.content)
    return str(body["choices"][0]["message"]["content"])


async def ailib_request(client: Any) -> str:
    reply = await client.chat().user("hi").execute()
    return str(reply.content)


async def raw_stream(client: Any) -> tuple[int, str]:
    """A hand-written SSE loop: (data events before [DONE], concatenated content)."""
    events = 0
    parts: list[str] = []
    done = False
    buffer = b""
    async with client.stream("POST", CHAT_PATH, json=request_payload(True)) as response:
        response.raise_for_status()
        # Read to the end of the body even after [DONE] (there is nothing after it), as
        # ailib does, so the connection goes back to the pool on both sides.
        async for data in response.aiter_bytes():
            if done:
                continue
            buffer += data
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if not frame.startswith(b"data: "):
                    continue
                payload = frame[6:]
                if payload == b"[DONE]":
                    done = True
                    break
                obj = json.loads(payload)
                events += 1
                choices = obj.get("choices")
                if choices:
                    text = choices[0]["delta"].get("content")
                    if text:
                        parts.append(text)
    return events, "".join(parts)


async def openai_request(client: Any) -> str:
    reply = await client.chat.completions.create(**request_payload(False))
    return str(reply.choices[0].message.content)


async def openai_stream(client: Any) -> tuple[int, str]:
    """The SDK's stream, read as the raw side reads SSE: (chunks, concatenated content)."""
    events = 0
    parts: list[str] = []
    async with await client.chat.completions.create(**request_payload(True)) as stream:
        async for chunk in stream:
            events += 1
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    parts.append(text)
    return events, "".join(parts)


async def ailib_stream(client: Any) -> tuple[int, str]:
    from ailib_anyio import ContentDelta

    events = 0
    parts: list[str] = []
    async with client.chat().user("hi").stream() as stream:
        async for event in stream:
            events += 1
            if type(event) is ContentDelta:
                parts.append(event.text)
    return events, "".join(parts)


FACTORIES: dict[str, Callable[..., Any]] = {
    "ailib": ailib_client,
    "httpx": raw_client,
    "ailib_h2": ailib_client_h2,
    "raw_h2": raw_client_h2,
    "ailib_mw": ailib_client_mw,
    "openai": openai_client,
}
REQUEST = {"ailib": ailib_request, "httpx": raw_request, "ailib_h2": ailib_request}
REQUEST.update(raw_h2=raw_request, ailib_mw=ailib_request, openai=openai_request)
STREAM = {"ailib": ailib_stream, "httpx": raw_stream, "ailib_h2": ailib_stream}
STREAM.update(raw_h2=raw_stream, ailib_mw=ailib_stream, openai=openai_stream)


# ------------------------------------------------------------- in-process measurements


async def cpu_of(n: int, work: Callable[[], Awaitable[object]]) -> float:
    """Client CPU seconds for ``n`` sequential awaits of ``work()``."""
    gc.collect()
    start = time.process_time()
    for _ in range(n):
        await work()
    return time.process_time() - start


def rotated(names: Sequence[str], r: int) -> list[str]:
    """The sides in round ``r``: each goes first in turn (two sides: alternated)."""
    k = r % len(names)
    return [*names[k:], *names[:k]]


async def alternate(
    rounds: int, n: int, works: dict[str, Callable[[], Awaitable[object]]], per: float
) -> dict[str, list[float]]:
    """CPU per unit (µs) of each side in rotated rounds."""
    runs: dict[str, list[float]] = {name: [] for name in works}
    for r in range(rounds):
        for name in rotated(list(works), r):
            runs[name].append(await cpu_of(n, works[name]) / (n * per) * 1e6)
    return runs


@contextlib.asynccontextmanager
async def open_sides(base: str, headers: dict[str, str] | None = None) -> Any:
    """One open client per side: ``{side: client}``."""
    async with contextlib.AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(FACTORIES[name](base, headers))
            for name in in_process_sides()
        }


def store(row: Row, runs: dict[str, list[float]]) -> None:
    for name, values in runs.items():
        setattr(row, name, values)


def bind(work: Callable[[Any], Awaitable[object]], client: Any) -> Callable[[], Awaitable[object]]:
    return lambda: work(client)


async def measure_requests(base: str, s: Settings, row: Row) -> None:
    expected = "Mock reply to: hi"
    async with open_sides(base) as clients:
        for _ in range(max(5, s.requests // 10)):  # warm-up: connections, caches
            got = {name: await REQUEST[name](c) for name, c in clients.items()}
        if any(text != expected for text in got.values()):
            raise RuntimeError(f"unexpected replies: {got}")
        works = {name: bind(REQUEST[name], c) for name, c in clients.items()}
        store(row, await alternate(s.rounds, s.requests, works, 1))
    row.note = f"{s.requests} sequential requests per run"


async def measure_stream(
    base: str, s: Settings, row: Row, chunks: int, streams: int, delay_ms: float
) -> None:
    headers = stream_headers(chunks, delay_ms)
    expected = "tok " * chunks
    async with open_sides(base, headers) as clients:
        for _ in range(2):  # warm-up
            got = {name: await STREAM[name](c) for name, c in clients.items()}
        bad = {name: text[:40] for name, (_, text) in got.items() if text != expected}
        if bad:
            raise RuntimeError(f"unexpected stream content: {bad}")
        n_a, n_h = got["ailib"][0], got["httpx"][0]
        # CPU per chunk = CPU / SSE data events on the wire (the N content deltas plus the
        # role, finish and usage chunks; [DONE] not counted), the same for every side.
        per_stream = n_h
        works = {name: bind(STREAM[name], c) for name, c in clients.items()}
        store(row, await alternate(s.rounds, streams, works, per_stream))
    pacing = f", {delay_ms:g} ms apart" if delay_ms else ", back to back"
    row.note = (
        f"{streams} stream(s) per run, {per_stream} SSE events per stream "
        f"({chunks} content deltas{pacing}); ailib yielded {n_a} events per stream"
    )


# ----------------------------------------------------------------------- import time


IMPORTS = {
    "ailib": "import ailib_anyio",
    "httpx": "import httpx",
    "ailib_h2": "import httpx2, ailib_anyio",
    "raw_h2": "import httpx2",
    "openai": "import openai",
}


def measure_imports(s: Settings, row: Row) -> None:
    """Each side's import, net of ``python -c pass``: the runs of every statement
    interleaved (benchmarks/bench_import.py, which also times the first request)."""
    times = net_times({name: IMPORTS[name] for name in sides()}, s.import_reps)
    bare = statistics.median(times["pass"])
    for name in sides():
        getattr(row, name).extend(max(0.0, t - bare) for t in times[name])
    row.note = (
        f"wall time of `python -c 'import X'` minus the median of `python -c pass` "
        f"({bare:.1f} ms), {s.import_reps} interleaved runs each, bytecode cached; "
        "the bar is on ailib's own time"
    )


# ------------------------------------------------------------------------ concurrency


def _status_kib(name: str) -> int | None:
    """A ``VmXXX`` figure of /proc/self/status in KiB (Linux only)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> int | None:
    """Reset the kernel's peak-RSS mark to the current RSS; return that RSS (KiB).

    Without this, the peak is still the import-time high-water mark (parsing manifests,
    compiling modules), and a workload smaller than that transient shows as 0 increase.
    ``None`` where /proc/self/clear_refs is unavailable (then ru_maxrss deltas are used).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_kib("VmRSS")


async def child_main(args: argparse.Namespace) -> dict[str, Any]:
    """One side's concurrent streams, in a fresh process: CPU and peak RSS increase."""
    headers = stream_headers(args.chunks, args.delay_ms)
    side = args.child
    make, one = FACTORIES[side], STREAM[side]
    expected = "tok " * args.chunks
    results: list[tuple[int, str]] = []
    async with make(args.base_url, headers) as client:
        await one(client)  # warm-up: imports on first use, manifest, one connection
        gc.collect()
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_before = reset_peak_rss()
        start = time.process_time()

        async def run_one() -> None:
            results.append(await one(client))

        async with anyio.create_task_group() as tg:
            for _ in range(args.streams):
                tg.start_soon(run_one)
        cpu = time.process_time() - start
        maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm_after = _status_kib("VmHWM")
    if rss_before is not None and hwm_after is not None:
        increase, method = hwm_after - rss_before, "VmHWM after - VmRSS before (peak reset)"
    else:
        increase, method = maxrss_after - maxrss_before, "ru_maxrss delta"
    bad = sum(1 for _, text in results if text != expected)
    return {
        "side": side,
        "cpu_s": cpu,
        "rss_increase_kib": increase,
        "rss_method": method,
        "ru_maxrss_before_kib": maxrss_before,
        "ru_maxrss_after_kib": maxrss_after,
        "streams": len(results),
        "bad": bad,
        "events": results[0][0] if results else 0,
    }


def run_child(side: str, base: str, s: Settings, backend: str, streams: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        side,
        "--backend",
        backend,
        "--base-url",
        base,
        "--streams",
        str(streams),
        "--chunks",
        str(s.conc_chunks),
        "--delay-ms",
        repr(s.conc_delay_ms),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["streams"] != streams or result["bad"]:
        raise RuntimeError(f"{side} child: {result}")
    return result


def measure_concurrency(
    base: str, s: Settings, backend: str, streams: int, cpu: Row, mem: Row
) -> None:
    method = "?"
    peak = dict.fromkeys(sides(), 0)
    for r in range(s.conc_reps):
        for side in rotated(sides(), r):
            result = run_child(side, base, s, backend, streams)
            method = result["rss_method"]
            peak[side] = max(peak[side], result["ru_maxrss_after_kib"])
            getattr(cpu, side).append(result["cpu_s"] * 1e3)
            getattr(mem, side).append(result["rss_increase_kib"] / 1024)
    max_a, max_h = peak["ailib"], peak["httpx"]
    pacing = f"{s.conc_delay_ms:g} ms apart" if s.conc_delay_ms else "back to back"
    what = (
        f"{streams} streams x {s.conc_chunks} deltas ({pacing}) started at once in one task "
        f"group, a fresh child process per side and run, {s.conc_reps} per side"
    )
    cpu.note = what + "; total client CPU of the concurrent phase"
    mem.note = (
        f"peak RSS during the phase minus RSS at its start ({method}); "
        f"whole-process ru_maxrss at the end: ailib {max_a / 1024:.1f} MiB, "
        f"httpx {max_h / 1024:.1f} MiB"
        + "".join(
            f", {k} {v / 1024:.1f} MiB" for k, v in peak.items() if k not in ("ailib", "httpx")
        )
    )


# ------------------------------------------------------------------------------ main


async def in_process(base: str, s: Settings, rows: dict[str, Row]) -> None:
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("request", lambda: measure_requests(base, s, rows["request"])),
        (
            "burst",
            lambda: measure_stream(base, s, rows["burst"], s.burst_chunks, s.burst_streams, 0.0),
        ),
        (
            "paced",
            lambda: measure_stream(
                base, s, rows["paced"], s.paced_chunks, s.paced_streams, s.paced_delay_ms
            ),
        ),
    ]
    for key, step in steps:
        try:
            await step()
        except Exception as exc:
            rows[key].error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--quick", action="store_true", help="few iterations (smoke test, ~5 s)")
    p.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        metavar="N",
        help="concurrent streams per concurrency run (default 256; 64 with --quick);\n"
        "e.g. --concurrency 256 1000 for both DESIGN.md levels",
    )
    p.add_argument(
        "--profile",
        choices=("request", "stream"),
        help="instead of the table, cProfile ailib's non-streaming or streaming loop\n"
        "(back-to-back chunks) and print the hotspots",
    )
    # --child mode (internal): one side's concurrency run in a fresh process.
    p.add_argument("--no-httpx2", action="store_true", help="leave out the httpx2 sides (faster)")
    p.add_argument(
        "--no-middleware",
        action="store_true",
        help="leave out the side with five no-op middlewares (faster)",
    )
    p.add_argument("--no-peers", action="store_true", help="leave out the openai SDK side (faster)")
    p.add_argument(
        "--rounds", type=int, help="rounds per in-process metric (default 7; more: steadier)"
    )
    p.add_argument(
        "--reps",
        type=int,
        help="child processes per side and concurrency level (default 5; more: steadier)",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="also write every figure to PATH as JSON (benchmarks/result_schema.json)",
    )
    p.add_argument("--child", choices=SIDE_NAMES, help=argparse.SUPPRESS)
    p.add_argument("--base-url", help=argparse.SUPPRESS)
    p.add_argument("--streams", type=int, default=256, help=argparse.SUPPRESS)
    p.add_argument("--chunks", type=int, default=50, help=argparse.SUPPRESS)
    p.add_argument("--delay-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def profile(base: str, s: Settings, what: str, backend: str) -> None:
    """cProfile ailib's own loop (no httpx side): where the library's time goes."""
    import cProfile
    import pstats

    headers = stream_headers(s.burst_chunks) if what == "stream" else None
    work = ailib_stream if what == "stream" else ailib_request
    n = 4 * s.burst_streams if what == "stream" else 4 * s.requests

    async def go() -> None:
        async with ailib_client(base, headers) as client:
            for _ in range(3):
                await work(client)
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(n):
                await work(client)
            prof.disable()
        print(f"\ncProfile of {n} ailib {what}s ({backend}); sorted by own time:")
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(30)
        print("ailib_anyio functions only, by cumulative time:")
        stats.sort_stats("cumulative").print_stats("ailib_anyio", 30)

    anyio.run(go, backend=backend)


def main(argv: Sequence[str] | None = None) -> int:
    global NO_HTTPX2, NO_MIDDLEWARE, NO_PEERS, START_DATE, START_LOAD
    args = parse_args(argv)
    NO_HTTPX2 = args.no_httpx2
    NO_MIDDLEWARE = args.no_middleware
    NO_PEERS = args.no_peers
    if args.child:
        result = anyio.run(child_main, args, backend=args.backend)
        print(json.dumps(result))
        return 0

    s = QUICK if args.quick else FULL
    if args.rounds:
        s = replace(s, rounds=args.rounds)
    if args.reps:
        s = replace(s, conc_reps=args.reps)
    levels = tuple(args.concurrency) if args.concurrency else s.conc_streams
    started = time.monotonic()
    START_DATE = bench_json.now_iso()
    START_LOAD = bench_json.load_average()
    rows = {
        "request": Row("CPU / non-streaming request", "us", "<= 1.15x", 1.15),
        "burst": Row("CPU / streamed chunk (back to back)", "us", "<= 1.25x", 1.25),
        "paced": Row(
            f"CPU / streamed chunk ({s.paced_delay_ms:g} ms apart)", "us", "<= 1.25x", 1.25
        ),
        "import": Row("import time", "ms", "ailib <= 130 ms", 130, absolute=True),
    }
    for n in levels:
        rows[f"conc_cpu_{n}"] = Row(f"{n} concurrent streams: CPU", "ms", "<= 1.2x", 1.2)
        rows[f"conc_mem_{n}"] = Row(
            f"{n} concurrent streams: peak RSS increase", "MiB", "<= 1.2x", 1.2
        )
    import ailib_anyio

    print(
        f"ailib_anyio {ailib_anyio.__version__} vs httpx {httpx.__version__}"
        + (f" and httpx2 {httpx2.__version__}" if has_httpx2() and httpx2 else "")
        + (f", peer openai {bench_json.version('openai')}" if has_peers() else "")
        + "; "
        f"backend {args.backend}; python {sys.version.split()[0]}; "
        f"{'quick' if args.quick else 'full'} run; {os.cpu_count()} CPUs",
        flush=True,
    )
    if not args.profile:
        try:
            measure_imports(s, rows["import"])
        except Exception as exc:
            rows["import"].error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    try:
        with mock_server() as base:
            if args.profile:
                profile(base, s, args.profile, args.backend)
                return 0
            anyio.run(in_process, base, s, rows, backend=args.backend)
            for n in levels:
                cpu, mem = rows[f"conc_cpu_{n}"], rows[f"conc_mem_{n}"]
                try:
                    measure_concurrency(base, s, args.backend, n, cpu, mem)
                except Exception as exc:
                    cpu.error = mem.error = f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
    except Exception as exc:  # the mock server did not start
        for row in rows.values():
            if not row.ailib and not row.error:
                row.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    print_table(
        list(rows.values()),
        f"results (median of runs; ratio = ailib / raw httpx; backend {args.backend}; "
        f"{time.monotonic() - started:.0f} s)",
    )
    if has_httpx2():
        print_httpx2_table(
            list(rows.values()),
            "httpx2 (same runs; ratio = side / raw httpx; bar: ailib on httpx2 below raw httpx)",
        )
    else:
        print("httpx2 sides left out (--no-httpx2, or httpx2 is not installed)")
    if NO_MIDDLEWARE:
        print("middleware side left out (--no-middleware)")
    else:
        print()
        print_middleware_table(
            list(rows.values()),
            f"middleware seam (same runs; {MIDDLEWARES} pass-through middlewares on every level;"
            " ratio to the client without middleware and to raw httpx)",
        )
    if has_peers():
        print()
        print_peer_table(
            list(rows.values()),
            "peer (same runs; ratio = side / raw httpx; the openai SDK on an httpx2 client)",
        )
    else:
        print("peer side left out (--no-peers, or openai or httpx2 is not installed)")
    if args.json:
        bench_json.write(args.json, json_document(rows, args, s, started))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        main()
    except SystemExit:  # --help, or bad arguments (argparse has said why)
        pass
    except BaseException:  # measure, never fail: the exit code is 0 whatever happens
        traceback.print_exc()
    sys.exit(0)
