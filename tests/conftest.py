import gc
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Generator, Iterator

import anyio
import pytest
from hypothesis import HealthCheck, settings

from ailib_anyio.testing import MockProvider

# Hypothesis profiles: "default" keeps every test run fast; "fuzz" (HYPOTHESIS_PROFILE=fuzz,
# `nox -s fuzz`) runs the fuzz properties long. Failing examples are kept in the example
# database (.hypothesis/) and replayed first on the next run, whichever the profile.
settings.register_profile(
    "default",
    max_examples=100,  # hypothesis's own default: other tests keep their depth
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=2_500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, object, object]:
    """With pytest-xdist installed (the ``test`` extra has it), a run of the suite or of a
    folder goes to one worker process per CPU (``--dist worksteal``) unless the command line
    says otherwise: ``-n 0`` or ``-p no:xdist`` runs it in this process, ``-n N`` on N
    workers, ``PYTEST_XDIST_AUTO_NUM_WORKERS=N`` sets the default. Files and tests named
    one by one run in this process (a worker's start-up costs more than they take), unless
    ``-n`` is given. A default in ``addopts`` would make ``-p no:xdist`` an error (``-n``
    unknown); here it is set before xdist reads it."""
    if (
        config.pluginmanager.has_plugin("xdist")
        and config.getoption("numprocesses", None) is None
        and not hasattr(config, "workerinput")  # an xdist worker: never spawns workers
        and any((config.invocation_params.dir / a.split("::")[0]).is_dir() for a in config.args)
    ):
        config.option.numprocesses = "logical"
        if config.option.dist == "no":
            config.option.dist = "worksteal"
    return (yield)


@pytest.fixture(params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    """A loopback mock provider for one test; at its end no connection to it is left open
    and no task the test started is still running (a module may define its own)."""
    before = len(anyio.get_running_tasks())
    async with MockProvider() as server:
        yield server
        with anyio.fail_after(5):
            while server.open_connections:  # noqa: ASYNC110 - the mock offers no event for this
                await anyio.sleep(0.01)
    assert len(anyio.get_running_tasks()) == before


@pytest.fixture
def collect_redis_leftovers() -> Iterator[None]:
    """coredis leaves a failed connection's anyio memory streams unclosed (their
    ``__del__`` warns): collected after each test of a module that uses Redis, their
    ResourceWarning ignored, so that no later test meets them in a garbage collection."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis on 127.0.0.1: ``AILIB_TEST_REDIS_URL`` (``.ci/run`` starts one and sets
    it), else a ``redis-server`` this fixture starts on a free port for the session. A test
    using it is skipped, with the reason, only when neither is possible."""
    url = os.environ.get("AILIB_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip(
            "no Redis to test against: AILIB_TEST_REDIS_URL is unset and redis-server is not"
            " installed (apt-get install redis-server)"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no"]
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would block it
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while not _redis_answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    log.seek(0)
                    output = log.read().decode("utf-8", "replace")[-500:]
                    pytest.skip(f"redis-server did not start on port {port}: {output}")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The AI-Protocol compliance totals, when its cases ran (tests/compliance_defects.yaml
    says why each case that does not pass does not)."""
    outcomes: dict[str, str] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            # stats also hold deselected items and warnings: only test reports count
            if not isinstance(report, pytest.TestReport):
                continue
            if "test_ai_protocol_compliance.py::test_case[" not in report.nodeid:
                continue
            if getattr(report, "wasxfail", None) is not None and report.skipped:
                outcomes[report.nodeid] = "defect"
            elif report.skipped:
                text = str(report.longrepr)
                outcomes[report.nodeid] = "defect" if "spec defect" in text else "missing"
            elif report.failed:
                outcomes[report.nodeid] = "failed"
            elif report.passed and report.when == "call":
                outcomes.setdefault(report.nodeid, "passed")
    if not outcomes:
        return
    counts = {k: sum(v == k for v in outcomes.values()) for k in ("passed", "defect", "missing")}
    failed = sum(v == "failed" for v in outcomes.values())
    line = (
        f"AI-Protocol compliance: {counts['passed']} passed, {counts['defect']} spec defects,"
        f" {counts['missing']} not implemented (of {len(outcomes)} cases)"
    )
    terminalreporter.write_line(line + (f", {failed} FAILED" if failed else ""))
