"""The ``--json PATH`` output of the benchmarks: one versioned document per run.

The schema is ``benchmarks/result_schema.json`` (JSON Schema draft 2020-12); its
``schema`` field names the version (``ailib-anyio-bench/1``). A document holds the run's
setting (the command line, the date, the machine with its load average, the Python and
library versions, the backend) and, per metric, every measured value of every side, the
medians, the ratios to the reference side (raw httpx) and the bars with their verdicts.
``benchmarks/charts.py`` draws the documentation's charts and tables from these files.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

SCHEMA = "ailib-anyio-bench/1"
SCHEMA_FILE = Path(__file__).resolve().parent / "result_schema.json"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(
    benchmark: str, backend: str, mode: str, distributions: Iterable[str]
) -> dict[str, Any]:
    """The setting of a run, taken when it starts (``finish`` adds the end)."""
    return {
        "schema": SCHEMA,
        "benchmark": benchmark,
        "command": [Path(sys.executable).name, *sys.argv],
        "date": now_iso(),
        "backend": backend,
        "mode": mode,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "versions": {name: version(name) for name in distributions},
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "system": platform.system(),
            "release": platform.release(),
            "architecture": platform.machine(),
            "load_average_start": load_average(),
            "load_average_end": None,
        },
        "duration_s": None,
        "reference_side": "httpx",
        "sides": {},
        "metrics": [],
    }


def side_figures(values: Sequence[float], reference: float | None) -> dict[str, Any]:
    """One side of one metric: every run, their median, spread and ratio to the reference."""
    median = statistics.median(values)
    return {
        "runs": [round(v, 4) for v in values],
        "median": round(median, 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "ratio": round(median / reference, 4) if reference else None,
    }


def metric(
    key: str,
    name: str,
    unit: str,
    runs: Mapping[str, Sequence[float]],
    *,
    reference: str = "httpx",
    note: str = "",
    error: str | None = None,
) -> dict[str, Any]:
    """A metric: each side with values; the ratios are to ``reference``'s median."""
    ref = runs.get(reference)
    ref_median = statistics.median(ref) if ref else None
    return {
        "key": key,
        "name": name,
        "unit": unit,
        "note": note,
        "error": error,
        "sides": {
            side: side_figures(values, ref_median) for side, values in runs.items() if values
        },
        "bars": [],
    }


def bar(
    entry: dict[str, Any],
    side: str,
    op: str,
    limit: float,
    *,
    against: str | None = "httpx",
    source: str = "DESIGN.md §6",
) -> None:
    """Add a bar to a metric: ``side``'s median / ``against``'s median ``op`` ``limit``
    (``against=None``: on ``side``'s own median, in the metric's unit). ``value`` and
    ``met`` are None when a side has no figure."""
    sides = entry["sides"]
    value: float | None = None
    if side in sides and against is None:
        value = sides[side]["median"]
    elif side in sides and against in sides and sides[against]["median"] > 0:
        value = round(sides[side]["median"] / sides[against]["median"], 4)
    met = None if value is None else (value <= limit if op == "<=" else value < limit)
    text = f"{op} {limit:g} {entry['unit']}" if against is None else f"{op} {limit:.2f}x"
    entry["bars"].append(
        {
            "side": side,
            "against": against,
            "op": op,
            "limit": limit,
            "text": text,
            "source": source,
            "value": value,
            "met": met,
        }
    )


def finish(doc: dict[str, Any], started: float, now: float) -> dict[str, Any]:
    doc["duration_s"] = round(now - started, 1)
    doc["machine"]["load_average_end"] = load_average()
    return doc


def write(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> None:
    """Write the document (sorted keys, indented: diffs of committed results read well)."""
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    Path(path).write_text(text, encoding="utf-8")
