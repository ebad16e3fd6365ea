"""The wire dialects the mock provider speaks: which one a request wants, and its bytes.

The dialect is chosen from the request path alone, never from a provider name:
``.../chat/completions`` is OpenAI chat completions, ``.../messages`` is Anthropic
Messages, ``.../models/{model}:generateContent`` and ``:streamGenerateContent`` are
Gemini. ``encode_stream`` and ``encode_response`` are each dialect's encoder, the
inverse of a manifest's decoder: unified events in, the provider's bytes out. ``render``
turns a ``ScriptedReply`` into unified events and encodes them for the request, cut into
writes (one SSE event per write, so delays and faults fall between whole events).
``embeddings_body`` answers the embeddings endpoints (OpenAI's, Gemini's batch one).
Everything here is synchronous and does no I/O; ``_mock`` wraps the result in a
``Reply`` together with the scripted fault knobs.
"""

from __future__ import annotations

import base64
import hashlib
import json as _json
import re
import struct
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from .._core._mapping import ResponseAccumulator, normalize_finish
from .._core._types import (
    ChatResponse,
    ContentDelta,
    Finished,
    ReasoningDelta,
    RefusalDelta,
    StreamingEvent,
    ToolCall,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallStarted,
    Usage,
)
from ._script import ScriptedReply

#: Named by the endpoint a dialect answers, not by any provider.
Dialect: TypeAlias = Literal["chat_completions", "messages", "generate_content"]

#: ``prefix -> fresh id``: tool-call ids unique across one server's replies.
NextId: TypeAlias = Callable[[str], str]

SSE_HEADERS: Mapping[str, str] = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
}
JSON_HEADERS: Mapping[str, str] = {"content-type": "application/json"}
# What Google's front end really sends.
GEMINI_JSON_HEADERS: Mapping[str, str] = {"content-type": "application/json; charset=UTF-8"}
GEMINI_SSE_HEADERS: Mapping[str, str] = {"content-type": "text/event-stream"}

_GEMINI_ROUTE = re.compile(
    r"/(?:models|tunedModels)/([^/:]+):(generateContent|streamGenerateContent|countTokens)$"
)


def dumps(obj: Any) -> str:
    """Compact JSON, non-ASCII kept as is (as the providers send it)."""
    return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@attrs.frozen
class Endpoint:
    """What a request path asks for.

    ``stream`` is ``None`` when the request body decides (``"stream": true``), as in the
    OpenAI and Anthropic dialects; Gemini says it in the path, and ``model`` too.
    ``sse`` is false for a Gemini ``:streamGenerateContent`` without ``?alt=sse``, which
    Gemini answers with a streamed JSON array. ``operation`` is ``"count_tokens"`` for a
    dialect's token-counting endpoint (``.../messages/count_tokens``, ``:countTokens``).
    """

    dialect: Dialect
    stream: bool | None = None
    model: str | None = None
    sse: bool = True
    operation: Literal["chat", "count_tokens"] = "chat"


CHAT_COMPLETIONS = Endpoint("chat_completions")


def endpoint_for(target: str) -> Endpoint | None:
    """The dialect endpoint a request target names, or ``None`` for any other route."""
    route, _, query = target.partition("?")
    if route.endswith("/chat/completions"):
        return CHAT_COMPLETIONS
    if route.endswith("/messages"):
        return Endpoint("messages")
    if route.endswith("/messages/count_tokens"):
        return Endpoint("messages", stream=False, operation="count_tokens")
    match = _GEMINI_ROUTE.search(route)
    if match is not None:
        model = urllib.parse.unquote(match.group(1))
        if match.group(2) == "countTokens":
            return Endpoint("generate_content", stream=False, model=model, operation="count_tokens")
        if match.group(2) == "generateContent":
            return Endpoint("generate_content", stream=False, model=model)
        sse = "sse" in urllib.parse.parse_qs(query).get("alt", ())
        return Endpoint("generate_content", stream=True, model=model, sse=sse)
    return None


@attrs.frozen
class Rendered:
    """A rendered reply: headers and the body cut into writes; ``streamed`` if a stream."""

    headers: Mapping[str, str]
    pieces: list[bytes]
    streamed: bool = False


# ------------------------------------------------------------------ reading requests


def _block_text(content: Any) -> str:
    """Text of a string, or of a list of ``{"type": "text", "text": ...}`` blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
            if isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def _parts_text(content: Any) -> str:
    """Text of a Gemini ``Content``: its ``parts[*].text`` joined with spaces."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    texts = [
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]
    return " ".join(texts)


def _dicts(request: Any, key: str) -> list[dict[str, Any]]:
    items = request.get(key) if isinstance(request, dict) else None
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)]


def last_user_text(dialect: Dialect, request: Any) -> str:
    """The text of the last user turn of ``request``, as the dialect spells it."""
    if dialect == "generate_content":
        # Gemini may leave ``role`` out of a single-turn request; it means "user".
        contents = _dicts(request, "contents")
        last = next((c for c in reversed(contents) if c.get("role", "user") == "user"), None)
        return _parts_text(last)
    messages = _dicts(request, "messages")
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    return _block_text(last.get("content") if last is not None else None)


def _words(text: str) -> int:
    return len(text.split())


def _prompt_words(dialect: Dialect, request: Any) -> int:
    if dialect == "generate_content":
        contents = _dicts(request, "contents")
        system = request.get("systemInstruction") if isinstance(request, dict) else None
        return sum(_words(_parts_text(c)) for c in [*contents, system])
    texts = [_block_text(m.get("content")) for m in _dicts(request, "messages")]
    if dialect == "messages" and isinstance(request, dict):
        texts.append(_block_text(request.get("system")))
    return sum(_words(text) for text in texts)


# ---------------------------------------------------------------------- embeddings

_GEMINI_EMBED_ROUTE = re.compile(r"/(?:models|tunedModels)/[^/:]+:batchEmbedContents$")

#: The length of a default vector when the request asks for none.
EMBEDDING_DIMENSIONS = 8


def _vector(text: str, dimensions: int) -> list[float]:
    """A stand-in vector for ``text``, the same for the same text: multiples of 1/128 in
    [-1, 1), exact as float32 so they survive OpenAI's base64 form unchanged."""
    digest = b""
    while len(digest) < dimensions:
        digest += hashlib.sha256(f"{len(digest)}:{text}".encode()).digest()
    return [(byte - 128) / 128 for byte in digest[:dimensions]]


def _dimensions(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 65536:
        return value
    return EMBEDDING_DIMENSIONS


def embeddings_body(route: str, request: Any) -> dict[str, Any] | None:
    """The body an embeddings endpoint answers ``request`` with, one vector per input
    (see ``_vector``), or ``None`` when ``route`` is no embeddings endpoint.

    ``.../embeddings`` is OpenAI's (``input`` a string or a list, ``dimensions``, and
    ``encoding_format: base64`` as little-endian float32s); ``...:batchEmbedContents``
    is Gemini's (``requests[*].content``, ``outputDimensionality``).
    """
    body = request if isinstance(request, dict) else {}
    if route.endswith("/embeddings"):
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given if isinstance(given, list) else []
        dimensions = _dimensions(body.get("dimensions"))
        data = []
        for index, text in enumerate(texts):
            vector: Any = _vector(str(text), dimensions)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        words = sum(_words(str(text)) for text in texts)
        usage = {"prompt_tokens": words, "total_tokens": words}
        return {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
    if _GEMINI_EMBED_ROUTE.search(route):
        vectors = [
            _vector(_parts_text(item.get("content")), _dimensions(item.get("outputDimensionality")))
            for item in _dicts(body, "requests")
        ]
        return {"embeddings": [{"values": vector} for vector in vectors]}
    return None


# ------------------------------------------------------------------- event encoders
#
# The inverse of a manifest's decoder: unified events -> what a provider of the dialect
# sends. Scripted replies are rendered through them, and the hypothesis strategies
# round-trip generated events through them and a manifest's rules.

#: API family (as a manifest names it) -> the wire dialect its servers speak.
FAMILY_DIALECTS: Mapping[str, Dialect] = {
    "openai_chat": "chat_completions",
    "anthropic_messages": "messages",
    "gemini_generate": "generate_content",
}


def dialect_of(api_family: str) -> Dialect:
    """The dialect of an API family (``openai_chat`` -> ``chat_completions``...)."""
    try:
        return FAMILY_DIALECTS[api_family]
    except KeyError:
        known = ", ".join(FAMILY_DIALECTS)
        raise ValueError(
            f"no wire encoder for API family {api_family!r} (known: {known})"
        ) from None


def _cannot(dialect: Dialect, what: object) -> ValueError:
    return ValueError(f"the {dialect} dialect cannot carry {what!r}")


def _split(
    events: Iterable[StreamingEvent],
) -> tuple[list[StreamingEvent], Usage | None, str | None]:
    """(events the body carries in order, the usage, the raw finish reason): the last two
    are end-of-response facts that each dialect puts where it puts them."""
    body: list[StreamingEvent] = []
    usage: Usage | None = None
    finish: str | None = None
    for event in events:
        if isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finished):
            finish = event.finish_reason.raw or event.finish_reason.normalized
        else:
            body.append(event)
    return body, usage, finish


def accumulate(events: Iterable[StreamingEvent]) -> ChatResponse:
    acc = ResponseAccumulator()
    for event in events:
        acc.add(event)
    return acc.build()


def _sse(data: Any) -> str:
    return f"data: {dumps(data)}\n\n"


def encode_stream(
    dialect: Dialect,
    events: Iterable[StreamingEvent],
    *,
    model: str = "mock",
    response_id: str = "mock-1",
    created: int = 0,
    sse: bool = True,
) -> list[bytes]:
    """The stream a provider of ``dialect`` sends for ``events``, one wire event per item.

    Text, reasoning and refusal deltas and tool-call fragments go out in order, one wire
    event each; ``Usage`` and ``Finished`` go where the dialect reports them, wherever
    they are in ``events``. Tool calls are keyed by their event ``index`` (Anthropic
    numbers its content blocks itself; Gemini sends each call whole, its arguments joined
    from the call's ``ToolCallDelta`` events). ``ValueError`` names an event the dialect
    cannot carry (a refusal outside OpenAI, a reasoning signature in OpenAI...).
    ``sse=False`` renders Gemini's JSON-array stream (``streamGenerateContent`` without
    ``?alt=sse``).

    ::

        stop = Finished(FinishReason("stop", "end_turn"))
        body = b"".join(encode_stream("messages", [ContentDelta("Hi"), stop]))
    """
    events = list(events)
    if dialect == "messages":
        pieces = _anthropic_stream(events, model, response_id)
    elif dialect == "generate_content":
        pieces = _gemini_stream(events, model, response_id, sse=sse)
    else:
        pieces = _openai_stream(events, model, response_id, created)
    return [piece.encode() for piece in pieces]


def encode_response(
    dialect: Dialect,
    events: Iterable[StreamingEvent],
    *,
    model: str = "mock",
    response_id: str = "mock-1",
    created: int = 0,
) -> dict[str, Any]:
    """The non-streaming body a provider of ``dialect`` sends for the response ``events``
    add up to (tool calls are taken from their ``ToolCallCompleted`` events)."""
    events = list(events)
    if dialect == "messages":
        return _anthropic_response(events, model, response_id)
    if dialect == "generate_content":
        return _gemini_response(events, model, response_id)
    return _openai_response(events, model, response_id, created)


# -- OpenAI chat completions


def _openai_usage(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    cached = usage.cached_input_tokens
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
        # DeepSeek's own spelling of the same counts, which it sends beside OpenAI's
        out["prompt_cache_hit_tokens"] = cached
        out["prompt_cache_miss_tokens"] = usage.input_tokens - cached
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def _openai_delta(event: StreamingEvent) -> dict[str, Any] | None:
    if isinstance(event, ContentDelta):
        return {"content": event.text}
    if isinstance(event, ReasoningDelta):
        if event.signature is not None:
            raise _cannot("chat_completions", event)
        return {"reasoning_content": event.text}
    if isinstance(event, RefusalDelta):
        return {"refusal": event.text}
    if isinstance(event, ToolCallStarted):
        start: dict[str, Any] = {"index": event.index}
        if event.id is not None:
            start["id"] = event.id
        start["type"] = "function"
        start["function"] = {"name": event.name, "arguments": ""}
        return {"tool_calls": [start]}
    if isinstance(event, ToolCallDelta):
        fragment = {"index": event.index, "function": {"arguments": event.arguments}}
        return {"tool_calls": [fragment]}
    return None  # ToolCallCompleted: its arguments went out as fragments


def _openai_stream(
    events: list[StreamingEvent], model: str, response_id: str, created: int
) -> list[str]:
    body, usage, finish = _split(events)

    def frame(choices: list[Any]) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = frame([choice])
        if usage is not None:
            data["usage"] = None  # as the real API does on every chunk but the last
        return _sse(data)

    out = [chunk({"role": "assistant", "content": ""})]
    for event in body:
        delta = _openai_delta(event)
        if delta is not None:
            out.append(chunk(delta))
    if finish is not None:
        out.append(chunk({}, finish))
    if usage is not None:
        out.append(_sse({**frame([]), "usage": _openai_usage(usage)}))
    out.append("data: [DONE]\n\n")
    return out


def _openai_response(
    events: list[StreamingEvent], model: str, response_id: str, created: int
) -> dict[str, Any]:
    reply = accumulate(events)
    if reply.reasoning_signature is not None:
        raise _cannot("chat_completions", f"reasoning signature {reply.reasoning_signature!r}")
    calls = reply.tool_calls
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if not reply.content and calls else reply.content,
        "refusal": reply.refusal,
    }
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments_text(call)},
            }
            for call in calls
        ]
    finish = reply.finish_reason
    completion: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish.raw or finish.normalized if finish else None,
            }
        ],
    }
    if reply.usage is not None:
        completion["usage"] = _openai_usage(reply.usage)
    return completion


def _arguments_text(call: ToolCall) -> str:
    if call.raw_arguments:
        return call.raw_arguments
    return dumps(dict(call.arguments)) if call.arguments else ""


# -- Anthropic Messages


def _anthropic_usage(usage: Usage, output_tokens: int) -> dict[str, int]:
    # Anthropic counts cache reads apart from the rest of the input.
    cached = usage.cached_input_tokens
    out = {"input_tokens": usage.input_tokens - (cached or 0)}
    if cached is not None:
        out["cache_read_input_tokens"] = cached
    out["output_tokens"] = output_tokens
    return out


class _AnthropicBlocks:
    """Content blocks being written: one open at a time, numbered in order."""

    def __init__(self, out: list[str]) -> None:
        self.out = out
        self.count = 0
        self.open: tuple[str, int] | None = None  # (kind, tool index or -1), block number
        self.number = -1
        self.tools: dict[int, int] = {}  # tool-call event index -> block number

    def event(self, name: str, data: Mapping[str, Any]) -> None:
        self.out.append(f"event: {name}\ndata: {dumps(data)}\n\n")

    def start(self, key: tuple[str, int], block: Mapping[str, Any]) -> None:
        self.close()
        self.open, self.number = key, self.count
        self.count += 1
        frame = {"type": "content_block_start", "index": self.number, "content_block": block}
        self.event("content_block_start", frame)

    def ensure(self, key: tuple[str, int], block: Mapping[str, Any]) -> None:
        if self.open != key:
            self.start(key, block)

    def delta(self, delta: Mapping[str, Any]) -> None:
        frame = {"type": "content_block_delta", "index": self.number, "delta": delta}
        self.event("content_block_delta", frame)

    def close(self) -> None:
        if self.open is not None:
            self.event("content_block_stop", {"type": "content_block_stop", "index": self.number})
            self.open = None


_TEXT_BLOCK = ("text", -1)
_THINKING_BLOCK = ("thinking", -1)


def _anthropic_stream(events: list[StreamingEvent], model: str, response_id: str) -> list[str]:
    body, usage, finish = _split(events)
    message: dict[str, Any] = {
        "id": response_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if usage is not None:
        message["usage"] = _anthropic_usage(usage, 1)  # the real API starts at 1
    out: list[str] = []
    blocks = _AnthropicBlocks(out)
    blocks.event("message_start", {"type": "message_start", "message": message})
    out.append('event: ping\ndata: {"type": "ping"}\n\n')  # spaced, as the real API sends it
    for event in body:
        if isinstance(event, ContentDelta):
            blocks.ensure(_TEXT_BLOCK, {"type": "text", "text": ""})
            if event.text:
                blocks.delta({"type": "text_delta", "text": event.text})
        elif isinstance(event, ReasoningDelta):
            blocks.ensure(_THINKING_BLOCK, {"type": "thinking", "thinking": "", "signature": ""})
            if event.text:
                blocks.delta({"type": "thinking_delta", "thinking": event.text})
            if event.signature is not None:
                blocks.delta({"type": "signature_delta", "signature": event.signature})
        elif isinstance(event, ToolCallStarted):
            start: dict[str, Any] = {
                "type": "tool_use",
                "id": event.id,
                "name": event.name,
                "input": {},
            }
            blocks.start(("tool_use", event.index), start)
            blocks.tools[event.index] = blocks.number
        elif isinstance(event, ToolCallDelta):
            if blocks.open != ("tool_use", event.index):
                raise _cannot("messages", f"{event!r} outside its tool call's block")
            blocks.delta({"type": "input_json_delta", "partial_json": event.arguments})
        elif isinstance(event, ToolCallCompleted):
            if blocks.open == ("tool_use", event.index):
                blocks.close()
        else:
            raise _cannot("messages", event)
    blocks.close()
    if blocks.count == 0:  # a reply always has a block: an empty text one at least
        blocks.start(_TEXT_BLOCK, {"type": "text", "text": ""})
        blocks.close()
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": finish, "stop_sequence": None},
    }
    if usage is not None:
        delta["usage"] = {"output_tokens": usage.output_tokens}
    blocks.event("message_delta", delta)
    blocks.event("message_stop", {"type": "message_stop"})
    return out


def _anthropic_response(
    events: list[StreamingEvent], model: str, response_id: str
) -> dict[str, Any]:
    reply = accumulate(events)
    if reply.refusal is not None:
        raise _cannot("messages", f"refusal {reply.refusal!r}")
    blocks: list[dict[str, Any]] = []
    thinking = bool(reply.reasoning or reply.reasoning_signature)
    if thinking:
        blocks.append(
            {
                "type": "thinking",
                "thinking": reply.reasoning,
                "signature": reply.reasoning_signature or "",
            }
        )
    if reply.content or not (thinking or reply.tool_calls):
        blocks.append({"type": "text", "text": reply.content})
    blocks += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.arguments)}
        for call in reply.tool_calls
    ]
    finish = reply.finish_reason
    message: dict[str, Any] = {
        "id": response_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": finish.raw or finish.normalized if finish else None,
        "stop_sequence": None,
    }
    if reply.usage is not None:
        message["usage"] = _anthropic_usage(reply.usage, reply.usage.output_tokens)
    return message


# -- Gemini generateContent


def _gemini_usage(usage: Usage) -> dict[str, int]:
    # Gemini counts thoughts apart from the candidates, and adds both into the total.
    thoughts = usage.reasoning_tokens
    out = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens - (thoughts or 0),
        "totalTokenCount": usage.total_tokens,
    }
    if thoughts is not None:
        out["thoughtsTokenCount"] = thoughts
    if usage.cached_input_tokens is not None:
        out["cachedContentTokenCount"] = usage.cached_input_tokens
    return out


def _gemini_call(call_id: str | None, name: str, arguments: Any, signature: str | None) -> Any:
    function: dict[str, Any] = {"id": call_id} if call_id is not None else {}
    function["name"] = name
    function["args"] = arguments
    part: dict[str, Any] = {"functionCall": function}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _gemini_frame(
    parts: list[dict[str, Any]],
    model: str,
    response_id: str,
    finish: str | None,
    usage: Usage | None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    frame: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        frame["usageMetadata"] = _gemini_usage(usage)
    frame["modelVersion"] = model
    frame["responseId"] = response_id
    return frame


def _gemini_parts(events: list[StreamingEvent]) -> list[dict[str, Any]]:
    """One part per event; a tool call whole, at its ``ToolCallStarted``."""
    arguments: dict[int, list[str]] = {}
    signatures: dict[int, str | None] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            arguments.setdefault(event.index, []).append(event.arguments)
        elif isinstance(event, ToolCallCompleted):
            signatures[event.index] = event.tool_call.signature
    parts: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, ContentDelta):
            parts.append({"text": event.text})
        elif isinstance(event, ReasoningDelta):
            part: dict[str, Any] = {"text": event.text}
            if event.text:
                part["thought"] = True
            if event.signature is not None:
                part["thoughtSignature"] = event.signature
            parts.append(part)
        elif isinstance(event, ToolCallStarted):
            text = "".join(arguments.get(event.index, ()))
            args = _json.loads(text) if text.strip() else {}
            if not isinstance(args, dict):
                raise _cannot("generate_content", f"tool arguments {text!r} (not an object)")
            signature = signatures.get(event.index)
            parts.append(_gemini_call(event.id, event.name, args, signature))
        elif isinstance(event, RefusalDelta):
            raise _cannot("generate_content", event)
    return parts


def _gemini_stream(
    events: list[StreamingEvent], model: str, response_id: str, *, sse: bool
) -> list[str]:
    body, usage, finish = _split(events)
    # A stream has at least one candidate: an empty text part when nothing else is said.
    parts = _gemini_parts(body) or [{"text": ""}]
    last = len(parts) - 1
    frames = [
        dumps(
            _gemini_frame(
                [part],
                model,
                response_id,
                finish if i == last else None,
                usage if i == last else None,
            )
        )
        for i, part in enumerate(parts)
    ]
    if sse:
        # Gemini frames its events with CRLF and ends the stream without a sentinel.
        return [f"data: {frame}\r\n\r\n" for frame in frames]
    # Without ?alt=sse the stream is one JSON array, written an element at a time.
    pieces = [("[" if i == 0 else ",\r\n") + frame for i, frame in enumerate(frames)]
    pieces[-1] += "]"
    return pieces


def _gemini_response(events: list[StreamingEvent], model: str, response_id: str) -> dict[str, Any]:
    reply = accumulate(events)
    if reply.refusal is not None:
        raise _cannot("generate_content", f"refusal {reply.refusal!r}")
    parts: list[dict[str, Any]] = []
    if reply.reasoning:
        parts.append({"text": reply.reasoning, "thought": True})
    if reply.content or not (reply.reasoning or reply.tool_calls):
        parts.append({"text": reply.content})
    if reply.reasoning_signature is not None:
        # the signature rides on the last part that is not a function call
        if not parts:
            parts.append({"text": ""})
        parts[-1]["thoughtSignature"] = reply.reasoning_signature
    parts += [
        _gemini_call(call.id, call.name, dict(call.arguments), call.signature)
        for call in reply.tool_calls
    ]
    finish = reply.finish_reason
    raw = finish.raw or finish.normalized if finish is not None else None
    return _gemini_frame(parts, model, response_id, raw, reply.usage)


# ------------------------------------------------------------- scripted replies


@attrs.frozen
class _Style:
    """How the mock fills in what a ``ScriptedReply`` leaves out, per dialect."""

    #: the response id, formatted with the request's number
    response_id: str
    #: prefix of generated tool-call ids; None: the dialect sends calls without ids
    call_id_prefix: str | None
    stop: str
    tool_stop: str
    json_headers: Mapping[str, str]
    sse_headers: Mapping[str, str]
    #: thinking is signed (Anthropic), so the signature goes back next turn
    signs_reasoning: bool = False
    #: reasoning tokens are reported apart (Gemini's thoughtsTokenCount)
    counts_thoughts: bool = False
    #: a stream carries usage only when the request asks (OpenAI ``include_usage``)
    streams_usage_if_asked: bool = False


_STYLES: Mapping[Dialect, _Style] = {
    "chat_completions": _Style(
        "chatcmpl-mock-{}",
        "call_",
        "stop",
        "tool_calls",
        JSON_HEADERS,
        SSE_HEADERS,
        streams_usage_if_asked=True,
    ),
    "messages": _Style(
        "msg_mock_{}",
        "toolu_mock_",
        "end_turn",
        "tool_use",
        JSON_HEADERS,
        SSE_HEADERS,
        signs_reasoning=True,
    ),
    "generate_content": _Style(
        "mock-{}",
        None,
        "STOP",  # also with function calls
        "STOP",
        GEMINI_JSON_HEADERS,
        GEMINI_SSE_HEADERS,
        counts_thoughts=True,
    ),
}


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def render(
    scripted: ScriptedReply,
    request: Any,
    endpoint: Endpoint,
    number: int,
    next_id: NextId,
) -> Rendered:
    """Render ``scripted`` as the exact bytes the endpoint's provider would send."""
    dialect = endpoint.dialect
    style = _STYLES[dialect]
    req: dict[str, Any] = request if isinstance(request, dict) else {}
    if endpoint.operation == "count_tokens":
        return _render_count(scripted, dialect, req)
    requested = endpoint.model if endpoint.model is not None else req.get("model")
    model = scripted.model or (requested if isinstance(requested, str) else "mock")
    stream = endpoint.stream if endpoint.stream is not None else req.get("stream") is True
    size = scripted.chunk_size

    events: list[StreamingEvent] = [ReasoningDelta(t) for t in _chunks(scripted.reasoning, size)]
    if scripted.reasoning and style.signs_reasoning:
        events.append(ReasoningDelta("", signature=f"mock-signature-{number}"))
    events += [ContentDelta(text) for text in _chunks(scripted.content, size)]
    call_texts: list[str] = []
    for index, call in enumerate(scripted.tool_calls):
        if isinstance(call, Sequence):  # a (name, arguments) pair
            (name, arguments), call_id = call, None
        else:
            name, arguments, call_id = call.name, call.arguments, call.id
        if style.call_id_prefix is None:
            call_id = None
        elif call_id is None:
            call_id = next_id(style.call_id_prefix)
        args = dict(arguments)
        text = dumps(args)
        call_texts.append(text)
        events.append(ToolCallStarted(index, call_id, name))
        events += [ToolCallDelta(index, fragment) for fragment in _chunks(text, size)]
        events.append(ToolCallCompleted(index, ToolCall(call_id, name, args, text)))

    if scripted.usage is not None:
        prompt_tokens, completion_tokens = scripted.usage
    else:
        prompt_tokens = max(1, _prompt_words(dialect, req))
        generated = [scripted.content, scripted.reasoning, *call_texts]
        completion_tokens = max(1, sum(_words(text) for text in generated))
    thoughts = None
    if scripted.reasoning and style.counts_thoughts:
        thoughts = min(max(1, _words(scripted.reasoning)), completion_tokens)
    options = req.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    if not stream or not style.streams_usage_if_asked or asked:
        events.append(Usage(prompt_tokens, completion_tokens, reasoning_tokens=thoughts))
    raw = scripted.finish_reason or (style.tool_stop if call_texts else style.stop)
    events.append(Finished(normalize_finish(raw, {}, bool(call_texts))))

    response_id = style.response_id.format(number)
    created = int(time.time())
    if not stream:
        body = encode_response(
            dialect, events, model=model, response_id=response_id, created=created
        )
        return Rendered(style.json_headers, [dumps(body).encode()])
    pieces = encode_stream(
        dialect, events, model=model, response_id=response_id, created=created, sse=endpoint.sse
    )
    headers = style.sse_headers if endpoint.sse else style.json_headers
    return Rendered(headers, pieces, streamed=True)


#: where each dialect's token-counting endpoint puts the count
_COUNT_FIELDS: Mapping[Dialect, str] = {
    "messages": "input_tokens",
    "generate_content": "totalTokens",
}


def _render_count(scripted: ScriptedReply, dialect: Dialect, request: dict[str, Any]) -> Rendered:
    """A token-counting endpoint's answer: the prompt's words, the same count the mock
    reports as input usage for that request (``scripted.usage[0]`` when given). A Gemini
    count may wrap the request in ``generateContentRequest``."""
    inner = request.get("generateContentRequest")
    prompt = inner if isinstance(inner, dict) else request
    if scripted.usage is not None:
        tokens = scripted.usage[0]
    else:
        tokens = max(1, _prompt_words(dialect, prompt))
    body: dict[str, Any] = {_COUNT_FIELDS.get(dialect, "input_tokens"): tokens}
    return Rendered(_STYLES[dialect].json_headers, [dumps(body).encode()])
