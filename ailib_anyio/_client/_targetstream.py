"""A stream attempt: one ``TargetStream`` per stream request sent to one target.

``TargetStream.open`` sends the request and reads up to the first event, so that a failure
before anything reached the user can still be retried or fall back (the client's call path,
``_call.py``, does that); the ``ChatStream`` the user holds (``_stream.py``) then iterates
the attempt that won directly. The target it runs against (``_target.py``) gives it the
transport, the in-flight limiter, the URL and the complete errors.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._core._errors import (
    AiLibError,
    DeadlineExceededError,
    IdleTimeoutError,
    MalformedResponseError,
    MiddlewareError,
    RemoteError,
)
from .._core._mapping import DecodeFailure, ResponseAccumulator, StreamFailure
from .._core._types import (
    ChatResponse,
    ContentDelta,
    RateLimitSnapshot,
    StreamingEvent,
)
from .._protocol._decoding import stream_pipeline
from .._transport._http import HttpResponse, translate_transport_error, transport_errors
from ._replay import StreamWatcher, close_watchers
from ._state import ClosedOnExit, State

if TYPE_CHECKING:
    from ._target import Target

__all__ = ["TargetStream"]


def _qualname(func: object) -> str:
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) else type(func).__name__


class TargetStream(ClosedOnExit):
    """One stream attempt against one target: the HTTP response, its decoding pipeline and
    what it delivered. ``open()`` sends the request and reads up to the first event, so a
    failure before anything reached the user can still be retried or fall back; the
    ``ChatStream`` the user holds then iterates the winning attempt directly.

    ``idle`` and ``deadline`` (an absolute ``anyio.current_time()``) bound each wait for a
    chunk; without them the per-chunk path has no cancel scope at all.
    """

    # slotted, its watchers' list made on first use: a thousand concurrent streams hold
    # one each while they connect
    __slots__ = (
        "__weakref__",
        "_acc",
        "_chunks",
        "_content",
        "_deadline",
        "_eof",
        "_format",
        "_holds_slot",
        "_idle",
        "_idle_at",
        "_on_close",
        "_pending",
        "_pipeline",
        "_response",
        "_state",
        "_target",
        "_timed",
        "_timeout",
        "_watchers",
        "discarded",
        "error",
        "rate_limits",
        "request_id",
    )

    def __init__(
        self,
        target: Target,
        content: bytes,
        timeout: float | None,
        *,
        idle: float | None = None,
        deadline: float | None = None,
    ) -> None:
        self._target = target
        self._content = content
        self._timeout = timeout
        self._idle = idle
        self._deadline = deadline
        self._timed = idle is not None or deadline is not None
        self._state = State.UNOPENED
        self._response: HttpResponse | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._holds_slot = False
        # a list, not a deque: an empty deque is 760 bytes, which a thousand concurrent
        # streams hold while connecting; the events of one read are few (pop(0) is cheap)
        self._pending: list[StreamingEvent | StreamFailure | DecodeFailure] = []
        self._eof = False
        self._idle_at = math.inf  # when the idle limit runs out (inf: not waiting)
        self._pipeline = stream_pipeline(
            target.manifest, provider=target.provider, model=target.model_id
        )
        self._format = self._pipeline.framing
        self._acc = ResponseAccumulator()
        self._watchers: list[StreamWatcher] | None = None
        self.request_id: str | None = None
        self.rate_limits: RateLimitSnapshot | None = None
        #: what ended the stream early: an error it raised, or the exception (cancellation
        #: included) its block exited with; None when it ended normally or by ``break``
        self.error: BaseException | None = None
        #: closed unused: a hedge that lost a photo finish, or dropped by a middleware
        self.discarded = False
        self._on_close: list[Callable[[TargetStream], None]] | None = None

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> TargetStream:
        """Send the request and wait for the first event (or the first failure); on any
        error or cancellation the response is closed before this returns."""
        target = self._target
        transport, limiter = target.opened()
        content = self._content
        try:  # a free slot at once, without anyio's yield to the event loop
            limiter.acquire_on_behalf_of_nowait(self)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(self)
        self._holds_slot = True
        target.inflight += 1
        self._state = State.OPEN
        error: AiLibError | None = None
        try:
            response = await transport.send(
                target.stream_url, content, timeout=self._timeout, context=target.base_context
            )
            self._response = response
            self.request_id = target.request_id_of(response)
            self.rate_limits = target.rate_limits_of(response)
            if response.status_code >= 400:
                error = await target.error_from_response(response)
            else:
                error = self._not_a_stream(response)
                if error is None:
                    response.forget_headers()  # read: not held while the stream runs
                    context = target.context(status_code=response.status_code)
                    self._chunks = response.chunks(context=context)
        except BaseException:
            await self.aclose()
            raise
        if error is not None:
            await self.aclose()
            raise error
        try:
            await self._first_event()
        except BaseException:
            await self.aclose()
            raise
        return self

    def _translated(self, exc: Exception) -> AiLibError:
        """The library error for an HTTP library error raised while reading the body."""
        transport = self._target.transport
        if transport is None:
            return translate_transport_error(exc, **self._error_context())
        return transport.translate_error(exc, **self._error_context())

    def _not_a_stream(self, response: HttpResponse) -> MalformedResponseError | None:
        """A 2xx answer that is a web page, or a plain JSON document where SSE was asked
        for, is a malformed response (not a transport cut): no stream will come from it.

        Not retryable: the same endpoint will answer the same way (a proxy's page, a wrong
        base_url); it still counts against the circuit and may fall back elsewhere."""
        media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media == "text/html" or (media == "application/json" and self._format == "sse"):
            return MalformedResponseError(
                f"the provider answered a stream request with {media!r}, not a stream",
                status_code=response.status_code,
                request_id=self.request_id,
                **self._target.context(),
            )
        return None

    async def _first_event(self) -> None:
        """Read until an event is decoded; a failure that comes first is raised here."""
        pending = self._pending
        while not pending and not self._eof:
            await self._read_chunk()
        if pending and isinstance(pending[0], (StreamFailure, DecodeFailure)):
            await self.__anext__()  # raises it, as iteration would

    async def _read_chunk(self) -> None:
        """Read one network chunk and decode it into the pending events."""
        assert self._chunks is not None
        try:
            chunk = await (self._timed_chunk() if self._timed else self._chunks.__anext__())
        except StopAsyncIteration:
            self._end_of_body()
            return
        except transport_errors() as exc:
            raise self._failed(self._translated(exc)) from exc
        pending = self._pending
        self._pipeline.feed(chunk, pending)
        if pending:
            self._idle_at = math.inf  # an event: the next wait for one starts afresh

    async def _timed_chunk(self) -> bytes:
        """The next chunk, within the idle limit and the total deadline.

        The idle limit runs from the start of a wait for an event (the consumer asked and
        nothing was pending) until a chunk completes one: chunks that complete none (a
        trickle) do not reset it."""
        assert self._chunks is not None
        limit = math.inf
        deadline = False  # which limit runs out first: the total deadline or the idle one
        if self._idle is not None:
            if self._idle_at == math.inf:
                self._idle_at = anyio.current_time() + self._idle
            limit = self._idle_at
        if self._deadline is not None and self._deadline <= limit:
            limit, deadline = self._deadline, True
        with anyio.CancelScope(deadline=limit):
            return await self._chunks.__anext__()
        await anyio.lowlevel.checkpoint_if_cancelled()  # the caller's own cancellation wins
        if deadline:
            raise self._failed(
                DeadlineExceededError(
                    "the request's total deadline ran out", **self._error_context()
                )
            )
        raise self._failed(
            IdleTimeoutError(
                f"no event from the provider for {self._idle:g}s", **self._error_context()
            )
        )

    async def aclose(self) -> None:
        """Close the HTTP response and release the in-flight slot. Idempotent, shielded."""
        if self._state is State.CLOSED:
            return
        self._state = State.CLOSED
        with anyio.CancelScope(shield=True):
            try:
                if self._response is not None:
                    if self._eof:
                        self._response.forget_if_unclean()
                    # Closing a response whose body is unread closes its connection.
                    await self._response.aclose()
                if self._chunks is not None and not self._eof:
                    await self._drain_iterators()
            finally:
                if self._holds_slot and self._target.limiter is not None:
                    self._holds_slot = False
                    self._target.inflight -= 1
                    self._target.limiter.release_on_behalf_of(self)
                if self._watchers:
                    close_watchers(self._watchers)
                callbacks, self._on_close = self._on_close, None
                if callbacks:
                    self._closed(callbacks)

    def on_close(self, callback: Callable[[TargetStream], None]) -> None:
        """Call ``callback(stream)`` once, when the stream is closed (its response and
        in-flight slot released): at the end of its block, by ``aclose()``, or at once if
        it already is. It reads ``response`` (all that was delivered), ``error`` and
        ``discarded``. This is how a middleware sees a stream end without a hook per
        event; what a callback raises is a ``MiddlewareError``, raised once all have run."""
        if self._state is State.CLOSED:
            self._closed([callback])
        elif self._on_close is None:
            self._on_close = [callback]
        else:
            self._on_close.append(callback)

    def _closed(self, callbacks: list[Callable[[TargetStream], None]]) -> None:
        failed: tuple[Callable[[TargetStream], None], Exception] | None = None
        for callback in callbacks:
            try:
                callback(self)
            except Exception as exc:  # noqa: BLE001 - every callback runs; the first is raised
                failed = failed or (callback, exc)
        if failed is not None:
            culprit, error = failed
            owner = getattr(culprit, "__self__", None)
            name = type(owner).__name__ if owner is not None else _qualname(culprit)
            raise MiddlewareError(
                f"middleware {name} failed in on_close: {type(error).__name__}: {error}",
                middleware=name,
            ) from error

    async def _drain_iterators(self) -> None:
        """Run httpx's chain of body generators to their end on the closed connection.

        httpx reads bodies through several nested async generators; closing only the
        outermost one leaves the inner ones suspended until garbage collection (which trio
        reports as a ResourceWarning). With the connection already closed, the next read
        fails at the bottom of the chain and every generator finishes, deterministically.
        """
        assert self._chunks is not None
        for _ in range(10_000):  # bounded: only bytes already buffered can still arrive
            try:
                await self._chunks.__anext__()
            except StopAsyncIteration:
                return
            except Exception:  # noqa: BLE001 - the connection is closed: any error ends it
                return
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    @property
    def target(self) -> Target:
        """The target this attempt ran against."""
        return self._target

    @property
    def provider(self) -> str:
        return self._target.provider

    @property
    def model(self) -> str:
        return self._target.model_id

    # ------------------------------------------------------------ watchers

    def watch(self, watcher: StreamWatcher) -> None:
        """Follow this stream with ``watcher`` as its user reads it (see ``StreamWatcher``):
        what a call-level middleware does with the stream ``next`` opened."""
        if not isinstance(watcher, StreamWatcher):
            raise TypeError(f"expected a StreamWatcher, got {type(watcher).__name__}")
        if self._watchers is None:
            self._watchers = [watcher]
        else:
            self._watchers.append(watcher)

    @property
    def watchers(self) -> Sequence[StreamWatcher]:
        return self._watchers or ()

    @property
    def complete(self) -> bool:
        """The body ended cleanly and every event reached the user (none was a failure),
        and the stream is still open."""
        return self._state is State.OPEN and self._eof and not self._pending and self.error is None

    # ------------------------------------------------------------ iteration

    @property
    def response(self) -> ChatResponse:
        """Everything delivered so far, accumulated."""
        return self._acc.build(
            mapper=self._pipeline.mapper,
            request_id=self.request_id,
            model=self._target.model_id,
            rate_limits=self.rate_limits,
            pricing=self._target.pricing,
        )

    def __aiter__(self) -> TargetStream:
        return self

    async def __anext__(self) -> StreamingEvent:
        # The per-chunk path: one coroutine, no helper awaits, the common event first.
        pending = self._pending
        while not pending:
            if self._state is not State.OPEN or self._eof:
                if self._state is State.UNOPENED:
                    raise RuntimeError(
                        "iterate a stream inside its block: 'async with builder.stream() as stream'"
                    )
                raise StopAsyncIteration
            if self._timed:  # the idle clock is kept per event there
                await self._read_chunk()
                continue
            # _read_chunk() inlined: one coroutine frame less per chunk on the hot path.
            assert self._chunks is not None
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._end_of_body()
                continue
            except transport_errors() as exc:
                raise self._failed(self._translated(exc)) from exc
            self._pipeline.feed(chunk, pending)
        event = pending.pop(0)
        cls = type(event)
        if cls is ContentDelta:
            self._acc.content.append(event.text)  # type: ignore[union-attr]
            return event  # type: ignore[return-value]
        if cls is StreamFailure:
            raise self._stream_error(event)  # type: ignore[arg-type]
        if cls is DecodeFailure:
            raise self._failed(event.error_with(**self._error_context()))  # type: ignore[union-attr]
        self._acc.add(event)  # type: ignore[arg-type]
        return event  # type: ignore[return-value]

    def _end_of_body(self) -> None:
        self._eof = True
        self._pending.extend(self._pipeline.close())  # a cut-off body ends in a failure

    def _status(self) -> int | None:
        return self._response.status_code if self._response is not None else None

    def _failed(self, exc: AiLibError) -> AiLibError:
        """``exc``, recorded as the stream's error if it is the first."""
        if self.error is None:
            self.error = exc
        return exc

    def _error_context(self) -> dict[str, Any]:
        """Where a failure of this stream happened, for the error built for it: provider,
        model, status code, request id, rate limits and the partial response."""
        return self._target.context(
            status_code=self._status(),
            request_id=self.request_id,
            rate_limits=self.rate_limits,
            response=self.response,
        )

    def _stream_error(self, failure: StreamFailure) -> RemoteError:
        target = self._target
        self.error = error = self._pipeline.error(
            failure,
            status=self._status() or 200,
            headers=self._response.headers if self._response is not None else None,
            partial=self.response,
            request_id=self.request_id,
            rate_limits=self.rate_limits,
            provider=target.provider,
            model=target.model_id,
        )
        return error
