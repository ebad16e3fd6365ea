"""The load-balancing decisions of model arrays, pure: each strategy's choice is checked
against its definition on hypothesis-chosen targets, cursors and states."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ailib_anyio._core._balance import (
    LatencyStats,
    pick_fastest,
    pick_least,
    pick_round_robin,
    pick_weighted,
    rotation,
)


@st.composite
def eligibility(draw: st.DrawFn, min_size: int = 1) -> list[bool]:
    """At least one target eligible."""
    flags = draw(st.lists(st.booleans(), min_size=min_size, max_size=8))
    flags[draw(st.integers(0, len(flags) - 1))] = True
    return flags


def ties_go_round(eligible: list[bool], tied: list[bool], cursor: int, chosen: int) -> bool:
    """``chosen`` is the first eligible tied target at or after ``cursor``, going round."""
    firsts = [n for n in rotation(len(eligible), cursor) if eligible[n] and tied[n]]
    return bool(firsts) and firsts[0] == chosen


def test_rotation() -> None:
    assert rotation(4, 2) == [2, 3, 0, 1]
    assert rotation(4, 6) == [2, 3, 0, 1]
    assert rotation(1, 0) == [0]


@given(eligibility(), st.integers(0, 100))
def test_round_robin_takes_the_next_eligible(eligible: list[bool], cursor: int) -> None:
    chosen = pick_round_robin(eligible, cursor)
    assert eligible[chosen]
    assert ties_go_round(eligible, [True] * len(eligible), cursor, chosen)


@given(eligibility(), st.integers(1, 5))
def test_round_robin_spreads_evenly(eligible: list[bool], rounds: int) -> None:
    counts = [0] * len(eligible)
    cursor = 0
    for _ in range(rounds * sum(eligible)):
        chosen = pick_round_robin(eligible, cursor)
        counts[chosen] += 1
        cursor = chosen + 1
    assert counts == [rounds if ok else 0 for ok in eligible]


@st.composite
def weights_and_eligibility(draw: st.DrawFn) -> tuple[list[int], list[bool]]:
    eligible = draw(eligibility())
    weights = draw(st.lists(st.integers(1, 9), min_size=len(eligible), max_size=len(eligible)))
    return weights, eligible


@given(weights_and_eligibility(), st.integers(1, 4))
def test_weighted_gives_exact_shares(case: tuple[list[int], list[bool]], rounds: int) -> None:
    weights, eligible = case
    current = [0.0] * len(weights)
    counts = [0] * len(weights)
    period = sum(w for w, ok in zip(weights, eligible, strict=True) if ok)
    for _ in range(rounds * period):
        chosen, current = pick_weighted(eligible, [float(w) for w in weights], current)
        assert eligible[chosen]
        counts[chosen] += 1
    assert counts == [rounds * w if ok else 0 for w, ok in zip(weights, eligible, strict=True)]
    # every period brings the counters back to where they started
    assert all(math.isclose(c, 0.0, abs_tol=1e-9) for c in current)


@given(st.lists(st.floats(0.1, 10), min_size=1, max_size=6), st.integers(1, 300))
def test_weighted_shares_stay_close_whatever_the_weights(weights: list[float], calls: int) -> None:
    eligible = [True] * len(weights)
    current = [0.0] * len(weights)
    counts = [0] * len(weights)
    for _ in range(calls):
        chosen, current = pick_weighted(eligible, weights, current)
        counts[chosen] += 1
    total = sum(weights)
    for count, weight in zip(counts, weights, strict=True):
        # smooth weighted round robin never strays more than one call per target
        assert abs(count - calls * weight / total) <= len(weights)


def test_weighted_spreads_rather_than_bursts() -> None:
    current = [0.0, 0.0, 0.0]
    picks = []
    for _ in range(7):
        chosen, current = pick_weighted([True] * 3, [5.0, 1.0, 1.0], current)
        picks.append(chosen)
    assert picks == [0, 0, 1, 0, 2, 0, 0]  # nginx's own example: a a b a c a a


def test_weighted_leaves_an_ineligible_target_untouched() -> None:
    chosen, current = pick_weighted([False, True], [1.0, 1.0], [0.5, 0.0])
    assert (chosen, current) == (1, [0.5, 0.0])


@given(eligibility(), st.data())
def test_least_inflight_takes_a_least_loaded_target(
    eligible: list[bool], data: st.DataObject
) -> None:
    inflight = data.draw(
        st.lists(st.integers(0, 4), min_size=len(eligible), max_size=len(eligible))
    )
    cursor = data.draw(st.integers(0, 20))
    chosen = pick_least(eligible, inflight, cursor)
    low = min(n for n, ok in zip(inflight, eligible, strict=True) if ok)
    assert eligible[chosen] and inflight[chosen] == low
    assert ties_go_round(eligible, [n == low for n in inflight], cursor, chosen)


@given(eligibility(), st.data())
def test_fastest_tries_each_target_first_then_the_lowest_latency(
    eligible: list[bool], data: st.DataObject
) -> None:
    size = len(eligible)
    tried = data.draw(st.lists(st.booleans(), min_size=size, max_size=size))
    latencies = data.draw(
        st.lists(st.none() | st.sampled_from([0.1, 0.2, 0.5]), min_size=size, max_size=size)
    )
    latencies = [
        value if was_tried else None for value, was_tried in zip(latencies, tried, strict=True)
    ]
    cursor = data.draw(st.integers(0, 20))
    chosen = pick_fastest(eligible, latencies, tried, cursor)
    assert eligible[chosen]
    fresh = [ok and not t for ok, t in zip(eligible, tried, strict=True)]
    known = [v for v, ok in zip(latencies, eligible, strict=True) if ok and v is not None]
    if any(fresh):
        assert ties_go_round(eligible, [not t for t in tried], cursor, chosen)
    elif known:
        assert latencies[chosen] == min(known)
        assert ties_go_round(eligible, [v == min(known) for v in latencies], cursor, chosen)
    else:
        assert ties_go_round(eligible, [True] * size, cursor, chosen)


def test_no_eligible_target_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no eligible target"):
        pick_round_robin([False, False], 0)
    with pytest.raises(ValueError, match="no eligible target"):
        pick_weighted([False], [1.0], [0.0])
    with pytest.raises(ValueError, match="no eligible target"):
        pick_least([False], [0], 0)
    with pytest.raises(ValueError, match="no eligible target"):
        pick_fastest([False], [None], [False], 0)


def test_latency_stats_keep_a_moving_average() -> None:
    stats = LatencyStats(alpha=0.5)
    assert stats.average is None
    stats.add(1.0)
    stats.add(3.0)
    stats.add(math.nan)  # ignored, as are infinities and negatives
    stats.add(-1.0)
    stats.add(math.inf)
    assert (stats.count, stats.last, stats.low, stats.average) == (2, 3.0, 1.0, 2.0)
