"""Streams on the middleware seam: watching one stream, and answering one from recorded
events.

A call-level middleware that opened a stream (``stream = await next(call)``) may follow
that one stream as its user reads it with ``stream.watch(watcher)``: a
:class:`StreamWatcher` sees each event, hears when the user read the stream to its end
(``on_complete``, awaited before the user's loop ends) and when it closed, however it
closed (``on_close``). The response cache records a stream this way.

A call-level middleware may also answer a stream call without any request: it returns a
:class:`ReplayStream` of recorded events (a cache hit). The user's ``ChatStream`` iterates
it like a live one: the same events, the same ``stream.response`` at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import anyio.lowlevel

from .._core._errors import MiddlewareError
from .._core._types import ChatResponse, RateLimitSnapshot, StreamingEvent

__all__ = ["ReplayStream", "StreamWatcher", "close_watchers"]


class StreamWatcher:
    """Follows one stream as its user reads it; attach it in ``on_call`` with
    ``stream.watch(watcher)``. Override what you need::

        class Count(StreamWatcher):
            def __init__(self) -> None:
                self.events = 0

            def on_event(self, event: StreamingEvent) -> None:
                self.events += 1

    An exception a watcher raises is a ``MiddlewareError`` naming its class.
    """

    def on_event(self, event: StreamingEvent) -> None:
        """Each event, as the user receives it."""

    async def on_complete(self, response: ChatResponse) -> None:
        """The user read the stream to its end: every event, no error. Awaited once,
        before the user's loop ends; ``response`` is the stream's whole response."""

    def on_close(self) -> None:
        """The stream closed, whether complete, broken off, failed or cancelled (after
        ``on_complete`` when that ran). Called once, from a shielded close: keep it short
        and non-blocking."""


def _named(watcher: StreamWatcher, hook: str, exc: Exception) -> MiddlewareError:
    name = type(watcher).__name__
    return MiddlewareError(
        f"stream watcher {name} failed in {hook}: {type(exc).__name__}: {exc}", middleware=name
    )


def watch_event(watchers: Sequence[StreamWatcher], event: StreamingEvent) -> None:
    """Hand one event to every watcher."""
    for watcher in watchers:
        try:
            watcher.on_event(event)
        except Exception as exc:
            raise _named(watcher, "on_event", exc) from exc


async def watch_complete(watchers: Sequence[StreamWatcher], response: ChatResponse) -> None:
    """Tell every watcher the stream was read to its end."""
    for watcher in watchers:
        try:
            await watcher.on_complete(response)
        except Exception as exc:
            raise _named(watcher, "on_complete", exc) from exc


def close_watchers(watchers: Sequence[StreamWatcher]) -> None:
    """Tell every watcher the stream closed; each is told even if another one fails (the
    first failure is raised after all were told)."""
    failure: MiddlewareError | None = None
    for watcher in watchers:
        try:
            watcher.on_close()
        except Exception as exc:  # noqa: BLE001 - every watcher is told; the first fails it
            if failure is None:
                failure = _named(watcher, "on_close", exc)
                failure.__cause__ = exc
    if failure is not None:
        raise failure


class ReplayStream:
    """A stream answered from recorded events, without any request: what a call-level
    middleware returns for a stream call it can answer itself (a cache hit)::

        async def on_call(self, call, next):
            if call.stream and (hit := lookup(call)) is not None:
                return ReplayStream(hit.events, hit.response, provider=..., model=...)
            return await next(call)

    The user's ``ChatStream`` iterates it like a live stream: ``events`` in order, then the
    end; ``stream.response`` is what has been replayed so far, and ``response`` (the
    recorded whole response) once every event was replayed. ``provider`` and ``model``
    say who answered originally. It takes no connection and no ``max_inflight`` slot.
    """

    def __init__(
        self,
        events: Sequence[StreamingEvent],
        response: ChatResponse,
        *,
        provider: str,
        model: str,
    ) -> None:
        self._events = tuple(events)
        self._response = response
        self.provider = provider
        self.model = model
        self._next = 0
        self._closed = False
        from .._core._mapping import ResponseAccumulator  # loaded with the first replay

        self._acc = ResponseAccumulator()
        self._watchers: list[StreamWatcher] = []
        #: as on a live stream: what ended it early (set by ``ChatStream``), and whether
        #: it was closed unread
        self.error: BaseException | None = None
        self.discarded = False

    def __repr__(self) -> str:
        return f"<ReplayStream {self.provider}/{self.model} {len(self._events)} events>"

    @property
    def request_id(self) -> str | None:
        return self._response.request_id

    @property
    def rate_limits(self) -> RateLimitSnapshot | None:
        return self._response.rate_limits

    @property
    def watchers(self) -> Sequence[StreamWatcher]:
        return self._watchers

    def watch(self, watcher: StreamWatcher) -> None:
        """Follow this stream with ``watcher`` (see :class:`StreamWatcher`)."""
        if not isinstance(watcher, StreamWatcher):
            raise TypeError(f"expected a StreamWatcher, got {type(watcher).__name__}")
        self._watchers.append(watcher)

    @property
    def complete(self) -> bool:
        """Every event was replayed (and the stream was not closed before)."""
        return not self._closed and self._next == len(self._events)

    @property
    def response(self) -> ChatResponse:
        if self._next == len(self._events):
            return self._response
        return self._acc.build(
            model=self._response.model,
            request_id=self._response.request_id,
            rate_limits=self._response.rate_limits,
        )

    def __aiter__(self) -> ReplayStream:
        return self

    async def __anext__(self) -> StreamingEvent:
        await anyio.lowlevel.checkpoint_if_cancelled()  # a caller's cancel scope still works
        if self._closed or self._next == len(self._events):
            raise StopAsyncIteration
        event = self._events[self._next]
        self._next += 1
        self._acc.add(event)
        return event

    async def aclose(self) -> None:
        """Mark the stream closed and tell its watchers. Idempotent."""
        if self._closed:
            return
        self._closed = True
        close_watchers(self._watchers)

    async def __aenter__(self) -> ReplayStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
