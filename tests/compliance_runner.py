"""Runs the AI-Protocol compliance suite (``../shared/ai-protocol/tests/compliance``) through
the library's real code.

Each case names an operation (``input.type``); the runner feeds the case's input to the
library function that performs it (the loader, ``classify_error``, the client's own
stream pipeline and response decoder built from the manifest (``stream_pipeline``,
``response_decoder``), the event mapper, the request encoders, ``resolve_credential`` and
``auth_material``, ``RetryPolicy.decide`` and ``should_fallback``) and compares what
comes out with the case's ``expected`` block. The runner only translates: case YAML into
library arguments, and library results into the spec's vocabulary (a ``ContentDelta`` is
the spec's ``PartialContentDelta``). No behaviour under test is computed here.

Every key of an ``expected`` block is either checked or reported: a key the library has
no counterpart for raises :class:`Unsupported` naming the missing feature, and a key the
runner does not know fails the case, so nothing is skipped silently. Which cases do not
pass, and why, is listed in one place: ``tests/compliance_defects.yaml``.

``python tests/compliance_runner.py`` prints the counts per category.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml  # type: ignore[import-untyped, unused-ignore]

from ailib_anyio._core._classify import classify_error
from ailib_anyio._core._encode import ENCODERS, EncoderOptions, encode_request
from ailib_anyio._core._errors import (
    STANDARD_ERRORS,
    AiLibError,
    CapabilityNotDeclaredError,
    ConfigurationError,
    ProtocolError,
)
from ailib_anyio._core._mapping import (
    DECODER_FORMATS,
    DecodeFailure,
    EventMapper,
    ResponseAccumulator,
    StreamFailure,
    StreamPipeline,
)
from ailib_anyio._core._retry import RetryConfig, RetryPolicy, should_fallback
from ailib_anyio._core._rules import EventRule
from ailib_anyio._core._texttools import parse_text_tool_calls, text_tool_prompt
from ailib_anyio._core._types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    ContentDelta,
    Finished,
    Message,
    MessageRole,
    ReasoningDelta,
    RefusalDelta,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallStarted,
    ToolDefinition,
    Usage,
)
from ailib_anyio._protocol._contract import (
    REF_RESOLUTIONS,
    ProviderContract,
    load_contract,
    load_contract_text,
)
from ailib_anyio._protocol._credentials import CredentialResolution, resolve_credential
from ailib_anyio._protocol._decoding import response_decoder, stream_pipeline
from ailib_anyio._protocol._loader import load_manifest, load_manifest_text
from ailib_anyio._protocol._models import (
    API_FAMILIES,
    DecoderSpec,
    ProviderManifest,
    StreamingSpec,
    make_converter,
)
from ailib_anyio._transport._http import auth_material

HERE = Path(__file__).resolve().parent
DEFECTS_FILE = HERE / "compliance_defects.yaml"


def shared_dir() -> Path | None:
    env = os.environ.get("AILIB_SHARED_DIR")
    path = Path(env) if env else HERE.parents[1] / "shared"
    return path if path.is_dir() else None


def spec_root() -> Path | None:
    shared = shared_dir()
    root = shared / "ai-protocol" if shared is not None else None
    return root if root is not None and (root / "tests" / "compliance").is_dir() else None


# ---------------------------------------------------------------- cases


@attrs.frozen
class Case:
    """One case of the suite; ``file`` is relative to ``cases/`` (ids are not unique)."""

    id: str
    file: str
    name: str
    input: Mapping[str, Any]
    expected: Mapping[str, Any]
    setup: Mapping[str, Any]
    path: Path

    @property
    def category(self) -> str:
        return self.file.split("/", 1)[0]

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.id)

    @property
    def test_id(self) -> str:
        return f"{self.id}@{self.file.removesuffix('.yaml')}"


def load_cases(root: Path) -> list[Case]:
    cases_dir = root / "tests" / "compliance" / "cases"
    out = []
    for path in sorted(cases_dir.glob("*/*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is None:
                continue
            out.append(
                Case(
                    id=str(doc["id"]),
                    file=path.relative_to(cases_dir).as_posix(),
                    name=str(doc.get("name", "")),
                    input=doc.get("input") or {},
                    expected=doc.get("expected") or {},
                    setup=doc.get("setup") or {},
                    path=path,
                )
            )
    return out


def duplicate_ids(cases: Sequence[Case]) -> dict[str, list[str]]:
    """Ids used by more than one case -> the files using them."""
    files: dict[str, list[str]] = {}
    for case in cases:
        files.setdefault(case.id, []).append(case.file)
    return {cid: sorted(fs) for cid, fs in sorted(files.items()) if len(fs) > 1}


# ---------------------------------------------------------------- the defect list


@attrs.frozen
class Listing:
    """Why a case does not pass: ``section`` is ``spec_defects`` or ``not_implemented``."""

    section: str
    reason: str
    #: spec defects only: ``xfail`` (run, must fail) or ``skip`` (cannot run meaningfully)
    run: str = "xfail"
    #: spec defects: (path under the spec root, a line quoted verbatim from it)
    upstream: tuple[tuple[str, str], ...] = ()
    #: spec defects: spec paths the case needs that do not exist
    missing: tuple[str, ...] = ()
    #: spec defects: variants of the case that must pass (``drop``, ``setup``)
    parts: tuple[Mapping[str, Any], ...] = ()


def load_listings(path: Path = DEFECTS_FILE) -> dict[tuple[str, str], Listing]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[tuple[str, str], Listing] = {}
    for entry in data.get("spec_defects") or []:
        key = (entry["file"], entry["id"])
        if key in out:
            raise ValueError(f"{path}: {key} is listed twice")
        run = entry.get("run", "xfail")
        if run not in ("xfail", "skip"):
            raise ValueError(f"{path}: {key}: run must be xfail or skip, not {run!r}")
        out[key] = Listing(
            "spec_defects",
            " ".join(str(entry["reason"]).split()),
            run,
            upstream=tuple((str(q["file"]), str(q["quote"])) for q in entry.get("upstream") or ()),
            missing=tuple(str(m) for m in entry.get("missing") or ()),
            parts=tuple(entry.get("parts") or ()),
        )
    for entry in data.get("not_implemented") or []:
        key = (entry["file"], entry["id"])
        if key in out:
            raise ValueError(f"{path}: {key} is listed twice")
        out[key] = Listing("not_implemented", " ".join(str(entry["feature"]).split()))
    return out


def case_part(case: Case, part: Mapping[str, Any]) -> Case:
    """A variant of a case (a defect's ``parts`` entry): ``drop`` removes dotted paths of
    ``input`` / ``expected`` (list items by index, all indices meaning the original list),
    ``setup`` replaces setup keys."""
    doc = copy.deepcopy({"input": dict(case.input), "expected": dict(case.expected)})
    unknown = set(part) - {"drop", "setup"}
    if unknown:
        raise ValueError(f"{case.test_id}: unknown keys in a defect's part: {sorted(unknown)}")
    # list items: highest index first, so each index still names the original item
    paths = sorted(
        (str(p).split(".") for p in part.get("drop") or ()),
        key=lambda steps: [int(x) if x.isdigit() else -1 for x in steps],
        reverse=True,
    )
    for steps in paths:
        node: Any = doc
        for step in steps[:-1]:
            node = node[int(step)] if isinstance(node, list) else node[step]
        last = steps[-1]
        if isinstance(node, list):
            del node[int(last)]
        else:
            del node[last]
    setup = {**case.setup, **(part.get("setup") or {})}
    return attrs.evolve(case, input=doc["input"], expected=doc["expected"], setup=setup)


def listed_duplicates(path: Path = DEFECTS_FILE) -> dict[str, list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {str(e["id"]): sorted(e["files"]) for e in data.get("duplicate_ids") or []}


# ---------------------------------------------------------------- outcomes of a comparison


class Mismatch(AssertionError):
    """The library's result differs from the case's expectation."""


class Unsupported(Exception):
    """The case needs a feature the library does not have (named in ``features``)."""

    def __init__(self, features: Sequence[str]) -> None:
        super().__init__("; ".join(features))
        self.features = list(features)


class RunnerGap(Exception):
    """The case uses an operation or expectation key this runner does not understand."""


_MISSING = object()


class Checker:
    """Compares expectations one key at a time; every key must be consumed."""

    def __init__(self, expected: Mapping[str, Any]) -> None:
        self.expected = expected
        self.pending = set(expected)
        self.mismatches: list[str] = []
        self.unsupported: list[str] = []

    def has(self, key: str) -> bool:
        return key in self.expected

    def take(self, key: str) -> Any:
        self.pending.discard(key)
        return self.expected[key]

    def check(self, key: str, actual: Any) -> None:
        if key in self.expected:
            self.mismatches.extend(compare(self.take(key), actual, key))

    def fail(self, message: str) -> None:
        self.mismatches.append(message)

    def unsupported_key(self, key: str, feature: str) -> None:
        if key in self.expected:
            self.take(key)
            self.needs(feature)

    def needs(self, feature: str) -> None:
        if feature not in self.unsupported:
            self.unsupported.append(feature)

    def give_up(self) -> None:
        """The rest cannot be compared; only after a mismatch or a missing feature is noted."""
        if not (self.mismatches or self.unsupported):
            raise RunnerGap("giving up on a case without saying why")
        self.pending.clear()

    def done(self) -> None:
        if self.pending:
            raise RunnerGap(f"expectation keys the runner does not check: {sorted(self.pending)}")
        if self.mismatches:
            extra = f" (and unsupported: {'; '.join(self.unsupported)})" if self.unsupported else ""
            raise Mismatch("\n".join(self.mismatches) + extra)
        if self.unsupported:
            raise Unsupported(self.unsupported)


def compare(expected: Any, actual: Any, where: str) -> list[str]:
    """Differences between an expectation and a value (dicts: the expected keys only)."""
    if isinstance(expected, Mapping) and "assert" in expected:
        return _assertion(expected, actual, where)
    if isinstance(expected, Mapping) and set(expected) <= {"min", "max"} and expected:
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return [f"{where}: expected a number in {dict(expected)}, got {actual!r}"]
        low, high = expected.get("min"), expected.get("max")
        if (low is not None and actual < low) or (high is not None and actual > high):
            return [f"{where}: {actual!r} not in {dict(expected)}"]
        return []
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{where}: expected a mapping, got {actual!r}"]
        out: list[str] = []
        for key, value in expected.items():
            if key.endswith("_contains") and key not in actual:
                base = key.removesuffix("_contains")
                got = actual.get(base, _MISSING)
                if got is _MISSING or not isinstance(got, (str, list)) or value not in got:
                    out.append(f"{where}.{base}: expected to contain {value!r}, got {got!r}")
                continue
            if key not in actual:
                out.append(f"{where}.{key}: missing (expected {value!r})")
                continue
            out.extend(compare(value, actual[key], f"{where}.{key}"))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, (list, tuple)):
            return [f"{where}: expected a list, got {actual!r}"]
        if len(expected) != len(actual):
            return [f"{where}: expected {len(expected)} items {expected!r}, got {list(actual)!r}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(compare(e, a, f"{where}[{i}]"))
        return out
    if isinstance(expected, bool) or isinstance(actual, bool):
        same = expected is actual
    elif isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        same = float(expected) == float(actual)
    else:
        same = expected == actual
    return [] if same else [f"{where}: expected {expected!r}, got {actual!r}"]


_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, (list, tuple)),
    "object": lambda v: isinstance(v, Mapping),
}


def _assertion(spec: Mapping[str, Any], actual: Any, where: str) -> list[str]:
    """The README's explicit assertions (``assert: length``, ``contains``, ...)."""
    kind = spec["assert"]
    value = spec.get("value")
    if kind == "length":
        if not isinstance(actual, (list, tuple, str)):
            return [f"{where}: expected something with a length, got {actual!r}"]
        bounds = {k: spec[k] for k in ("min", "max") if k in spec}
        if "value" in spec:
            bounds = {"min": value, "max": value}
        return compare(bounds, len(actual), f"len({where})")
    if kind == "equals":
        return compare(value, actual, where)
    if kind == "contains":
        ok = isinstance(actual, (str, list, tuple)) and value in actual
        return [] if ok else [f"{where}: expected to contain {value!r}, got {actual!r}"]
    if kind == "matches":
        ok = isinstance(actual, str) and re.search(str(value), actual) is not None
        return [] if ok else [f"{where}: expected to match {value!r}, got {actual!r}"]
    if kind == "type":
        ok = _TYPES[str(value)](actual)
        return [] if ok else [f"{where}: expected a {value}, got {actual!r}"]
    if kind == "any_of":
        ok = any(not compare(option, actual, where) for option in value or ())
        return [] if ok else [f"{where}: expected one of {value!r}, got {actual!r}"]
    if kind == "error":
        return [] if actual is not None else [f"{where}: expected an error"]
    raise RunnerGap(f"unknown assertion {kind!r}")


# ---------------------------------------------------------------- helpers shared by operations


def compliance_root(root: Path) -> Path:
    return root / "tests" / "compliance"


def resolve(case: Case, root: Path, relative: str) -> Path:
    """A path in a case. The schema says "relative to the compliance root", but the cases
    that point at the spec's own manifests (``../../../../v2/providers/x.yaml``) are written
    relative to the case file; the first of the two that exists is used."""
    first = compliance_root(root) / relative
    if first.exists():
        return first
    second = case.path.parent / relative
    return second if second.exists() else first


def case_manifest(case: Case, root: Path) -> ProviderManifest:
    path = case.setup.get("manifest_path")
    if not isinstance(path, str):
        raise RunnerGap("the case names no setup.manifest_path")
    return load_manifest(resolve(case, root, path))


def event_view(events: Sequence[Any]) -> list[dict[str, Any]]:
    """Library events (of one frame) in the spec's event vocabulary.

    Tool-call starts and argument fragments of one frame are one ``PartialToolCall``
    carrying OpenAI-shaped ``tool_calls`` entries (the unified model has only function
    calls, so their ``type`` is ``function``). ``ToolCallCompleted`` is the accumulator's
    output, which the spec tests separately (``tool_accumulation``), so it is not an
    event-mapping event.
    """
    out: list[dict[str, Any]] = []
    calls: dict[int, dict[str, Any]] | None = None
    for event in events:
        if isinstance(event, (ToolCallStarted, ToolCallDelta)):
            if calls is None:
                calls = {}
                out.append({"type": "PartialToolCall", "tool_calls": calls})
            entry = calls.setdefault(event.index, {"index": event.index, "function": {}})
            if isinstance(event, ToolCallStarted):
                entry["id"] = event.id
                entry["type"] = "function"
                entry["function"]["name"] = event.name
            else:
                entry["function"]["arguments"] = (
                    entry["function"].get("arguments", "") + event.arguments
                )
            continue
        calls = None
        if isinstance(event, ContentDelta):
            out.append({"type": "PartialContentDelta", "content": event.text})
        elif isinstance(event, ReasoningDelta):
            out.append({"type": "ThinkingDelta", "thinking": event.text})
        elif isinstance(event, RefusalDelta):
            out.append({"type": "RefusalDelta", "content": event.text})
        elif isinstance(event, Finished):
            out.append({"type": "StreamEnd", "finish_reason": event.finish_reason.raw})
        elif isinstance(event, Usage):
            out.append({"type": "Metadata", "usage": usage_view(event)})
        elif isinstance(event, ToolCallCompleted):
            pass
        else:
            out.append({"type": type(event).__name__})
    for item in out:
        if item["type"] == "PartialToolCall":
            item["tool_calls"] = list(item["tool_calls"].values())
    return out


def usage_view(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    view: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.reasoning_tokens is not None:
        view["reasoning_tokens"] = usage.reasoning_tokens
    return view


def tool_call_view(response: ChatResponse) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments}}
        for c in response.tool_calls
    ]


def accumulate(outputs: Sequence[Any], checker: Checker) -> ChatResponse:
    """The response a stream's outputs add up to; an error event or undecodable bytes
    fail the case (a cut-off body does not: the cases check ``completed`` themselves)."""
    acc = ResponseAccumulator()
    for item in outputs:
        if isinstance(item, StreamFailure):
            checker.fail(f"the stream carried an error event: {item.body!r}")
        elif isinstance(item, DecodeFailure):
            if not item.truncated:
                checker.fail(f"the stream did not decode: {item.error}")
        else:
            acc.add(item)
    return acc.build()


def pipeline_for(manifest: ProviderManifest) -> StreamPipeline:
    """The client's own stream pipeline for the manifest (``stream_pipeline``)."""
    try:
        return stream_pipeline(manifest)
    except ConfigurationError as exc:
        raise Mismatch(str(exc)) from None


_PARAMETERS = ("temperature", "max_tokens", "top_p", "stop", "response_format", "tool_choice")


def chat_request(
    messages: Sequence[Message], params: Mapping[str, Any], checker: Checker
) -> ChatRequest:
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name in _PARAMETERS:
            kwargs[name] = tuple(value) if name == "stop" else value
        else:
            checker.needs(f"request parameter {name!r}")
    return ChatRequest(model="compliance-model", messages=list(messages), **kwargs)


def options_for(manifest: ProviderManifest) -> EncoderOptions:
    """The encoder options the client derives from a manifest."""
    return EncoderOptions(
        parameter_mappings=manifest.parameter_mappings,
        stream_usage=manifest.feature_flag("streaming_usage"),
    )


def encode(
    family: str, options: EncoderOptions, request: ChatRequest, checker: Checker
) -> dict[str, Any] | None:
    if family not in ENCODERS:
        checker.needs(f"{family} request encoder")
        return None
    return encode_request(family, request, options)


def messages_of(raw: Sequence[Mapping[str, Any]], checker: Checker) -> list[Message]:
    """A case's messages; keys beyond role and content (msg-004's ``metadata``) are the
    message's extra wire fields (``Message.extra``)."""
    out = []
    for item in raw:
        extra = {str(k): v for k, v in item.items() if k not in ("role", "content")}
        out.append(Message(MessageRole(item["role"]), item.get("content"), extra=extra or None))
    return out


@contextlib.contextmanager
def environment(set_vars: Mapping[str, str], clear: Sequence[str]) -> Iterator[None]:
    """Exactly ``set_vars`` among ``clear`` and them, for the duration (then restored)."""
    names = set(clear) | set(set_vars)
    saved = {n: os.environ.get(n) for n in names}
    try:
        for n in names:
            os.environ.pop(n, None)
        os.environ.update({k: str(v) for k, v in set_vars.items()})
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


# ---------------------------------------------------------------- operations


def op_protocol_loading(case: Case, root: Path, c: Checker) -> None:
    if "contract_fragment" in case.input or case.input.get("validate_contract_schema"):
        op_contract_loading(case, root, c)
        return
    path = resolve(case, root, str(case.input["manifest_path"]))
    manifest: ProviderManifest | None = None
    issues: list[str] = []
    try:
        manifest = load_manifest(path)
    except ProtocolError as exc:
        issues = exc.issues
    c.check("valid", manifest is not None)
    if c.has("errors"):
        expected = c.take("errors")
        if isinstance(expected, list) and expected:
            for text in expected:
                if not any(str(text) in issue for issue in issues):
                    c.fail(f"errors: no issue contains {text!r}; issues: {issues!r}")
        else:
            c.mismatches.extend(compare(expected, issues, "errors"))
    c.check("provider_id", manifest.id if manifest else None)
    c.check("protocol_version", manifest.protocol_version if manifest else None)
    c.check("runtime_deserialize", isinstance(manifest, ProviderManifest))


def op_contract_loading(case: Case, root: Path, c: Checker) -> None:
    """A ProviderContract through ``load_contract``: the shipped contract a fixture points at
    (its path is relative to the spec root), or a content-block mapping fragment set into an
    otherwise minimal contract."""
    contract: ProviderContract | None = None
    issues: list[str] = []
    try:
        if "contract_fragment" in case.input:
            doc = {
                "contract_version": "1.0",
                "provider_id": "fragment",
                "api_style": "anthropic_messages",
                "request_mapping": {"content_block_mapping": case.input["contract_fragment"]},
            }
            contract = load_contract_text(yaml.safe_dump(doc), source=f"<{case.id}>")
        else:
            pointer = yaml.safe_load(
                resolve(case, root, str(case.input["manifest_path"])).read_text()
            )
            path = str(case.input.get("contract_path") or pointer["contract_path"])
            contract = load_contract(root / path)
            # the fixture restates the contract's document mapping: the two must agree
            for key, value in (pointer.get("document_mapping") or {}).items():
                got = (contract.document_mapping or {}).get(key)
                if got != value:
                    c.fail(f"fixture document_mapping.{key} {value!r}, contract says {got!r}")
    except ProtocolError as exc:
        issues = exc.issues
    c.check("valid", contract is not None)
    if issues and not c.has("errors"):
        c.fail("the contract does not load:\n  " + "\n  ".join(issues))
    c.check("document_mapping", dict(contract.document_mapping or {}) if contract else None)
    c.check("ref_resolution_allowed", list(REF_RESOLUTIONS))


def op_error_classification(case: Case, root: Path, c: Checker) -> None:
    manifest = case_manifest(case, root)
    info = classify_error(
        manifest.error_classification,
        int(case.input["http_status"]),
        {str(k).lower(): str(v) for k, v in (case.input.get("headers") or {}).items()},
        case.input.get("response_body"),
    )
    c.check("valid", True)
    c.check("error_name", info.kind)
    c.check("error_type", info.kind)
    c.check("retryable", info.retryable)
    c.check("error_code", info.error_code)
    c.check("fallbackable", info.fallbackable)


def op_message_building(case: Case, root: Path, c: Checker) -> None:
    manifest = case_manifest(case, root)
    messages = messages_of(case.input.get("messages") or [], c)
    request = chat_request(messages, case.input.get("parameters") or {}, c)
    body = encode(manifest.api_family, options_for(manifest), request, c)
    if body is None:
        c.give_up()
        return
    c.check("valid", True)
    c.check("normalized_body", body)
    c.check("request_contains", body)
    c.check("message_count", len(body.get("messages", ())))


def op_parameter_mapping(case: Case, root: Path, c: Checker) -> None:
    manifest = case_manifest(case, root)
    params = dict(case.input.get("standard_params") or {})
    request = chat_request([Message.user("compliance")], params, c)
    # "provider defaults when not specified" (req-003): the opt-in
    # open_client(..., parameter_defaults=True), as the client derives it
    options = attrs.evolve(options_for(manifest), request_defaults=manifest.parameter_defaults)
    body = encode(manifest.api_family, options, request, c)
    expected = c.take("provider_params")
    if body is None:
        return
    for name, value in expected.items():
        c.mismatches.extend(compare(value, body.get(name, _MISSING), f"provider_params.{name}"))


def op_stream_decode(case: Case, root: Path, c: Checker) -> None:
    if "raw_chunks" in case.input:
        _decode_raw_chunks(case, root, c)
    else:
        _decode_events(case, root, c)


def _decode_raw_chunks(case: Case, root: Path, c: Checker) -> None:
    config = case.input.get("decoder_config") or {}
    # the case's decoder_config overrides the manifest's decoder, key by key
    manifest = case_manifest(case, root)
    streaming = manifest.streaming or StreamingSpec()
    decoder_spec = streaming.decoder
    fmt = str(config.get("format", decoder_spec.format))
    if fmt not in DECODER_FORMATS:
        raise RunnerGap(f"decoder format {fmt!r}")
    if DECODER_FORMATS[fmt] == "sse" and config.get("prefix", "data: ") != "data: ":
        c.needs(f"SSE data prefix {config['prefix']!r}")
    decoder_spec = DecoderSpec(fmt, config.get("done_signal", decoder_spec.done_signal))
    pipeline = pipeline_for(
        attrs.evolve(manifest, streaming=attrs.evolve(streaming, decoder=decoder_spec))
    )
    chunks = [str(chunk).encode("utf-8") for chunk in case.input["raw_chunks"]]
    decoder = type(pipeline.decoder)()  # the frames, as the pipeline's decoder cuts them
    frames = [frame for chunk in chunks for frame in decoder.feed(chunk)]
    frames.extend(decoder.flush())

    outputs = [item for chunk in chunks for item in pipeline.feed(chunk)]
    outputs.extend(pipeline.close())
    accumulate(outputs, c)

    if c.has("events"):
        expected = c.take("events")
        view = [
            {"type": "frame", "event": f.event, "data": f.data, "has_content": bool(f.data)}
            for f in frames
        ]
        if len(view) < len(expected):
            c.fail(f"events: expected at least {len(expected)} frames, got {view!r}")
        else:
            c.mismatches.extend(compare(expected, view[: len(expected)], "events"))
    c.check("frame_count", len(frames))
    c.check("done_received", pipeline.mapper.done)
    c.check("completed", pipeline.mapper.finished and not pipeline.truncated)


def _decode_events(case: Case, root: Path, c: Checker) -> None:
    manifest = case_manifest(case, root)
    pipeline = pipeline_for(manifest)
    # each item is one whole event, written without its closing blank line
    chunks = [f"{event}\n\n".encode() for event in case.input["events"]]
    outputs = [item for chunk in chunks for item in pipeline.feed(chunk)]
    outputs.extend(pipeline.close())
    response = accumulate(outputs, c)
    c.check("valid", True)
    c.check("accumulated_tool_calls", tool_call_view(response))
    c.check("usage", usage_view(response.usage))
    if c.has("content_blocks"):
        blocks = []
        if response.reasoning:
            blocks.append({"type": "thinking", "content": response.reasoning})
        if response.content:
            blocks.append({"type": "text", "content": response.content})
        c.check("content_blocks", blocks)
    finish = response.finish_reason
    c.check("finish_reason", finish.raw if finish is not None else None)


def op_event_mapping(case: Case, root: Path, c: Checker) -> None:
    rules: tuple[EventRule, ...] = make_converter().structure(
        case.input["event_map"], tuple[EventRule, ...]
    )
    mapper = EventMapper(rules)
    view: list[dict[str, Any]] = []
    for frame in case.input["frames"]:
        view.extend(event_view(mapper.map_object(frame)))
    view.extend(event_view(mapper.finish()))
    c.check("events", view)
    c.check("event_count", len(view))


def _place(path: str, value: Any) -> Any:
    """A JSON document holding ``value`` at ``path`` (``$.a[0].b``): the frame a case's
    fragment arrives in."""
    steps = re.findall(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]", path.removeprefix("$"))
    for name, index in reversed(steps):
        value = {name: value} if name else [None] * int(index) + [value]
    return value


def _leaf_paths(obj: Any, prefix: str = "") -> list[str]:
    if isinstance(obj, Mapping):
        return [p for k, v in obj.items() for p in _leaf_paths(v, f"{prefix}.{k}")]
    return [prefix]


def op_tool_accumulation(case: Case, root: Path, c: Checker) -> None:
    manifest = case_manifest(case, root)
    config = case.input.get("accumulator_config") or {}
    key_path = str(config["key_path"])
    chunks = case.input["partial_chunks"]
    # the fragment's own path to the arguments is a suffix of key_path; what precedes it
    # is where the fragment sits in a frame
    suffix = next((p for p in _leaf_paths(chunks[0]) if key_path.endswith(p)), None)
    if suffix is None:
        raise RunnerGap(f"key_path {key_path!r} does not end in a path of the fragment")
    container = key_path[: -len(suffix)]
    streaming = manifest.streaming
    mapper = EventMapper(streaming.event_map if streaming is not None else ())
    outputs: list[Any] = []
    for chunk in chunks:
        outputs.extend(mapper.map_object(_place(container, chunk)))
    outputs.extend(mapper.finish())
    completed = [e for e in outputs if isinstance(e, ToolCallCompleted)]
    c.check(
        "assembled_tool_calls",
        [
            {
                "index": e.index,
                "id": e.tool_call.id,
                "type": "function",
                "function": {"name": e.tool_call.name, "arguments": e.tool_call.raw_arguments},
            }
            for e in completed
        ],
    )
    c.check("complete", bool(completed) and all(e.tool_call.parse_error is None for e in completed))


def op_response_parsing(case: Case, root: Path, c: Checker) -> None:
    manifest = case_manifest(case, root)
    rules = manifest.response.event_map if manifest.response is not None else ()
    if not rules:
        c.fail(f"manifest {manifest.id!r} defines no mapping for non-streaming responses")
        c.give_up()
        return
    body = case.input["response_body"]
    try:
        response = response_decoder(manifest).decode(body)
    except AiLibError as exc:
        c.fail(f"the response does not decode: {exc}")
        c.give_up()
        return
    c.check("valid", True)
    c.check("usage", usage_view(response.usage))


def op_capability_check(case: Case, root: Path, c: Checker) -> None:
    manifest = case_manifest(case, root)
    c.check("valid", True)
    for name in case.input.get("capabilities") or ():
        if not manifest.has_capability(str(name)):
            c.fail(f"capabilities: {name!r} is not declared")
    if c.has("capabilities_present"):
        present = c.take("capabilities_present")
        caps = manifest.capabilities if isinstance(manifest.capabilities, Mapping) else {}
        for name in present.get("required", ()):
            listed = caps.get("required")
            if not (isinstance(listed, list) and name in listed):
                c.fail(f"capabilities_present.required: {name!r} is not a required capability")
        for name in present.get("optional_contains", ()):
            listed = caps.get("optional")
            if not (isinstance(listed, list) and name in listed):
                c.fail(f"capabilities_present.optional: {name!r} is not an optional capability")
    if c.has("feature_flags"):
        for name, value in c.take("feature_flags").items():
            c.mismatches.extend(
                compare(value, manifest.feature_flag(name), f"feature_flags.{name}")
            )
    required = case.input.get("required_capability")
    c.check("capability_declared", manifest.has_capability(str(required)) if required else None)
    c.unsupported_key("mcp_integration_method", "MCP integration method")


def op_inline_manifest(case: Case, root: Path, c: Checker) -> ProviderManifest | None:
    try:
        return load_manifest_text(str(case.input["manifest"]), source=f"<{case.id}>")
    except ProtocolError as exc:
        c.fail("the case's manifest does not load:\n  " + "\n  ".join(exc.issues))
        c.give_up()
        return None


def op_capability_guard(case: Case, root: Path, c: Checker) -> None:
    """``ProviderManifest.require_capability`` for the case's method, which must refuse."""
    manifest = op_inline_manifest(case, root, c)
    if manifest is None:
        return
    try:
        manifest.require_capability(str(case.input["method"]))
    except CapabilityNotDeclaredError as exc:
        c.check("error_code", exc.error_code)
    else:
        c.fail(f"the guard let {case.input['method']!r} through")
        c.give_up()


def op_advanced_endpoint_mapping(case: Case, root: Path, c: Checker) -> None:
    manifest = op_inline_manifest(case, root, c)
    if manifest is None:
        return
    endpoint = manifest.endpoint_for(str(case.input["operation"]))
    c.check("path", endpoint.path if endpoint else case.input.get("fallback"))
    c.check("method", endpoint.method if endpoint else None)


def _credential(case: Case, root: Path) -> tuple[ProviderManifest, CredentialResolution, Any]:
    """Run ``resolve_credential`` over the case's environment alone (never the process's),
    and ``auth_material`` (the client's path) the same way: (manifest, report, outcome),
    the outcome being ``auth_material``'s (headers, params) or its ``ConfigurationError``."""
    manifest = case_manifest(case, root)
    env = {str(k): str(v) for k, v in (case.setup.get("env") or {}).items()}
    explicit = case.input.get("explicit_credential")
    key = None if explicit is None else str(explicit)
    provider = str(case.input.get("provider") or manifest.id)
    target = case.input.get("runtime_target")
    if target not in (None, "wasm32-wasip1"):
        raise RunnerGap(f"runtime target {target!r}")
    # a wasm runner takes its credentials from the host: the library's host-supplied mode
    host = target == "wasm32-wasip1"
    report = resolve_credential(
        manifest, provider=provider, api_key=key, environ=env, host_supplied=host
    )
    try:
        outcome: Any = auth_material(manifest, provider, key, environ=env, host_supplied=host)
    except ConfigurationError as exc:
        outcome = exc
    return manifest, report, outcome


def _shown(report: CredentialResolution) -> list[str]:
    """Everything the report lets a user see: its repr and str, its diagnostics, and the
    redacted attachment (headers and query parameters)."""
    headers, params = report.redacted()
    return [repr(report), str(report), *report.diagnostics, repr(headers), repr(params)]


def _take_list(c: Checker, key: str) -> list[Any]:
    return list(c.take(key)) if c.has(key) else []


def op_credential_resolution(case: Case, root: Path, c: Checker) -> None:
    """``credential_resolution`` and ``auth_attachment``: the report of
    ``resolve_credential`` against the case, and ``auth_material`` (what the client
    attaches) against the report."""
    manifest, report, outcome = _credential(case, root)
    c.check("source_name", report.source_name)
    c.check("implicit_env_allowed", report.implicit_env_allowed)
    c.check("implicit_keyring_allowed", report.implicit_keyring_allowed)
    c.check("status", report.status)
    c.check("source_kind", report.source_kind)
    c.check("required", list(report.required))
    c.check("conventional_fallbacks", list(report.conventional_fallbacks))
    shown = _shown(report)
    secret = report.secret
    c.check("value_redacted", secret is None or not any(secret in text for text in shown))
    for text in _take_list(c, "must_not_contain"):
        for place in shown:
            if str(text) in place:
                c.fail(f"the credential report shows {text!r}: {place!r}")
    diagnostics = "\n".join(report.diagnostics)
    for key in ("diagnostic_contains", "diagnostic_should_mention"):
        for text in _take_list(c, key):
            if str(text) not in diagnostics:
                c.fail(f"{key}: diagnostics {report.diagnostics!r} do not mention {text!r}")
    for text in _take_list(c, "diagnostic_must_not_contain"):
        if str(text) in diagnostics:
            c.fail(f"diagnostics {report.diagnostics!r} contain {text!r}")
    env = {str(k): str(v) for k, v in (case.setup.get("env") or {}).items()}
    for var in map(str, _take_list(c, "shadowed_envs_must_not_resolve")):
        if var in (*report.required, *report.conventional_fallbacks) or var == report.source_name:
            c.fail(f"shadowed variable {var!r} takes part in the credential chain")
        alone = resolve_credential(
            manifest, provider=report.provider, environ={var: env.get(var) or "set"}
        )
        if alone.status != "missing" or var not in alone.shadowed_envs:
            c.fail(f"shadowed variable {var!r} alone resolves: {alone!r}")
    # the whole attachment, the secret written "<redacted>" as the cases write it
    headers, params = report.redacted()
    for key, attached in (("headers", headers), ("query_params", params)):
        if c.has(key) and dict(c.take(key)) != attached:
            c.fail(f"{key}: expected {dict(c.expected[key])!r}, got {attached!r}")
    # The client attaches exactly what the report describes (or refuses, with its words).
    if isinstance(outcome, ConfigurationError):
        if report.status != "missing" or report.optional:
            c.fail(f"auth_material refused a credential the report has: {outcome}")
        elif diagnostics not in str(outcome):
            c.fail(f"auth_material says {str(outcome)!r}, the report {diagnostics!r}")
    elif outcome != report.attachment():
        c.fail("auth_material attaches something else than the report's attachment()")


def op_content_block_encode(case: Case, root: Path, c: Checker) -> None:
    family = API_FAMILIES.get(str(case.input["api_style"]), str(case.input["api_style"]))
    blocks: list[ContentBlock] = []
    for raw in case.input["blocks"]:
        kind, source = raw.get("block_type"), raw.get("source_type")
        if kind == "text":
            blocks.append(ContentBlock.from_text(str(raw["text"])))
        elif kind == "document" and source == "base64":
            blocks.append(ContentBlock.document_base64(str(raw["data"]), str(raw["mime_type"])))
        elif kind == "document" and source in ("url", "ref"):
            # a reference ("upload://...") is a URL the API cannot fetch: the encoder rejects it
            blocks.append(ContentBlock.document_url(str(raw["data"]), str(raw["mime_type"])))
        else:
            c.needs(f"content block {kind!r} with a {source!r} source")
    if c.unsupported:
        c.give_up()
        return
    # the case is about the blocks; a whole request needs a limit some APIs require
    request = chat_request([Message.user(blocks)], {"max_tokens": 1024}, c)
    body: dict[str, Any] | None = None
    error: AiLibError | None = None
    try:
        body = encode(family, EncoderOptions(), request, c)
    except AiLibError as exc:  # an expected refusal is compared below
        error = exc
    if c.unsupported:
        c.give_up()
        return
    if case.input.get("expect_error"):
        c.check("valid", error is None)
        if error is None:
            c.fail("expected the encoder to refuse the request")
        return
    if error is not None:
        raise error
    assert body is not None
    parts = body["contents"][0]["parts"] if "contents" in body else body["messages"][-1]["content"]
    c.check("encoded", parts)


def op_text_tool_parse(case: Case, root: Path, c: Checker) -> None:
    config = dict(case.input.get("config") or {})
    lenient = bool(config.pop("lenient_parsing", False))
    for key in config:
        c.needs(f"text tool-call parsing option {key!r}")
    found = parse_text_tool_calls(str(case.input["response_text"]), lenient=lenient)
    c.check("remaining_text", found.remaining_text)
    if c.has("tool_calls"):
        expected = c.take("tool_calls")
        view = [
            {
                "id": call.id,
                "name": call.name,
                "arguments": dict(call.arguments),
                "raw_arguments": call.raw_arguments,
                "parse_error": call.parse_error,
            }
            for call in found.tool_calls
        ]
        c.mismatches.extend(compare(expected, view, "tool_calls"))
        # compare() checks a mapping's expected keys only; the arguments must match exactly
        for i, (want, got) in enumerate(zip(expected, view, strict=False)):
            args = got["arguments"]
            if isinstance(want, Mapping) and want.get("arguments", args) != args:
                c.fail(f"tool_calls[{i}].arguments: expected {want['arguments']!r}, got {args!r}")


def op_text_tool_prompt(case: Case, root: Path, c: Checker) -> None:
    config = dict(case.input.get("config") or {})
    if config.pop("prompt_level", "L2") != "L2":
        c.needs(f"text tool-call prompt level {case.input['config']['prompt_level']!r}")
    if config.pop("locale", "en") != "en":
        c.needs(f"text tool-call prompt locale {case.input['config']['locale']!r}")
    for key in config:
        c.needs(f"text tool-call prompt option {key!r}")
    tools = []
    for raw in case.input.get("tools") or ():
        for key in set(raw) - {"name", "description", "parameters"}:
            c.needs(f"tool definition field {key!r}")
        tools.append(
            ToolDefinition.from_function(
                str(raw["name"]), raw.get("description"), raw.get("parameters")
            )
        )
    prompt = text_tool_prompt(tools)
    for text in c.take("prompt_contains") if c.has("prompt_contains") else ():
        if str(text) not in prompt:
            c.fail(f"prompt_contains: the prompt does not contain {text!r}:\n{prompt}")


#: injected random values covering the jitter range: each decision must fall in the bounds
JITTER_SAMPLES = (0.0, 0.25, 0.5, 0.75, 0.999)


#: a case's ``retry_policy`` keys -> (``RetryConfig`` field, divisor to seconds)
_RETRY_POLICY_FIELDS: Mapping[str, tuple[str, float | None]] = {
    "max_retries": ("max_retries", None),
    "min_delay_ms": ("min_delay", 1000.0),
    "max_delay_ms": ("max_delay", 1000.0),
    "jitter": ("jitter", None),
    "strategy": ("strategy", None),
    "retry_on_http_status": ("retry_on_status", None),
    "retry_on_error_code": ("retry_on_kinds", None),
}


def retry_config(case: Case, root: Path) -> RetryConfig:
    """The case's ``retry_policy`` over its manifest's (the manifest is the default)."""
    manifest = case_manifest(case, root) if case.setup.get("manifest_path") else None
    spec = manifest.retry_policy if manifest is not None else None
    config = RetryConfig.from_manifest(spec) if spec is not None else RetryConfig()
    policy = case.input.get("retry_policy") or {}
    unknown = sorted(set(policy) - set(_RETRY_POLICY_FIELDS))
    if unknown:
        raise RunnerGap(f"retry_policy keys the runner does not translate: {unknown}")
    changes: dict[str, Any] = {}
    for key, value in policy.items():
        field, scale = _RETRY_POLICY_FIELDS[key]
        changes[field] = value / scale if scale is not None else value
    if "retry_on_kinds" in changes:  # the spec names kinds here; accept codes too
        changes["retry_on_kinds"] = [_KIND_BY_CODE.get(k, k) for k in changes["retry_on_kinds"]]
    return attrs.evolve(config, **changes)


def op_retry_decision(case: Case, root: Path, c: Checker) -> None:
    """Decide once per injected random value; every decision must meet the expectation."""
    policy = RetryPolicy(retry_config(case, root))
    error = case.input.get("error") or {}
    kind = error.get("error_name") or _KIND_BY_CODE.get(str(error.get("error_code")), "unknown")
    retry_after_ms = error.get("retry_after_ms")
    should_retry = c.take("should_retry") if c.has("should_retry") else _MISSING
    delay_ms = c.take("delay_ms") if c.has("delay_ms") else _MISSING
    for sample in JITTER_SAMPLES:
        decision = policy.decide(
            kind=str(kind),
            retryable=bool(error.get("retryable")),
            status=error.get("http_status"),
            attempt=int(case.input["attempt"]),
            retry_after=None if retry_after_ms is None else retry_after_ms / 1000.0,
            random=lambda sample=sample: sample,
        )
        if should_retry is not _MISSING:
            c.mismatches.extend(
                compare(should_retry, decision.should_retry, f"should_retry (random={sample})")
            )
        if delay_ms is not _MISSING:
            c.mismatches.extend(
                compare(delay_ms, decision.delay * 1000.0, f"delay_ms (random={sample})")
            )


_KIND_BY_CODE = {code: kind for kind, (code, _) in STANDARD_ERRORS.items()}


def op_fallback_decision(case: Case, root: Path, c: Checker) -> None:
    c.check("should_fallback", should_fallback(str(case.input["error_code"])))


def _unsupported(feature: str) -> Callable[[Case, Path, Checker], None]:
    def op(case: Case, root: Path, c: Checker) -> None:
        c.needs(feature)
        c.give_up()

    return op


OPERATIONS: Mapping[str, Callable[[Case, Path, Checker], None]] = {
    "protocol_loading": op_protocol_loading,
    "error_classification": op_error_classification,
    "message_building": op_message_building,
    "request_building": op_message_building,
    "parameter_mapping": op_parameter_mapping,
    "stream_decode": op_stream_decode,
    "event_mapping": op_event_mapping,
    "tool_accumulation": op_tool_accumulation,
    "response_parsing": op_response_parsing,
    "capability_check": op_capability_check,
    "capability_guard": op_capability_guard,
    "advanced_endpoint_mapping": op_advanced_endpoint_mapping,
    "credential_resolution": op_credential_resolution,
    "auth_attachment": op_credential_resolution,
    "content_block_encode": op_content_block_encode,
    "retry_decision": op_retry_decision,
    "fallback_decision": op_fallback_decision,
    "text_tool_parse": op_text_tool_parse,
    "text_tool_prompt": op_text_tool_prompt,
    "provider_mock_behavior": _unsupported("nothing to execute: the case asserts its own input"),
}


def run_case(case: Case, root: Path) -> None:
    """Execute one case; raise ``Mismatch``, ``Unsupported`` or ``RunnerGap``, or return."""
    kind = case.input.get("type")
    op = OPERATIONS.get(str(kind))
    if op is None:
        raise RunnerGap(f"unknown operation {kind!r}")
    checker = Checker(case.expected)
    op(case, root, checker)
    checker.done()


# ---------------------------------------------------------------- outcomes and the script


def outcome(case: Case, root: Path, listing: Listing | None) -> tuple[str, str]:
    """(status, detail); status is passed, spec_defect, not_implemented or failed."""
    if listing is not None and listing.section == "spec_defects" and listing.run == "skip":
        return "spec_defect", listing.reason
    try:
        run_case(case, root)
    except Unsupported as exc:
        if listing is None:
            return "failed", f"unlisted; needs: {exc}"
        if listing.section == "spec_defects":
            return "spec_defect", listing.reason
        return "not_implemented", listing.reason
    except Mismatch as exc:
        if listing is not None and listing.section == "spec_defects":
            return "spec_defect", listing.reason
        return "failed", str(exc)
    except RunnerGap as exc:
        return "failed", f"runner: {exc}"
    except Exception as exc:  # the script reports every case, whatever happens
        return "failed", f"{type(exc).__name__}: {exc}"
    if listing is not None:
        return "failed", f"listed in {listing.section} but passes: unlist it"
    return "passed", ""


def main() -> int:
    root = spec_root()
    if root is None:
        print("../shared/ai-protocol not found (set AILIB_SHARED_DIR)", file=sys.stderr)
        return 2
    cases = load_cases(root)
    listings = load_listings()
    per: dict[str, Counter[str]] = {}
    failures = []
    for case in cases:
        status, detail = outcome(case, root, listings.get(case.key))
        per.setdefault(case.category, Counter())[status] += 1
        if status == "failed":
            failures.append(f"{case.test_id}: {detail}")
    total: Counter[str] = Counter()
    width = max(len(c) for c in per)
    print(f"{'category':<{width}}  passed  defects  not-impl  failed")
    for category, counts in sorted(per.items()):
        total.update(counts)
        print(
            f"{category:<{width}}  {counts['passed']:>6}  {counts['spec_defect']:>7}"
            f"  {counts['not_implemented']:>8}  {counts['failed']:>6}"
        )
    print(
        f"AI-Protocol compliance: {total['passed']} passed, {total['spec_defect']} spec defects,"
        f" {total['not_implemented']} not implemented (of {len(cases)} cases)"
    )
    for line in failures:
        print("FAILED", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Case",
    "case_part",
    "Listing",
    "Mismatch",
    "RunnerGap",
    "Unsupported",
    "duplicate_ids",
    "listed_duplicates",
    "load_cases",
    "load_listings",
    "outcome",
    "run_case",
    "shared_dir",
    "spec_root",
]
