"""Task runner: ``nox -s tests lint typing bench fuzz docs``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, on every installed Python (asyncio and trio in each)."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff, including the flake8-async (ASYNC) rules."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "ailib_anyio", "tests", "benchmarks", "examples", "noxfile.py")
    session.run(
        "ruff", "format", "--check", "ailib_anyio", "tests", "benchmarks", "examples", "noxfile.py"
    )


@nox.session(python="3.11")
def typing(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install(".[test]", "mypy>=1.10")
    session.run("mypy", "--strict", "ailib_anyio")


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml, docs/), warnings as errors, into site/."""
    session.install(".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """CPU per request / per streamed chunk vs raw httpx and the openai SDK, import time,
    256 streams."""
    session.install(".[test,bench]")
    session.run("python", "benchmarks/bench_client.py", *session.posargs)


FUZZ_TESTS = [
    "tests/testing/test_fuzz_streams.py",
    "tests/testing/test_fuzz_loader.py",
    "tests/testing/test_fuzz_encode.py",
    "tests/testing/test_fuzz_e2e.py",
    "tests/testing/test_totality.py",
]


@nox.session(python="3.11")
def fuzz(session: nox.Session) -> None:
    """The fuzz properties, long (the "fuzz" hypothesis profile: about 100,000 examples).

    Failing examples are kept in .hypothesis/ and replayed first on the next run.
    """
    session.install(".[test]")
    session.run(
        "pytest",
        "--hypothesis-show-statistics",
        *(session.posargs or FUZZ_TESTS),
        env={"HYPOTHESIS_PROFILE": "fuzz"},
    )
