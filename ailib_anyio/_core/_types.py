"""The unified data model: messages, tools, requests, responses and stream events.

Everything here is plain attrs data with no I/O, so the sans-IO core, the client and
users all share one vocabulary whatever the provider's wire format is.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ._cost import CostEstimate, ModelPricing, cost_of_usage
from ._display import response_html, response_markdown
from ._errors import ConfigurationError
from ._jsoncheck import check_json

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "ContentBlock",
    "ContentDelta",
    "FinishReason",
    "Finished",
    "Message",
    "MessageRole",
    "RateLimitSnapshot",
    "ReasoningDelta",
    "RefusalDelta",
    "StreamingEvent",
    "ToolCall",
    "ToolCallCompleted",
    "ToolCallDelta",
    "ToolCallStarted",
    "ToolChoice",
    "ToolDefinition",
    "Usage",
]


class MessageRole(str, enum.Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@attrs.frozen
class ContentBlock:
    """One part of a multimodal message: text, an image, audio or a document.

    Build them with the class methods::

        ContentBlock.from_text("Describe this:")
        ContentBlock.image_url("https://example.com/cat.png")
        ContentBlock.image_base64(b"<png bytes>", "image/png")

    A text block needs ``text``; an image, audio or document block needs a ``url`` or
    ``data`` (base64): anything else raises ``ConfigurationError`` here.
    """

    type: Literal["text", "image", "audio", "document"]
    text: str | None = None
    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    filename: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.type not in _BLOCK_TYPES:
            raise ConfigurationError(
                f"ContentBlock type must be one of {', '.join(_BLOCK_TYPES)}, got {self.type!r}"
            )
        for name in ("text", "url", "data", "media_type", "filename"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(
                    f"ContentBlock {name} must be a string, got {type(value).__name__}"
                )
        if self.type == "text":
            if self.text is None:
                raise ConfigurationError("ContentBlock(type='text') needs text, got None")
        elif self.url is None and self.data is None:
            raise ConfigurationError(
                f"ContentBlock(type={self.type!r}) needs a url or data, got neither"
            )

    @classmethod
    def from_text(cls, text: str) -> ContentBlock:
        return cls(type="text", text=text)

    @classmethod
    def image_url(cls, url: str) -> ContentBlock:
        return cls(type="image", url=url)

    @classmethod
    def image_base64(cls, data: str | bytes, media_type: str = "image/png") -> ContentBlock:
        return cls(type="image", data=_b64(data), media_type=media_type)

    @classmethod
    def audio_base64(cls, data: str | bytes, media_type: str = "audio/wav") -> ContentBlock:
        return cls(type="audio", data=_b64(data), media_type=media_type)

    @classmethod
    def document_url(cls, url: str, media_type: str = "application/pdf") -> ContentBlock:
        return cls(type="document", url=url, media_type=media_type)

    @classmethod
    def document_base64(
        cls, data: str | bytes, media_type: str = "application/pdf", filename: str | None = None
    ) -> ContentBlock:
        return cls(type="document", data=_b64(data), media_type=media_type, filename=filename)


_BLOCK_TYPES = ("text", "image", "audio", "document")


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data).decode("ascii") if isinstance(data, bytes) else data


def _role(value: Any) -> MessageRole:
    if isinstance(value, MessageRole):
        return value
    try:
        return MessageRole(value)
    except ValueError:
        roles = ", ".join(repr(r.value) for r in MessageRole)
        raise ConfigurationError(f"role must be one of {roles}, got {value!r}") from None


def _check_content(_inst: object, _attr: object, value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, (list, tuple)):
        for i, block in enumerate(value):
            if not isinstance(block, ContentBlock):
                raise ConfigurationError(
                    f"content[{i}] must be a ContentBlock, got {type(block).__name__}"
                )
        return
    raise ConfigurationError(
        "content must be a string or a list of ContentBlock, got " + type(value).__name__
    )


def _optional_str(_inst: object, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{attr.name} must be a string, got {type(value).__name__}")


@attrs.frozen
class ToolCall:
    """A tool call the model asked for; ``arguments`` is the parsed JSON object.

    ``raw_arguments`` keeps the exact text the provider sent; when it is not valid JSON,
    ``arguments`` is empty and ``parse_error`` says why, so nothing is lost.
    """

    id: str | None
    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    raw_arguments: str = ""
    parse_error: str | None = None
    #: an opaque signature the provider attached to the call (Gemini ``thoughtSignature``),
    #: to be sent back with it in the next turn
    signature: str | None = None
    #: the provider sent no id, so the library made ``id`` up (``call_<hex>``, as the
    #: manifest's ``tooling.generate_missing_ids`` asks): it pairs the call with its result
    #: in the next turn, and dialects that pair them by name do not send it back
    id_generated: bool = False

    @property
    def function_name(self) -> str:
        return self.name


@attrs.frozen
class Message:
    """One chat message. ``content`` is a string or a list of content blocks."""

    role: MessageRole = attrs.field(converter=_role)
    content: str | Sequence[ContentBlock] | None = attrs.field(
        default=None, validator=_check_content
    )
    tool_calls: Sequence[ToolCall] = ()
    tool_call_id: str | None = attrs.field(default=None, validator=_optional_str)
    name: str | None = attrs.field(default=None, validator=_optional_str)
    #: an assistant turn's reasoning and its signature, sent back where a dialect needs it
    reasoning: str | None = None
    reasoning_signature: str | None = None
    #: fields added to this message as sent, over the encoder's own (``openai_chat`` only:
    #: Mistral's and DeepSeek's ``prefix: true``, per-message ``metadata``...)
    extra: Mapping[str, Any] | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(MessageRole.SYSTEM, content)

    @classmethod
    def user(cls, content: str | Sequence[ContentBlock]) -> Message:
        return cls(MessageRole.USER, content)

    @classmethod
    def assistant(
        cls,
        content: str | None = None,
        tool_calls: Sequence[ToolCall] = (),
        *,
        reasoning: str | None = None,
        reasoning_signature: str | None = None,
    ) -> Message:
        return cls(
            MessageRole.ASSISTANT,
            content,
            tool_calls=tuple(tool_calls),
            reasoning=reasoning,
            reasoning_signature=reasoning_signature,
        )

    @classmethod
    def tool(cls, tool_call_id: str, content: str, name: str | None = None) -> Message:
        return cls(MessageRole.TOOL, content, tool_call_id=tool_call_id, name=name)

    @classmethod
    def user_with_image(cls, text: str, image_url: str) -> Message:
        return cls(
            MessageRole.USER, (ContentBlock.from_text(text), ContentBlock.image_url(image_url))
        )


@attrs.frozen
class ToolDefinition:
    """A function the model may call; ``parameters`` is a JSON schema object."""

    name: str
    description: str | None = attrs.field(default=None, validator=_optional_str)
    parameters: Mapping[str, Any] = attrs.field(
        factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"a tool's name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.parameters, Mapping):
            raise ConfigurationError(
                f"tool {self.name!r} parameters must be a JSON schema object (a mapping), "
                f"got {type(self.parameters).__name__}"
            )
        check_json(f"tool {self.name!r} parameters", self.parameters)

    @classmethod
    def from_function(
        cls,
        name: str,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> ToolDefinition:
        if parameters is None:
            return cls(name, description)
        return cls(name, description, parameters)


#: ``"auto"``, ``"none"``, ``"required"``, or the name of one tool the model must call.
ToolChoice = Literal["auto", "none", "required"] | str


@attrs.frozen
class ChatRequest:
    """A provider-neutral chat request, as the builder assembles it.

    ``response_format`` is OpenAI-shaped (``{"type": "json_object"}``, ``{"type":
    "json_schema", "json_schema": {"name": ..., "schema": {...}}}``); each encoder sends
    it the way its manifest's ``structured_output`` says. ``output_type`` is the attrs
    class the reply is structured into (``ChatResponse.parsed``), whose JSON schema is the
    one in ``response_format``.
    """

    model: str
    messages: Sequence[Message]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: Sequence[str] = ()
    tools: Sequence[ToolDefinition] = ()
    tool_choice: ToolChoice | None = None
    response_format: Mapping[str, Any] | None = None
    extra_body: Mapping[str, Any] | None = None
    stream: bool = False
    output_type: type | None = None


@attrs.frozen
class Usage:
    """Token usage; also yielded as a stream event when the provider reports it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


NormalizedFinish = Literal["stop", "length", "tool_calls", "content_filter", "other"]


@attrs.frozen
class FinishReason:
    """Why generation ended: ``normalized`` is one of five values, ``raw`` is the provider's."""

    normalized: NormalizedFinish
    raw: str | None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.normalized == other
        if isinstance(other, FinishReason):
            return (self.normalized, self.raw) == (other.normalized, other.raw)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.normalized)

    def __str__(self) -> str:
        return self.normalized


@attrs.frozen
class RateLimitSnapshot:
    """The provider's rate-limit state as of one response (None where not reported)."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset: float | None = None
    input_tokens_limit: int | None = None
    input_tokens_remaining: int | None = None
    input_tokens_reset: float | None = None
    output_tokens_limit: int | None = None
    output_tokens_remaining: int | None = None
    output_tokens_reset: float | None = None
    retry_after: float | None = None


@attrs.frozen
class ChatResponse:
    """The result of a chat request (or what a stream accumulated so far)."""

    content: str = ""
    reasoning: str = ""
    refusal: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    model: str | None = None
    request_id: str | None = None
    raw: Any = attrs.field(default=None, repr=False, eq=False)
    reasoning_signature: str | None = None
    #: the provider's rate-limit headers on this response, parsed
    rate_limits: RateLimitSnapshot | None = None
    #: with a JSON ``response_format``: the reply parsed (an instance of the request's
    #: attrs class, else the JSON value), checked against the schema; None otherwise, and
    #: when the model called tools instead of answering (see ``StructuredOutputError``)
    parsed: Any = attrs.field(default=None, eq=False)

    #: the answering model's prices (from its manifest), which ``cost`` applies
    pricing: ModelPricing | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def cost(self) -> CostEstimate | None:
        """What this response cost, from its ``usage`` at the model's manifest prices, the
        way the provider bills (cache hits at the cached-input price, reasoning as output
        unless priced apart); None when the model has no price or no usage was reported.
        A stream's ``response`` has the cost of the usage seen so far."""
        return cost_of_usage(self.pricing, self.usage)

    #: the provider's id of this completion (``chatcmpl-...``, ``msg_...``), where its
    #: manifest maps one; not part of equality (two identical answers differ in it)
    response_id: str | None = attrs.field(default=None, eq=False)

    def _repr_html_(self) -> str:
        """A card for notebooks: the reply, then model, finish, tool calls, tokens, cost
        and request id (escaped: a reply cannot inject markup)."""
        return response_html(self)

    def _repr_markdown_(self) -> str:
        return response_markdown(self)

    def to_message(self) -> Message:
        """This response as the assistant turn of the next request (tool calls and signed
        reasoning included, as multi-turn tool use requires)."""
        return Message.assistant(
            self.content or None,
            self.tool_calls,
            reasoning=self.reasoning or None,
            reasoning_signature=self.reasoning_signature,
        )


# ---------------------------------------------------------------- stream events


@attrs.frozen(init=False)
class ContentDelta:
    """A fragment of visible assistant text."""

    text: str

    def __init__(self, text: str) -> None:
        # one per streamed chunk: the slot is written directly (attrs' frozen __init__
        # looks up object.__setattr__ first)
        _set_text(self, text)

    @property
    def content(self) -> str:
        return self.text


_set_text = ContentDelta.__dict__["text"].__set__


@attrs.frozen
class ReasoningDelta:
    """A fragment of the model's reasoning ("thinking") text.

    ``signature`` is set on the delta that carries a provider's signature of the reasoning
    (Anthropic ``signature_delta``); it must go back with the reasoning in the next turn.
    """

    text: str
    signature: str | None = None


@attrs.frozen
class RefusalDelta:
    """A fragment of a refusal message (OpenAI ``refusal``)."""

    text: str


@attrs.frozen
class ToolCallStarted:
    """The model began a tool call at ``index``."""

    index: int
    id: str | None
    name: str


@attrs.frozen
class ToolCallDelta:
    """A fragment of a tool call's JSON arguments."""

    index: int
    arguments: str


@attrs.frozen
class ToolCallCompleted:
    """A tool call is whole; ``tool_call.arguments`` is parsed."""

    index: int
    tool_call: ToolCall


@attrs.frozen
class Finished:
    """Generation ended."""

    finish_reason: FinishReason


StreamingEvent = (
    ContentDelta
    | ReasoningDelta
    | RefusalDelta
    | ToolCallStarted
    | ToolCallDelta
    | ToolCallCompleted
    | Usage
    | Finished
)
