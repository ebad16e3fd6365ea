import pytest


@pytest.fixture(params=[pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The AI-Protocol compliance totals, when its cases ran (tests/compliance_defects.yaml
    says why each case that does not pass does not)."""
    outcomes: dict[str, str] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            nodeid = getattr(report, "nodeid", "")
            if "test_ai_protocol_compliance.py::test_case[" not in nodeid:
                continue
            if getattr(report, "wasxfail", None) is not None and report.skipped:
                outcomes[nodeid] = "defect"
            elif report.skipped:
                text = str(report.longrepr)
                outcomes[nodeid] = "defect" if "spec defect" in text else "missing"
            elif report.failed:
                outcomes[nodeid] = "failed"
            elif report.passed and report.when == "call":
                outcomes.setdefault(nodeid, "passed")
    if not outcomes:
        return
    counts = {k: sum(v == k for v in outcomes.values()) for k in ("passed", "defect", "missing")}
    failed = sum(v == "failed" for v in outcomes.values())
    line = (
        f"AI-Protocol compliance: {counts['passed']} passed, {counts['defect']} spec defects,"
        f" {counts['missing']} not implemented (of {len(outcomes)} cases)"
    )
    terminalreporter.write_line(line + (f", {failed} FAILED" if failed else ""))
