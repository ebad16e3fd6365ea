"""Built-in event-map rules for the response formats a manifest may declare without rules.

The spec's manifests name their wire format (v1 ``response_format: openai_style``, v1.5
``api_families.chat.response_format``, v2 ``streaming.decoder.strategy: openai_chat``) but
most of them give no rules for a non-streaming body, and some leave kinds out of their
stream ``event_map`` (usage, errors). The rules here are data, compiled like a manifest's
own, keyed by the format: never by a provider. They are the rules of the manifests shipped
in ``protocols/`` for the same formats.

How they complete a manifest (``complete_manifest_rules``), only when a format is declared:

- no ``response`` section: the format's response rules;
- a ``streaming`` section: for each kind of event (content, usage, ...) its ``event_map``
  emits nowhere, the format's stream rules for that kind. A kind the manifest maps is
  left to the manifest's rules alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["RESPONSE_FORMATS", "RESPONSE_RULES", "STREAM_RULES", "declared_format"]

#: declared response-format / decoder-strategy spellings -> the format's rules below
RESPONSE_FORMATS: Mapping[str, str] = {
    "openai": "openai_chat",
    "openai_style": "openai_chat",
    "openai_chat": "openai_chat",
    "openai_compatible": "openai_chat",
    "chat_completions": "openai_chat",
    "anthropic": "anthropic_messages",
    "anthropic_style": "anthropic_messages",
    "anthropic_messages": "anthropic_messages",
    "anthropic_event_stream": "anthropic_messages",
    "gemini": "gemini_generate",
    "gemini_style": "gemini_generate",
    "gemini_generate": "gemini_generate",
}


def declared_format(data: Mapping[str, Any]) -> str | None:
    """The response format a raw manifest declares (a key of the rule tables), if any.

    Tried in order: v1 top-level ``response_format``, v1.5 ``api_families.chat.
    response_format``, v2 ``streaming.decoder.strategy``. A declared spelling this table
    does not know gives no format (and so no built-in rules).
    """
    candidates: list[Any] = [data.get("response_format")]
    families = data.get("api_families")
    chat = families.get("chat") if isinstance(families, Mapping) else None
    if isinstance(chat, Mapping):
        candidates.append(chat.get("response_format"))
    streaming = data.get("streaming")
    decoder = streaming.get("decoder") if isinstance(streaming, Mapping) else None
    if isinstance(decoder, Mapping):
        candidates.append(decoder.get("strategy"))
    for value in candidates:
        if isinstance(value, str) and value:
            return RESPONSE_FORMATS.get(value)
    return None


_OPENAI_USAGE = {
    "input_tokens": "$.usage.prompt_tokens",
    "output_tokens": "$.usage.completion_tokens",
    "cached_input_tokens": "$.usage.prompt_tokens_details.cached_tokens",
    "reasoning_tokens": "$.usage.completion_tokens_details.reasoning_tokens",
}
_ANTHROPIC_USAGE = {
    "input_tokens": [
        "$.usage.input_tokens",
        "$.usage.cache_read_input_tokens",
        "$.usage.cache_creation_input_tokens",
    ],
    "output_tokens": "$.usage.output_tokens",
    "cached_input_tokens": "$.usage.cache_read_input_tokens",
    "reasoning_tokens": "$.usage.output_tokens_details.thinking_tokens",
}
#: Gemini streams whole response objects: one rule set serves both tables.
_GEMINI_RULES: list[dict[str, Any]] = [
    {"emit": "StreamError", "match": "exists($.error)"},
    {"emit": "ResponseMetadata", "extract": {"model": "$.modelVersion", "id": "$.responseId"}},
    {
        "emit": "ContentDelta",
        "extract": {"text": "$.candidates[0].content.parts[?(@.thought != true)].text"},
    },
    {
        "emit": "ReasoningDelta",
        "extract": {
            "text": "$.candidates[0].content.parts[?(@.thought == true)].text",
            "signature": "$.candidates[0].content.parts[?(!@.functionCall)].thoughtSignature",
        },
    },
    {
        "emit": "ToolCall",
        "each": "$.candidates[0].content.parts[?(@.functionCall)]",
        "extract": {
            "id": "$.functionCall.id",
            "name": "$.functionCall.name",
            "arguments": "$.functionCall.args",
            "signature": "$.thoughtSignature",
        },
    },
    {
        "emit": "Finished",
        "extract": {
            "finish_reason": ["$.candidates[0].finishReason", "$.promptFeedback.blockReason"]
        },
    },
    {
        "emit": "Usage",
        "match": "exists($.usageMetadata.promptTokenCount)",
        "extract": {
            "input_tokens": "$.usageMetadata.promptTokenCount",
            "output_tokens": [
                "$.usageMetadata.candidatesTokenCount",
                "$.usageMetadata.thoughtsTokenCount",
            ],
            "reasoning_tokens": "$.usageMetadata.thoughtsTokenCount",
            "cached_input_tokens": "$.usageMetadata.cachedContentTokenCount",
        },
    },
]

STREAM_RULES: Mapping[str, list[dict[str, Any]]] = {
    "openai_chat": [
        {"emit": "StreamError", "match": "exists($.error)"},
        {"emit": "ResponseMetadata", "extract": {"model": "$.model", "id": "$.id"}},
        {"emit": "ContentDelta", "extract": {"text": "$.choices[0].delta.content"}},
        {"emit": "RefusalDelta", "extract": {"text": "$.choices[0].delta.refusal"}},
        {
            "emit": "ReasoningDelta",
            "extract": {
                "text": ["$.choices[0].delta.reasoning_content", "$.choices[0].delta.reasoning"]
            },
        },
        {
            "emit": "ToolCall",
            "each": "$.choices[0].delta.tool_calls[*]",
            "extract": {
                "index": "$.index",
                "id": "$.id",
                "name": "$.function.name",
                "arguments": "$.function.arguments",
            },
        },
        {"emit": "Finished", "extract": {"finish_reason": "$.choices[0].finish_reason"}},
        {
            "emit": "Usage",
            "match": "$.usage",
            "extract": _OPENAI_USAGE,
        },
    ],
    "anthropic_messages": [
        {"emit": "StreamError", "match": "$.type == 'error'"},
        {"emit": "KeepAlive", "match": "$.type == 'ping'"},
        {
            "emit": "ResponseMetadata",
            "match": "$.type == 'message_start'",
            "extract": {"model": "$.message.model", "id": "$.message.id"},
        },
        {
            "emit": "Usage",
            "match": "$.type == 'message_start'",
            "extract": {
                "input_tokens": [
                    "$.message.usage.input_tokens",
                    "$.message.usage.cache_read_input_tokens",
                    "$.message.usage.cache_creation_input_tokens",
                ],
                "output_tokens": "$.message.usage.output_tokens",
                "cached_input_tokens": "$.message.usage.cache_read_input_tokens",
            },
        },
        {
            "emit": "ToolCall",
            "match": "$.content_block.type == 'tool_use'",
            "extract": {
                "index": "$.index",
                "id": "$.content_block.id",
                "name": "$.content_block.name",
            },
        },
        {
            "emit": "ContentDelta",
            "match": "$.delta.type == 'text_delta'",
            "extract": {"text": "$.delta.text"},
        },
        {
            "emit": "ReasoningDelta",
            "match": "$.delta.type == 'thinking_delta'",
            "extract": {"text": "$.delta.thinking"},
        },
        {
            "emit": "ReasoningDelta",
            "match": "$.delta.type == 'signature_delta'",
            "extract": {"signature": "$.delta.signature"},
        },
        {
            "emit": "ToolCall",
            "match": "$.delta.type == 'input_json_delta'",
            "extract": {"index": "$.index", "arguments": "$.delta.partial_json"},
        },
        {
            "emit": "ToolCallEnded",
            "match": "$.type == 'content_block_stop'",
            "extract": {"index": "$.index"},
        },
        {
            "emit": "Finished",
            "match": "$.type == 'message_delta'",
            "extract": {"finish_reason": "$.delta.stop_reason"},
        },
        {
            "emit": "Usage",
            "match": "$.type == 'message_delta'",
            "extract": _ANTHROPIC_USAGE,
        },
    ],
    "gemini_generate": _GEMINI_RULES,
}
RESPONSE_RULES: Mapping[str, list[dict[str, Any]]] = {
    "openai_chat": [
        {"emit": "ResponseMetadata", "extract": {"model": "$.model", "id": "$.id"}},
        {"emit": "ContentDelta", "extract": {"text": "$.choices[0].message.content"}},
        {"emit": "RefusalDelta", "extract": {"text": "$.choices[0].message.refusal"}},
        {
            "emit": "ReasoningDelta",
            "extract": {
                "text": ["$.choices[0].message.reasoning_content", "$.choices[0].message.reasoning"]
            },
        },
        {
            "emit": "ToolCall",
            "each": "$.choices[0].message.tool_calls[*]",
            "extract": {
                "id": "$.id",
                "name": "$.function.name",
                "arguments": "$.function.arguments",
            },
        },
        {"emit": "Finished", "extract": {"finish_reason": "$.choices[0].finish_reason"}},
        {
            "emit": "Usage",
            "match": "$.usage",
            "extract": _OPENAI_USAGE,
        },
    ],
    "anthropic_messages": [
        {"emit": "StreamError", "match": "$.type == 'error'"},
        {"emit": "ResponseMetadata", "extract": {"model": "$.model", "id": "$.id"}},
        {"emit": "ContentDelta", "extract": {"text": "$.content[?(@.type == 'text')].text"}},
        {
            "emit": "ReasoningDelta",
            "extract": {
                "text": "$.content[?(@.type == 'thinking')].thinking",
                "signature": "$.content[?(@.type == 'thinking')].signature",
            },
        },
        {
            "emit": "ToolCall",
            "each": "$.content[?(@.type == 'tool_use')]",
            "extract": {"id": "$.id", "name": "$.name", "arguments": "$.input"},
        },
        {"emit": "Finished", "extract": {"finish_reason": "$.stop_reason"}},
        {
            "emit": "Usage",
            "match": "$.usage",
            "extract": _ANTHROPIC_USAGE,
        },
    ],
    "gemini_generate": _GEMINI_RULES,
}
