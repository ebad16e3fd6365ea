"""Turn provider frames into unified events, and unified events into a ``ChatResponse``.

``EventMapper`` runs a manifest's compiled event-map rules over each decoded JSON frame
(or over a whole non-streaming body with the response rules) and keeps the little state
streaming needs: tool calls keyed by index, merged usage, the finish reason. Usage and
``Finished`` are emitted once, at the end, so a consumer sees final values exactly once.

``ResponseAccumulator`` folds events into a ``ChatResponse``; a stream keeps one so that
``stream.response`` holds everything received so far, even after an early exit.

The two decoders everything uses (the client, ``ailib_anyio.testing``, the conformance and
compliance suites) are built from here: ``StreamPipeline`` (bytes of a streamed body in,
events out; its ``close()`` decides whether the body was cut short) and
``ResponseDecoder`` (a whole JSON body in, a ``ChatResponse`` or a typed error out). The
protocol layer builds both from a manifest (``_protocol/_decoding.py``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableSequence, Sequence
from typing import Any, cast

import attrs

from ._classify import DEFAULT_ERROR_RULES, ErrorRules, classify_error, error_from_info
from ._cost import ModelPricing
from ._errors import (
    AiLibError,
    ConfigurationError,
    MalformedResponseError,
    RemoteError,
    TransportError,
)
from ._frames import Frame
from ._jsonpath import Predicate, Step, gen_single
from ._ndjson import NDJSONDecoder
from ._rules import EmitKind, EventRule, FieldSpec, Match
from ._secrets import mask_json, mask_text
from ._sse import SSEDecoder
from ._types import (
    ChatResponse,
    ContentDelta,
    Finished,
    FinishReason,
    NormalizedFinish,
    RateLimitSnapshot,
    ReasoningDelta,
    RefusalDelta,
    StreamingEvent,
    ToolCall,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallStarted,
    Usage,
)

__all__ = [
    "DECODER_FORMATS",
    "DecodeFailure",
    "CompiledRules",
    "EventMapper",
    "ResponseAccumulator",
    "ResponseDecoder",
    "StreamFailure",
    "StreamPipeline",
    "normalize_finish",
]

#: AI-Protocol standard termination reasons -> the five normalized values.
_STANDARD_FINISH: Mapping[str, NormalizedFinish] = {
    "end_turn": "stop",
    "stop": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "length": "length",
    "tool_use": "tool_calls",
    "tool_calls": "tool_calls",
    "refusal": "content_filter",
    "content_filter": "content_filter",
    "other": "other",
}


def normalize_finish(
    raw: str, termination: Mapping[str, str], has_tool_calls: bool
) -> FinishReason:
    """Normalize a raw finish reason through the manifest's ``termination.mapping``."""
    standard = termination.get(raw, raw)
    normalized = _STANDARD_FINISH.get(standard, "other")
    if normalized == "stop" and has_tool_calls:
        normalized = "tool_calls"
    return FinishReason(normalized, raw)


@attrs.frozen
class StreamFailure:
    """An error event inside a stream; ``body`` is the frame, to be classified."""

    body: Any


@attrs.frozen
class DecodeFailure:
    """Bytes that are not the protocol; queued after the good events of the same chunk,
    so everything decoded before the bad frame is still delivered.

    ``truncated``: the body ended before the provider finished the response (the failure
    ``StreamPipeline.close()`` queues last; ``error`` is then a ``TransportError``)."""

    error: AiLibError
    truncated: bool = False

    def error_with(self, **context: Any) -> AiLibError:
        """The error to raise, built with where it happened (``provider``, ``model``,
        ``status_code``, ``request_id``, ``rate_limits``, the partial ``response``): the
        pipeline knows none of them. See ``AiLibError.with_context``."""
        return self.error.with_context(**context)


#: a manifest's ``streaming.decoder.format`` -> the framing its bytes use. The loader
#: rejects any other name (located), so a manifest never falls back to SSE silently.
DECODER_FORMATS: Mapping[str, str] = {
    "sse": "sse",
    "anthropic_sse": "sse",
    "gemini_sse": "sse",
    "ndjson": "ndjson",
    "json_lines": "ndjson",
}

#: the message of the failure a cut-off stream ends with (a ``TransportError``).
TRUNCATED_MESSAGE = "the stream ended before the provider finished the response"


#: what the mapper and the pipeline produce: events, and failures queued in order.
Out = MutableSequence["StreamingEvent | StreamFailure | DecodeFailure"]

#: a compiled rule: append its events to ``out``; True stops the frame's other rules.
_Handler = Callable[["EventMapper", Any, Out], bool]

_TEXT_EVENTS: Mapping[EmitKind, type[ContentDelta] | type[ReasoningDelta] | type[RefusalDelta]] = {
    EmitKind.CONTENT: ContentDelta,
    EmitKind.REASONING: ReasoningDelta,
    EmitKind.REFUSAL: RefusalDelta,
}


def _text_handler(
    spec: FieldSpec, cls: type[ContentDelta] | type[ReasoningDelta] | type[RefusalDelta]
) -> _Handler:
    if len(spec.selectors) == 1 and not spec.selectors[0].multi:
        get = spec.selectors[0].get  # the common case: one plain path, one call

        def plain_text(mapper: EventMapper, obj: Any, out: Out) -> bool:
            value = get(obj)
            if type(value) is str and value:
                out.append(cls(value))
            return False

        return plain_text
    texts = spec.texts

    def text(mapper: EventMapper, obj: Any, out: Out) -> bool:
        value = texts(obj)
        if value:
            out.append(cls(value))
        return False

    return text


#: what ``json.loads`` parses with (the C scanner when built: a decoder's ``scan_once``)
_scan_once: Callable[[str, int], tuple[Any, int]] = cast(Any, json.JSONDecoder()).scan_once


def _loads(data: str) -> Any:
    """``json.loads(data)`` for a frame: the scanner ``json.loads`` ends in, called
    directly (a frame is one JSON value without surrounding whitespace, so the wrapper's
    two whitespace regexes and three calls are skipped); anything else, an error
    included, goes through ``json.loads`` itself, which decides as it always does."""
    try:
        obj, end = _scan_once(data, 0)
    except StopIteration:
        return json.loads(data)
    if end != len(data):
        return json.loads(data)
    return obj


def _guarded(predicate: Predicate, handlers: Sequence[_Handler]) -> _Handler:
    """The handlers of consecutive rules with one ``match``: the predicate asked once."""
    if len(handlers) == 1:
        (handler,) = handlers

        def guarded(mapper: EventMapper, obj: Any, out: Out) -> bool:
            return predicate(obj) and handler(mapper, obj, out)

        return guarded
    every = tuple(handlers)

    def guarded_all(mapper: EventMapper, obj: Any, out: Out) -> bool:
        if not predicate(obj):
            return False
        for handler in every:  # noqa: SIM110 - no generator frame per chunk
            if handler(mapper, obj, out):
                return True
        return False

    return guarded_all


class _ToolState:
    __slots__ = ("args", "complete", "generated", "id", "name", "signature", "started")

    def __init__(self) -> None:
        self.id: str | None = None
        self.generated = False
        self.name: str | None = None
        self.signature: str | None = None
        self.args: list[str] = []
        self.started = False
        self.complete = False


def _parse_arguments(raw: str) -> tuple[dict[str, Any], str | None]:
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # nested past the parser's depth
        return {}, f"arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return {}, f"arguments are JSON {type(value).__name__}, not an object"
    return value, None


def _compile_rule(rule: EventRule) -> _Handler | None:
    kind = rule.emit
    fields = rule.fields
    if kind in _TEXT_EVENTS:
        spec = fields.get("text")
        text = None if spec is None else _text_handler(spec, _TEXT_EVENTS[kind])
        signature = fields.get("signature") if kind is EmitKind.REASONING else None
        if signature is None:
            return text
        first_signature = signature.first

        def signed(m: EventMapper, obj: Any, out: Out) -> bool:
            if text is not None:
                text(m, obj, out)
            value = first_signature(obj)
            if type(value) is str and value:
                out.append(ReasoningDelta("", signature=value))
            return False

        return signed
    if kind is EmitKind.TOOL_CALL:
        each = rule.each.all if rule.each is not None else None

        def tool_call(m: EventMapper, obj: Any, out: Out) -> bool:
            items = each(obj) if each is not None else [obj]
            if items:
                m._tool_call(rule, items, out)
            return False

        return tool_call
    if kind is EmitKind.TOOL_CALL_END:
        end_index = fields.get("index")

        def tool_call_end(m: EventMapper, obj: Any, out: Out) -> bool:
            index = end_index.first(obj) if end_index is not None else m._last_tool
            if type(index) is int:
                state = m._tools.get(index)
                if state is not None and state.started and not state.complete:
                    m._complete_tool(index, state, out)
            return False

        return tool_call_end
    if kind is EmitKind.FINISH:
        finish = fields.get("finish_reason")
        if finish is None:
            return None
        first = finish.first

        def finish_reason(m: EventMapper, obj: Any, out: Out) -> bool:
            raw = first(obj)
            if type(raw) is str and raw:
                m._finish_raw = raw
            return False

        return finish_reason
    if kind is EmitKind.USAGE:
        specs = tuple(fields.items())

        def usage(m: EventMapper, obj: Any, out: Out) -> bool:
            for name, spec in specs:
                value = spec.total(obj)
                if value is not None:
                    m._usage[name] = value
            return False

        return usage if specs else None
    if kind is EmitKind.METADATA:
        model_spec, id_spec = fields.get("model"), fields.get("id")

        def metadata(m: EventMapper, obj: Any, out: Out) -> bool:
            if m.model is not None and m.response_id is not None:
                return False
            if m.model is None and model_spec is not None:
                model = model_spec.first(obj)
                if type(model) is str:
                    m.model = model
            if m.response_id is None and id_spec is not None:
                rid = id_spec.first(obj)
                if type(rid) is str:
                    m.response_id = rid
            return False

        return metadata
    if kind is EmitKind.ERROR:

        def error(m: EventMapper, obj: Any, out: Out) -> bool:
            out.append(StreamFailure(obj))
            return True  # nothing after an error frame is trusted

        return error
    return None  # IGNORE


def _guard(rule: EventRule) -> tuple[tuple[Step, ...], tuple[str, ...]] | None:
    """(parent path, keys) when a rule can only act if its parent object has one of those
    keys: every path it reads is that parent plus one key. None when that is not so."""
    if rule.match is not None or rule.emit in (EmitKind.ERROR, EmitKind.IGNORE):
        return None
    if rule.each is not None:
        steps = rule.each.steps
        paths = [steps[:-1] if steps and steps[-1][0] == "all" else steps]
    else:
        paths = [sel.steps for spec in rule.fields.values() for sel in spec.selectors]
    parents: set[tuple[Step, ...]] = set()
    keys: list[str] = []
    for steps in paths:
        if not steps or steps[-1][0] != "key" or any(k not in ("key", "index") for k, _ in steps):
            return None
        parents.add(tuple(steps[:-1]))
        if steps[-1][1] not in keys:
            keys.append(steps[-1][1])
    if len(parents) != 1:
        return None
    return parents.pop(), tuple(keys)


#: a text rule applied to its parent object directly: (node, out) -> None
_NodeHandler = Callable[[dict[str, Any], Out], None]
#: a run of consecutive rules reading one parent object:
#: (parent getter, ((keys, handler, node handler or None), ...))
_Member = tuple[tuple[str, ...], _Handler, "_NodeHandler | None"]
_Group = tuple[Callable[[Any], Any], tuple[_Member, ...]]


def _node_text_handler(
    keys: tuple[str, ...], cls: type[ContentDelta] | type[ReasoningDelta] | type[RefusalDelta]
) -> _NodeHandler:
    """A plain text rule read straight from its parent object (the group walked to it)."""
    if len(keys) == 1:
        (key,) = keys

        def one(node: dict[str, Any], out: Out) -> None:
            value = node.get(key)
            if type(value) is str and value:
                out.append(cls(value))

        return one

    def first(node: dict[str, Any], out: Out) -> None:
        for key in keys:
            value = node.get(key)
            if type(value) is str:
                if value:
                    out.append(cls(value))
                return

    return first


def _node_handler(rule: EventRule, keys: tuple[str, ...]) -> _NodeHandler | None:
    # only text rules whose fields are just their text paths: those read nothing else
    if rule.emit in _TEXT_EVENTS and rule.each is None and set(rule.fields) == {"text"}:
        return _node_text_handler(keys, _TEXT_EVENTS[rule.emit])
    return None


class CompiledRules:
    """A rule list compiled into handlers, shared by every response a manifest decodes.

    ``for_event(name)`` is what applies to frames of that SSE event name, in manifest
    order: handlers (each rule's ``match`` folded in), and groups of consecutive rules that
    read the same parent object (``$.choices[0].delta``, say). A group walks to its parent
    once per frame and calls a rule's handler only when one of the keys it reads is there —
    the rule could not act otherwise — so a chunk pays for the rules that apply to it.
    """

    def __init__(self, rules: Sequence[EventRule]) -> None:
        self.rules = rules
        self._entries: list[
            tuple[str | None, _Handler, Any, _NodeHandler | None, Match | None]
        ] = []
        for rule in rules:
            handler = _compile_rule(rule)
            if handler is not None:
                guard = _guard(rule)
                on_node = None if guard is None else _node_handler(rule, guard[1])
                self._entries.append((rule.event, handler, guard, on_node, rule.match))
        self._by_event: dict[str | None, tuple[_Handler | _Group, ...]] = {}

    def for_event(self, event: str | None) -> tuple[_Handler | _Group, ...]:
        units = self._by_event.get(event)
        if units is None:
            units = self._by_event[event] = self._units(event)
        return units

    def _units(self, event: str | None) -> tuple[_Handler | _Group, ...]:
        units: list[_Handler | _Group] = []
        run_parent: tuple[Step, ...] | None = None
        run: list[_Member] = []

        # consecutive rules with the same match expression: (its source, its predicate,
        # their handlers), the predicate evaluated once for all of them
        matched: tuple[str, Predicate, list[_Handler]] | None = None

        def close_run() -> None:
            if len(run) == 1:  # a group of one saves nothing: call the rule itself
                units.append(run[0][1])
            elif run:
                units.append((gen_single(list(run_parent or ())), tuple(run)))

        def close_matched() -> None:
            if matched is not None:
                _, predicate, handlers = matched
                units.append(_guarded(predicate, handlers))

        for name, handler, guard, on_node, match in self._entries:
            if name is not None and name != event:
                continue
            if match is not None:
                close_run()
                run_parent, run = None, []
                if matched is not None and matched[0] == match.source:
                    matched[2].append(handler)
                else:
                    close_matched()
                    matched = (match.source, match.predicate, [handler])
                continue
            close_matched()
            matched = None
            if guard is not None and run and guard[0] == run_parent:
                run.append((guard[1], handler, on_node))
                continue
            close_run()
            run_parent, run = None, []
            if guard is None:
                units.append(handler)
            else:
                run_parent, run = guard[0], [(guard[1], handler, on_node)]
        close_run()
        close_matched()
        return tuple(units)


# Keyed by the id of the (immutable) rule tuple; holding the tuple keeps the id unique.
_COMPILED: dict[int, CompiledRules] = {}


def compile_rules(rules: Sequence[EventRule]) -> CompiledRules:
    """The compiled form of ``rules``, built once per rule tuple."""
    hit = _COMPILED.get(id(rules))
    if hit is not None and hit.rules is rules:
        return hit
    compiled = CompiledRules(rules)
    if isinstance(rules, tuple):
        _COMPILED[id(rules)] = compiled
    return compiled


class EventMapper:
    """Runs compiled rules over frames; one instance per response."""

    __slots__ = (
        "_done_signal",
        "_finish_raw",
        "_generate_ids",
        "_last_tool",
        "_rules",
        "_termination",
        "_tools",
        "_usage",
        "done",
        "finished",
        "model",
        "response_id",
    )

    def __init__(
        self,
        rules: Sequence[EventRule],
        *,
        termination: Mapping[str, str] | None = None,
        done_signal: str | None = None,
        generate_ids: bool = False,
    ) -> None:
        self._rules = compile_rules(rules)
        # servers that omit tool-call ids (some OpenAI-compatible ones) get generated ids,
        # so the tool results of the next turn can refer to their calls
        self._generate_ids = generate_ids
        self._termination = termination or {}
        self._done_signal = done_signal
        self._tools: dict[int, _ToolState] = {}
        self._last_tool: int | None = None
        self._usage: dict[str, int] = {}
        self._finish_raw: str | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.done = False
        self.finished = False

    # -------------------------------------------------------------- input

    def feed_frame(self, frame: Frame, out: Out | None = None) -> Out:
        """Map one decoded frame. The done signal ends the stream (and returns final events)."""
        return self.feed_frames((frame,), [] if out is None else out)

    def feed_frames(self, frames: Iterable[Frame], out: Out) -> Out:
        """Map decoded frames in order, appending to ``out`` (one call per network chunk)."""
        done_signal = self._done_signal
        map_object = self.map_object
        loads = _loads
        for event, data in frames:
            if self.done:
                break
            if data == done_signal:
                self.done = True
                out.extend(self.finish())
                break
            try:
                obj = loads(data)
            except (ValueError, RecursionError) as exc:  # nested past the parser's depth
                if not data.strip():
                    continue
                raise MalformedResponseError(
                    f"stream frame is not valid JSON ({exc.args[0]}): {mask_text(data)[:200]!r}"
                ) from exc
            map_object(obj, event, out)
        return out

    def map_object(
        self,
        obj: Any,
        event: str | None = None,
        out: Out | None = None,
    ) -> Out:
        """Apply every rule to one decoded JSON value (appending to ``out`` if given)."""
        if out is None:
            out = []
        for unit in self._rules.for_event(event):
            if type(unit) is tuple:
                node = unit[0](obj)
                if type(node) is dict:
                    for keys, handler, on_node in unit[1]:
                        if on_node is not None:
                            on_node(node, out)
                            continue
                        for key in keys:
                            if key in node:
                                if handler(self, obj, out):
                                    return out
                                break
            elif unit(self, obj, out):  # type: ignore[operator]
                break
        return out

    def _tool_call(self, rule: EventRule, items: list[Any], out: Out) -> None:
        f = rule.fields
        index_spec, id_spec, name_spec, args_spec, signature_spec = (
            f.get("index"),
            f.get("id"),
            f.get("name"),
            f.get("arguments"),
            f.get("signature"),
        )
        for item in items:
            index = index_spec.first(item) if index_spec is not None else None
            call_id = id_spec.first(item) if id_spec is not None else None
            name = name_spec.first(item) if name_spec is not None else None
            args = args_spec.first(item) if args_spec is not None else None
            call_id = call_id if isinstance(call_id, str) and call_id else None
            name = name if isinstance(name, str) and name else None
            if type(index) is not int:
                if call_id is None and name is None and self._last_tool is not None:
                    index = self._last_tool  # a continuation fragment without an index
                elif call_id is None and name is None and args is None:
                    continue
                else:
                    index = len(self._tools)
                    while index in self._tools:
                        index += 1
            state = self._tools.get(index)
            if state is None:
                if call_id is None and name is None and args is None:
                    continue
                state = self._tools[index] = _ToolState()
            self._last_tool = index
            if call_id is not None and state.id is None:
                state.id = call_id
            if name is not None and state.name is None:
                state.name = name
            if signature_spec is not None:
                signature = signature_spec.first(item)
                if type(signature) is str and signature:
                    state.signature = signature
            fragment: str | None = None
            if isinstance(args, str):
                if args:
                    fragment = args
                    state.args.append(args)
            elif isinstance(args, (dict, list)) and args:
                # a whole arguments object (non-streaming bodies, some dialects)
                fragment = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
                state.args = [fragment]
            if not state.started:
                if state.name is None:
                    continue  # wait for the name before announcing the call
                state.started = True
                if state.id is None and self._generate_ids:
                    state.id = f"call_{uuid.uuid4().hex[:24]}"
                    state.generated = True
                out.append(ToolCallStarted(index, state.id, state.name))
                if state.args:
                    out.append(ToolCallDelta(index, "".join(state.args)))
            elif fragment is not None:
                out.append(ToolCallDelta(index, fragment))

    def finish(self) -> Out:
        """End of the response: complete tool calls, then emit usage and ``Finished``."""
        if self.finished:
            return []
        self.finished = True
        out: Out = []
        for index, state in sorted(self._tools.items()):
            if state.complete or state.name is None:
                # never named: arguments for a block that is not a client tool call
                # (a server-side tool), which the caller has nothing to execute for
                continue
            self._complete_tool(index, state, out)
        if self._usage:
            out.append(self.usage())
        # only named calls count: nameless states are server-side tool input, nothing the
        # caller must execute
        has_calls = any(state.name is not None for state in self._tools.values())
        if self._finish_raw is not None:
            out.append(Finished(normalize_finish(self._finish_raw, self._termination, has_calls)))
        return out

    def _complete_tool(self, index: int, state: _ToolState, out: Out) -> None:
        """Emit ``ToolCallCompleted`` for a named call (at its end event, or at the end)."""
        state.complete = True
        raw = "".join(state.args)
        arguments, error = _parse_arguments(raw)
        call = ToolCall(
            state.id,
            state.name or "",
            arguments,
            raw,
            error,
            state.signature,
            id_generated=state.generated,
        )
        out.append(ToolCallCompleted(index, call))

    def usage(self) -> Usage:
        u = self._usage
        return Usage(
            input_tokens=u.get("input_tokens", 0),
            output_tokens=u.get("output_tokens", 0),
            cached_input_tokens=u.get("cached_input_tokens"),
            reasoning_tokens=u.get("reasoning_tokens"),
        )

    def partial_usage(self) -> Usage | None:
        """Usage reported so far, before the end of the stream (None when none was)."""
        return self.usage() if self._usage else None

    @property
    def saw_finish_reason(self) -> bool:
        return self._finish_raw is not None

    def partial_tool_calls(self) -> list[ToolCall]:
        """Tool calls not yet completed, with whatever arguments arrived (for partial results)."""
        calls = []
        for _, state in sorted(self._tools.items()):
            if state.complete or state.name is None:
                continue
            raw = "".join(state.args)
            arguments, error = _parse_arguments(raw)
            calls.append(
                ToolCall(
                    state.id,
                    state.name,
                    arguments,
                    raw,
                    error,
                    state.signature,
                    id_generated=state.generated,
                )
            )
        return calls


class StreamPipeline:
    """Bytes in, unified events out: a stream decoder feeding an ``EventMapper``.

    ``feed`` takes body chunks as the network delivers them; ``close`` is called at the end
    of the body and returns the final events (completed tool calls, usage, ``Finished``),
    then — when the body ended before the provider finished the response — a
    ``DecodeFailure(TransportError, truncated=True)``: whether a stream was cut short is
    decided here, for every caller. ``error`` turns an error event (``StreamFailure``)
    into the classified ``RemoteError``, by ``error_rules``.

    ``decoder_format`` is one of ``DECODER_FORMATS``; another name is a
    ``ConfigurationError`` (the loader reports it, located, before this is reached).
    """

    __slots__ = ("decoder", "error_rules", "framing", "mapper")

    def __init__(
        self,
        rules: Sequence[EventRule],
        *,
        decoder_format: str = "sse",
        done_signal: str | None = None,
        termination: Mapping[str, str] | None = None,
        generate_ids: bool = False,
        error_rules: ErrorRules = DEFAULT_ERROR_RULES,
    ) -> None:
        framing = DECODER_FORMATS.get(decoder_format)
        if framing is None:
            known = ", ".join(sorted(DECODER_FORMATS))
            raise ConfigurationError(
                f"unknown stream decoder format {decoder_format!r} (known: {known})"
            )
        #: ``"sse"`` or ``"ndjson"``: how the body is framed
        self.framing = framing
        self.decoder: SSEDecoder | NDJSONDecoder = (
            SSEDecoder() if framing == "sse" else NDJSONDecoder()
        )
        self.mapper = EventMapper(
            rules, termination=termination, done_signal=done_signal, generate_ids=generate_ids
        )
        self.error_rules = error_rules

    def feed(self, data: bytes, out: Out | None = None) -> Out:
        """The events ``data`` completes, appended to ``out`` (a new list by default)."""
        if out is None:
            out = []
        try:
            self.mapper.feed_frames(self.decoder.feed(data), out)
        except AiLibError as exc:
            out.append(DecodeFailure(exc))
        return out

    def close(self) -> Out:
        """The end of the body: the final events, then the truncation failure if any."""
        out: Out = []
        try:
            self.mapper.feed_frames(self.decoder.flush(), out)
        except AiLibError as exc:
            out.append(DecodeFailure(exc))
            return out
        out.extend(self.mapper.finish())
        if self.truncated:
            out.append(DecodeFailure(TransportError(TRUNCATED_MESSAGE), truncated=True))
        return out

    @property
    def truncated(self) -> bool:
        """True if the body ended with neither the done signal nor a finish reason.

        Every dialect ends a complete stream with one or the other (OpenAI ``[DONE]``, a
        ``finish_reason``, Anthropic's ``stop_reason``, Gemini's ``finishReason``), so a
        body with neither was cut short.
        """
        mapper = self.mapper
        return not mapper.done and not mapper.saw_finish_reason

    def error(
        self,
        failure: StreamFailure,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        partial: ChatResponse | None = None,
        request_id: str | None = None,
        rate_limits: RateLimitSnapshot | None = None,
        provider: str | None = None,
        model: str | None = None,
    ) -> RemoteError:
        """The ``RemoteError`` an error event of this stream is: classified by the error
        rules (``status``/``headers``: the HTTP response that carried the stream)."""
        body = mask_json(failure.body)  # before anything cuts it: a server may echo the key
        info = classify_error(self.error_rules, status, headers or {}, body, mid_stream=True)
        return error_from_info(
            info,
            body=body,
            request_id=request_id,
            partial=partial,
            mid_stream=True,
            provider=provider,
            model=model,
            rate_limits=rate_limits,
        )


class ResponseDecoder:
    """A whole (non-streaming) JSON body -> a ``ChatResponse``, or the typed error it is.

    An error object in the body (the rules' ``error`` emit) is classified by
    ``error_rules`` into its ``RemoteError``; a body in which the rules find nothing but
    usage (no choice, candidate, content, tool call or finish reason) is a
    ``MalformedResponseError``. Stateless: one decoder serves any number of bodies.
    """

    __slots__ = ("error_rules", "generate_ids", "rules", "termination")

    def __init__(
        self,
        rules: Sequence[EventRule],
        *,
        termination: Mapping[str, str] | None = None,
        generate_ids: bool = False,
        error_rules: ErrorRules = DEFAULT_ERROR_RULES,
    ) -> None:
        self.rules = rules
        self.termination = termination
        self.generate_ids = generate_ids
        self.error_rules = error_rules

    def decode(
        self,
        body: Any,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        rate_limits: RateLimitSnapshot | None = None,
        provider: str | None = None,
        model: str | None = None,
        events: list[StreamingEvent] | None = None,
        pricing: ModelPricing | None = None,
    ) -> ChatResponse:
        """Decode ``body`` (parsed JSON); ``events``, if given, receives the unified events
        in order, up to a failure. ``status``/``headers`` are the HTTP response's."""
        mapper = EventMapper(
            self.rules, termination=self.termination, generate_ids=self.generate_ids
        )
        found = mapper.map_object(body)
        found.extend(mapper.finish())
        if not any(type(event) is not Usage for event in found):
            raise _empty_response(body, status, request_id, provider, model)
        acc = ResponseAccumulator()
        for event in found:
            if type(event) is StreamFailure:
                failure_body = mask_json(event.body)
                info = classify_error(self.error_rules, status, headers or {}, failure_body)
                raise error_from_info(
                    info,
                    body=failure_body,
                    request_id=request_id,
                    provider=provider,
                    model=model,
                    rate_limits=rate_limits,
                )
            if events is not None:
                events.append(event)  # type: ignore[arg-type]
            acc.add(event)  # type: ignore[arg-type]
        return acc.build(
            mapper=mapper,
            request_id=request_id,
            raw=body,
            model=model,
            rate_limits=rate_limits,
            pricing=pricing,
        )


def _empty_response(
    body: Any, status: int, request_id: str | None, provider: str | None, model: str | None
) -> MalformedResponseError:
    """A 2xx body in which the manifest finds no choice, candidate or content."""
    text = json.dumps(body, ensure_ascii=False)
    snippet = text if len(text) <= 200 else text[:200] + "..."
    return MalformedResponseError(
        f"the response has no choice, candidate or content the manifest can find: {snippet}",
        status_code=status,
        request_id=request_id,
        provider=provider,
        model=model,
    )


class ResponseAccumulator:
    """Folds unified events into a ``ChatResponse`` (cheap appends; the join happens once)."""

    __slots__ = (
        "content",
        "finish_reason",
        "reasoning",
        "reasoning_signature",
        "refusal",
        "tool_calls",
        "usage",
    )

    def __init__(self) -> None:
        self.content: list[str] = []
        # made by the first event of their kind: most streams have none (a thousand
        # concurrent streams would hold three thousand empty lists)
        self.reasoning: list[str] | None = None
        self.refusal: list[str] | None = None
        self.tool_calls: list[ToolCall] | None = None
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.reasoning_signature: str | None = None

    def add(self, event: StreamingEvent) -> None:
        cls = type(event)
        if cls is ContentDelta:
            self.content.append(event.text)  # type: ignore[union-attr]
        elif cls is ReasoningDelta:
            reasoning = self.reasoning
            if reasoning is None:
                reasoning = self.reasoning = []
            reasoning.append(event.text)  # type: ignore[union-attr]
            if event.signature is not None:  # type: ignore[union-attr]
                self.reasoning_signature = event.signature  # type: ignore[union-attr]
        elif cls is RefusalDelta:
            refusal = self.refusal
            if refusal is None:
                refusal = self.refusal = []
            refusal.append(event.text)  # type: ignore[union-attr]
        elif cls is ToolCallCompleted:
            tool_calls = self.tool_calls
            if tool_calls is None:
                tool_calls = self.tool_calls = []
            tool_calls.append(event.tool_call)  # type: ignore[union-attr]
        elif cls is Usage:
            self.usage = event  # type: ignore[assignment]
        elif cls is Finished:
            self.finish_reason = event.finish_reason  # type: ignore[union-attr]

    def build(
        self,
        *,
        mapper: EventMapper | None = None,
        request_id: str | None = None,
        raw: Any = None,
        model: str | None = None,
        rate_limits: RateLimitSnapshot | None = None,
        pricing: ModelPricing | None = None,
    ) -> ChatResponse:
        """The response so far; ``pricing`` (the model's prices, data from its manifest)
        gives it a ``cost``."""
        tool_calls = list(self.tool_calls or ())
        usage = self.usage
        response_id = None
        if mapper is not None:
            tool_calls.extend(mapper.partial_tool_calls())
            if usage is None:
                usage = mapper.partial_usage()
            model = mapper.model or model
            response_id = mapper.response_id
        return ChatResponse(
            content="".join(self.content),
            reasoning="".join(self.reasoning) if self.reasoning else "",
            refusal="".join(self.refusal) if self.refusal else None,
            tool_calls=tuple(tool_calls),
            finish_reason=self.finish_reason,
            usage=usage,
            model=model,
            request_id=request_id,
            raw=raw,
            reasoning_signature=self.reasoning_signature,
            rate_limits=rate_limits,
            pricing=pricing,
            response_id=response_id,
        )
