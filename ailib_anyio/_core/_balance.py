"""Load-balancing decisions, pure: which of a model array's targets takes the next call.

Each function takes what it needs as plain values (which targets are eligible, their
weights, in-flight counts or latencies, the balancer's cursor) and returns its choice,
so every strategy reproduces in a plain synchronous test. Ties are always broken the same
way: the first tied target at or after ``cursor``, going round (so equal targets take
turns). The client's ``ArrayRouter`` keeps the state between calls and reads the live
numbers; nothing here sleeps, reads a clock or draws a random number.

- :func:`pick_round_robin`: the next eligible target after the last one chosen;
- :func:`pick_weighted`: smooth weighted round robin (the nginx algorithm): over any run
  of calls with the same eligible targets, each gets its share of ``sum(weights)`` calls
  exactly, spread out rather than in bursts;
- :func:`pick_least`: the eligible target with the fewest calls in flight;
- :func:`pick_fastest`: a target never tried yet first (so each gets measured), then the
  lowest latency; one tried but never measured (every call to it failed) comes last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

__all__ = [
    "LatencyStats",
    "pick_fastest",
    "pick_least",
    "pick_round_robin",
    "pick_weighted",
    "rotation",
]


def rotation(count: int, start: int) -> list[int]:
    """``range(count)`` from ``start``, going round: ``rotation(4, 2) == [2, 3, 0, 1]``."""
    start %= count
    return [*range(start, count), *range(start)]


def _first(eligible: Sequence[bool], cursor: int, keep: Sequence[bool] | None = None) -> int:
    for index in rotation(len(eligible), cursor):
        if eligible[index] and (keep is None or keep[index]):
            return index
    raise ValueError("no eligible target")


def pick_round_robin(eligible: Sequence[bool], cursor: int) -> int:
    """The first eligible target at or after ``cursor`` (the caller sets the cursor to
    the chosen one + 1)."""
    return _first(eligible, cursor)


def pick_weighted(
    eligible: Sequence[bool], weights: Sequence[float], current: Sequence[float]
) -> tuple[int, list[float]]:
    """Smooth weighted round robin: every eligible target's ``current`` grows by its
    weight, the largest wins (the lowest index among equals) and gives back the eligible
    weights' total. Returns the choice and the new ``current`` (start from zeros); an
    ineligible target's ``current`` stays as it was."""
    total = 0.0
    best = -1
    after = list(current)
    for index, ok in enumerate(eligible):
        if not ok:
            continue
        after[index] += weights[index]
        total += weights[index]
        if best < 0 or after[index] > after[best]:
            best = index
    if best < 0:
        raise ValueError("no eligible target")
    after[best] -= total
    return best, after


def pick_least(eligible: Sequence[bool], inflight: Sequence[int], cursor: int) -> int:
    """The eligible target with the fewest calls in flight; among equals, the first at or
    after ``cursor``."""
    low = min((n for n, ok in zip(inflight, eligible, strict=True) if ok), default=None)
    if low is None:
        raise ValueError("no eligible target")
    return _first(eligible, cursor, [n == low for n in inflight])


def pick_fastest(
    eligible: Sequence[bool],
    latencies: Sequence[float | None],
    tried: Sequence[bool],
    cursor: int,
) -> int:
    """An eligible target never ``tried`` (the first at or after ``cursor``); else the
    lowest latency (among equals, the first at or after ``cursor``); else (every eligible
    target tried, none measured) the first eligible at or after ``cursor``."""
    fresh = [not t for t in tried]
    if any(ok and new for ok, new in zip(eligible, fresh, strict=True)):
        return _first(eligible, cursor, fresh)
    known = [
        value for value, ok in zip(latencies, eligible, strict=True) if ok and value is not None
    ]
    if not known:
        return _first(eligible, cursor)
    low = min(known)
    return _first(eligible, cursor, [value == low for value in latencies])


@attrs.define
class LatencyStats:
    """Latency samples of one target, in seconds: how many, the last, the lowest, and an
    exponentially weighted moving average (``alpha`` is the weight of a new sample; the
    first sample is the average)."""

    alpha: float = 0.3
    count: int = 0
    last: float | None = None
    low: float | None = None
    average: float | None = None

    def add(self, seconds: float) -> None:
        """Record one sample (a NaN, infinite or negative value is ignored)."""
        if not (0 <= seconds < math.inf):
            return
        self.count += 1
        self.last = seconds
        self.low = seconds if self.low is None else min(self.low, seconds)
        average = self.average
        self.average = seconds if average is None else average + self.alpha * (seconds - average)
