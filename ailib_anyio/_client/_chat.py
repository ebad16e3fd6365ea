"""``ChatBuilder``: a chat request built a piece at a time, then sent or streamed."""

from __future__ import annotations

from collections.abc import (
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any

from .._core._errors import (
    ConfigurationError,
)
from .._core._structured import (
    response_format_for,
)
from .._core._types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    Message,
    ToolChoice,
    ToolDefinition,
)
from .._protocol._validate import (
    check_mapping,
    check_number,
    check_tool_choice,
)
from ._stream import ChatStream

if TYPE_CHECKING:
    from ._client import Client


__all__ = ["ChatBuilder"]


class ChatBuilder:
    """Fluent chat request builder: ``client.chat().system(...).user(...).execute()``."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._messages: list[Message] = []
        self._params: dict[str, Any] = {}
        self._timeout: float | None = None

    def message(self, message: Message) -> ChatBuilder:
        if not isinstance(message, Message):
            raise ConfigurationError(f"message must be a Message, got {type(message).__name__}")
        self._messages.append(message)
        return self

    def messages(self, messages: Sequence[Message]) -> ChatBuilder:
        for m in messages:
            self.message(m)
        return self

    def system(self, content: str) -> ChatBuilder:
        return self.message(Message.system(content))

    def user(self, content: str | Sequence[ContentBlock]) -> ChatBuilder:
        return self.message(Message.user(content))

    def assistant(self, content: str | None = None, tool_calls: Sequence[Any] = ()) -> ChatBuilder:
        return self.message(Message.assistant(content, tool_calls))

    def tool_result(self, tool_call_id: str, content: str, name: str | None = None) -> ChatBuilder:
        """A tool's result; ``name`` (the function's) matters to dialects that match by
        name (Gemini), and is otherwise found from the assistant turn that made the call."""
        return self.message(Message.tool(tool_call_id, content, name=name))

    def _set(self, name: str, value: Any) -> ChatBuilder:
        self._params[name] = value
        return self

    def temperature(self, value: float) -> ChatBuilder:
        return self._set("temperature", check_number("temperature", value))

    def top_p(self, value: float) -> ChatBuilder:
        return self._set("top_p", check_number("top_p", value))

    def max_tokens(self, value: int) -> ChatBuilder:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"max_tokens must be a positive integer, got {value!r}")
        return self._set("max_tokens", value)

    def stop(self, *sequences: str) -> ChatBuilder:
        flat: list[str] = []
        for s in sequences:
            flat.extend([s] if isinstance(s, str) else s if isinstance(s, (list, tuple)) else [s])
        for s in flat:
            if not isinstance(s, str):
                raise ConfigurationError(f"stop sequences must be strings, got {s!r}")
        return self._set("stop", tuple(flat))

    def tools(self, tools: Sequence[ToolDefinition]) -> ChatBuilder:
        for t in tools:
            if not isinstance(t, ToolDefinition):
                raise ConfigurationError(
                    f"tools must be ToolDefinition objects, got {type(t).__name__}"
                )
        return self._set("tools", tuple(tools))

    def tool_choice(self, choice: ToolChoice) -> ChatBuilder:
        """``"auto"``, ``"none"``, ``"required"`` or the name of one of the request's tools
        (checked by ``build``)."""
        if not isinstance(choice, str):
            raise ConfigurationError(f"tool_choice must be a string, got {choice!r}")
        return self._set("tool_choice", choice)

    def response_format(
        self,
        schema: Mapping[str, Any] | type,
        *,
        name: str | None = None,
        strict: bool | None = None,
    ) -> ChatBuilder:
        """Ask for a reply in JSON, parsed into ``reply.parsed`` (``stream.response.parsed``
        at the end of a stream). ``schema`` is one of:

        - an attrs class: its JSON schema is generated (msgspec, the ``structured`` extra)
          and the reply is structured into an instance by cattrs;
        - a JSON schema (a mapping, ``{"type": "object", "properties": ...}``): the reply
          is the JSON value, checked against it;
        - an OpenAI-style format: ``{"type": "json_object"}`` (JSON mode, see
          ``json_mode``), ``{"type": "json_schema", "json_schema": {"name": ...,
          "schema": ...}}`` or ``{"type": "text"}`` (no JSON).

        ``name`` names the schema (default: the class's name, the schema's ``title``, or
        ``response``); ``strict`` overrides the manifest's strict mode. Each provider gets
        it the way its manifest's ``structured_output`` says (a native field, or a forced
        tool call), the schema adapted to strict mode where the manifest asks. A reply that
        is not JSON or does not match raises ``StructuredOutputError`` (its ``path`` says
        where, ``raw_text`` holds the reply)::

            import attrs

            @attrs.define
            class City:
                name: str
                population: int

            async with MockProvider() as mock, open_client(
                "openai/gpt-4o", base_url=mock.openai_base_url, api_key="test"
            ) as client:
                mock.enqueue(ScriptedReply(content='{"name": "Tokyo", "population": 37400068}'))
                reply = await client.chat().user("Largest city?").response_format(City).execute()
            assert reply.parsed == City(name="Tokyo", population=37400068)
        """
        fmt, output_type = response_format_for(schema, name=name, strict=strict)
        self._set("output_type", output_type)
        return self._set("response_format", fmt)

    def json_mode(self) -> ChatBuilder:
        """JSON mode: the reply is any JSON value, parsed into ``reply.parsed`` (the same as
        ``response_format({"type": "json_object"})``). Some providers want the word "json"
        in the prompt for it."""
        return self.response_format({"type": "json_object"})

    def extra_body(self, value: Mapping[str, Any]) -> ChatBuilder:
        """Provider-specific fields merged into the encoded body last, objects key by key;
        other values replace what the encoder wrote (``temperature``, ``stream_options``).

        What the library manages is never overridden silently: ``model`` and ``stream``,
        and any value already encoded under ``messages``, ``contents``, ``system``,
        ``systemInstruction`` or ``tools``, raise ``ConfigurationError`` naming the keys
        (before any I/O). New keys inside those objects, or ``tools`` on a request without
        tools (a provider's built-in tools), are allowed. There is no opt-in: set the
        model with ``open_client``, streaming with ``.stream()``, messages and tools with
        the builder."""
        check_mapping("extra_body", value)
        return self._set("extra_body", value)

    def timeout(self, seconds: float) -> ChatBuilder:
        """Per-request HTTP timeout (connect, read, write), overriding the client's."""
        self._timeout = check_number("timeout", seconds)
        if self._timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number, got {seconds!r}")
        return self

    def build(self, *, stream: bool = False) -> ChatRequest:
        if not self._messages:
            raise ConfigurationError("a chat request needs at least one message")
        if "tool_choice" in self._params:
            check_tool_choice(self._params["tool_choice"], self._params.get("tools", ()))
        return ChatRequest(
            model=self._client.model_id,
            messages=tuple(self._messages),
            stream=stream,
            **self._params,
        )

    async def execute(self) -> ChatResponse:
        """Send the request and return the whole response."""
        return await self._client.execute(self.build(), http_timeout=self._timeout)

    def stream(self) -> ChatStream:
        """An async context manager streaming the response: ``async with ... as stream``."""
        return ChatStream(self._client, self.build(stream=True), self._timeout)
