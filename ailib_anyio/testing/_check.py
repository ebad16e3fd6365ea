"""``python -m ailib_anyio protocols check``: load a manifest, then fuzz its rules.

The properties here are the ones the test suite fuzzes, written as functions that return
``None`` when a case is fine and a description of the problem otherwise:

- round trip: unified events -> the bytes a server of the manifest's API family sends
  (``wire_stream``/``wire_response``) -> the manifest's rules -> the same events;
- totality: any bytes, JSON or error body give events or a typed ``AiLibError``, never
  another exception.

``check_manifest`` runs each with hypothesis (needed at run time for the fuzzing; without
it only loading is checked) and reports a minimal failing example per failed check.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .._core._classify import classify_error
from .._core._errors import MalformedResponseError, ProtocolError
from .._core._types import ChatResponse, Finished, StreamingEvent, Usage
from .._protocol._loader import load_manifest
from .._protocol._models import ProviderManifest
from ._dialects import FAMILY_DIALECTS, accumulate, dumps
from ._wire import decode_response, decode_stream, wire_response

__all__ = [
    "accumulated",
    "check_manifest",
    "comparable",
    "error_totality",
    "response_round_trip",
    "response_totality",
    "stream_round_trip",
    "stream_totality",
]


def _differs(expected: Sequence[StreamingEvent], got: Sequence[StreamingEvent]) -> str:
    for i, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            return f"event {i}: expected {want!r}, decoded {have!r}"
    if len(expected) > len(got):
        return f"event {len(got)}: expected {expected[len(got)]!r}, decoded nothing"
    return f"event {len(expected)}: expected nothing, decoded {got[len(expected)]!r}"


def _crash(exc: Exception) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1]
    name = os.path.basename(where.filename)
    return f"{type(exc).__name__} at {name}:{where.lineno}: {exc}"


def stream_round_trip(
    manifest: ProviderManifest, events: Sequence[StreamingEvent], chunks: Sequence[bytes]
) -> str | None:
    """``None`` if the manifest decodes ``chunks`` (the stream of ``events``) to ``events``."""
    try:
        decoded = decode_stream(manifest, chunks)
    except Exception as exc:  # noqa: BLE001 - the finding being reported
        return _crash(exc)
    if decoded.error is not None:
        return f"decoding failed: {type(decoded.error).__name__}: {decoded.error}"
    if decoded.events != tuple(events):
        return _differs(events, decoded.events)
    if decoded.truncated and any(isinstance(event, Finished) for event in events):
        return "a complete stream was taken for a truncated one"
    return None


def comparable(response: ChatResponse) -> ChatResponse:
    """``response`` with tool-call arguments compared parsed, not as text (a whole body
    carries them as an object, re-encoded when decoded)."""
    calls = tuple(attrs.evolve(call, raw_arguments="") for call in response.tool_calls)
    return attrs.evolve(response, tool_calls=calls)


def accumulated(events: Sequence[StreamingEvent]) -> ChatResponse:
    """The response ``events`` add up to, ``comparable``."""
    return comparable(accumulate(events))


def response_round_trip(manifest: ProviderManifest, events: Sequence[StreamingEvent]) -> str | None:
    """``None`` if the manifest decodes the non-streaming body of ``events`` to the same
    response (compared whole: a body's events come in rule order, not in stream order)."""
    try:
        decoded = decode_response(manifest, wire_response(manifest.api_family, events))
    except Exception as exc:  # noqa: BLE001 - the finding being reported
        return _crash(exc)
    if decoded.error is not None:
        if isinstance(decoded.error, MalformedResponseError) and all(
            type(event) is Usage for event in events
        ):
            return None  # a body with nothing but usage is refused, as it should be
        return f"decoding failed: {type(decoded.error).__name__}: {decoded.error}"
    want, got = accumulated(events), accumulated(decoded.events)
    if want != got:
        fields = [a.name for a in attrs.fields(ChatResponse) if a.eq]
        diff = [f for f in fields if getattr(want, f) != getattr(got, f)]
        return "; ".join(
            f"{f}: expected {getattr(want, f)!r}, decoded {getattr(got, f)!r}" for f in diff
        )
    return None


def stream_totality(manifest: ProviderManifest, chunks: Sequence[bytes]) -> str | None:
    """``None`` if decoding ``chunks`` gives events or a typed error, nothing else."""
    try:
        decode_stream(manifest, chunks)
    except Exception as exc:  # noqa: BLE001 - the finding being reported
        return _crash(exc)
    return None


def response_totality(manifest: ProviderManifest, body: bytes) -> str | None:
    """``None`` if decoding the non-streaming ``body`` gives events or a typed error."""
    try:
        decode_response(manifest, body)
    except Exception as exc:  # noqa: BLE001 - the finding being reported
        return _crash(exc)
    return None


def error_totality(
    manifest: ProviderManifest, status: int, headers: dict[str, str], body: Any
) -> str | None:
    """``None`` if the manifest's error rules classify any error response."""
    try:
        classify_error(manifest.error_classification, status, headers, body)
        classify_error(manifest.error_classification, 200, headers, body, mid_stream=True)
    except Exception as exc:  # noqa: BLE001 - the finding being reported
        return _crash(exc)
    return None


# ---------------------------------------------------------------------- the command


@attrs.frozen
class _Check:
    name: str
    strategy: Any
    problem: Callable[[Any], str | None]
    show: Callable[[Any], str]


def _short(data: bytes, limit: int = 600) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + f"... ({len(data)} bytes)"


def _checks(manifest: ProviderManifest) -> tuple[list[_Check], list[str]]:
    from hypothesis import strategies as st

    from . import strategies as ast

    checks: list[_Check] = []
    notes: list[str] = []
    family = manifest.api_family
    encodable = family in FAMILY_DIALECTS
    if not encodable:
        notes.append(f"no wire encoder for API family {family!r}: round trips skipped")
    anything = st.binary(max_size=200) | st.lists(
        ast.provider_frames() | ast.json_values(), max_size=6
    ).map(lambda frames: "".join(f"data: {dumps(f)}\n\n" for f in frames).encode())

    if manifest.streaming is not None and manifest.streaming.event_map:
        features = ast.stream_features(manifest)
        bodies = anything
        if encodable:
            streams = ast.dialect_streams(family, features)
            checks.append(
                _Check(
                    f"stream round trip ({', '.join(features.names())})",
                    streams.flatmap(
                        lambda s: ast.chunkings(s[1]).map(lambda chunks: (s[0], chunks))
                    ),
                    lambda case: stream_round_trip(manifest, *case),
                    lambda case: (
                        f"events: {case[0]!r}\n"
                        f"wire: {_short(b''.join(case[1]))}\n"
                        f"decoded: {decode_stream(manifest, case[1]).events!r}"
                    ),
                )
            )
            bodies = anything | streams.flatmap(lambda s: ast.corruptions(s[1]))
        checks.append(
            _Check(
                "stream totality (any bytes, JSON frames, corrupted streams)",
                bodies.flatmap(ast.chunkings),
                lambda chunks: stream_totality(manifest, chunks),
                lambda chunks: f"wire: {_short(b''.join(chunks))}",
            )
        )
    else:
        notes.append("no streaming rules: stream checks skipped")

    if manifest.response is not None and manifest.response.event_map:
        features = ast.response_features(manifest)
        if encodable:
            checks.append(
                _Check(
                    f"response round trip ({', '.join(features.names())})",
                    ast.stream_events(family, features),
                    lambda events: response_round_trip(manifest, events),
                    lambda events: (
                        f"events: {events!r}\nbody: {_short(wire_response(family, events))}"
                    ),
                )
            )
        checks.append(
            _Check(
                "response totality (any JSON, any bytes)",
                (ast.provider_frames() | ast.json_values()).map(lambda v: dumps(v).encode())
                | st.binary(max_size=200),
                lambda body: response_totality(manifest, body),
                lambda body: f"body: {_short(body)}",
            )
        )
    else:
        notes.append("no response rules: response checks skipped")

    headers = st.dictionaries(
        st.sampled_from(["retry-after", "retry-after-ms", "x-should-retry"]),
        st.sampled_from(["1", "2.5", "-1", "1e999", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"])
        | st.text(max_size=12),
    )
    checks.append(
        _Check(
            "error totality (any error body, status and retry headers)",
            st.tuples(st.integers(100, 599), headers, ast.error_bodies()),
            lambda case: error_totality(manifest, *case),
            lambda case: f"status: {case[0]}\nheaders: {case[1]!r}\nbody: {case[2]!r}",
        )
    )
    return checks, notes


def _run(check: _Check, examples: int, seed: int | None) -> tuple[Any, str] | None:
    """The minimal failing example of ``check`` and its problem, or None."""
    import random

    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    config = settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    try:
        example = find(
            check.strategy,
            lambda case: check.problem(case) is not None,
            settings=config,
            random=random.Random(seed) if seed is not None else None,
        )
    except NoSuchExample:
        return None
    return example, check.problem(example) or "?"


def check_manifest(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    examples: int = 200,
    seed: int | None = None,
    write: Callable[[str], None] = print,
) -> bool:
    """Load the manifest at ``path`` and fuzz its rules; report to ``write``; True if clean."""
    try:
        manifest = load_manifest(path, strict=strict)
    except ProtocolError as exc:
        write(f"{path}: FAILED to load ({len(exc.issues)} problem(s)):")
        for issue in exc.issues:
            write(f"  {issue}")
        return False
    write(f"{path}: loaded{' (strict)' if strict else ''}: {manifest.id}, {manifest.api_family}")
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        write("  hypothesis is not installed: loading checked, rules not fuzzed")
        write("  (pip install hypothesis, or 'ailib-anyio[test]', to fuzz them)")
        return True
    checks, notes = _checks(manifest)
    for note in notes:
        write(f"  note: {note}")
    clean = True
    for check in checks:
        found = _run(check, examples, seed)
        if found is None:
            write(f"  ok    {check.name}: {examples} examples")
            continue
        clean = False
        example, problem = found
        write(f"  FAIL  {check.name}")
        write(f"        problem: {problem}")
        write("        minimal example:")
        for line in check.show(example).splitlines():
            write(f"          {line}")
    return clean
