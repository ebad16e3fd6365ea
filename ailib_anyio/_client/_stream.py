"""``ChatStream``: a streamed chat response as the user iterates it (middleware
``on_event`` hooks, stream watchers and a JSON reply read on the way)."""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from .._core._display import stream_html, stream_markdown, stream_state
from .._core._errors import (
    ConfigurationError,
    StreamNotOpenError,
)
from .._core._structured import (
    ToolReplyEvents,
    reply_events,
    reply_tool_name,
    structured_reply,
    unwrap_tool_reply,
)
from .._core._types import (
    ChatRequest,
    ChatResponse,
    RateLimitSnapshot,
    StreamingEvent,
)
from ._middleware import Call, MiddlewareChain
from ._replay import ReplayStream, StreamWatcher, watch_complete, watch_event
from ._state import ClosedOnExit, State

if TYPE_CHECKING:
    from .._protocol._models import StreamingSpec
    from ._client import Client
    from ._targetstream import TargetStream


__all__ = ["ChatStream"]


class ChatStream(ClosedOnExit):
    """A streamed chat response. Use it as ``async with builder.stream() as stream``.

    Entering the block sends the request (with the client's retries, fallbacks, hedging
    and deadlines) and returns once the first event is ready; iterating yields
    ``StreamingEvent`` objects. Retries and fallbacks only happen before that first event:
    a failure after it is raised with the partial response. ``stream.response`` holds what
    has been delivered so far (content, reasoning, tool calls, usage, finish reason), also
    after an early exit; ``stream.provider`` and ``stream.model`` say which target answered.
    Leaving the block closes the HTTP response immediately.
    """

    # slotted: a thousand concurrent streams are a thousand of these (a weak reference
    # to one still works)
    __slots__ = (
        "__weakref__",
        "_client",
        "_iterator",
        "_json",
        "_live",
        "_request",
        "_state",
        "_timeout",
    )

    def __init__(self, client: Client, request: ChatRequest, timeout: float | None) -> None:
        self._client = client
        self._request = request
        self._timeout = timeout
        self._state = State.UNOPENED
        self._live: TargetStream | ReplayStream | None = None
        self._iterator: AsyncIterator[StreamingEvent] | None = None
        #: a request that asked for JSON: how its events are read, and the parsed reply
        self._json: _JsonReply | None = None
        if request.response_format is not None:
            events = reply_events(request)
            if events is not None:
                self._json = _JsonReply(events)
        _stream_rules(client)

    async def __aenter__(self) -> ChatStream:
        if self._state is not State.UNOPENED:
            raise RuntimeError("a ChatStream can be entered only once")
        self._state = State.OPEN
        try:
            self._live = await self._client.open_stream(self._request, http_timeout=self._timeout)
        except BaseException:
            self._state = State.CLOSED
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        live = self._live
        if exc is not None and live is not None and live.error is None:
            live.error = exc  # what ended it, for whoever watches it close (on_close)
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP response and release the in-flight slot. Idempotent, shielded."""
        self._state = State.CLOSED
        if self._live is not None:
            await self._live.aclose()

    def __aiter__(self) -> AsyncIterator[StreamingEvent]:
        if self._state is not State.OPEN:
            raise not_open_error(self._state, "async with builder.stream() as stream")
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = self._make_iterator()
        return iterator

    def _make_iterator(self) -> AsyncIterator[StreamingEvent]:
        if self._live is None:
            return _EmptyStream()
        if self._json is not None:
            return self._json.iterator(self)
        return self._events()

    def _events(self) -> AsyncIterator[StreamingEvent]:
        """The events as they come, seen by the middleware's ``on_event`` hooks and the
        stream's watchers when there are any."""
        live = self._live
        assert live is not None
        chain = self._client.middleware
        watchers = live.watchers
        if chain.event_hooks or watchers:
            call = self._client.call_view(self._request)
            return _Observed(live, chain if chain.event_hooks else None, call, watchers)
        return live  # the attempt that won iterates itself: no extra frame per event

    async def __anext__(self) -> StreamingEvent:
        # An iteration begun in the block ends quietly if the stream is closed under it.
        iterator = self._iterator if self._iterator is not None else self.__aiter__()
        return await iterator.__anext__()

    if not TYPE_CHECKING:  # type checkers keep reporting these spellings as errors
        # Hints for the spellings of blocking code, instead of a bare TypeError.

        def __iter__(self):
            raise TypeError(
                "a ChatStream is asynchronous: iterate it with 'async for event in stream'"
                " inside 'async with builder.stream() as stream' (blocking code:"
                " ailib_anyio.sync)"
            )

        def __enter__(self):
            raise TypeError(
                "a ChatStream is an async context manager: use 'async with builder.stream()"
                " as stream' (blocking code: ailib_anyio.sync)"
            )

        def __exit__(self, *exc_info):  # never reached: __enter__ raises
            return None

    def _display_state(self) -> str:
        return stream_state(
            self._state is not State.UNOPENED, self._state is State.CLOSED, self.response
        )

    def _repr_html_(self) -> str:
        """A card for notebooks: open or finished, the text and usage so far."""
        return stream_html("ChatStream", self._display_state(), self.response, None)

    def _repr_markdown_(self) -> str:
        return stream_markdown("ChatStream", self._display_state(), self.response, None)

    @property
    def response(self) -> ChatResponse:
        """Everything delivered so far, accumulated. A request that asked for JSON has
        its reply in ``content`` (a forced reply-tool call unwrapped) and, once the stream
        has been iterated to its end, the parsed value in ``parsed``."""
        if self._live is None:
            return ChatResponse(model=self._client.model_id)
        if self._json is not None:
            return self._json.response(self._request, self._live.response)
        return self._live.response

    @property
    def request_id(self) -> str | None:
        return self._live.request_id if self._live is not None else None

    @property
    def rate_limits(self) -> RateLimitSnapshot | None:
        return self._live.rate_limits if self._live is not None else None

    @property
    def provider(self) -> str:
        """The provider that answered (a fallback's, when the chain moved on)."""
        return self._live.provider if self._live is not None else self._client.provider

    @property
    def model(self) -> str:
        """The model that answered."""
        return self._live.model if self._live is not None else self._client.model_id


def not_open_error(state: State, block: str) -> StreamNotOpenError:
    """The error for iterating a stream outside its block ``block`` (in a state other
    than open), saying why that cannot work."""
    message = f"iterate a stream inside its block: '{block}'"
    if state is State.UNOPENED:
        message += (
            "; entering the block sends the request and opens the HTTP response, which"
            " leaving the block closes"
        )
    else:
        message += (
            "; this stream's block has ended, which closed its HTTP response"
            " (stream.response keeps what was received)"
        )
    return StreamNotOpenError(message)


def _stream_rules(client: Client) -> StreamingSpec:
    streaming = client.manifest.streaming
    if streaming is None or not streaming.event_map:
        raise ConfigurationError(
            f"manifest {client.manifest.id!r} has no streaming rules", **client.primary.context()
        )
    return streaming


class _Observed:
    """Iteration that hands each event to the middleware's ``on_event`` hooks and to the
    stream's watchers, and tells the watchers when the stream was read to its end (only
    when there are some: otherwise the stream iterates itself)."""

    __slots__ = ("_call", "_chain", "_completed", "_live", "_watchers")

    def __init__(
        self,
        live: TargetStream | ReplayStream,
        chain: MiddlewareChain | None,
        call: Call,
        watchers: Sequence[StreamWatcher],
    ) -> None:
        self._live, self._chain, self._call, self._watchers = live, chain, call, watchers
        self._completed = False

    def __aiter__(self) -> _Observed:
        return self

    async def __anext__(self) -> StreamingEvent:
        live = self._live
        try:
            event = await live.__anext__()
        except StopAsyncIteration:
            if self._watchers and not self._completed and live.complete:
                self._completed = True
                await watch_complete(self._watchers, live.response)
            raise
        if self._chain is not None:
            self._chain.observe(self._call, event)
        if self._watchers:
            watch_event(self._watchers, event)
        return event


class _JsonReply:
    """A stream that asked for JSON: the events of a forced reply-tool call turned into
    content as they arrive, and the whole reply parsed at the end of the stream (a
    mismatch raised there, as ``StructuredOutputError``, instead of the end)."""

    __slots__ = ("_events", "_iterator", "finished", "parsed")

    def __init__(self, events: ToolReplyEvents) -> None:
        self._events = events
        self._iterator: _JsonEvents | None = None
        self.finished = False
        self.parsed: Any = None

    def iterator(self, stream: ChatStream) -> _JsonEvents:
        if self._iterator is None:
            self._iterator = _JsonEvents(stream._events(), self._events, self, stream)
        return self._iterator

    def response(self, request: ChatRequest, response: ChatResponse) -> ChatResponse:
        fmt = request.response_format
        assert fmt is not None
        response = unwrap_tool_reply(response, reply_tool_name(fmt))
        if self.finished:
            return attrs.evolve(response, parsed=self.parsed)
        return response


class _JsonEvents:
    __slots__ = ("_convert", "_events", "_reply", "_stream")

    def __init__(
        self,
        events: AsyncIterator[StreamingEvent],
        convert: ToolReplyEvents,
        reply: _JsonReply,
        stream: ChatStream,
    ) -> None:
        self._events, self._convert, self._reply, self._stream = events, convert, reply, stream

    def __aiter__(self) -> _JsonEvents:
        return self

    async def __anext__(self) -> StreamingEvent:
        while True:
            try:
                event = await self._events.__anext__()
            except StopAsyncIteration:
                break
            converted = self._convert.convert(event)
            if converted is not None:
                return converted
        reply = self._reply
        if not reply.finished:
            reply.finished = True  # parsed once: a mismatch is raised once, then the end
            stream = self._stream
            reply.parsed = structured_reply(stream._request, stream.response).parsed
        raise StopAsyncIteration


class _EmptyStream:
    def __aiter__(self) -> _EmptyStream:
        return self

    async def __anext__(self) -> StreamingEvent:
        raise StopAsyncIteration
