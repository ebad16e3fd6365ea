"""Request encoders: a unified ``ChatRequest`` -> the JSON body one API family expects.

The manifest names the family and ``ENCODERS`` maps it to an encoder; no code looks at a
provider's name. The families:

``openai_chat``
    OpenAI chat completions and every OpenAI-compatible server (DeepSeek, Groq, vLLM...).
``anthropic_messages``
    Anthropic Messages (``POST /v1/messages``). System messages become the top-level
    ``system`` string; messages alternate strictly, so same-role neighbours are merged and
    tool results travel as ``tool_result`` blocks of a user turn; a signed reasoning is sent
    back as a ``thinking`` block; ``max_tokens`` is required (from the request, else the
    manifest default in ``EncoderOptions.defaults``); it has no native structured output,
    so a JSON ``response_format`` goes as a forced tool call (see below).
``gemini_generate``
    Gemini ``generateContent``. The model and streaming are part of the URL, so the body has
    neither; system messages become ``systemInstruction``; sampling parameters and JSON
    output (``responseJsonSchema``) live in ``generationConfig``; tool results are
    ``functionResponse`` parts matched to their call by id, else by the tool message's
    name (an id Gemini sent goes back on both parts; a generated one does not); thought signatures
    go back on their parts, the reasoning text does not.

In both, empty text is left out (the APIs reject it), an assistant turn left with nothing
to send is dropped (in ``openai_chat`` too), and a user turn left empty is an error.

Rules shared by all families:

- ``parameter_mappings`` (from the manifest) move a unified parameter on the wire. A plain
  name renames it where it is (``max_tokens`` -> ``max_completion_tokens`` on today's
  OpenAI; ``stop`` -> ``stopSequences`` stays inside Gemini's ``generationConfig``); a
  dotted name is a path from the top of the body (``generationConfig.maxOutputTokens``).
- ``extra_body`` is merged last and recursively: objects are merged key by key, anything
  else replaces what the encoder wrote. So ``{"generationConfig": {"thinkingConfig": ...}}``
  adds to Gemini's encoded temperature instead of dropping it. What the library manages
  is never replaced silently: ``model`` and ``stream`` in ``extra_body`` raise
  ``ConfigurationError``, and so does replacing any value the encoder wrote under
  ``messages``, ``contents``, ``system``, ``systemInstruction`` or ``tools`` (adding new
  keys to those objects, or setting ``tools`` when the request has none, is allowed).
- What the API cannot express raises ``InvalidRequestError`` before any HTTP call, with a
  message naming the family and the problem.
- A JSON ``response_format`` (a schema, or JSON mode) goes the way the manifest's
  ``structured_output`` section says (``EncoderOptions.structured``): in the family's
  native field, or as a forced call of a reply tool, the schema adapted to strict mode
  when asked (``_structured.encodable_request``); the family's encoder sees the result.
- ``extra_body`` may not ask for several choices (``n``, Gemini's ``candidateCount``): a
  response holds one, so that raises ``ConfigurationError`` instead of dropping the rest.
- Encoders are pure and synchronous: the request is never mutated. The Anthropic and
  Gemini encoders also copy the JSON values they take from it (tool schemas, arguments,
  ``extra_body``), so a body can be changed without touching the request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._errors import ConfigurationError, InvalidRequestError
from ._jsoncheck import json_problem
from ._structured import StructuredOutputRules, encodable_request
from ._types import ChatRequest, ContentBlock, Message, MessageRole, ToolCall, ToolDefinition

__all__ = ["ENCODERS", "EncoderOptions", "encode_request"]


@attrs.frozen
class EncoderOptions:
    """What an encoder takes from the manifest."""

    parameter_mappings: Mapping[str, str] = attrs.field(factory=dict)
    #: ask for a final usage chunk when streaming (OpenAI ``stream_options.include_usage``)
    stream_usage: bool = False
    #: manifest defaults for parameters the API requires, used when the request leaves them
    #: out (Anthropic ``max_tokens``); an encoder reads only the names its API requires
    defaults: Mapping[str, Any] = attrs.field(factory=dict)
    #: opt-in (``open_client(..., parameter_defaults=True)``): manifest defaults sent for
    #: the unified parameters (``DEFAULTABLE_PARAMETERS``) a request leaves out
    request_defaults: Mapping[str, Any] = attrs.field(factory=dict)
    #: how a JSON response format is sent (the manifest's ``structured_output``)
    structured: StructuredOutputRules = attrs.field(factory=StructuredOutputRules)


#: the unified request parameters a manifest's ``parameters.<name>.default`` can fill
DEFAULTABLE_PARAMETERS = ("temperature", "max_tokens", "top_p")


# ---------------------------------------------------------------- shared helpers

Body = dict[str, Any]
#: (wire role, parts) of one turn being assembled; same-role neighbours share one entry
Turns = list[tuple[str, list[dict[str, Any]]]]


def _role(msg: Message) -> MessageRole:
    if isinstance(msg.role, MessageRole):
        return msg.role
    try:
        return MessageRole(msg.role)
    except ValueError:
        raise InvalidRequestError(f"unknown message role {msg.role!r}") from None


def _json_copy(value: Any) -> Any:
    """A deep copy of a JSON-like value, with every mapping a dict and sequence a list."""
    if isinstance(value, Mapping):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_copy(v) for v in value]
    return value


#: Body keys the library itself manages: ``extra_body`` may never set the first two, and
#: may add to the others (new keys in their objects) but never replace what was encoded.
_ALWAYS_MANAGED = ("model", "stream")
_ENCODED_MANAGED = ("messages", "contents", "system", "systemInstruction", "tools")


def _merge_extra(body: Body, extra: Mapping[str, Any]) -> None:
    conflicts = [key for key in _ALWAYS_MANAGED if key in extra]
    for key in _ENCODED_MANAGED:
        if key in extra and key in body:
            conflicts.extend(_replaced(body[key], extra[key], key))
    if conflicts:
        names = ", ".join(repr(c) for c in conflicts)
        raise ConfigurationError(
            f"extra_body cannot replace what the library encodes: {names}; set the model"
            " with open_client(), streaming with .stream(), messages and tools with the"
            " builder (extra_body may add new keys, also inside these objects)"
        )
    _merge_into(body, extra)


def _replaced(current: Any, value: Any, path: str) -> list[str]:
    """The paths where merging ``value`` into ``current`` would replace a value."""
    if not (isinstance(current, dict) and isinstance(value, Mapping)):
        return [path]
    return [
        p for k, v in value.items() if k in current for p in _replaced(current[k], v, f"{path}.{k}")
    ]


def _merge_into(body: Body, extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge_into(current, value)
        else:
            body[key] = _json_copy(value)


def _place(
    body: Body, rename: Mapping[str, str], name: str, where: tuple[str, ...], value: Any
) -> None:
    """Write a unified parameter at its wire location ``where``, as the manifest moves it."""
    mapped = rename.get(name)
    if mapped is not None:
        where = tuple(mapped.split(".")) if "." in mapped else (*where[:-1], mapped)
    target = body
    for key in where[:-1]:
        inner = target.get(key)
        if not isinstance(inner, dict):
            inner = target[key] = {}
        target = inner
    target[where[-1]] = value


def _split_data_url(url: str, family: str) -> tuple[str | None, str] | None:
    """``data:<type>;base64,<data>`` -> (type, data); ``None`` for any other URL."""
    if not url.startswith("data:"):
        return None
    head, comma, data = url[5:].partition(",")
    params = head.split(";")
    if not comma or params[-1] != "base64":
        raise InvalidRequestError(f"{family} takes data: URLs only when they are base64")
    return params[0] or None, data


def _text_of(content: str | Sequence[ContentBlock] | None, family: str, what: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for block in content:
        if block.type != "text":
            raise InvalidRequestError(f"{family} takes only text in {what}, not {block.type}")
        texts.append(block.text or "")
    return "".join(texts)


def _add_turn(turns: Turns, role: str, parts: list[dict[str, Any]]) -> None:
    if turns and turns[-1][0] == role:
        turns[-1][1].extend(parts)
    else:
        turns.append((role, parts))


def _add_assistant_turn(turns: Turns, role: str, parts: list[dict[str, Any]]) -> None:
    # An assistant turn with nothing to send back (no text, no calls, reasoning the dialect
    # does not take) is left out rather than rejected: it carries nothing, and responses
    # can end that way. The user turns around it then merge.
    if parts:
        _add_turn(turns, role, parts)


def _check_turns(turns: Turns, family: str) -> None:
    if not turns:
        raise InvalidRequestError(f"{family} needs at least one message with content")
    for _, parts in turns:
        if not parts:
            raise InvalidRequestError(f"{family} cannot send an empty user message")


def _one_choice(body: Body, path: tuple[str, ...]) -> None:
    """Refuse asking for several choices (through ``extra_body``): a ``ChatResponse``
    holds one, and the others would be dropped without a word."""
    value: Any = body
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is not None and value != 1:
        where = "".join(f"[{key!r}]" for key in path)
        raise ConfigurationError(
            f"extra_body{where}={value!r} asks for several choices, but a response holds "
            "one: leave it at 1 and send several requests"
        )


def _tool_call_id(msg: Message) -> str:
    if not msg.tool_call_id:
        raise InvalidRequestError("a tool message needs the tool_call_id it answers")
    return msg.tool_call_id


# ---------------------------------------------------------------- openai_chat


def _check_url(url: str, family: str, schemes: tuple[str, ...]) -> str:
    """A URL the API can fetch itself; a reference to something it cannot (an upload
    handle, a local path) fails here, before any request is sent."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in schemes:
        allowed = ", ".join(f"{s}:" for s in schemes)
        raise InvalidRequestError(f"{family} cannot fetch {url!r}: it takes {allowed} URLs")
    return url


def _data_url(block: ContentBlock) -> str:
    if block.data is None:  # pragma: no cover - ContentBlock refuses a block without either
        raise InvalidRequestError(f"the {block.type} block has neither a url nor data")
    return f"data:{block.media_type or 'application/octet-stream'};base64,{block.data}"


def _openai_part(block: ContentBlock) -> dict[str, Any]:
    if block.type == "text":
        return {"type": "text", "text": block.text or ""}
    if block.type == "image":
        if block.url is not None:
            url = _check_url(block.url, "openai_chat", ("https", "http", "data"))
        else:
            url = _data_url(block)
        return {"type": "image_url", "image_url": {"url": url}}
    if block.type == "audio":
        if block.data is None:
            raise InvalidRequestError("openai_chat takes audio as base64 data, not by URL")
        subtype = (block.media_type or "audio/wav").split("/")[-1]
        fmt = {"mpeg": "mp3", "x-wav": "wav", "wave": "wav"}.get(subtype, subtype)
        return {"type": "input_audio", "input_audio": {"data": block.data, "format": fmt}}
    if block.type == "document":
        if block.data is None:
            raise InvalidRequestError("openai_chat takes documents as base64 data, not by URL")
        file: dict[str, Any] = {"file_data": _data_url(block)}
        if block.filename:
            file["filename"] = block.filename
        return {"type": "file", "file": file}
    raise InvalidRequestError(f"unknown content block type {block.type!r}")


def _arguments_json(call: ToolCall) -> str:
    problem = json_problem(call.arguments, f"tool call {call.name!r} arguments")
    if problem is not None:
        raise ConfigurationError(problem)
    return json.dumps(dict(call.arguments), ensure_ascii=False)


def _openai_message(msg: Message) -> dict[str, Any]:
    role = msg.role.value if isinstance(msg.role, MessageRole) else str(msg.role)
    out: dict[str, Any] = {"role": role}
    content = msg.content
    if content is None or isinstance(content, str):
        out["content"] = content
    else:
        out["content"] = [_openai_part(b) for b in content]
    if msg.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.raw_arguments or _arguments_json(call),
                },
            }
            for call in msg.tool_calls
        ]
    if msg.role is MessageRole.TOOL:
        if not msg.tool_call_id:
            raise InvalidRequestError("a tool message needs the tool_call_id it answers")
        out["tool_call_id"] = msg.tool_call_id
        if out["content"] is None:
            out["content"] = ""
    if msg.name and msg.role is not MessageRole.TOOL:
        out["name"] = msg.name
    if msg.extra:
        _merge_extra(out, msg.extra)
    return out


def _no_message_extra(request: ChatRequest, family: str) -> None:
    """Dialects that merge messages into turns have no one wire message to extend."""
    for i, msg in enumerate(request.messages):
        if msg.extra:
            raise InvalidRequestError(
                f"messages[{i}].extra: per-message extra fields are not supported by {family}"
                " (it merges messages into turns); use the request's extra_body"
            )


def _openai_tool(tool: ToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def encode_openai_chat(request: ChatRequest, options: EncoderOptions) -> dict[str, Any]:
    """Encode for the OpenAI chat-completions API and its compatible servers."""
    if not request.messages:
        raise InvalidRequestError("a chat request needs at least one message")
    rename = options.parameter_mappings
    # An assistant turn with nothing to send (no text, no calls: reasoning only, which
    # goes back in no field) is left out: the API rejects a null assistant content.
    messages = [
        _openai_message(m)
        for m in request.messages
        if m.role is not MessageRole.ASSISTANT or m.content or m.tool_calls
    ]
    if not messages:
        raise InvalidRequestError("openai_chat needs at least one message with content")
    body: dict[str, Any] = {"model": request.model, "messages": messages}

    def put(name: str, value: Any) -> None:
        if value is not None:
            _place(body, rename, name, (name,), value)

    put("temperature", request.temperature)
    put("max_tokens", request.max_tokens)
    put("top_p", request.top_p)
    if request.stop:
        put("stop", list(request.stop))
    if request.tools:
        put("tools", [_openai_tool(t) for t in request.tools])
    if request.tool_choice is not None:
        choice = request.tool_choice
        if choice not in ("auto", "none", "required"):
            put("tool_choice", {"type": "function", "function": {"name": choice}})
        else:
            put("tool_choice", choice)
    if request.response_format is not None:
        put("response_format", dict(request.response_format))
    if request.stream:
        body["stream"] = True
        if options.stream_usage:
            body["stream_options"] = {"include_usage": True}
    if request.extra_body:
        _merge_extra(body, request.extra_body)
        _one_choice(body, ("n",))
    return body


# ---------------------------------------------------------------- anthropic_messages

_ANTHROPIC = "anthropic_messages"


def _anthropic_source(block: ContentBlock) -> dict[str, Any]:
    media_type, data = block.media_type, block.data
    if data is None:
        if block.url is None:
            raise InvalidRequestError(f"the {block.type} block has neither a url nor data")
        inline = _split_data_url(block.url, _ANTHROPIC)
        if inline is None:
            return {"type": "url", "url": _check_url(block.url, _ANTHROPIC, ("https", "http"))}
        media_type, data = inline[0] or media_type, inline[1]
    if block.type == "document":
        media_type = media_type or "application/pdf"
        if media_type != "application/pdf":
            raise InvalidRequestError(
                f"{_ANTHROPIC} takes base64 documents as application/pdf, not {media_type}"
            )
    elif media_type is None:
        raise InvalidRequestError(f"{_ANTHROPIC} needs the media_type of base64 image data")
    return {"type": "base64", "media_type": media_type, "data": data}


def _anthropic_blocks(content: str | Sequence[ContentBlock] | None) -> list[dict[str, Any]]:
    # Empty text blocks are left out: Anthropic rejects them.
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for block in content:
        kind = block.type
        if kind == "text":
            if block.text:
                out.append({"type": "text", "text": block.text})
        elif kind in ("image", "document"):
            encoded: dict[str, Any] = {"type": kind, "source": _anthropic_source(block)}
            if kind == "document" and block.filename:
                encoded["title"] = block.filename
            out.append(encoded)
        elif kind == "audio":
            raise InvalidRequestError(f"{_ANTHROPIC} cannot send audio: Anthropic takes no audio")
        else:
            raise InvalidRequestError(f"unknown content block type {kind!r}")
    return out


def _anthropic_tool_use(call: ToolCall) -> dict[str, Any]:
    if not call.id:
        raise InvalidRequestError(
            f"{_ANTHROPIC} needs the id of every tool call (tool call {call.name!r} has none)"
        )
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.name,
        "input": _json_copy(call.arguments),
    }


def _anthropic_assistant(msg: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # Only signed reasoning goes back: Anthropic checks the signature, and with extended
    # thinking on it wants the thinking block before the tool_use blocks. The signature is
    # what counts, so a signed block goes back even when its text came back empty.
    if msg.reasoning_signature:
        out.append(
            {
                "type": "thinking",
                "thinking": msg.reasoning or "",
                "signature": msg.reasoning_signature,
            }
        )
    content = msg.content
    if content is not None and not isinstance(content, str):
        content = _text_of(content, _ANTHROPIC, "assistant messages")
    out.extend(_anthropic_blocks(content))
    out.extend(_anthropic_tool_use(call) for call in msg.tool_calls)
    return out


def _anthropic_tool_result(msg: Message) -> dict[str, Any]:
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_call_id(msg)}
    content = msg.content
    if isinstance(content, str):
        if content:
            result["content"] = content
    elif content is not None:
        blocks = _anthropic_blocks(content)
        if blocks:
            result["content"] = blocks
    return result


def _anthropic_tool_choice(choice: str) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def _anthropic_tool(tool: ToolDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = _json_copy(tool.parameters)
    return out


def _anthropic_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_results_first(part: dict[str, Any]) -> bool:
    return bool(part["type"] != "tool_result")


def encode_anthropic_messages(request: ChatRequest, options: EncoderOptions) -> dict[str, Any]:
    """Encode for the Anthropic Messages API (``POST /v1/messages``)."""
    if not request.messages:
        raise InvalidRequestError("a chat request needs at least one message")
    _no_message_extra(request, _ANTHROPIC)
    system: list[str] = []
    turns: Turns = []
    for msg in request.messages:
        role = _role(msg)
        if role is MessageRole.SYSTEM:
            text = _text_of(msg.content, _ANTHROPIC, "system messages")
            if text:
                system.append(text)
        elif role is MessageRole.USER:
            _add_turn(turns, "user", _anthropic_blocks(msg.content))
        elif role is MessageRole.TOOL:
            _add_turn(turns, "user", [_anthropic_tool_result(msg)])
        else:
            _add_assistant_turn(turns, "assistant", _anthropic_assistant(msg))
    _check_turns(turns, _ANTHROPIC)
    messages = []
    for wire_role, parts in turns:
        if wire_role == "user" and len(parts) > 1:
            # Anthropic wants a turn's tool_result blocks before any other content.
            parts.sort(key=_tool_results_first)
        messages.append({"role": wire_role, "content": _anthropic_content(parts)})

    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = options.defaults.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequestError(
            f"{_ANTHROPIC} requires max_tokens: set it on the request, "
            "or give the manifest's max_tokens parameter a default"
        )
    rename = options.parameter_mappings
    body: Body = {"model": request.model}
    _place(body, rename, "max_tokens", ("max_tokens",), max_tokens)
    if system:
        body["system"] = "\n\n".join(system)
    body["messages"] = messages
    if request.temperature is not None:
        _place(body, rename, "temperature", ("temperature",), request.temperature)
    if request.top_p is not None:
        _place(body, rename, "top_p", ("top_p",), request.top_p)
    if request.stop:
        _place(body, rename, "stop", ("stop_sequences",), list(request.stop))
    if request.tools:
        _place(body, rename, "tools", ("tools",), [_anthropic_tool(t) for t in request.tools])
    if request.tool_choice is not None:
        choice = _anthropic_tool_choice(request.tool_choice)
        _place(body, rename, "tool_choice", ("tool_choice",), choice)
    fmt = request.response_format
    if fmt is not None and fmt.get("type") != "text":
        raise InvalidRequestError(
            f"{_ANTHROPIC} has no native response_format ({fmt.get('type')!r}): structured"
            " output goes as a forced tool call, which the manifest's structured_output"
            " section selects with schema: tool and json_mode: tool"
        )
    if request.stream:
        body["stream"] = True
    if request.extra_body:
        _merge_extra(body, request.extra_body)
    return body


# ---------------------------------------------------------------- gemini_generate

_GEMINI = "gemini_generate"

#: a URL's extension -> the media type Gemini's ``fileData`` needs, when the block has none
_MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
}


def _media_type_from_url(url: str) -> str | None:
    path = url.split("#", 1)[0].split("?", 1)[0]
    name = path.rsplit("/", 1)[-1]
    _, dot, extension = name.rpartition(".")
    return _MEDIA_TYPES.get(extension.lower()) if dot else None


def _gemini_media(block: ContentBlock) -> dict[str, Any]:
    kind = block.type
    media_type, data = block.media_type, block.data
    if data is None:
        if block.url is None:
            raise InvalidRequestError(f"the {kind} block has neither a url nor data")
        inline = _split_data_url(block.url, _GEMINI)
        if inline is None:
            _check_url(block.url, _GEMINI, ("https", "http", "gs"))
            media_type = media_type or _media_type_from_url(block.url)
            if media_type is None:
                raise InvalidRequestError(
                    f"{_GEMINI} needs a media_type for {kind} URLs whose extension names none"
                )
            return {"fileData": {"mimeType": media_type, "fileUri": block.url}}
        media_type, data = inline[0] or media_type, inline[1]
    if media_type is None:
        if kind != "document":
            raise InvalidRequestError(f"{_GEMINI} needs the media_type of base64 {kind} data")
        media_type = "application/pdf"
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _gemini_parts(content: str | Sequence[ContentBlock] | None) -> list[dict[str, Any]]:
    # Empty text parts are left out: Gemini rejects them.
    if content is None or isinstance(content, str):
        return [{"text": content}] if content else []
    out: list[dict[str, Any]] = []
    for block in content:
        if block.type == "text":
            if block.text:
                out.append({"text": block.text})
        elif block.type in ("image", "audio", "document"):
            out.append(_gemini_media(block))
        else:
            raise InvalidRequestError(f"unknown content block type {block.type!r}")
    return out


def _gemini_function_call(call: ToolCall) -> dict[str, Any]:
    function: dict[str, Any] = {"name": call.name, "args": _json_copy(call.arguments)}
    if call.id and not call.id_generated:
        function = {"id": call.id, **function}  # Gemini's own id goes back with the call
    part: dict[str, Any] = {"functionCall": function}
    if call.signature:
        part["thoughtSignature"] = call.signature
    return part


def _gemini_function_response(msg: Message, calls: Mapping[str, ToolCall]) -> dict[str, Any]:
    # A result is matched to its call by id (the call keeps the function name, and Gemini's
    # own id goes back with the result), falling back to the tool message's name.
    call = calls.get(msg.tool_call_id) if msg.tool_call_id else None
    name = call.name if call is not None else msg.name
    if not name:
        if msg.tool_call_id:
            raise InvalidRequestError(
                f"{_GEMINI} cannot match tool result {msg.tool_call_id!r} to a function:"
                " no earlier assistant turn has a tool call with that id; send the"
                " assistant turn with its tool_calls before the result, or set the tool"
                " message's name"
            )
        raise InvalidRequestError(
            f"{_GEMINI} needs the function name of a tool result without tool_call_id:"
            " set the tool message's name"
        )
    text = _text_of(msg.content, _GEMINI, "tool results")
    response: Any = None
    try:
        response = json.loads(text)
    except (ValueError, RecursionError):
        pass
    if not isinstance(response, dict):
        response = {"result": text}
    function: dict[str, Any] = {"name": name, "response": response}
    if call is not None and call.id and not call.id_generated:
        function = {"id": call.id, **function}
    return {"functionResponse": function}


def _gemini_tool(tool: ToolDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    # A function without arguments goes without parameters: Gemini rejects an object
    # schema whose properties are empty.
    params = tool.parameters
    if params.get("properties") or str(params.get("type", "object")).lower() != "object":
        out["parameters"] = _json_copy(params)
    return out


def _gemini_tool_config(choice: str) -> dict[str, Any]:
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    mode = modes.get(choice)
    if mode is not None:
        return {"functionCallingConfig": {"mode": mode}}
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice]}}


def _gemini_response_format(fmt: Mapping[str, Any], body: Body) -> None:
    """OpenAI-style ``response_format`` -> JSON mode, with ``responseJsonSchema``.

    ``responseJsonSchema`` takes standard JSON Schema as written for other APIs
    (``additionalProperties``, ``$ref``...); ``responseSchema`` takes only Gemini's OpenAPI
    subset, which would reject many schemas that work elsewhere.
    """
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind not in ("json_object", "json_schema"):
        raise InvalidRequestError(f"{_GEMINI} cannot encode response_format {kind!r}")
    config = body.setdefault("generationConfig", {})
    config["responseMimeType"] = "application/json"
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise InvalidRequestError(
                f"{_GEMINI} needs response_format json_schema.schema to be a JSON schema object"
            )
        config["responseJsonSchema"] = _json_copy(schema)


def encode_gemini_generate(request: ChatRequest, options: EncoderOptions) -> dict[str, Any]:
    """Encode for Gemini ``generateContent`` (and ``streamGenerateContent``: same body)."""
    if not request.messages:
        raise InvalidRequestError("a chat request needs at least one message")
    _no_message_extra(request, "gemini_generate")
    system: list[str] = []
    turns: Turns = []
    calls: dict[str, ToolCall] = {}  # tool call id -> the call, for the results
    for msg in request.messages:
        role = _role(msg)
        if role is MessageRole.SYSTEM:
            text = _text_of(msg.content, _GEMINI, "system messages")
            if text:
                system.append(text)
        elif role is MessageRole.USER:
            _add_turn(turns, "user", _gemini_parts(msg.content))
        elif role is MessageRole.TOOL:
            _add_turn(turns, "user", [_gemini_function_response(msg, calls)])
        else:
            # Reasoning text is not sent back: Gemini keeps its context in the signatures,
            # which go back on the part they came with (the text's is on its last part).
            parts = _gemini_parts(msg.content)
            if msg.reasoning_signature and parts and "text" in parts[-1]:
                parts[-1]["thoughtSignature"] = msg.reasoning_signature
            for call in msg.tool_calls:
                if call.id:
                    calls[call.id] = call
                parts.append(_gemini_function_call(call))
            _add_assistant_turn(turns, "model", parts)
    _check_turns(turns, _GEMINI)

    rename = options.parameter_mappings
    body: Body = {}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    body["contents"] = [{"role": wire_role, "parts": parts} for wire_role, parts in turns]
    if request.tools:
        declarations = [_gemini_tool(t) for t in request.tools]
        _place(body, rename, "tools", ("tools",), [{"functionDeclarations": declarations}])
    if request.tool_choice is not None:
        config = _gemini_tool_config(request.tool_choice)
        _place(body, rename, "tool_choice", ("toolConfig",), config)
    if request.temperature is not None:
        where = ("generationConfig", "temperature")
        _place(body, rename, "temperature", where, request.temperature)
    if request.top_p is not None:
        _place(body, rename, "top_p", ("generationConfig", "topP"), request.top_p)
    if request.max_tokens is not None:
        where = ("generationConfig", "maxOutputTokens")
        _place(body, rename, "max_tokens", where, request.max_tokens)
    if request.stop:
        _place(body, rename, "stop", ("generationConfig", "stopSequences"), list(request.stop))
    if request.response_format is not None:
        _gemini_response_format(request.response_format, body)
    if request.extra_body:
        _merge_extra(body, request.extra_body)
        _one_choice(body, ("generationConfig", "candidateCount"))
    return body


# ---------------------------------------------------------------- dispatch

Encoder = Callable[[ChatRequest, EncoderOptions], dict[str, Any]]

#: API family -> encoder. A manifest selects one through its chat endpoint's ``adapter``.
ENCODERS: Mapping[str, Encoder] = {
    "openai_chat": encode_openai_chat,
    "anthropic_messages": encode_anthropic_messages,
    "gemini_generate": encode_gemini_generate,
}


def encode_request(family: str, request: ChatRequest, options: EncoderOptions) -> dict[str, Any]:
    try:
        encoder = ENCODERS[family]
    except KeyError:
        raise InvalidRequestError(f"no request encoder for API family {family!r}") from None
    fill = {
        name: value
        for name, value in options.request_defaults.items()
        if name in DEFAULTABLE_PARAMETERS and getattr(request, name) is None
    }
    if fill:
        request = attrs.evolve(request, **fill)
    if request.response_format is not None:
        request = encodable_request(request, family, options.structured)
    return encoder(request, options)
