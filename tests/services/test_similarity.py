"""``cosine_similarity`` and ``find_most_similar``: the numpy path and the plain-Python path
(numpy switched off) give the same results, the same order and the same errors."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ailib_anyio import ConfigurationError
from ailib_anyio._services import _similarity
from ailib_anyio.embeddings import SimilarityMatch, cosine_similarity, find_most_similar


@pytest.fixture(params=["numpy", "plain"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with numpy and with numpy switched off."""
    if request.param == "plain":
        monkeypatch.setattr(_similarity, "_numpy", lambda: None)
    else:
        assert _similarity._numpy() is np
    return str(request.param)


@pytest.fixture
def both() -> Callable[[Callable[[], Any]], tuple[Any, Any]]:
    """``run(f)``: f() with numpy and without it."""

    def run(f: Callable[[], Any]) -> tuple[Any, Any]:
        with_numpy = f()
        original = _similarity._numpy
        _similarity._numpy = lambda: None  # type: ignore[assignment]
        try:
            plain = f()
        finally:
            _similarity._numpy = original
        return with_numpy, plain

    return run


def test_without_numpy_installed_the_plain_path_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)  # `import numpy` raises ImportError
    _similarity._numpy.cache_clear()
    try:
        assert _similarity._numpy() is None
        assert cosine_similarity([1, 0], [1, 1]) == pytest.approx(math.sqrt(0.5))
        assert find_most_similar([1, 0], [[0, 1], [1, 0]]) == [
            SimilarityMatch(1, 1.0),
            SimilarityMatch(0, 0.0),
        ]
    finally:
        _similarity._numpy.cache_clear()
    monkeypatch.undo()
    assert _similarity._numpy() is np


def test_known_values(path: str) -> None:
    assert cosine_similarity([1, 2, 3], [1, 2, 3]) == 1.0
    assert cosine_similarity([1, 2, 3], [2, 4, 6]) == 1.0
    assert cosine_similarity([1, 0], [0, 1]) == 0.0
    assert cosine_similarity([1, 0], [-1, 0]) == -1.0
    assert cosine_similarity([3, 4], [4, 3]) == pytest.approx(24 / 25, abs=1e-15)
    assert cosine_similarity([0, 0], [1, 2]) == 0.0  # a zero vector scores 0 against anything
    assert cosine_similarity([], []) == 0.0
    assert isinstance(cosine_similarity([1.0], [2.0]), float)


def test_scale_does_not_overflow_or_underflow(path: str) -> None:
    assert cosine_similarity([1e200, 1e200], [1e200, 0]) == pytest.approx(math.sqrt(0.5))
    assert cosine_similarity([1e-300, 0], [5e-310, 5e-310]) == pytest.approx(math.sqrt(0.5))
    assert cosine_similarity([1.7e308, -1.7e308], [1, -1]) == pytest.approx(1.0)
    assert cosine_similarity([10**30, 0], [1, 0]) == 1.0  # ints beyond int64


def test_find_most_similar(path: str) -> None:
    query = [1.0, 0.0]
    candidates = [[0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [-1.0, 0.0], [1.0, 1.0]]
    matches = find_most_similar(query, candidates, top_k=3)
    assert [m.index for m in matches] == [2, 1, 4]  # a tie keeps the lower index first
    assert [m.score for m in matches] == pytest.approx([1.0, math.sqrt(0.5), math.sqrt(0.5)])
    index, score = matches[0]  # unpacks as the reference's (index, score) pairs
    assert (index, score) == (2, 1.0)
    assert [m.index for m in find_most_similar(query, candidates, top_k=None)] == [2, 1, 4, 0, 3]
    assert len(find_most_similar(query, candidates)) == 5  # top_k=5 by default
    assert find_most_similar(query, candidates, top_k=50)[-1] == SimilarityMatch(3, -1.0)
    assert find_most_similar(query, [], top_k=2) == []
    assert find_most_similar(query, (), top_k=2) == []


def test_numpy_arrays_are_taken_as_they_are() -> None:
    matrix = np.array([[0.0, 1.0], [3.0, 0.1]], dtype=np.float32)
    assert [m.index for m in find_most_similar(np.array([1.0, 0.0]), matrix)] == [1, 0]  # type: ignore[arg-type]
    assert cosine_similarity(np.arange(3), np.arange(3)) == pytest.approx(1.0)  # type: ignore[arg-type]


BAD: list[tuple[Callable[[], Any], str]] = [
    (lambda: cosine_similarity([1, 2], [1, 2, 3]), "b has 3 dimensions, the query 2"),
    (lambda: cosine_similarity("ab", [1, 2]), "a must be a sequence of numbers, got str 'ab'"),  # type: ignore[arg-type]
    (lambda: cosine_similarity([1, "2"], [1, 2]), "a must hold only numbers, got str '2'"),  # type: ignore[list-item]
    (lambda: cosine_similarity([1, None], [1, 2]), "a must hold only numbers, got NoneType"),  # type: ignore[list-item]
    (lambda: cosine_similarity([1, 2], [math.nan, 2]), "b holds a value that is not finite: nan"),
    (lambda: cosine_similarity([math.inf], [1]), "a holds a value that is not finite: inf"),
    (lambda: cosine_similarity([10**400], [1]), "a holds a value that is not finite: inf"),
    (lambda: cosine_similarity([[1, 2]], [1]), "a must hold only numbers, got list [1, 2]"),  # type: ignore[list-item]
    (lambda: cosine_similarity(3, [1]), "a must be a sequence of numbers, got int 3"),  # type: ignore[arg-type]
    (lambda: find_most_similar([1, 0], [[1, 0], [1]]), "candidates[1] has 1 dimensions"),
    (lambda: find_most_similar([1, 0], [[1, 0, 0], [1, 1, 1]]), "candidates[0] has 3 dim"),
    (lambda: find_most_similar([1, 0], [[1, 0], [1, math.inf]]), "candidates[1] holds a value"),
    (lambda: find_most_similar([1, 0], [[1, 0], ["x", 1]]), "candidates[1] must hold only"),  # type: ignore[list-item]
    (lambda: find_most_similar([1, 0], "ab"), "candidates must be a sequence of vectors"),  # type: ignore[arg-type]
    (lambda: find_most_similar([1, 0], 5), "candidates must be a sequence of vectors, got int"),  # type: ignore[arg-type]
    (lambda: find_most_similar([1, "a"], [[1, 0]]), "query must hold only numbers"),  # type: ignore[list-item]
    (lambda: find_most_similar([1, 0], [[1, 0]], top_k=0), "top_k must be a positive integer"),
    (lambda: find_most_similar([1, 0], [[1, 0]], top_k=True), "top_k must be a positive"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_the_same_error_on_both_paths(
    call: Callable[[], Any], message: str, both: Callable[[Callable[[], Any]], tuple[Any, Any]]
) -> None:
    def error() -> str:
        with pytest.raises(ConfigurationError) as info:
            call()
        return info.value.message

    with_numpy, plain = both(error)
    assert with_numpy == plain
    assert plain.startswith(message)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
small_ints = st.integers(min_value=-3, max_value=3).map(float)  # many exact ties and zeros
numbers = st.one_of(finite, small_ints)


@st.composite
def vector_sets(draw: st.DrawFn) -> tuple[list[float], list[list[float]]]:
    size = draw(st.integers(min_value=0, max_value=12))
    vector = st.lists(numbers, min_size=size, max_size=size)
    return draw(vector), draw(st.lists(vector, max_size=12))


@given(vector_sets(), st.one_of(st.none(), st.integers(min_value=1, max_value=15)))
def test_numpy_and_plain_python_agree(
    data: tuple[list[float], list[list[float]]], top_k: int | None
) -> None:
    query, candidates = data
    assert _similarity._numpy() is np
    with_numpy = find_most_similar(query, candidates, top_k=top_k)
    ranked_numpy = find_most_similar(query, candidates, top_k=None)
    original = _similarity._numpy
    _similarity._numpy = lambda: None  # type: ignore[assignment]
    try:
        plain = find_most_similar(query, candidates, top_k=top_k)
        ranked_plain = find_most_similar(query, candidates, top_k=None)
        pairs_plain = [cosine_similarity(query, c) for c in candidates]
    finally:
        _similarity._numpy = original
    pairs_numpy = [cosine_similarity(query, c) for c in candidates]
    assert pairs_numpy == pytest.approx(pairs_plain, abs=1e-12)
    assert all(-1.0 <= s <= 1.0 for s in pairs_plain + pairs_numpy)
    # the same scores in the same order; indices differ at most among (near-)equal scores
    assert len(with_numpy) == len(plain) == min(len(candidates), top_k or len(candidates))
    assert [m.score for m in with_numpy] == pytest.approx([m.score for m in plain], abs=1e-12)
    score_of = {m.index: m.score for m in ranked_plain}
    for mine, theirs in zip(with_numpy, plain, strict=True):
        assert score_of[mine.index] == pytest.approx(theirs.score, abs=1e-12)
    assert sorted(m.index for m in ranked_numpy) == list(range(len(candidates)))
    # ranked best first, exact ties by index, on each path
    for ranked in (ranked_numpy, ranked_plain):
        for a, b in itertools.pairwise(ranked):
            assert a.score > b.score or (a.score == b.score and a.index < b.index)
