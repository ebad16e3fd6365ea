import os

import pytest
from hypothesis import HealthCheck, settings

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


@pytest.fixture(params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


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
