"""What a test scripts the mock to say: ``ScriptedReply`` and ``ScriptedToolCall``.

Plain data, apart from the server (``_mock``) that queues them and the dialects
(``_dialects``) that render them, so that both can import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import attrs

__all__ = ["ScriptedReply", "ScriptedToolCall"]


def positive(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


def non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


#: Header values may be a list: one header line per item.
HeadersSpec: TypeAlias = Mapping[str, str | Sequence[str]]


@attrs.frozen
class ScriptedToolCall:
    """A tool call a ``ScriptedReply`` makes; ``id`` defaults to a generated ``call_<n>``."""

    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    id: str | None = None


@attrs.frozen
class ScriptedReply:
    """A model turn rendered per request in the dialect the request path names.

    The same fields render as OpenAI chat completions, Anthropic Messages or Gemini
    generateContent (see ``MockProvider``), as one JSON object or, when the request asks
    for a stream (``"stream": true``, or Gemini's ``:streamGenerateContent``), as that
    provider's own stream: reasoning first, then content, in pieces of ``chunk_size``
    characters, then the tool calls, the finish reason and usage::

        ScriptedReply(content="It is sunny.")
        ScriptedReply(tool_calls=[("get_weather", {"city": "Paris"})])
        ScriptedReply(content="slow", delay_between_chunks=0.1, close_after_bytes=300)

    - OpenAI: ``reasoning`` is ``reasoning_content``; a usage chunk is sent if
      ``stream_options.include_usage`` was asked for; the stream ends with
      ``data: [DONE]``. Tool calls get ids ``call_<n>``.
    - Anthropic: ``reasoning`` is a thinking block (with a mock signature), tool calls are
      ``tool_use`` blocks with ids ``toolu_mock_<n>``; streams are the real named events
      (``message_start``, ``ping``, ``content_block_*``, ``message_delta``,
      ``message_stop``). Stop reason ``end_turn``, or ``tool_use`` with tool calls.
    - Gemini: ``reasoning`` is ``thought`` parts, tool calls are whole ``functionCall``
      parts without ids; streams are ``data:`` events framed with CRLF, no sentinel, the
      last carrying ``finishReason`` and ``usageMetadata``. Finish reason ``STOP``, also
      with function calls. Without ``?alt=sse`` a stream is a JSON array, as Gemini sends.

    ``finish_reason`` is sent verbatim instead of the dialect's default. ``usage`` is
    ``(input_tokens, output_tokens)``; by default both are rough word counts, and output
    includes reasoning (Gemini reports the reasoning words as ``thoughtsTokenCount`` and
    the rest of the output as ``candidatesTokenCount``). ``model`` overrides the model the
    reply names (by default the request's: its body's ``model``, or Gemini's URL path).
    An explicit ``ScriptedToolCall.id`` is used by OpenAI and Anthropic; Gemini has none.
    The fault knobs mean the same as on ``Reply`` and apply to the rendered body.
    """

    content: str = ""
    reasoning: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any]] | ScriptedToolCall] = ()
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    chunk_size: int = attrs.field(default=8, validator=positive)
    model: str | None = None
    headers: HeadersSpec = attrs.field(factory=dict)
    delay_before_headers: float = attrs.field(default=0, validator=non_negative)
    delay_between_chunks: float = attrs.field(default=0, validator=non_negative)
    close_after_bytes: int | None = attrs.field(default=None, validator=non_negative)
    stall_after_bytes: int | None = attrs.field(default=None, validator=non_negative)
