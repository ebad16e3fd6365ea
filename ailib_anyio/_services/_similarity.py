"""Vector similarity: ``cosine_similarity`` and ``find_most_similar``.

numpy does the arithmetic when it is installed (imported on the first call, never by
``import ailib_anyio``); plain Python does it otherwise (``math.fsum``, so sums are
correctly rounded). Both give the same results: the same inputs accepted and the same
errors, scores equal to within rounding (1e-12; both clipped to ``[-1, 1]``), a vector of
norm zero scoring 0.0 against anything, and the same ranking: best score first, equal
scores by lower index (scores closer than rounding may rank either way).
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Iterator, Sequence, Sized
from types import ModuleType
from typing import Any

import attrs

from .._core._errors import ConfigurationError

__all__ = ["SimilarityMatch", "cosine_similarity", "find_most_similar"]


@attrs.frozen
class SimilarityMatch:
    """One candidate of ``find_most_similar``: its position and its cosine similarity to
    the query. Unpacks as a pair: ``for index, score in find_most_similar(...)``."""

    index: int
    score: float

    def __iter__(self) -> Iterator[Any]:
        yield self.index
        yield self.score


@functools.cache
def _numpy() -> ModuleType | None:
    """numpy, or ``None`` when it is not installed (looked up once)."""
    try:
        return importlib.import_module("numpy")
    except ImportError:
        return None


# ------------------------------------------------------------------ plain Python
#
# Each vector is first divided by its largest absolute value (cosine does not change with
# scale): no square overflows, whatever finite numbers come in, in either path.


def _check_vector(vector: object, name: str) -> list[float]:
    """The vector as floats; ``ConfigurationError`` unless it is a sequence of finite
    numbers (``bool`` counts as 0 or 1, as numpy takes it)."""
    if isinstance(vector, (str, bytes)) or not isinstance(vector, Sequence):
        raise ConfigurationError(f"{name} must be a sequence of numbers, got {_kind(vector)}")
    out = []
    for value in vector:
        if not isinstance(value, (int, float)):
            raise ConfigurationError(f"{name} must hold only numbers, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigurationError(f"{name} holds a value that is not finite: {number!r}")
        out.append(number)
    return out


def _kind(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _scaled(vector: list[float]) -> tuple[list[float], float]:
    """The vector divided by its largest magnitude, and its norm after that (0: zero)."""
    top = max(map(abs, vector), default=0.0)
    if top == 0.0:
        return vector, 0.0
    unit = [x / top for x in vector]
    return unit, math.sqrt(math.fsum(x * x for x in unit))


def _cosine(a: tuple[list[float], float], b: tuple[list[float], float]) -> float:
    (x, norm_x), (y, norm_y) = a, b
    if norm_x == 0.0 or norm_y == 0.0:
        return 0.0
    score = math.fsum(p * q for p, q in zip(x, y, strict=True)) / (norm_x * norm_y)
    return min(1.0, max(-1.0, score))


def _same_length(query: Sized, other: Sized, name: str) -> None:
    if len(other) != len(query):
        raise ConfigurationError(
            f"{name} has {len(other)} dimensions, the query {len(query)}: vectors to compare"
            " must have the same length"
        )


def _check_candidates(candidates: object, query: Sized) -> list[list[float]]:
    """The candidates as float vectors, each as long as the query; else the error."""
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise ConfigurationError(
            f"candidates must be a sequence of vectors, got {_kind(candidates)}"
        )
    vectors = [_check_vector(c, f"candidates[{i}]") for i, c in enumerate(candidates)]
    for i, vector in enumerate(vectors):
        _same_length(query, vector, f"candidates[{i}]")
    return vectors


# ------------------------------------------------------------------ numpy


def _np_array(np: Any, value: object, name: str, query: Sized | None = None) -> Any:
    """``value`` as a float64 array: a vector, or with ``query`` a matrix of candidates.
    What numpy does not read as such is checked (and converted) the plain way, so both
    paths accept the same inputs and raise the same errors."""
    ndim = 1 if query is None else 2
    array = None
    if not isinstance(value, (str, bytes)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):  # ragged rows, or nothing numpy can read
            array = None
    if array is None or array.ndim != ndim or array.dtype.kind not in "biuf":
        # strings, None, ragged rows, ints beyond int64...: the plain checks decide
        plain = _check_vector(value, name) if query is None else _check_candidates(value, query)
        return np.asarray(plain, dtype=np.float64)
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        bad = float(array[~finite].flat[0])
        where = name if query is None else f"{name}[{int(np.argwhere(~finite)[0][0])}]"
        raise ConfigurationError(f"{where} holds a value that is not finite: {bad!r}")
    if query is not None and array.shape[1] != len(query):
        _same_length(query, array[0], f"{name}[0]")
    return array


def _np_scores(np: Any, query: Any, matrix: Any) -> Any:
    """Cosine of ``query`` with each row of ``matrix``, clipped to [-1, 1] (0 for zero)."""
    top = np.abs(matrix).max(axis=1, keepdims=True) if matrix.shape[1] else None
    if top is not None:
        matrix = matrix / np.where(top == 0.0, 1.0, top)
    q_top = float(np.abs(query).max()) if query.size else 0.0
    if q_top == 0.0:
        return np.zeros(len(matrix))
    query = query / q_top
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix)) * math.sqrt(float(query @ query))
    scores = np.zeros(len(matrix))
    np.divide(matrix @ query, norms, out=scores, where=norms != 0.0)
    return np.clip(scores, -1.0, 1.0)


# ------------------------------------------------------------------ public


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of the angle between two vectors of the same length, in ``[-1, 1]``
    (0.0 when either is all zeros). Anything but finite numbers, or vectors of different
    lengths, raise ``ConfigurationError``.

    >>> round(cosine_similarity([1.0, 0.0], [1.0, 1.0]), 6)
    0.707107
    >>> cosine_similarity([1.0, 2.0], [0.0, 0.0])
    0.0
    """
    np = _numpy()
    if np is None:
        x, y = _check_vector(a, "a"), _check_vector(b, "b")
        _same_length(x, y, "b")
        return _cosine(_scaled(x), _scaled(y))
    u, v = _np_array(np, a, "a"), _np_array(np, b, "b")
    _same_length(u, v, "b")
    return float(_np_scores(np, u, v.reshape(1, -1))[0])


def find_most_similar(
    query: Sequence[float],
    candidates: Sequence[Sequence[float]],
    top_k: int | None = 5,
) -> list[SimilarityMatch]:
    """The ``top_k`` candidates most similar to ``query`` by cosine similarity, best
    first (ties: lower index first), as ``SimilarityMatch(index, score)``, which unpack
    as pairs; ``top_k=None`` ranks them all. With numpy, ``candidates`` may also be a
    2-D array.

    >>> texts = ["north", "east", "north-east"]
    >>> vectors = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    >>> for index, score in find_most_similar([0.2, 1.0], vectors, top_k=2):
    ...     print(texts[index], f"{score:.4f}")
    north 0.9806
    north-east 0.8321
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigurationError(f"top_k must be a positive integer or None, got {top_k!r}")
    np = _numpy()
    if np is None:
        q = _check_vector(query, "query")
        vectors = _check_candidates(candidates, q)
        unit_q = _scaled(q)
        scores = [_cosine(unit_q, _scaled(vector)) for vector in vectors]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties by index
        return [SimilarityMatch(i, scores[i]) for i in order[:top_k]]
    q = _np_array(np, query, "query")
    matrix = _np_array(np, candidates, "candidates", q)
    if len(matrix) == 0:
        return []
    scores_np = _np_scores(np, q, matrix)
    order_np = np.argsort(-scores_np, kind="stable")[:top_k]
    return [SimilarityMatch(int(i), float(scores_np[i])) for i in order_np]
