"""Compiled manifest rules: what an event-map entry becomes once a manifest is loaded.

The protocol layer turns YAML into these objects (validating names and compiling every
path and expression); the mapper in ``_mapping`` executes them. They live in the core so
that the core never depends on the loader.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._jsonpath import Predicate, Selector, compile_match, compile_path

__all__ = [
    "EMIT_ALIASES",
    "FIELD_ALIASES",
    "USAGE_OBJECT_FIELDS",
    "EmitKind",
    "EventRule",
    "FieldSpec",
    "Match",
    "tool_call_object_fields",
    "tool_calls_array_fields",
    "usage_object_fields",
]


class EmitKind(enum.Enum):
    """What a rule produces. Manifest ``emit`` names (ours and the spec's) map onto these."""

    CONTENT = "content"
    REASONING = "reasoning"
    REFUSAL = "refusal"
    TOOL_CALL = "tool_call"
    TOOL_CALL_END = "tool_call_end"
    USAGE = "usage"
    FINISH = "finish"
    ERROR = "error"
    METADATA = "metadata"
    IGNORE = "ignore"


#: ``emit:`` spellings accepted in manifests (AI-Protocol v1/v2 names and ours).
EMIT_ALIASES: Mapping[str, EmitKind] = {
    "ContentDelta": EmitKind.CONTENT,
    "PartialContentDelta": EmitKind.CONTENT,
    "TextDelta": EmitKind.CONTENT,
    "ReasoningDelta": EmitKind.REASONING,
    "ThinkingDelta": EmitKind.REASONING,
    "PartialThinkingDelta": EmitKind.REASONING,
    "RefusalDelta": EmitKind.REFUSAL,
    "ToolCall": EmitKind.TOOL_CALL,
    "PartialToolCall": EmitKind.TOOL_CALL,
    "ToolCallStarted": EmitKind.TOOL_CALL,
    "ToolCallDelta": EmitKind.TOOL_CALL,
    "ToolCallEnded": EmitKind.TOOL_CALL_END,
    "Usage": EmitKind.USAGE,
    "UsageReport": EmitKind.USAGE,
    "Metadata": EmitKind.USAGE,
    "Finished": EmitKind.FINISH,
    "StreamEnd": EmitKind.FINISH,
    "FinalCandidate": EmitKind.FINISH,
    "StreamError": EmitKind.ERROR,
    "Error": EmitKind.ERROR,
    "ResponseMetadata": EmitKind.METADATA,
    "Ignore": EmitKind.IGNORE,
    "KeepAlive": EmitKind.IGNORE,
}

#: per kind: accepted field names -> the canonical name the mapper reads.
FIELD_ALIASES: Mapping[EmitKind, Mapping[str, str]] = {
    EmitKind.CONTENT: {"text": "text", "content": "text", "delta": "text"},
    EmitKind.REASONING: {
        "text": "text",
        "content": "text",
        "thinking": "text",
        "reasoning": "text",
        "reasoning_content": "text",
        "signature": "signature",
    },
    EmitKind.REFUSAL: {"text": "text", "refusal": "text", "content": "text"},
    EmitKind.TOOL_CALL: {
        "index": "index",
        "id": "id",
        "tool_call_id": "id",
        "name": "name",
        "tool_name": "name",
        "arguments": "arguments",
        "args": "arguments",
        "partial_json": "arguments",
        "input": "arguments",
        "signature": "signature",
        "thought_signature": "signature",
        # composite spellings, expanded when the manifest loads (see below)
        "tool_calls": "tool_calls",
        "tool_call": "tool_call",
    },
    EmitKind.TOOL_CALL_END: {"index": "index"},
    EmitKind.USAGE: {
        "usage": "usage",
        "input_tokens": "input_tokens",
        "prompt_tokens": "input_tokens",
        "output_tokens": "output_tokens",
        "completion_tokens": "output_tokens",
        "cached_input_tokens": "cached_input_tokens",
        "cached_tokens": "cached_input_tokens",
        "reasoning_tokens": "reasoning_tokens",
        # a usage rule may also carry the finish reason (v1 ``Metadata``)
        "finish_reason": "finish_reason",
        "stop_reason": "finish_reason",
    },
    EmitKind.FINISH: {
        "finish_reason": "finish_reason",
        "stop_reason": "finish_reason",
        # a finish rule may also carry the usage object (v2 ``StreamEnd``)
        "usage": "usage",
    },
    EmitKind.ERROR: {},
    EmitKind.METADATA: {"model": "model", "id": "id", "response_id": "id"},
    EmitKind.IGNORE: {},
}


#: well-known token-count names inside a provider's usage object, per unified field. The
#: names found are summed, so Gemini's output is ``candidatesTokenCount +
#: thoughtsTokenCount`` (its candidate count excludes the thoughts, unlike the others').
USAGE_OBJECT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "input_tokens": ("prompt_tokens", "input_tokens", "promptTokenCount"),
    "output_tokens": (
        "completion_tokens",
        "output_tokens",
        "candidatesTokenCount",
        "thoughtsTokenCount",
    ),
    "cached_input_tokens": (
        "prompt_tokens_details.cached_tokens",
        "input_tokens_details.cached_tokens",
        "cache_read_input_tokens",
        "cachedContentTokenCount",
    ),
    "reasoning_tokens": (
        "completion_tokens_details.reasoning_tokens",
        "output_tokens_details.reasoning_tokens",
        "thoughtsTokenCount",
    ),
}


def _paths(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    paths = [spec] if isinstance(spec, str) else list(spec)
    if not paths or not all(isinstance(p, str) for p in paths):
        raise ValueError("expected a path or a list of paths")
    return [p.rstrip() for p in paths]


def usage_object_fields(spec: str | list[str] | tuple[str, ...]) -> dict[str, FieldSpec]:
    """The unified usage fields read from a usage *object* (``usage: $.usage``)."""
    paths = _paths(spec)
    for path in paths:
        compile_path(path)  # a syntax error is reported in the manifest's own spelling
    return {
        name: FieldSpec.compile([f"{p}.{key}" for p in paths for key in keys])
        for name, keys in USAGE_OBJECT_FIELDS.items()
    }


def tool_calls_array_fields(spec: str) -> tuple[Selector, dict[str, FieldSpec]]:
    """``each`` and the fields for an OpenAI-shaped array of tool calls (``tool_calls:``)."""
    (path,) = _paths(spec)
    each = compile_path(path if path.endswith("[*]") else f"{path}[*]")
    return each, {
        "index": FieldSpec.compile("$.index"),
        "id": FieldSpec.compile("$.id"),
        "name": FieldSpec.compile("$.function.name"),
        "arguments": FieldSpec.compile("$.function.arguments"),
    }


def tool_call_object_fields(spec: str) -> tuple[Selector, dict[str, FieldSpec]]:
    """``each`` and the fields for a Gemini-shaped ``functionCall`` object (``tool_call:``)."""
    (path,) = _paths(spec)
    return compile_path(path), {
        "id": FieldSpec.compile("$.id"),
        "name": FieldSpec.compile("$.name"),
        "arguments": FieldSpec.compile("$.args"),
    }


@attrs.frozen
class Match:
    """A compiled ``match`` expression, keeping its source text for messages and equality."""

    source: str
    predicate: Predicate = attrs.field(eq=False, repr=False)

    @classmethod
    def compile(cls, source: str) -> Match:
        return cls(source, compile_match(source))


@attrs.frozen
class FieldSpec:
    """One extracted field: a path, or several tried in order (numbers: summed).

    ``first(obj)`` is the first non-null value any path selects; ``texts(obj)`` the
    strings the first path that yields text selects, joined (a server may spell a field
    two ways; the first spelling present wins, so nothing is read twice). Both are built
    once, so a field with one plain path costs one generated-code call per chunk.
    """

    selectors: tuple[Selector, ...]
    first: Callable[[Any], Any] = attrs.field(init=False, eq=False, repr=False)
    texts: Callable[[Any], str | None] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "first", _first_of(self.selectors))
        object.__setattr__(self, "texts", _texts_of(self.selectors))

    @classmethod
    def compile(cls, spec: str | list[str] | tuple[str, ...]) -> FieldSpec:
        paths = [spec] if isinstance(spec, str) else list(spec)
        if not paths:
            raise ValueError("a field needs at least one path")
        return cls(tuple(compile_path(p) for p in paths))

    def total(self, obj: Any) -> int | None:
        """The sum of the integers the paths select (None when none is present)."""
        found = False
        total = 0
        for sel in self.selectors:
            for value in sel.all(obj):
                if type(value) is int or (type(value) is float and value.is_integer()):
                    total += int(value)
                    found = True
        return total if found else None


def _first_of(selectors: tuple[Selector, ...]) -> Callable[[Any], Any]:
    if len(selectors) == 1:
        return selectors[0].get
    getters = tuple(sel.get for sel in selectors)

    def first(obj: Any) -> Any:
        for get in getters:
            value = get(obj)
            if value is not None:
                return value
        return None

    return first


def _texts_of(selectors: tuple[Selector, ...]) -> Callable[[Any], str | None]:
    def one(sel: Selector) -> Callable[[Any], str | None]:
        if sel.multi:
            select_all = sel.all

            def joined(obj: Any) -> str | None:
                parts = [v for v in select_all(obj) if type(v) is str]
                return "".join(parts) if parts else None

            return joined
        get = sel.get

        def plain(obj: Any) -> str | None:
            value = get(obj)
            return value if type(value) is str else None

        return plain

    if len(selectors) > 1 and not any(sel.multi for sel in selectors):
        getters = tuple(sel.get for sel in selectors)

        def first_text(obj: Any) -> str | None:
            for get in getters:
                value = get(obj)
                if type(value) is str:
                    return value
            return None

        return first_text
    readers = tuple(one(sel) for sel in selectors)
    if len(readers) == 1:
        return readers[0]

    def texts(obj: Any) -> str | None:
        for read in readers:
            value = read(obj)
            if value is not None:
                return value
        return None

    return texts


@attrs.frozen
class EventRule:
    """One ``event_map`` entry: when ``event``/``match`` hold, emit ``emit`` from ``fields``.

    ``each`` (optional) selects a list; the fields are then read from every element (used
    for arrays of tool calls). Without ``match`` a rule applies whenever its first field
    selects something, which is both the common case and the fast one.
    """

    emit: EmitKind
    fields: Mapping[str, FieldSpec] = attrs.field(factory=dict)
    match: Match | None = None
    event: str | None = None
    each: Selector | None = None
