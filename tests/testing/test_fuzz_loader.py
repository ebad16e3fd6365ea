"""The manifest loader, fuzzed: any text gives a manifest or a ``ProtocolError`` whose
every issue is located (``file:line:col: $.path: message``); generated valid manifests
load, strictly; a manifest with one mistake is reported at that mistake."""

from __future__ import annotations

import re

from fuzzing import fast
from hypothesis import example, given

from ailib_anyio._core._errors import ProtocolError
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio._protocol._models import ProviderManifest
from ailib_anyio.testing import strategies as ast

SOURCE = "fuzz.yaml"
ISSUE = re.compile(r"^fuzz\.yaml:(\d+):(\d+): (\$.*?): \S")


def load(text: str, *, strict: bool) -> ProviderManifest | ProtocolError:
    try:
        return load_manifest_text(text, source=SOURCE, strict=strict)
    except ProtocolError as exc:
        return exc


def assert_located(error: ProtocolError, text: str) -> None:
    assert error.issues, "a ProtocolError lists its problems"
    lines = text.count("\n") + 1
    for issue in error.issues:
        found = ISSUE.match(issue)
        assert found is not None, issue
        line, col = int(found[1]), int(found[2])
        assert 1 <= line <= lines + 1, issue
        assert col >= 1, issue


@fast(40)
@given(text=ast.yaml_texts())
@example(text="&a [*a]")  # a recursive alias
@example(text="key: !!timestamp 2001-13-45")  # a tagged value the constructor rejects
@example(text="? [a, b]\n: c")  # a complex key
@example(text="a b: 1")  # strict: an unknown key whose path has a space, $['a b']
@example(text="!!omap [a: ,a: ]")  # ruamel's constructor asserts
@example(text="<<: {:}")  # merged entries have no position
def test_any_text_gives_a_manifest_or_located_issues(text: str) -> None:
    for strict in (False, True):
        result = load(text, strict=strict)
        if isinstance(result, ProtocolError):
            assert_located(result, text)
        else:
            assert isinstance(result, ProviderManifest)


@fast(40)
@given(text=ast.manifest_texts())
def test_generated_manifests_load_strictly(text: str) -> None:
    manifest = load_manifest_text(text, source=SOURCE, strict=True)
    assert manifest.api_family in ast.API_FAMILIES


@fast(40)
@given(broken=ast.broken_manifests())
def test_a_mistake_is_reported_where_it_is(broken: ast.BrokenManifest) -> None:
    result = load(broken.text, strict=False)
    assert isinstance(result, ProtocolError), broken.mistake
    assert_located(result, broken.text)
    paths = [ISSUE.match(issue)[3] for issue in result.issues]  # type: ignore[index]
    assert any(path.startswith(broken.path) for path in paths), (broken.path, result.issues)
