"""``python -m ailib_anyio protocols check``: every shipped manifest passes, a broken rule
is found with a minimal example, a broken manifest is reported located, and without
hypothesis the command checks loading only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ailib_anyio._cli._main import main

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data"


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["protocols", "check", "--seed", "1", *args])
    return code, capsys.readouterr().out


def test_every_shipped_manifest_passes(capsys: pytest.CaptureFixture[str]) -> None:
    paths = sorted(str(p) for p in (REPO / "protocols").glob("*.yaml"))
    code, out = check(capsys, "--examples", "25", "--strict", *paths)
    assert code == 0, out
    assert "FAIL" not in out
    assert f"{len(paths)} of {len(paths)} manifest(s) passed" in out
    assert out.count("ok    stream round trip") == len(paths)


def test_a_content_rule_reading_the_wrong_field_is_found(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = check(capsys, "--examples", "100", str(DATA / "broken-content.yaml"))
    assert code == 1
    assert "FAIL  stream round trip" in out
    # the minimal example: one content delta the rule does not see
    assert "problem: event 0: expected ContentDelta(text='0'), decoded nothing" in out
    assert "0 of 1 manifest(s) passed" in out


def test_a_finish_rule_that_never_matches_is_found(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, "--examples", "100", str(DATA / "broken-finish.yaml"))
    assert code == 1
    assert "FAIL  stream round trip" in out
    assert "expected Finished(finish_reason=FinishReason(normalized=" in out
    assert "decoded nothing" in out


def test_a_manifest_that_does_not_load_is_reported_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text('id: bad\nprotocol_version: "2.0"\nendpoint: {base_url: ftp://x}\n')
    code, out = check(capsys, str(path))
    assert code == 1
    assert f"{path}:3:22: $.endpoint.base_url: must start with http:// or https://" in out


def test_without_hypothesis_only_loading_is_checked() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "from ailib_anyio._cli._main import main\n"
        f"sys.exit(main(['protocols', 'check', {str(REPO / 'protocols' / 'openai.yaml')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "hypothesis is not installed: loading checked, rules not fuzzed" in out.stdout


def test_examples_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["protocols", "check", "--examples", "0", "x.yaml"])
    assert "argument --examples: must be at least 1, got 0" in capsys.readouterr().err
