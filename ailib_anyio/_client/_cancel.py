"""Cancelling a stream from another task: ``create_cancel_pair`` and ``CancellableStream``.

The reference README's cancel API, built on cancel scopes. A ``CancelToken`` (the read
side) travels with the stream; its ``CancelHandle`` (the write side) can be given to any
other task of the same event loop — a UI's stop button, a supervisor, a shutdown hook::

    token, handle = create_cancel_pair()
    async with CancellableStream(client.chat().user("Write a long story").stream(), token) as s:
        async for event in s:  # ends quietly once handle.cancel() is called
            ...
    print(s.cancel_reason, s.response.content)  # why it stopped, what had arrived

While the stream waits for the provider (the response headers or the next chunk), that
wait runs in an ``anyio.CancelScope`` the token knows about; ``handle.cancel()`` cancels
those scopes directly. So a stream blocked on a slow provider ends at once: no polling,
no watcher task. The HTTP response is then closed in a shielded scope, as on any early
exit from a ``ChatStream``.
"""

from __future__ import annotations

import enum
from types import TracebackType

import anyio
import anyio.lowlevel

from .._core._types import ChatResponse, StreamingEvent
from ._state import State
from ._stream import ChatStream, not_open_error

__all__ = [
    "CancelHandle",
    "CancelReason",
    "CancelToken",
    "CancellableStream",
    "create_cancel_pair",
]


class CancelReason(enum.Enum):
    """Why a stream was cancelled; recorded on the stream as ``cancel_reason``."""

    #: The user asked to stop (a stop button, a closed page). The default.
    USER_REQUEST = "user_request"
    #: A deadline of the application's own ran out.
    TIMEOUT = "timeout"
    #: The application is shutting down.
    SHUTDOWN = "shutdown"
    #: Something else failed and the stream's output is no longer wanted.
    ERROR = "error"


class CancelToken:
    """The read side of a cancel pair: whether, and why, cancellation was asked for.

    Create it with ``create_cancel_pair()``. A token is used within one event loop; it
    never resets. ``await token.wait()`` returns once it is cancelled.
    """

    __slots__ = ("_event", "_reason", "_scopes")

    def __init__(self) -> None:
        self._reason: CancelReason | None = None
        # Created lazily: an anyio.Event needs a running event loop, a token does not.
        self._event: anyio.Event | None = None
        # The scopes of the waits currently linked to this token (see CancellableStream).
        self._scopes: set[anyio.CancelScope] = set()

    def __repr__(self) -> str:
        state = f"cancelled ({self._reason.name})" if self._reason is not None else "active"
        return f"<CancelToken {state}>"

    @property
    def is_cancelled(self) -> bool:
        """Whether the handle's ``cancel()`` has been called."""
        return self._reason is not None

    @property
    def reason(self) -> CancelReason | None:
        """The reason given to the first ``cancel()``, or ``None`` while not cancelled."""
        return self._reason

    async def wait(self) -> None:
        """Return once the token is cancelled (at once, after a checkpoint, if it is)."""
        if self._reason is not None:
            await anyio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    def _link(self, scope: anyio.CancelScope) -> None:
        if self._reason is not None:
            scope.cancel()
        else:
            self._scopes.add(scope)

    def _unlink(self, scope: anyio.CancelScope) -> None:
        self._scopes.discard(scope)

    def _cancel(self, reason: CancelReason) -> None:
        if self._reason is not None:
            return  # idempotent: the first reason wins
        self._reason = reason
        scopes, self._scopes = self._scopes, set()
        for scope in scopes:
            scope.cancel()
        if self._event is not None:
            self._event.set()


class CancelHandle:
    """The write side of a cancel pair: ``handle.cancel(reason)`` cancels its token.

    Call it from any task of the token's event loop (from another thread, go through
    ``anyio.from_thread.run_sync(handle.cancel)``).
    """

    __slots__ = ("_token",)

    def __init__(self, token: CancelToken) -> None:
        self._token = token

    def __repr__(self) -> str:
        return f"<CancelHandle for {self._token!r}>"

    @property
    def token(self) -> CancelToken:
        """The token this handle cancels."""
        return self._token

    @property
    def is_cancelled(self) -> bool:
        """Whether ``cancel()`` has been called."""
        return self._token.is_cancelled

    def cancel(self, reason: CancelReason = CancelReason.USER_REQUEST) -> None:
        """Cancel the token: every stream waiting on it ends now, later ones on entry.

        Idempotent; the first call's reason is the one recorded. Does not block.
        """
        if not isinstance(reason, CancelReason):
            raise TypeError(f"reason must be a CancelReason, got {reason!r}")
        self._token._cancel(reason)


def create_cancel_pair() -> tuple[CancelToken, CancelHandle]:
    """A new ``(token, handle)`` pair: pass the token to ``CancellableStream``, keep the
    handle to call ``handle.cancel(CancelReason.USER_REQUEST)`` from anywhere."""
    token = CancelToken()
    return token, CancelHandle(token)


class CancellableStream:
    """A ``ChatStream`` that also ends when ``token`` is cancelled.

    Use it like the stream it wraps::

        token, handle = create_cancel_pair()
        async with CancellableStream(client.chat().user("Hi").stream(), token) as stream:
            async for event in stream:
                handle.cancel()  # from any task; here, at the first event
        assert stream.cancel_reason is CancelReason.USER_REQUEST

    When the token is cancelled, iteration stops (no exception), ``cancel_reason`` says
    why, the HTTP response is closed at once (shielded) and ``response`` keeps what was
    delivered before. A wait for the provider (headers, next chunk) is interrupted
    immediately; if the task is busy elsewhere in the loop body, the stream stops at its
    next ``__anext__`` (or when the block exits, which always closes it). A token
    cancelled before the block is entered ends the stream before any request is sent.
    Errors, ``break`` and the caller's own cancel scopes behave as on ``ChatStream``.
    """

    def __init__(self, stream: ChatStream, token: CancelToken) -> None:
        if not isinstance(stream, ChatStream):
            raise TypeError(f"expected a ChatStream, got {type(stream).__name__}")
        if not isinstance(token, CancelToken):
            raise TypeError(f"expected a CancelToken, got {type(token).__name__}")
        self._stream = stream
        self._token = token
        self._entered = False
        self._exited = False
        self._stopped = False
        self.cancel_reason: CancelReason | None = None
        """Why the token ended this stream; ``None`` if it did not."""

    def __repr__(self) -> str:
        return f"<CancellableStream cancel_reason={self.cancel_reason} token={self._token!r}>"

    @property
    def stream(self) -> ChatStream:
        """The wrapped stream."""
        return self._stream

    @property
    def token(self) -> CancelToken:
        """The token this stream listens to."""
        return self._token

    @property
    def response(self) -> ChatResponse:
        """Everything delivered so far, accumulated (also after a cancellation)."""
        return self._stream.response

    async def __aenter__(self) -> CancellableStream:
        if self._entered:
            raise RuntimeError("a CancellableStream can be entered only once")
        self._entered = True
        token = self._token
        if token.is_cancelled:
            await self._stop()  # nothing was sent; this only marks the inner stream closed
            await anyio.lowlevel.checkpoint()
            return self
        with anyio.CancelScope() as scope:
            token._link(scope)
            try:
                await self._stream.__aenter__()
            finally:
                token._unlink(scope)
        # ChatStream.__aenter__ closes its response itself when it is cancelled.
        if token.is_cancelled:
            await self._stop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exited = True
        await self.aclose()

    async def aclose(self) -> None:
        """Close the wrapped stream. Idempotent, shielded."""
        self._stopped = True
        await self._stream.aclose()

    async def _stop(self) -> None:
        self.cancel_reason = self._token.reason
        await self.aclose()

    def __aiter__(self) -> CancellableStream:
        if not self._entered or self._exited:
            raise not_open_error(
                State.CLOSED if self._exited else State.UNOPENED,
                "async with CancellableStream(builder.stream(), token) as stream",
            )
        return self

    async def __anext__(self) -> StreamingEvent:
        if self._stopped:
            raise StopAsyncIteration
        token = self._token
        if token.is_cancelled:
            await self._stop()
            raise StopAsyncIteration
        with anyio.CancelScope() as scope:
            token._link(scope)
            try:
                return await self._stream.__anext__()
            finally:
                token._unlink(scope)
        # Only reached when the token's cancellation interrupted the wait.
        await self._stop()
        raise StopAsyncIteration
