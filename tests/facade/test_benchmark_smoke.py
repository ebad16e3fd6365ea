"""Smoke test: the benchmark harness runs end to end and prints its ratio table.

Only that it works is checked, never the figures: performance bars are measured by
``benchmarks/bench_client.py`` and reported as ratios, not asserted in tests. The
``--json`` output of the same runs is checked against benchmarks/result_schema.json, and
the performance page (docs/performance.md) and its charts against the committed results:
the documentation's figures are never stale.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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


SCHEMA = json.loads((ROOT / "benchmarks" / "result_schema.json").read_text(encoding="utf-8"))
CHARTS = ROOT / "benchmarks" / "charts.py"
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))


def check_result(path: Path, benchmark: str, backend: str) -> dict[str, Any]:
    """The ``--json`` output: valid against the schema, every side of every metric with
    its runs, the ratios to raw httpx consistent with the medians."""
    import jsonschema

    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert (doc["benchmark"], doc["backend"]) == (benchmark, backend)
    assert doc["sides"], doc
    for metric in doc["metrics"]:
        assert metric["error"] is None, metric
        ref = metric["sides"][doc["reference_side"]]["median"]
        for figures in metric["sides"].values():
            assert figures["min"] <= figures["median"] <= figures["max"]
            assert figures["ratio"] == pytest.approx(figures["median"] / ref, rel=1e-3)
        assert metric["bars"], metric
    return doc


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_benchmark_quick_run_prints_ratio_rows(backend: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    # --no-peers: the openai SDK side (the `bench` extra) would double the run's time.
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--backend",
            backend,
            "--no-peers",
            "--json",
            str(out),
        ],
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
    doc = check_result(out, "bench_client", backend)
    assert {"ailib", "httpx"} <= set(doc["sides"])
    names = [metric["name"] for metric in doc["metrics"]]
    assert all(any(row in name for name in names) for row in ROWS), names
    assert doc["command"][1:] == proc.args[1:]


TELEMETRY = ROOT / "benchmarks" / "bench_telemetry.py"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_telemetry_benchmark_quick_run_prints_its_sides(backend: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(TELEMETRY), "--quick", "--backend", backend, "--json", str(out)],
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
    doc = check_result(out, "bench_telemetry", backend)
    assert set(doc["sides"]) == {"httpx", "ailib_off", "ailib_api", "ailib_sdk"}


INSTRUCTIONS = ROOT / "benchmarks" / "bench_instructions.py"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_instruction_benchmark_children_run_every_phase(backend: str) -> None:
    """What bench_instructions.py runs under valgrind (the ``--child`` processes; valgrind
    is not needed to run them): every phase, on a raw side and an ailib side, against the
    mock provider, every reply checked by the work functions of bench_client.py."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_client import mock_server
    finally:
        sys.path.pop(0)
    with mock_server() as base:
        for side in ("httpx", "ailib_mw"):
            proc = subprocess.run(
                [
                    sys.executable,
                    str(INSTRUCTIONS),
                    "--child",
                    side,
                    base,
                    "--backend",
                    backend,
                    "--requests",
                    "3",
                    "--streams",
                    "2",
                    "--chunks",
                    "4",
                    "--concurrent",
                    "40",
                    "--concurrent-chunks",
                    "3",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr


def test_instruction_benchmark_document_follows_the_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The ``--json`` document of bench_instructions.py (from given instruction counts:
    valgrind is not needed) is valid, its ratios and bars those of the counts."""
    import jsonschema

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_instructions
        import bench_json
    finally:
        sys.path.pop(0)
    args = bench_instructions.parse_args(["--sides", "httpx", "ailib", "ailib_h2", "ailib_mw"])
    # Per side (in --sides order), per phase: request, stream, concurrent.
    phases = [
        [1000 * 3_000_000, 8 * 203 * 150_000, 20_000_000_000],
        [1000 * 2_700_000, 8 * 203 * 165_000, 26_000_000_000],
        [1000 * 2_600_000, 8 * 203 * 160_000, 19_000_000_000],
        [1000 * 2_808_000, 8 * 203 * 170_000, 27_000_000_000],
    ]
    doc = bench_json.environment(
        "bench_instructions", "asyncio", "full", ["ailib-anyio", "httpx", "anyio"]
    )
    bench_instructions.report(args, phases, {"stream": 203, "concurrent": 53}, doc)
    doc = bench_json.finish(doc, 0.0, 1.0)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    metrics = {m["key"]: m for m in doc["metrics"]}
    assert list(metrics) == ["request", "stream", "concurrent"]
    assert metrics["request"]["sides"]["ailib"]["median"] == pytest.approx(2700.0)  # kIr
    assert metrics["concurrent"]["unit"] == "MIr"
    verdicts = {
        (key, b["side"]): (round(b["value"], 3), b["met"])
        for key, m in metrics.items()
        for b in m["bars"]
    }
    assert verdicts == {
        ("request", "ailib"): (0.9, True),
        ("request", "ailib_h2"): (0.867, True),
        ("request", "ailib_mw"): (1.04, True),
        ("stream", "ailib"): (1.1, True),
        ("stream", "ailib_h2"): (1.067, False),
        ("stream", "ailib_mw"): (1.03, True),
        ("concurrent", "ailib"): (1.3, False),
        ("concurrent", "ailib_h2"): (0.95, True),
    }
    assert "1000 concurrent streams of 53 SSE events" in capsys.readouterr().out


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_committed_results_follow_the_schema(path: Path) -> None:
    benchmark, backend = path.stem.rsplit("-", 1)
    doc = check_result(path, benchmark, backend)
    assert doc["mode"] == "full"


def test_committed_results_exist_for_both_backends() -> None:
    names = {p.name for p in RESULTS}
    for backend in ("asyncio", "trio"):
        assert f"bench_client-{backend}.json" in names, names


def run_charts(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHARTS), "--check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_performance_page_tables_match_the_committed_results() -> None:
    """docs/performance.md's generated part is what benchmarks/charts.py makes of the
    committed JSON (no matplotlib needed)."""
    proc = run_charts("--no-charts")
    assert proc.returncode == 0, (
        "docs/performance.md is stale: run `python benchmarks/charts.py`\n"
        + proc.stdout
        + proc.stderr
    )


def test_performance_charts_regenerate_byte_for_byte() -> None:
    matplotlib = pytest.importorskip("matplotlib", reason="the charts need matplotlib")
    charts = sorted((ROOT / "docs" / "assets" / "performance").glob("*.svg"))
    assert len(charts) == len(RESULTS), charts
    made_by = {
        m.group(1)
        for svg in charts
        for m in re.finditer(r"charts\.py with matplotlib ([^<\s]+)", svg.read_text("utf-8"))
    }
    if made_by != {matplotlib.__version__}:
        pytest.skip(
            f"the charts were drawn by matplotlib {made_by}, {matplotlib.__version__} is"
            " installed: another version may write other bytes"
        )
    proc = run_charts()
    assert proc.returncode == 0, (
        "a chart in docs/assets/performance/ is stale: run `python benchmarks/charts.py`\n"
        + proc.stdout
        + proc.stderr
    )


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
