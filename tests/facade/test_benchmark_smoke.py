"""Smoke test: the benchmark harness runs end to end and prints its ratio table.

Only that it works is checked, never the figures: performance bars are measured by
``benchmarks/bench_client.py`` and reported as ratios, not asserted in tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_client.py"

ROWS = (
    "CPU / non-streaming request",
    "CPU / streamed chunk (back to back)",
    "CPU / streamed chunk (",
    "import time",
    "concurrent streams: CPU",
    "concurrent streams: peak RSS increase",
)
RATIO = re.compile(r"\s(\d+\.\d+)x\s")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_benchmark_quick_run_prints_ratio_rows(backend: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--backend", backend],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "ratio" in output, output
    # The table: the lines from its "metric" header to the first blank line.
    after = output.split("results (median of runs", 1)[-1].splitlines()[1:]
    table = after[: after.index("")] if "" in after else after
    for metric in ROWS:
        lines = [line for line in table if metric in line]
        assert lines, f"no {metric!r} row in:\n{output}\n{proc.stderr}"
        for line in lines:
            assert RATIO.search(line + " "), f"no ratio in {line!r}:\n{output}\n{proc.stderr}"


TELEMETRY = ROOT / "benchmarks" / "bench_telemetry.py"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_telemetry_benchmark_quick_run_prints_its_sides(backend: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(TELEMETRY), "--quick", "--backend", backend],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for title in ("per request", "per streamed chunk"):
        section = proc.stdout.split(title, 1)[1]
        for side in ("httpx", "ailib off", "ailib api", "ailib sdk"):
            line = next(line for line in section.splitlines() if line.strip().startswith(side))
            assert RATIO.search(line + " "), f"no ratio in {line!r}:\n{proc.stdout}"


def test_cache_benchmark_quick_run_prints_its_rows() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_cache.py"), "--quick", "--stream"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for row in ("raw httpx", "ailib, no cache", "memory hit", "sqlite hit"):
        lines = [line for line in proc.stdout.splitlines() if line.strip().startswith(row)]
        assert len(lines) == 2, proc.stdout  # per request, per stream
        assert all(RATIO.search(line + " ") for line in lines), proc.stdout


def test_shared_state_benchmark_quick_run_prints_its_rows() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_shared.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = ["raw httpx", "ailib, none", "local limiter", "local both"]
    if "no Redis" not in proc.stdout:
        rows += ["redis limiter", "redis both"]
    for row in rows:
        lines = [line for line in proc.stdout.splitlines() if line.strip().startswith(row)]
        assert len(lines) == 2, proc.stdout  # CPU, wall time
        assert all(RATIO.search(line + " ") for line in lines), proc.stdout
