"""The call path of a client: each call raced down its targets.

``CallRunner`` runs one call — a request or a stream, inside the call middleware the
``Client`` runs around it — down the client's ordered targets: each target's retry loop
(its ``TargetGuard``), the fallbacks in order, hedged if configured, within the total
deadline, each attempt inside the attempt middleware when any is installed. A model
array's router orders each call's chain. It counts the fallbacks and hedges it starts
(``Client.get_resilience_stats``). A stream is opened up to its first event here (within
the first-token or idle limit); the ``ChatStream`` the user holds then reads it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs

from .._core._errors import (
    AiLibError,
    DeadlineExceededError,
    FirstTokenTimeoutError,
    IdleTimeoutError,
)
from .._core._types import ChatRequest, ChatResponse, RateLimitSnapshot
from .._resilience._run import Deadlines, race, within
from ._middleware import Call

if TYPE_CHECKING:
    from ._client import Client
    from ._replay import ReplayStream
    from ._target import Target
    from ._targetstream import TargetStream

__all__ = ["CallRunner", "close_stream"]

_R = TypeVar("_R")


class CallRunner:
    """The calls of one client (see the module docstring): ``execute`` and ``open_stream``
    run a call's race, the middleware around the call excepted (``Client.execute`` and
    ``Client.open_stream`` run it)."""

    def __init__(self, client: Client) -> None:
        #: the client's targets in order, its primary, its model array's router (or None)
        self.targets = client.targets
        self.primary = client.primary
        self.router = client.router
        self.middleware = client.middleware
        config = client.config
        self.hedge = config.hedge
        #: the total, first-token and idle limits of each call
        self.deadlines = config.deadlines or Deadlines()
        self._check_open = client.check_open
        #: fallbacks and hedges started so far, for the resilience stats
        self.fallbacks_used = 0
        self.hedges_started = 0

    async def _resilient(
        self,
        run: Callable[[Target], Awaitable[_R]],
        errors: list[AiLibError],
        discard: Callable[[_R], Awaitable[None]] | None = None,
        *,
        stream: bool = False,
    ) -> _R:
        """Run ``run(target)`` down the fallback chain (hedged if configured) within the
        total deadline; a final error carries every attempt's error in ``attempts``. A
        model array's router orders the chain of each call (and times its endpoints).

        No closure is made on the common path (one target, no total deadline): at a
        thousand concurrent streams, what each call holds while it connects is memory."""
        targets = self.targets
        router = self.router
        if router is not None:
            targets = tuple(router.order(stream, targets))
            run = router.timed(run, stream)
        total = self.deadlines.total
        try:
            if total is None:  # the common cases without a task group or extra frame
                if len(targets) == 1:
                    return await run(targets[0])
                return await self._chain(targets, run, errors, discard)
            return await within(
                total,
                lambda: self._chain(targets, run, errors, discard),
                lambda: DeadlineExceededError(
                    f"the request's total deadline of {total:g}s ran out", **self.primary.context()
                ),
            )
        except AiLibError as exc:
            if exc not in errors:
                errors.append(exc)
            exc.attempts = tuple(errors)
            raise

    def _chain(
        self,
        targets: Sequence[Target],
        run: Callable[[Target], Awaitable[_R]],
        errors: list[AiLibError],
        discard: Callable[[_R], Awaitable[None]] | None,
    ) -> Awaitable[_R]:
        """The race down the targets: fallbacks in order, hedged if configured."""
        hedge = self.hedge.delay if self.hedge is not None else None
        return race(
            targets,
            run,
            hedge_delay=hedge,
            discard=discard,
            errors=errors,
            on_next=self._count_next,
        )

    def _count_next(self, hedged: bool) -> None:
        if hedged:
            self.hedges_started += 1
        else:
            self.fallbacks_used += 1

    def attempt(
        self,
        target: Target,
        request: ChatRequest,
        content: bytes,
        send: Callable[[bytes], Awaitable[_R]],
        counter: list[int],
        discard: Callable[[Any], Awaitable[None]] | None,
        hooks: tuple[tuple[str, Any], ...],
    ) -> Callable[[], Awaitable[_R]]:
        """One attempt of ``target``: ``send(content)``, inside the attempt middleware
        ``hooks`` when there are any (a request it replaces is encoded again, and
        checked)."""
        if not hooks:
            return lambda: send(content)
        index = self.targets.index(target)

        def last(call: Call) -> Awaitable[_R]:
            if call.request is request:
                return send(content)
            return send(target.encode(call.request))

        def attempt() -> Awaitable[_R]:
            counter[0] += 1
            view = Call(
                request=request,
                provider=target.provider,
                model=target.model_id,
                attempt=counter[0],
                target=index,
            )
            return self.middleware.run(hooks, view, last, discard)

        return attempt

    async def execute(
        self,
        request: ChatRequest,
        http_timeout: float | None,
        attempt_hooks: tuple[tuple[str, Any], ...],
    ) -> ChatResponse:
        """The request down the fallback chain, to its whole response."""
        self._check_open()
        errors: list[AiLibError] = []
        counter = [0]

        def run(target: Target) -> Awaitable[ChatResponse]:
            req = (
                request if target is self.primary else attrs.evolve(request, model=target.model_id)
            )
            content = target.encode(req)

            def send(body: bytes) -> Awaitable[ChatResponse]:
                return target.execute_once(body, http_timeout)

            return target.guard.call(
                self.attempt(target, req, content, send, counter, None, attempt_hooks),
                errors,
                tokens=_token_estimate(content, req),
                rate_limits=_response_rate_limits,
            )

        return await self._resilient(run, errors)

    def open_stream(
        self,
        request: ChatRequest,
        http_timeout: float | None,
        attempt_hooks: tuple[tuple[str, Any], ...],
    ) -> Awaitable[TargetStream]:
        """The stream call down the fallback chain. Its state is one slotted
        ``_StreamOpening``, not closures and cells, and what it calls returns awaitables
        instead of awaiting them, so the only coroutine frames a stream holds while it
        connects are ``_resilient``, its target's retry loop and the attempt: at a
        thousand concurrent streams, each of these is memory."""
        self._check_open()
        opening = _StreamOpening(self, request, http_timeout, attempt_hooks)
        return self._resilient(opening.run, opening.errors, close_stream, stream=True)


class _StreamOpening:
    """One stream call's state while it connects (see ``CallRunner.open_stream``):
    ``run(target)`` is the guarded attempt of ``target``, ``open_on(target, body)`` opens
    its stream up to the first event within the first-token or idle limit."""

    __slots__ = (
        "attempt_hooks",
        "counter",
        "deadline",
        "errors",
        "first_token",
        "idle",
        "request",
        "runner",
        "timeout",
    )

    def __init__(
        self,
        runner: CallRunner,
        request: ChatRequest,
        timeout: float | None,
        attempt_hooks: tuple[tuple[str, Any], ...],
    ) -> None:
        self.runner = runner
        self.request = request
        self.timeout = timeout
        self.attempt_hooks = attempt_hooks
        self.errors: list[AiLibError] = []
        limits = runner.deadlines
        self.deadline = None if limits.total is None else anyio.current_time() + limits.total
        self.first_token = limits.first_token
        self.idle = limits.idle
        #: the attempts so far, counted for the attempt middleware (made when there is any)
        self.counter: list[int] | None = None

    def run(self, target: Target) -> Awaitable[TargetStream]:
        runner = self.runner
        request = self.request
        if target is not runner.primary:
            request = attrs.evolve(request, model=target.model_id)
        content = target.encode(request)
        attempt: Callable[[], Awaitable[TargetStream]]
        if self.attempt_hooks:
            if self.counter is None:
                self.counter = [0]
            attempt = runner.attempt(
                target,
                request,
                content,
                functools.partial(self.open_on, target),
                self.counter,
                close_stream,
                self.attempt_hooks,
            )
        else:
            attempt = _StreamAttempt(self, target, content)
        return target.guard.call(
            attempt,
            self.errors,
            tokens=_token_estimate(content, request),
            rate_limits=_stream_rate_limits,
        )

    def open_on(self, target: Target, body: bytes) -> Awaitable[TargetStream]:
        from ._targetstream import TargetStream  # loaded with the first stream

        idle = self.idle
        live = TargetStream(target, body, self.timeout, idle=idle, deadline=self.deadline)
        first_token = self.first_token
        if first_token is not None:
            return within(
                first_token,
                live.open,
                lambda: FirstTokenTimeoutError(
                    f"no first event within {first_token:g}s", **target.context()
                ),
            )
        if idle is not None:  # without first_token, idle bounds the first wait too
            return within(
                idle,
                live.open,
                lambda: IdleTimeoutError(
                    f"no event from the provider for {idle:g}s", **target.context()
                ),
            )
        return live.open()


class _StreamAttempt:
    """An attempt without attempt middleware: ``opening.open_on(target, content)``."""

    __slots__ = ("content", "opening", "target")

    def __init__(self, opening: _StreamOpening, target: Target, content: bytes) -> None:
        self.opening = opening
        self.target = target
        self.content = content

    def __call__(self) -> Awaitable[TargetStream]:
        return self.opening.open_on(self.target, self.content)


def _response_rate_limits(response: ChatResponse) -> RateLimitSnapshot | None:
    return response.rate_limits


def _stream_rate_limits(stream: TargetStream) -> RateLimitSnapshot | None:
    return stream.rate_limits


async def close_stream(stream: TargetStream | ReplayStream) -> None:
    """Close a stream nobody will read (a hedge that lost, one a middleware dropped)."""
    stream.discarded = True
    await stream.aclose()


def _token_estimate(content: bytes, request: ChatRequest) -> int:
    """Tokens a request may use, for a tokens-per-minute limiter: about 4 bytes of body
    per input token, plus the output it allows."""
    return len(content) // 4 + (request.max_tokens or 0)
