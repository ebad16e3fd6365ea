"""Request encoders: a unified ``ChatRequest`` -> the JSON body one API family expects.

The manifest names the family (``openai_chat`` for OpenAI and every OpenAI-compatible
server); the manifest's ``parameter_mappings`` rename unified parameters where a provider
spells them differently (``max_tokens`` -> ``max_completion_tokens`` on today's OpenAI).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._errors import InvalidRequestError
from .._types import ChatRequest, ContentBlock, Message, MessageRole, ToolDefinition

__all__ = ["ENCODERS", "EncoderOptions", "encode_request"]


@attrs.frozen
class EncoderOptions:
    """What an encoder takes from the manifest."""

    parameter_mappings: Mapping[str, str] = attrs.field(factory=dict)
    #: ask for a final usage chunk when streaming (OpenAI ``stream_options.include_usage``)
    stream_usage: bool = False


def _data_url(block: ContentBlock) -> str:
    return f"data:{block.media_type or 'application/octet-stream'};base64,{block.data}"


def _openai_part(block: ContentBlock) -> dict[str, Any]:
    if block.type == "text":
        return {"type": "text", "text": block.text or ""}
    if block.type == "image":
        url = block.url if block.url is not None else _data_url(block)
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
                    "arguments": call.raw_arguments
                    or json.dumps(dict(call.arguments), ensure_ascii=False),
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
    return out


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
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_openai_message(m) for m in request.messages],
    }

    def put(name: str, value: Any) -> None:
        if value is not None:
            body[rename.get(name, name)] = value

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
        body.update(request.extra_body)
    return body


Encoder = Callable[[ChatRequest, EncoderOptions], dict[str, Any]]

#: API family -> encoder. A manifest selects one through its chat endpoint's ``adapter``.
ENCODERS: Mapping[str, Encoder] = {"openai_chat": encode_openai_chat}


def encode_request(family: str, request: ChatRequest, options: EncoderOptions) -> dict[str, Any]:
    try:
        encoder = ENCODERS[family]
    except KeyError:
        raise InvalidRequestError(f"no request encoder for API family {family!r}") from None
    return encoder(request, options)
