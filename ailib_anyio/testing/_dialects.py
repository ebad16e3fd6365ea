"""The wire dialects the mock provider speaks: which one a request wants, and its bytes.

The dialect is chosen from the request path alone, never from a provider name:
``.../chat/completions`` is OpenAI chat completions, ``.../messages`` is Anthropic
Messages, ``.../models/{model}:generateContent`` and ``:streamGenerateContent`` are
Gemini. ``render`` turns a ``ScriptedReply`` into the exact bytes that provider would
send for the request, cut into writes (one SSE event per write, so delays and faults
fall between whole events). Everything here is synchronous and does no I/O; ``_mock``
wraps the result in a ``Reply`` together with the scripted fault knobs.
"""

from __future__ import annotations

import json as _json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

if TYPE_CHECKING:
    from ._mock import ScriptedReply

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
    r"/(?:models|tunedModels)/([^/:]+):(generateContent|streamGenerateContent)$"
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
    Gemini answers with a streamed JSON array.
    """

    dialect: Dialect
    stream: bool | None = None
    model: str | None = None
    sse: bool = True


CHAT_COMPLETIONS = Endpoint("chat_completions")


def endpoint_for(target: str) -> Endpoint | None:
    """The dialect endpoint a request target names, or ``None`` for any other route."""
    route, _, query = target.partition("?")
    if route.endswith("/chat/completions"):
        return CHAT_COMPLETIONS
    if route.endswith("/messages"):
        return Endpoint("messages")
    match = _GEMINI_ROUTE.search(route)
    if match is not None:
        model = urllib.parse.unquote(match.group(1))
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


# ------------------------------------------------------------------------ rendering


@attrs.frozen
class _Call:
    id: str | None
    name: str
    arguments: dict[str, Any]
    #: The arguments as compact JSON (what OpenAI and Anthropic stream in fragments).
    json: str


@attrs.frozen
class _Turn:
    """A ``ScriptedReply`` resolved against one request: everything but the framing."""

    scripted: ScriptedReply
    request: dict[str, Any]
    number: int
    model: str
    calls: list[_Call]
    prompt_tokens: int
    completion_tokens: int
    stream: bool

    def chunks(self, text: str) -> Iterator[str]:
        size = self.scripted.chunk_size
        return (text[i : i + size] for i in range(0, len(text), size))


def render(
    scripted: ScriptedReply,
    request: Any,
    endpoint: Endpoint,
    number: int,
    next_id: NextId,
) -> Rendered:
    """Render ``scripted`` as the exact bytes the endpoint's provider would send."""
    req: dict[str, Any] = request if isinstance(request, dict) else {}
    requested = endpoint.model if endpoint.model is not None else req.get("model")
    model = scripted.model or (requested if isinstance(requested, str) else "mock")
    calls: list[_Call] = []
    for call in scripted.tool_calls:
        if isinstance(call, Sequence):  # a (name, arguments) pair
            (name, arguments), call_id = call, None
        else:
            name, arguments, call_id = call.name, call.arguments, call.id
        args = dict(arguments)
        calls.append(_Call(call_id, name, args, dumps(args)))
    if scripted.usage is not None:
        prompt_tokens, completion_tokens = scripted.usage
    else:
        prompt_tokens = max(1, _prompt_words(endpoint.dialect, req))
        generated = [scripted.content, scripted.reasoning, *(call.json for call in calls)]
        completion_tokens = max(1, sum(_words(text) for text in generated))
    stream = endpoint.stream if endpoint.stream is not None else req.get("stream") is True
    turn = _Turn(scripted, req, number, model, calls, prompt_tokens, completion_tokens, stream)
    if endpoint.dialect == "messages":
        return _render_anthropic(turn, next_id)
    if endpoint.dialect == "generate_content":
        return _render_gemini(turn, sse=endpoint.sse)
    return _render_openai(turn, next_id)


def _stream_rendered(headers: Mapping[str, str], events: Sequence[str]) -> Rendered:
    return Rendered(headers, [event.encode() for event in events], streamed=True)


def _json_rendered(headers: Mapping[str, str], body: Any) -> Rendered:
    return Rendered(headers, [dumps(body).encode()])


# -- OpenAI chat completions


def _render_openai(turn: _Turn, next_id: NextId) -> Rendered:
    scripted = turn.scripted
    calls = [(call.id or next_id("call_"), call.name, call.json) for call in turn.calls]
    finish_reason = scripted.finish_reason or ("tool_calls" if calls else "stop")
    usage = {
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "total_tokens": turn.prompt_tokens + turn.completion_tokens,
    }
    completion_id = f"chatcmpl-mock-{turn.number}"
    created = int(time.time())
    model = turn.model

    if not turn.stream:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if not scripted.content and calls else scripted.content,
            "refusal": None,
        }
        if scripted.reasoning:
            message["reasoning_content"] = scripted.reasoning
        if calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in calls
            ]
        completion = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage,
        }
        return _json_rendered(JSON_HEADERS, completion)

    stream_options = turn.request.get("stream_options")
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        frame: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            frame["usage"] = None  # as the real API does on every chunk but the last
        return f"data: {dumps(frame)}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"reasoning_content": text}) for text in turn.chunks(scripted.reasoning)]
    events += [chunk({"content": text}) for text in turn.chunks(scripted.content)]
    for index, (cid, name, args) in enumerate(calls):
        start = {"index": index, "id": cid, "type": "function"}
        events.append(
            chunk({"tool_calls": [{**start, "function": {"name": name, "arguments": ""}}]})
        )
        for fragment in turn.chunks(args):
            delta = {"index": index, "function": {"arguments": fragment}}
            events.append(chunk({"tool_calls": [delta]}))
    events.append(chunk({}, finish_reason))
    if include_usage:
        usage_frame = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        events.append(f"data: {dumps(usage_frame)}\n\n")
    events.append("data: [DONE]\n\n")
    return _stream_rendered(SSE_HEADERS, events)


# -- Anthropic Messages


def _render_anthropic(turn: _Turn, next_id: NextId) -> Rendered:
    scripted = turn.scripted
    calls = [(call.id or next_id("toolu_mock_"), call) for call in turn.calls]
    stop_reason = scripted.finish_reason or ("tool_use" if calls else "end_turn")
    message_id = f"msg_mock_{turn.number}"
    signature = f"mock-signature-{turn.number}"
    # Real replies always carry some block; a bare text block when nothing else is asked.
    with_text = bool(scripted.content) or not (scripted.reasoning or calls)

    if not turn.stream:
        blocks: list[dict[str, Any]] = []
        if scripted.reasoning:
            blocks.append(
                {"type": "thinking", "thinking": scripted.reasoning, "signature": signature}
            )
        if with_text:
            blocks.append({"type": "text", "text": scripted.content})
        blocks += [
            {"type": "tool_use", "id": cid, "name": call.name, "input": call.arguments}
            for cid, call in calls
        ]
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": turn.model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": turn.prompt_tokens,
                "output_tokens": turn.completion_tokens,
            },
        }
        return _json_rendered(JSON_HEADERS, message)

    def event(name: str, data: Mapping[str, Any]) -> str:
        return f"event: {name}\ndata: {dumps(data)}\n\n"

    def block(index: int, start: Mapping[str, Any], deltas: Sequence[Mapping[str, Any]]) -> None:
        events.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        for delta in deltas:
            frame = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(event("content_block_delta", frame))
        events.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))

    start_message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": turn.prompt_tokens, "output_tokens": 1},
    }
    events = [
        event("message_start", {"type": "message_start", "message": start_message}),
        'event: ping\ndata: {"type": "ping"}\n\n',  # spaced, as the real API sends it
    ]
    index = 0
    if scripted.reasoning:
        thinking = [
            {"type": "thinking_delta", "thinking": text} for text in turn.chunks(scripted.reasoning)
        ]
        thinking.append({"type": "signature_delta", "signature": signature})
        block(index, {"type": "thinking", "thinking": "", "signature": ""}, thinking)
        index += 1
    if with_text:
        text = [{"type": "text_delta", "text": text} for text in turn.chunks(scripted.content)]
        block(index, {"type": "text", "text": ""}, text)
        index += 1
    for cid, call in calls:
        start = {"type": "tool_use", "id": cid, "name": call.name, "input": {}}
        fragments = [
            {"type": "input_json_delta", "partial_json": fragment}
            for fragment in turn.chunks(call.json)
        ]
        block(index, start, fragments)
        index += 1
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": turn.completion_tokens},
    }
    events.append(event("message_delta", delta))
    events.append(event("message_stop", {"type": "message_stop"}))
    return _stream_rendered(SSE_HEADERS, events)


# -- Gemini generateContent


def _render_gemini(turn: _Turn, *, sse: bool) -> Rendered:
    scripted = turn.scripted
    finish_reason = scripted.finish_reason or "STOP"  # also with function calls
    # Gemini counts thoughts apart from the candidates, and adds both into the total.
    thoughts = min(max(1, _words(scripted.reasoning)), turn.completion_tokens)
    usage: dict[str, int] = {
        "promptTokenCount": turn.prompt_tokens,
        "candidatesTokenCount": turn.completion_tokens - (thoughts if scripted.reasoning else 0),
        "totalTokenCount": turn.prompt_tokens + turn.completion_tokens,
    }
    if scripted.reasoning:
        usage["thoughtsTokenCount"] = thoughts
    calls: list[dict[str, Any]] = [
        {"functionCall": {"name": call.name, "args": call.arguments}} for call in turn.calls
    ]
    with_text = bool(scripted.content) or not (scripted.reasoning or calls)
    response_id = f"mock-{turn.number}"

    def response(parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
        if last:
            candidate["finishReason"] = finish_reason
        candidate["index"] = 0
        frame: dict[str, Any] = {"candidates": [candidate]}
        if last:
            frame["usageMetadata"] = usage
        frame["modelVersion"] = turn.model
        frame["responseId"] = response_id
        return frame

    if not turn.stream:
        parts: list[dict[str, Any]] = []
        if scripted.reasoning:
            parts.append({"text": scripted.reasoning, "thought": True})
        if with_text:
            parts.append({"text": scripted.content})
        parts += calls
        return _json_rendered(GEMINI_JSON_HEADERS, response(parts, last=True))

    deltas = [{"text": text, "thought": True} for text in turn.chunks(scripted.reasoning)]
    if with_text:
        deltas += [{"text": text} for text in turn.chunks(scripted.content)] or [{"text": ""}]
    deltas += calls
    frames = [dumps(response([part], i == len(deltas) - 1)) for i, part in enumerate(deltas)]
    if sse:
        # Gemini frames its events with CRLF and ends the stream without a sentinel.
        return _stream_rendered(GEMINI_SSE_HEADERS, [f"data: {frame}\r\n\r\n" for frame in frames])
    # Without ?alt=sse the stream is one JSON array, written an element at a time.
    pieces = [("[" if i == 0 else ",\r\n") + frame for i, frame in enumerate(frames)]
    pieces[-1] += "]"
    return _stream_rendered(GEMINI_JSON_HEADERS, pieces)
