"""The AI-Protocol compliance suite, one test per case, run through the library's real code.

Cases live in ``../shared/ai-protocol/tests/compliance/cases``; ``compliance_runner`` executes
them. A case passes, or is listed in ``compliance_defects.yaml``: spec defects are strict
xfails (or skips, where nothing can run), missing features are skips that still compare what
the library can do. ``tests/conftest.py`` prints the totals at the end of the run.

Also here: the upstream manifests load, and the spellings the loader absorbs to read them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import pytest
from compliance_runner import (
    Case,
    Listing,
    Mismatch,
    RunnerGap,
    Unsupported,
    case_part,
    duplicate_ids,
    listed_duplicates,
    load_cases,
    load_listings,
    run_case,
    spec_root,
)

from ailib_anyio import ProtocolError
from ailib_anyio._core._mapping import DecodeFailure, EventMapper, StreamPipeline
from ailib_anyio._core._types import (
    ContentDelta,
    Finished,
    FinishReason,
    ToolCall,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallStarted,
    Usage,
)
from ailib_anyio._protocol._loader import load_manifest, load_manifest_text
from ailib_anyio._protocol._models import ProviderManifest

ROOT = spec_root()
CASES = load_cases(ROOT) if ROOT is not None else []
LISTINGS = load_listings()


def _case_params() -> list[Any]:
    if ROOT is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must run beside ../shared (the AI-Protocol compliance suite)")
        return [pytest.param(None, marks=pytest.mark.skip(reason="../shared/ai-protocol absent"))]
    params = []
    for case in CASES:
        listing = LISTINGS.get(case.key)
        marks = []
        if listing is not None and listing.section == "spec_defects" and listing.run == "xfail":
            marks.append(
                pytest.mark.xfail(
                    strict=True,
                    raises=(Mismatch, Unsupported),
                    reason=f"spec defect: {listing.reason}",
                )
            )
        params.append(pytest.param(case, id=case.test_id, marks=marks))
    return params


@pytest.mark.parametrize("case", _case_params())
def test_case(case: Case) -> None:
    assert ROOT is not None
    listing = LISTINGS.get(case.key)
    if listing is None:
        try:
            run_case(case, ROOT)
        except Unsupported as exc:
            pytest.fail(
                f"{case.test_id} needs {exc}: implement it, or list the case under"
                " not_implemented in tests/compliance_defects.yaml"
            )
        return
    if listing.section == "spec_defects":
        if listing.run == "skip":
            pytest.skip(f"spec defect: {listing.reason}")
        run_case(case, ROOT)  # a strict xfail: it must raise
        return
    try:
        run_case(case, ROOT)
    except Unsupported as exc:
        pytest.skip(f"not implemented: {listing.reason} (needs: {exc})")
    pytest.fail(
        f"{case.test_id} passes but is listed under not_implemented in"
        " tests/compliance_defects.yaml: remove it from the list"
    )


# ---------------------------------------------------------------- the list itself


needs_spec = pytest.mark.skipif(ROOT is None, reason="../shared/ai-protocol absent")


@needs_spec
def test_defect_list_names_only_existing_cases() -> None:
    keys = {case.key for case in CASES}
    stale = sorted(set(LISTINGS) - keys)
    assert stale == [], f"listed in compliance_defects.yaml but not in the suite: {stale}"


@needs_spec
def test_duplicate_ids_are_listed_exactly() -> None:
    assert listed_duplicates() == duplicate_ids(CASES)


def _defects() -> list[Any]:
    if ROOT is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason="../shared/ai-protocol absent"))]
    by_key = {case.key: case for case in CASES}
    return [
        pytest.param(by_key[key], listing, id=by_key[key].test_id)
        for key, listing in LISTINGS.items()
        if listing.section == "spec_defects" and key in by_key
    ]


@pytest.mark.parametrize(("case", "listing"), _defects())
def test_a_spec_defect_quotes_the_upstream_text_that_makes_it_one(
    case: Case, listing: Listing
) -> None:
    assert ROOT is not None
    assert listing.upstream, f"{case.test_id}: a spec defect needs its upstream text"
    for path, quote in listing.upstream:
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
        assert quote in lines, f"{case.test_id}: {path} has no line {quote!r}"
    for path in listing.missing:
        assert not (ROOT / path).exists(), f"{case.test_id}: {path} exists now: re-run the case"
    if listing.run == "xfail":
        assert not listing.missing
    else:  # nothing of a skipped case runs: a missing file, or nothing to execute
        assert not listing.parts


@pytest.mark.parametrize(("case", "listing"), _defects())
def test_what_a_spec_defect_case_can_check_passes(case: Case, listing: Listing) -> None:
    """The parts of a defective case that do not depend on the defect pass: the defect
    marking cannot hide a regression there."""
    assert ROOT is not None
    if listing.run == "xfail":
        assert listing.parts, f"{case.test_id}: say which parts of the case pass (parts:)"
    for part in listing.parts:
        run_case(case_part(case, part), ROOT)


@needs_spec
def test_a_case_part_drops_list_items_by_their_original_index() -> None:
    case = next(c for c in CASES if c.id == "gen-001")
    part = case_part(case, {"drop": ["input.capabilities.0", "input.capabilities.3"]})
    assert part.input["capabilities"] == ["streaming", "tools", "structured_output"]
    assert case.input["capabilities"][0] == "text"  # the case itself is left alone
    moved = case_part(case, {"setup": {"manifest_path": "x.yaml"}})
    assert moved.setup["manifest_path"] == "x.yaml"
    assert moved.setup["provider"] == case.setup["provider"]


@needs_spec
def test_case_names_are_unique_and_the_suite_is_the_one_reviewed() -> None:
    # ids repeat across files, id plus file does not: no two tests share a name
    ids = [case.test_id for case in CASES]
    assert len(ids) == len(set(ids))
    # compliance_defects.yaml was reviewed against these 114 cases; a changed suite needs
    # a new review, not just a new count
    assert len(CASES) == 114


@needs_spec
def test_the_runner_rejects_what_it_does_not_understand() -> None:
    assert ROOT is not None
    case = CASES[0]
    with pytest.raises(RunnerGap, match="unknown operation"):
        run_case(attrs.evolve(case, input={"type": "telepathy"}), ROOT)
    with pytest.raises(RunnerGap, match="expectation keys the runner does not check"):
        run_case(attrs.evolve(case, expected={**case.expected, "vibes": "good"}), ROOT)


# ---------------------------------------------------------------- upstream manifests


def _upstream() -> list[Any]:
    if ROOT is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason="../shared/ai-protocol absent"))]
    paths = sorted(ROOT.glob("v[12]/providers/*.yaml"))
    return [pytest.param(p, id=f"{p.parent.parent.name}/{p.stem}") for p in paths]


@pytest.mark.parametrize("path", _upstream())
def test_upstream_manifest_loads(path: Path) -> None:
    manifest = load_manifest(path)
    assert manifest.id == path.stem
    assert manifest.endpoint.base_url.startswith("https://")
    # strict mode is for authors: it reports the keys the runtime does not model
    with pytest.raises(ProtocolError) as info:
        load_manifest(path, strict=True)
    assert all("unknown" in issue for issue in info.value.issues), info.value.issues
    # every upstream manifest declares its format, so non-streaming chat has rules
    assert manifest.response is not None and manifest.response.event_map


# ---------------------------------------------------------------- spellings the loader absorbs


HEAD = 'id: acme\nprotocol_version: "1.1"\n'
ENDPOINT = "endpoint:\n  base_url: https://api.example.com/v1\n"


def manifest(text: str, *, strict: bool = False) -> ProviderManifest:
    return load_manifest_text(text, source="t.yaml", strict=strict)


def stream_rules(rules: str) -> str:
    return ENDPOINT + "streaming:\n  event_map:\n" + rules


def test_top_level_base_url_and_family_named_endpoint() -> None:
    m = manifest(
        HEAD + "base_url: https://api.example.com/v1\ndefault_api_family: chat_completions\n"
        "endpoints:\n  chat_completions_create: /v9/chat\n",
        strict=True,
    )
    assert m.endpoint.base_url == "https://api.example.com/v1"
    assert m.chat_endpoint.path == "/v9/chat"
    assert m.api_family == "openai_chat"


def test_top_level_base_url_is_checked() -> None:
    with pytest.raises(ProtocolError) as info:
        manifest(HEAD + "base_url: ftp://x\n")
    assert info.value.issues[0] == (
        "t.yaml:3:11: $.base_url: must start with http:// or https://, got 'ftp://x'"
    )


def test_an_endpoint_mapping_wins_over_a_top_level_base_url() -> None:
    m = manifest(HEAD + ENDPOINT + "base_url: https://other.example.com\n")
    assert m.endpoint.base_url == "https://api.example.com/v1"


def test_api_families_mapping_names_the_request_format() -> None:
    m = manifest(HEAD + ENDPOINT + "api_families:\n  chat:\n    request_format: anthropic\n")
    assert m.api_family == "anthropic_messages"
    # an explicit default family wins
    m = manifest(
        HEAD + ENDPOINT + "default_api_family: generate_content\n"
        "api_families:\n  chat:\n    request_format: anthropic\n"
    )
    assert m.api_family == "gemini_generate"


def test_key_env_is_token_env() -> None:
    m = manifest(HEAD + ENDPOINT + "auth:\n  type: query_param\n  key_env: ACME_KEY\n", strict=True)
    assert m.auth_spec.env_vars == ("ACME_KEY",)
    m = manifest(HEAD + ENDPOINT + "auth:\n  token_env: A\n  key_env: B\n")
    assert m.auth_spec.env_vars == ("A", "B")
    with pytest.raises(ProtocolError) as info:
        manifest(HEAD + ENDPOINT + "auth:\n  key_env: [A]\n")
    assert info.value.issues == [
        "t.yaml:6:12: $.auth.key_env: expected an environment variable name, got a list"
    ]


def test_a_null_rate_limit_header_means_none_is_sent() -> None:
    m = manifest(HEAD + ENDPOINT + "rate_limit_headers:\n  retry_after: null\n  x: x-limit\n")
    assert m.rate_limit_headers == {"x": "x-limit"}


def _events(m: ProviderManifest, *frames: object) -> list[object]:
    assert m.streaming is not None
    mapper = EventMapper(m.streaming.event_map)
    out: list[object] = []
    for frame in frames:
        out.extend(mapper.map_object(frame))
    out.extend(mapper.finish())
    return out


@pytest.mark.parametrize("emit", ["Usage", "Metadata", "UsageReport"])
@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 7, "completion_tokens": 3}, Usage(7, 3)),
        (
            {
                "prompt_tokens": 7,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 2},
                "completion_tokens_details": {"reasoning_tokens": 4},
            },
            Usage(7, 5, cached_input_tokens=2, reasoning_tokens=4),
        ),
        ({"input_tokens": 11, "output_tokens": 2, "cache_read_input_tokens": 1}, Usage(11, 2, 1)),
        # Gemini: output counts the thoughts, which candidatesTokenCount leaves out
        (
            {"promptTokenCount": 9, "candidatesTokenCount": 4, "thoughtsTokenCount": 6},
            Usage(9, 10, reasoning_tokens=6),
        ),
    ],
)
def test_a_usage_object_is_read_by_its_well_known_names(
    emit: str, usage: dict[str, object], expected: Usage
) -> None:
    m = manifest(
        HEAD + stream_rules(f"    - emit: {emit}\n      fields:\n        usage: $.usage\n"),
        strict=True,
    )
    assert _events(m, {"usage": usage}) == [expected]


def test_explicit_usage_fields_win_over_the_usage_object() -> None:
    m = manifest(
        HEAD
        + stream_rules(
            "    - emit: Metadata\n      fields:\n        usage: $.u\n"
            "        prompt_tokens: $.u.special\n"
        )
    )
    assert _events(m, {"u": {"prompt_tokens": 1, "special": 40, "completion_tokens": 2}}) == [
        Usage(40, 2)
    ]


def test_a_usage_rule_carrying_the_stop_reason_also_finishes() -> None:
    # v1 anthropic: `Metadata` with stop_reason and usage on message_delta
    m = manifest(
        HEAD
        + stream_rules(
            "    - match: \"$.type == 'message_delta'\"\n      emit: Metadata\n      fields:\n"
            "        stop_reason: $.delta.stop_reason\n        usage: $.usage\n"
        ),
        strict=True,
    )
    frame = {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens"},
        "usage": {"output_tokens": 5},
    }
    assert _events(m, frame, {"type": "ping", "delta": {"stop_reason": "x"}}) == [
        Usage(0, 5),
        Finished(FinishReason("length", "max_tokens")),
    ]


def test_a_finish_rule_carrying_the_usage_object_also_reports_usage() -> None:
    # v2 anthropic: `StreamEnd` with finish_reason and usage
    m = manifest(
        HEAD
        + stream_rules(
            "    - match: \"$.type == 'message_delta'\"\n      emit: StreamEnd\n      extract:\n"
            "        finish_reason: $.delta.stop_reason\n        usage: $.usage\n"
        ),
        strict=True,
    )
    frame = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 5},
    }
    assert _events(m, frame) == [Usage(0, 5), Finished(FinishReason("stop", "end_turn"))]


def test_an_openai_shaped_tool_calls_array() -> None:
    m = manifest(
        HEAD
        + stream_rules(
            "    - match: $.choices[0].delta.tool_calls\n      emit: PartialToolCall\n"
            "      extract:\n        tool_calls: $.choices[0].delta.tool_calls\n"
        ),
        strict=True,
    )

    def frame(*calls: dict[str, object]) -> dict[str, object]:
        return {"choices": [{"delta": {"tool_calls": list(calls)}}]}

    events = _events(
        m,
        frame(
            {"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x":'}},
            {"index": 1, "id": "b", "function": {"name": "g", "arguments": ""}},
        ),
        frame({"index": 0, "function": {"arguments": "1}"}}),
    )
    assert events == [
        ToolCallStarted(0, "a", "f"),
        ToolCallDelta(0, '{"x":'),
        ToolCallStarted(1, "b", "g"),
        ToolCallDelta(0, "1}"),
        ToolCallCompleted(0, ToolCall("a", "f", {"x": 1}, '{"x":1}')),
        ToolCallCompleted(1, ToolCall("b", "g", {}, "")),
    ]


def test_a_gemini_shaped_function_call_object() -> None:
    m = manifest(
        HEAD
        + stream_rules(
            "    - emit: PartialToolCall\n      extract:\n"
            "        tool_call: $.candidates[0].content.parts[*].functionCall\n"
        ),
        strict=True,
    )
    parts = [
        {"functionCall": {"name": "f", "args": {"q": "x"}}},
        {"text": "and"},
        {"functionCall": {"name": "g", "args": {}}},
    ]
    events = _events(m, {"candidates": [{"content": {"parts": parts}}]})
    assert [e for e in events if isinstance(e, ToolCallCompleted)] == [
        ToolCallCompleted(0, ToolCall(None, "f", {"q": "x"}, '{"q":"x"}')),
        ToolCallCompleted(1, ToolCall(None, "g", {}, "")),
    ]


def test_tool_call_ended_completes_the_call_at_once() -> None:
    m = manifest(
        HEAD
        + stream_rules(
            "    - match: \"$.type == 'content_block_start'\"\n      emit: ToolCallStarted\n"
            "      fields:\n        index: $.index\n        tool_call_id: $.content_block.id\n"
            "        tool_name: $.content_block.name\n"
            "    - match: \"$.type == 'content_block_delta'\"\n      emit: PartialToolCall\n"
            "      fields:\n        index: $.index\n        arguments: $.delta.partial_json\n"
            "    - match: \"$.type == 'content_block_stop'\"\n      emit: ToolCallEnded\n"
            "      fields:\n        index: $.index\n"
        ),
        strict=True,
    )
    assert m.streaming is not None
    pipeline = StreamPipeline(m.streaming.event_map)
    first = pipeline.feed(
        b'data: {"type":"content_block_stop","index":0}\n\n'  # a text block: nothing to end
        b'data: {"type":"content_block_start","index":1,"content_block":{"id":"t","name":"f"}}\n\n'
        b'data: {"type":"content_block_delta","index":1,"delta":{"partial_json":"{}"}}\n\n'
        b'data: {"type":"content_block_stop","index":1}\n\n'
    )
    assert first == [
        ToolCallStarted(1, "t", "f"),
        ToolCallDelta(1, "{}"),
        ToolCallCompleted(1, ToolCall("t", "f", {}, "{}")),
    ]
    assert pipeline.feed(b'data: {"type":"content_block_stop","index":1}\n\n') == []
    # completed once, not again at the end (only the truncation failure: no finish came)
    assert [e for e in pipeline.close() if not isinstance(e, DecodeFailure)] == []


def test_composite_fields_are_checked() -> None:
    with pytest.raises(ProtocolError) as info:
        manifest(
            HEAD
            + stream_rules(
                "    - emit: PartialToolCall\n      extract:\n        tool_calls: [$.a, $.b]\n"
                "    - emit: Usage\n      extract:\n        usage: $.u[\n"
            )
        )
    assert info.value.issues == [
        "t.yaml:9:21: $.streaming.event_map[0].extract.tool_calls: expected a path, got a list",
        "t.yaml:12:16: $.streaming.event_map[1].extract.usage: invalid JSONPath:"
        " expected an index, '*', a quoted name or a filter at offset 4 in '$.u['",
    ]


def test_plain_rules_are_unchanged() -> None:
    m = manifest(
        HEAD + stream_rules("    - emit: ContentDelta\n      extract:\n        text: $.t\n")
    )
    assert _events(m, {"t": "hi"}) == [ContentDelta("hi")]
