"""Draw the performance page's charts and tables from the benchmarks' JSON results.

    python benchmarks/charts.py [RESULT.json ...] [--out DIR] [--page FILE] [--check]
        [--no-charts]

Without files, every ``benchmarks/results/*.json`` is read (the ``--json`` output of
``bench_client.py`` and ``bench_telemetry.py``, benchmarks/result_schema.json). For each
file, one SVG chart (each side's median as a ratio to raw httpx, per metric, with a line
at each metric's bar) goes into ``--out`` (docs/assets/performance/), and the tables (the
machine, date and load of each run; the figures; every bar, met or not) are written into
``--page`` (docs/performance.md) between its two ``charts.py`` marker comments: nothing on
the page's generated part is typed by hand.

The SVGs are deterministic (matplotlib on its non-interactive Agg backend, saved as SVG
with a fixed ``svg.hashsalt``, text kept as text, no date in the metadata), so the
committed charts regenerate byte for byte from the committed JSON with the same matplotlib
version (the one named in each SVG's metadata). ``--check`` writes
nothing: it exits with 1 when the page's tables (and, without ``--no-charts``, the SVGs)
differ from what the JSON gives; tests/facade/test_benchmark_smoke.py runs it. matplotlib
is needed for the charts only (the ``bench``, ``docs`` and ``test`` extras).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "assets" / "performance"
PAGE = ROOT / "docs" / "performance.md"
BEGIN = "<!-- charts.py: begin (generated from benchmarks/results/*.json; do not edit) -->"
END = "<!-- charts.py: end -->"

CREATOR = "benchmarks/charts.py with matplotlib "

#: The order and names of the sides in charts and tables (a side not listed comes last).
SIDE_ORDER = {
    "httpx": "raw httpx",
    "ailib": "ailib_anyio",
    "ailib_h2": "ailib_anyio on httpx2",
    "raw_h2": "raw httpx2",
    "ailib_mw": "ailib_anyio + 5 middlewares",
    "openai": "openai SDK",
    "ailib_off": "ailib_anyio, telemetry off",
    "ailib_api": "ailib_anyio, OTel API only",
    "ailib_sdk": "ailib_anyio, OTel SDK on",
}
COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#d62728", "#ff7f0e", "#17becf"]
TITLES = {
    "bench_client": "Client CPU and memory, ratio to raw httpx",
    "bench_telemetry": "OpenTelemetry tracing and metrics, client CPU, ratio to raw httpx",
    "bench_instructions": "Client CPU instructions (callgrind), ratio to raw httpx",
}


def load(paths: Sequence[Path]) -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in paths:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("schema") != "ailib-anyio-bench/1":
            raise SystemExit(f"{path}: not an ailib-anyio-bench/1 result ({doc.get('schema')!r})")
        docs.append((path, doc))
    return docs


def side_names(doc: dict[str, Any]) -> list[str]:
    present = set(doc["sides"])
    known = [s for s in SIDE_ORDER if s in present]
    return known + sorted(present - set(known))


def label(side: str) -> str:
    return SIDE_ORDER.get(side, side)


def chart_name(path: Path) -> str:
    return f"{path.stem}.svg"


# ------------------------------------------------------------------------------ charts


def chart_svg(doc: dict[str, Any], fmt: str = "svg") -> bytes:
    """One chart: per metric with a ratio bar, each side's ratio to raw httpx."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "ailib-anyio-benchmarks",
            "svg.fonttype": "none",
            "font.family": "DejaVu Sans",
            "font.size": 9,
        }
    )
    ref = doc["reference_side"]
    metrics = [
        m for m in doc["metrics"] if not m["error"] and m["bars"] and m["bars"][0]["against"] == ref
    ]
    sides = [s for s in side_names(doc) if s != ref]
    width = 0.8 / max(1, len(sides))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.6 * len(metrics) + 3), 5.2))
    for i, side in enumerate(sides):
        xs, ys = [], []
        for x, m in enumerate(metrics):
            figures = m["sides"].get(side)
            if figures and figures["ratio"] is not None:
                xs.append(x - 0.4 + width * (i + 0.5))
                ys.append(figures["ratio"])
        bars = ax.bar(xs, ys, width, label=label(side), color=COLORS[i % len(COLORS)])
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=6, padding=2, rotation=90)
    for x, m in enumerate(metrics):
        limit = m["bars"][0]["limit"]
        ax.hlines(limit, x - 0.45, x + 0.45, colors="black", linewidths=1.5, zorder=3)
    barred = sorted({label(m["bars"][0]["side"]) for m in metrics})
    ax.plot([], [], color="black", linewidth=1.5, label=f"bar for {', '.join(barred)}")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8, label=f"{label(ref)} = 1")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(
        [f"{textwrap.fill(m['name'], 18)}\n(bar {m['bars'][0]['text']})" for m in metrics],
        fontsize=7,
    )
    ax.set_ylabel(f"median / median of {label(ref)} (lower is better)")
    ax.set_title(
        f"{TITLES.get(doc['benchmark'], doc['benchmark'])}, {doc['backend']} ({doc['date'][:10]})"
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylim(0, max([1.3, *(b.get_height() for b in ax.patches)]) * 1.2)
    fig.tight_layout()
    out = io.BytesIO()
    # No date; the creator names matplotlib's version: another version may draw the same
    # chart with other bytes (the test compares the bytes only under the same version).
    creator = f"{CREATOR}{matplotlib.__version__}"
    fig.savefig(
        out, format=fmt, metadata={"Date": None, "Creator": creator} if fmt == "svg" else {}
    )
    plt.close(fig)
    return out.getvalue()


# ------------------------------------------------------------------------------ tables


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:.{digits}f} {unit}".rstrip()


UNITS = {"us": "µs", "ms": "ms", "MiB": "MiB"}


def run_facts(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(doc["versions"].items()) if v)
    date = doc["date"].replace("T", " ").replace("+00:00", "")
    return (
        f"{date} UTC; {m['cpu_count']} CPUs ({m['cpu_model']}), {m['system']}"
        f" {m['architecture']}; load average (1, 5, 15 min) at the start"
        f" {load_text(m['load_average_start'])}, at the end"
        f" {load_text(m['load_average_end'])};"
        f" {doc['python']['implementation']} {doc['python']['version']}; {versions};"
        f" {doc['mode']} run, {doc['duration_s']} s; command `{' '.join(doc['command'])}`"
    )


def figures_table(doc: dict[str, Any]) -> list[str]:
    ref = doc["reference_side"]
    sides = side_names(doc)
    others = [s for s in sides if s not in (ref, "ailib")]
    main = "ailib" if "ailib" in sides else None
    head = ["metric", label(ref)]
    if main:
        head += [label(main), "ratio"]
    head += [f"{label(s)} (ratio)" for s in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in doc["metrics"]:
        unit = UNITS.get(m["unit"], m["unit"])
        if m["error"]:
            lines.append(f"| {m['name']} | " + " | ".join(["error"] * (len(head) - 1)) + " |")
            continue
        fig = m["sides"]
        cells = [m["name"], _num(fig[ref]["median"], unit) if ref in fig else "n/a"]
        if main:
            f = fig.get(main)
            cells += [_num(f["median"], unit), f"{f['ratio']:.2f}x"] if f else ["n/a", "n/a"]
        for s in others:
            f = fig.get(s)
            cells.append(f"{_num(f['median'], unit)} ({f['ratio']:.2f}x)" if f else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def bars_table(doc: dict[str, Any]) -> list[str]:
    lines = ["| metric | side | bar | measured | verdict | set by |", "|---|---|---|---|---|---|"]
    for m in doc["metrics"]:
        for b in m["bars"]:
            if b["against"] is None:
                value = _num(b["value"], UNITS.get(m["unit"], m["unit"]))
                bar = b["text"].replace(m["unit"], UNITS.get(m["unit"], m["unit"]))
            else:
                value = "n/a" if b["value"] is None else f"{b['value']:.3f}x"
                against = f" of {label(b['against'])}"
                bar = b["text"] + against
            verdict = {True: "met", False: "**not met**", None: "no figure"}[b["met"]]
            lines.append(
                f"| {m['name']} | {label(b['side'])} | {bar} | {value} | {verdict} |"
                f" {b['source']} |"
            )
    return lines


def met_count(bars: Sequence[dict[str, Any]]) -> int:
    return sum(1 for b in bars if b["met"])


def load_text(load: Sequence[float] | None) -> str:
    return ", ".join(f"{x:.2f}" for x in load) if load else "n/a"


def shown(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` with forward slashes (the page's links, the files)."""
    return Path(os.path.relpath(path, start)).as_posix()


def generated_block(docs: Sequence[tuple[Path, dict[str, Any]]], page: Path, out: Path) -> str:
    """The page's generated part: per result file, its run, chart and tables."""
    parts = [BEGIN, "", "Bars met, per run (each run's table of bars below says which):", ""]
    for _, doc in docs:
        bars = [b for m in doc["metrics"] for b in m["bars"]]
        design = [b for b in bars if b["source"].startswith("DESIGN")]
        parts.append(
            f"- {doc['benchmark']}.py on {doc['backend']}: {met_count(bars)} of {len(bars)}"
            f" met; of the DESIGN.md §6 bars, {met_count(design)} of {len(design)}"
            f" (load average {load_text(doc['machine']['load_average_start'])} at the start)"
        )
    parts.append("")
    for path, doc in docs:
        title = TITLES.get(doc["benchmark"], doc["benchmark"])
        parts += [f"### {doc['benchmark']}.py on {doc['backend']}", ""]
        parts += [f"Run: {run_facts(doc)}. Figures: `{shown(path, ROOT)}`.", ""]
        rel = shown(out / chart_name(path), page.parent)
        parts += [f"![{title}, {doc['backend']}]({rel})", ""]
        parts += ["Medians (ratio = median / the median of raw httpx):", ""]
        parts += [*figures_table(doc), ""]
        bars = [b for m in doc["metrics"] for b in m["bars"]]
        parts += [f"Bars: {met_count(bars)} of {len(bars)} met.", ""]
        parts += [*bars_table(doc), ""]
    parts.append(END)
    return "\n".join(parts)


def replace_block(text: str, block: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"the page has no {BEGIN!r} ... {END!r} block")
    return text[:start] + block + text[end + len(END) :]


# -------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("results", nargs="*", type=Path, help="result files (default: results/*.json)")
    p.add_argument("--out", type=Path, default=OUT, help="where the SVGs go")
    p.add_argument("--page", type=Path, default=PAGE, help="the page whose block is rewritten")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when stale")
    p.add_argument("--no-charts", action="store_true", help="the tables only (no matplotlib)")
    args = p.parse_args(argv)
    paths = [path.resolve() for path in args.results] or sorted(RESULTS.glob("*.json"))
    out, page = args.out.resolve(), args.page.resolve()
    docs = load(paths)
    stale: list[str] = []
    text = page.read_text(encoding="utf-8")
    new_text = replace_block(text, generated_block(docs, page, out))
    if new_text != text:
        stale.append(str(page))
        if not args.check:
            page.write_text(new_text, encoding="utf-8")
    if not args.no_charts:
        if not args.check:
            out.mkdir(parents=True, exist_ok=True)
        for path, doc in docs:
            svg, target = chart_svg(doc), out / chart_name(path)
            if not target.exists() or target.read_bytes() != svg:
                stale.append(str(target))
                if not args.check:
                    target.write_bytes(svg)
    verb = "stale" if args.check else "written"
    for name in stale:
        print(f"{verb}: {name}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
