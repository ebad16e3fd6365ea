"""How long the fuzz properties run: a few examples in every test run, many in the fuzz
profile (``HYPOTHESIS_PROFILE=fuzz``, ``nox -s fuzz``; see tests/conftest.py)."""

from __future__ import annotations

import os

from hypothesis import settings

FUZZING = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"


def fast(examples: int) -> settings:
    """``@fast(40)``: 40 examples in an ordinary test run, the fuzz profile's count when
    fuzzing (so the whole suite stays quick while fuzzing goes deep)."""
    return settings(max_examples=settings.default.max_examples if FUZZING else examples)
