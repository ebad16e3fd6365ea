"""The ``batch`` section of a manifest: what the shipped ones say, the located errors a bad
one gets, the JSON templates it is written with, and the sans-IO operations over it
(``BatchWire``: the split under the limits, status mapping, result records)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ailib_anyio import ChatResponse, ProtocolError, RemoteInvalidRequestError
from ailib_anyio._core._jsontemplate import JsonTemplate, TemplateError
from ailib_anyio._protocol._batch import BatchWire, batch_pricing, derive_custom_ids, plan_batches
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio._protocol._models import BATCH_STATUSES
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio.batch import BatchFailedError

HEAD = 'id: demo\nprotocol_version: "2.0"\nendpoint:\n  base_url: https://api.example.com/v1\n'

GOOD = """\
batch:
  price_factor: 0.5
  limits: {max_requests: 3, max_bytes: 1000}
  input:
    mode: inline
    item: {id: "{custom_id}", params: "{body}"}
  create: {path: /batches, body: {requests: "{items}", name: "{job}"}, id: $.id}
  get: {path: "/batches/{batch_id}"}
  status: $.state
  statuses: {running: in_progress, done: ended}
  results:
    files: [{path: "/batches/{batch_id}/results"}]
  result:
    custom_id: $.id
    outcomes:
      - {match: "$.ok == true", outcome: succeeded, body: $.response}
      - {outcome: errored, body: $.error, status: $.status}
"""


def at(text: str, needle: str) -> str:
    """``line:col`` of ``needle`` in ``text``; of what follows ``>`` in it, if it has one."""
    prefix, _, rest = needle.rpartition(">")
    pos = text.index(prefix + rest) + len(prefix)
    line = text.count("\n", 0, pos) + 1
    return f"{line}:{pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def issues_of(text: str, *, strict: bool = False) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(text, source="m.yaml", strict=strict)
    return info.value.issues


def test_a_good_section_loads() -> None:
    spec = load_manifest_text(HEAD + GOOD, strict=True).batch
    assert spec is not None
    assert (spec.mode, spec.max_requests, spec.max_bytes, spec.price_factor) == (
        "inline",
        3,
        1000,
        0.5,
    )
    assert spec.create.method == "POST"
    assert spec.get.method == "GET"
    assert spec.cancel is None
    assert [rule.outcome for rule in spec.outcomes] == ["succeeded", "errored"]


@pytest.mark.parametrize(
    ("change", "needle", "issue"),
    [
        (
            ("statuses: {running: in_progress", "statuses: {running: going"),
            "going",
            "$.batch.statuses.running: unknown batch status 'going' (known: "
            + ", ".join(BATCH_STATUSES)
            + ")",
        ),
        (
            ('params: "{body}"', 'params: "{bdy}"'),
            '{id: "{custom_id}"',
            "$.batch.input.item: unknown slot {bdy} (known here: {body}, {custom_id})",
        ),
        (
            ('item: {id: "{custom_id}", ', "item: {"),
            "{params",
            "$.batch.input.item: the template must use {custom_id}",
        ),
        (
            ('requests: "{items}"', 'requests: "all: {items}"'),
            "{requests",
            "$.batch.create.body: {items} stands for a JSON value: it must be the whole string",
        ),
        (
            ('"/batches/{batch_id}"}', '"/batches/{id}"}'),
            '"/batches/{id}"',
            "$.batch.get.path: unknown placeholder {id} (known here: {batch_id}, {model})",
        ),
        (
            ("max_requests: 3", "max_requests: 0"),
            "max_requests: >0",
            "$.batch.limits.max_requests: expected a positive integer, got int 0",
        ),
        (
            ("price_factor: 0.5", "price_factor: 2"),
            "price_factor: >2",
            "$.batch.price_factor: expected a number in (0, 1], got int 2",
        ),
        (
            ("outcome: errored", "outcome: broken"),
            "outcome: >broken",
            "$.batch.result.outcomes[1].outcome: unknown outcome 'broken' (known: succeeded,"
            " errored, expired, cancelled)",
        ),
        (
            ('"$.ok == true"', '"$.ok =="'),
            'match: >"$.ok =="',
            "$.batch.result.outcomes[0].match: invalid match expression: expected a literal"
            " (string, number, true, false or null) at offset 7 in '$.ok =='",
        ),
        (
            ("mode: inline", "mode: file"),
            "input:\n    >mode",
            "$.batch.input: required key 'upload' is missing",
        ),
        (
            ("  status: $.state\n", ""),
            "batch:\n  >price_factor",
            "$.batch: required key 'status' is missing",
        ),
    ],
)
def test_a_bad_section_gets_located_issues(
    change: tuple[str, str], needle: str, issue: str
) -> None:
    text = HEAD + GOOD.replace(*change)
    assert change[0] in GOOD
    issues = issues_of(text)
    assert issues[0] == f"m.yaml:{at(text, needle)}: {issue}", issues


def test_strict_reports_unknown_keys_in_the_section() -> None:
    text = HEAD + GOOD.replace("  status: $.state", "  status: $.state\n  colour: blue")
    assert issues_of(text, strict=True) == [
        f"m.yaml:{at(text, 'colour')}: $.batch.colour: unknown key 'colour'"
    ]
    load_manifest_text(text)  # tolerated when not strict


def test_every_problem_is_reported_at_once() -> None:
    text = HEAD + GOOD.replace("max_requests: 3", "max_requests: -1").replace(
        "running: in_progress", "running: nope"
    )
    assert len(issues_of(text)) == 2


def test_the_shipped_manifests() -> None:
    registry = ProtocolRegistry()
    for name, mode, max_requests, max_bytes in (
        ("openai", "file", 50_000, 200_000_000),
        ("anthropic", "inline", 100_000, 256_000_000),
        ("gemini", "inline", None, 20_000_000),
    ):
        spec = registry.get(name).batch
        assert spec is not None
        assert (spec.mode, spec.max_requests, spec.max_bytes) == (mode, max_requests, max_bytes)
        assert spec.price_factor == 0.5
        assert set(spec.statuses.values()) <= set(BATCH_STATUSES)
        assert spec.cancel is not None


def test_the_real_limits_split_by_count() -> None:
    registry = ProtocolRegistry()
    expected = {"openai": [50_000, 50_000, 20_001], "anthropic": [100_000, 20_001]}
    for provider, counts in expected.items():
        wire = BatchWire(registry.get(provider), provider=provider, model="m")
        body = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
        ids = derive_custom_ids([body] * 120_001)
        items = [wire.item(cid, body) for cid in ids]
        plans = wire.plan(items, ids, "job")
        assert [stop - start for start, stop, _ in plans] == counts
        assert [start for start, _, _ in plans] == [sum(counts[:i]) for i in range(len(counts))]
        assert all(size <= wire.spec.max_bytes for _, _, size in plans)  # type: ignore[operator]


def test_plan_batches() -> None:
    assert plan_batches([10] * 7, max_requests=3, max_bytes=None) == [
        (0, 3, 30),
        (3, 6, 30),
        (6, 7, 10),
    ]
    assert plan_batches([40, 40, 30, 90, 5], max_requests=None, max_bytes=100, overhead=10) == [
        (0, 2, 90),
        (2, 3, 40),
        (3, 4, 100),
        (4, 5, 15),
    ]
    assert plan_batches([], max_requests=1, max_bytes=1) == []
    with pytest.raises(ValueError, match=r"^1$") as caught:
        plan_batches([10, 95], max_requests=None, max_bytes=100, overhead=10)
    assert caught.value.args == (1,)


def test_derived_custom_ids_are_stable_and_distinct() -> None:
    ids = derive_custom_ids([b"a", b"b", b"a", b"a"])
    assert ids[0] == "r" + "ca978112ca1bbdcafac231b39a23dc4"  # sha256("a")
    assert ids[2:] == [ids[0] + "-2", ids[0] + "-3"]
    assert ids[1] != ids[0]
    assert derive_custom_ids([b"a", b"b", b"a", b"a"]) == ids
    assert all(len(i) <= 64 for i in ids)


def test_json_templates() -> None:
    template = JsonTemplate.compile(
        {"id": "{custom_id}", "x": [1, None, True], "body": "{body}", "note": "job {job}!"},
        objects=("body",),
        texts=("custom_id", "job"),
    )
    assert template.slots == {"body", "custom_id", "job"}
    out = template.render({"custom_id": 'a"b', "body": b'{"k":"\xc3\xa9"}', "job": "n\u00e9"})
    assert json.loads(out) == {
        "id": 'a"b',
        "x": [1, None, True],
        "body": {"k": "é"},
        "note": "job né!",
    }
    with pytest.raises(TemplateError, match=r"unknown slot \{other\}"):
        JsonTemplate.compile({"a": "{other}"}, objects=(), texts=("job",))
    plain = JsonTemplate.compile({"a": "{not a slot}"}, objects=(), texts=())
    assert json.loads(plain.render({})) == {"a": "{not a slot}"}


def _wire(name: str) -> BatchWire:
    return BatchWire(ProtocolRegistry().get(name), provider=name, model="m")


def test_statuses_are_mapped_onto_one_set() -> None:
    assert _wire("openai").state({"status": "cancelling"}).status == "finalizing"
    gemini = _wire("gemini")
    for raw, status in (("BATCH_STATE_RUNNING", "in_progress"), ("JOB_STATE_SUCCEEDED", "ended")):
        state = gemini.state({"metadata": {"state": raw, "batchStats": {"requestCount": "7"}}})
        assert (state.status, state.raw, state.counts) == (status, raw, {"total": 7})
    failed = _wire("openai").state(
        {"status": "failed", "errors": {"data": [{"message": "a"}, {"message": "b"}]}}
    )
    assert (failed.status, failed.failure, failed.terminal) == ("failed", "a; b", True)
    with pytest.raises(Exception, match="batch status 'odd' is not one the manifest maps"):
        _wire("anthropic").state({"processing_status": "odd"})


def test_unsafe_remote_ids_never_reach_a_url() -> None:
    wire = _wire("openai")
    for bad in ("../files", "a b", "x?y=1", "", None, "a//b"):
        with pytest.raises(Exception, match="no usable batch id"):
            wire.batch_id({"id": bad})
    assert wire.batch_id({"id": "batch_abc-1"}) == "batch_abc-1"
    assert _wire("gemini").batch_id({"name": "batches/x1"}) == "batches/x1"


def test_result_records_become_responses_or_typed_errors() -> None:
    wire = _wire("anthropic")
    ok: dict[str, Any] = {
        "custom_id": "a",
        "result": {
            "type": "succeeded",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 1000, "output_tokens": 100},
            },
        },
    }
    assert wire.outcome(ok) == ("a", "succeeded")
    registry_pricing = ProtocolRegistry().get("anthropic").model_pricing("claude-sonnet-4-6")
    pricing = batch_pricing(registry_pricing, 0.5)
    reply = wire.result("succeeded", ok, batch_id="b", pricing=pricing)
    assert isinstance(reply, ChatResponse)
    assert reply.content == "hi"
    assert reply.cost is not None
    assert str(reply.cost.total_cost) == "0.00225"  # (1000 * 3 + 100 * 15) / 1e6 / 2
    bad = {
        "custom_id": "b",
        "result": {
            "type": "errored",
            "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}},
        },
    }
    assert wire.outcome(bad) == ("b", "errored")
    error = wire.result("errored", bad, batch_id="b", pricing=None)
    assert isinstance(error, RemoteInvalidRequestError)
    assert (error.message, error.status_code, error.provider) == (
        "invalid_request: no",
        None,
        "anthropic",
    )
    assert wire.outcome({"result": {"type": "expired"}}) is None  # no custom_id: not joined
    failed = wire.result("failed", {"failure": "bad input"}, batch_id="b", pricing=None)
    assert isinstance(failed, BatchFailedError)
    assert failed.message == "the batch failed (batch b): bad input"
