"""The middleware seam: ordered async middleware around each call and each attempt.

A *call* is one ``execute()`` or ``stream()`` as the user made it: the whole race of
retries, fallbacks and hedges. An *attempt* is one request to one target inside it. A
middleware sees both through one immutable :class:`Call` view and a ``next`` to call, the
way an ASGI or httpx-auth middleware does::

    class Timing(Middleware):
        async def on_call(self, call, next):
            start = anyio.current_time()
            try:
                return await next(call)
            finally:
                print(call.model, anyio.current_time() - start)

        async def on_attempt(self, call, next):
            return await next(call)  # each attempt: call.attempt is 1, 2, ...

        def on_event(self, call, event):
            ...  # each stream event the user receives

    async with open_client("openai/gpt-4o", middleware=[Timing()]) as client:
        reply = await client.chat().user("2+2?").execute()  # prints the model and the time

The first middleware of the list is the outermost. A middleware may replace the request
(``await next(attrs.evolve(call, request=...))``), observe or replace the response of an
``execute()`` (return another ``ChatResponse``, or one without calling ``next``), observe
each stream event, and see every error (``next`` raises it). A stream's result is the
opened stream: it can be observed (``on_event``; ``on_close(callback)``, called once when
it is closed, with what it delivered, ``stream.response``, and what ended it,
``stream.error``, at no cost per event; or ``stream.watch(StreamWatcher)``, awaited when
the user has read it to its end) or refused (raise), not replaced by another live stream;
a ``ReplayStream`` of recorded events may answer a stream call instead (the response cache
does both: see ``_replay``).

Services installed on every client (OpenTelemetry, when it is installed) come first, from
factories registered with ``add_default_middleware``.

Rules the chain enforces:

- an exception a middleware raises itself (anything but the error ``next`` raised, and
  anything but cancellation) becomes a :class:`~ailib_anyio.MiddlewareError` naming the
  middleware, chained ``from`` the original; so does a result of ``execute()`` that is not
  a ``ChatResponse`` (named after the outermost middleware, which returned it);
- a stream that ``next`` returned and the middleware does not return (it raised, or
  returned something else) is closed at once, so no connection or ``max_inflight`` slot is
  left behind;
- a level no middleware overrides costs nothing: the client calls straight through.

Plain ``async def mw(call, next)`` functions are call-level middleware.
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from types import CodeType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

import anyio
import attrs

from .._core._errors import ConfigurationError, MiddlewareError
from .._core._types import ChatRequest, ChatResponse, StreamingEvent
from .._resilience._shared import ClientResource
from ._replay import ReplayStream

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "Call",
    "Middleware",
    "MiddlewareChain",
    "Next",
    "ResponseCache",
    "add_default_middleware",
    "default_middleware",
]

R = TypeVar("R")

#: What a middleware calls to go on: the rest of the chain, then the request itself.
Next = Callable[["Call"], Awaitable[Any]]


@attrs.frozen(init=False)
class Call:
    """An immutable view of one call (``attempt == 0``) or one attempt (``1, 2, ...``).

    - ``request``: the ``ChatRequest`` about to be sent (``stream`` says which kind);
    - ``provider`` / ``model``: the target's (for a call: the client's primary target);
    - ``attempt``: 0 for the whole call; for an attempt, its number within the call, counted
      across retries, fallbacks and hedges;
    - ``target``: the target's position in the client's chain (0: the primary).
    """

    request: ChatRequest
    provider: str
    model: str
    attempt: int = 0
    target: int = 0

    def __init__(
        self, request: ChatRequest, provider: str, model: str, attempt: int = 0, target: int = 0
    ) -> None:
        # attrs' frozen __init__ looks up object.__setattr__ for each field; a view is
        # made per call and per attempt, so the slots are written directly
        _set_request(self, request)
        _set_provider(self, provider)
        _set_model(self, model)
        _set_attempt(self, attempt)
        _set_target(self, target)

    @property
    def stream(self) -> bool:
        return self.request.stream

    @property
    def is_attempt(self) -> bool:
        return self.attempt > 0


_set_request, _set_provider, _set_model, _set_attempt, _set_target = (
    Call.__dict__[name].__set__ for name in ("request", "provider", "model", "attempt", "target")
)


class Middleware:
    """Base class: override the hooks you need; each default passes straight through (and
    a hook left as it is costs nothing: the chain skips it)."""

    async def on_call(self, call: Call, next: Next) -> Any:
        """Around the whole call (retries, fallbacks and hedges inside)."""
        return await next(call)

    async def on_attempt(self, call: Call, next: Next) -> Any:
        """Around one attempt against one target."""
        return await next(call)

    def on_event(self, call: Call, event: StreamingEvent) -> None:
        """Each stream event, as the user receives it (``call`` is the call's view)."""

    #: Set by the library's own middleware that always returns (or raises) what ``next``
    #: returned (or raised), calls it once, and raises nothing of its own: the chain then
    #: gives its hooks the rest of the chain as ``next`` directly, without the checks
    #: (one coroutine frame per hook instead of two).
    unchecked: ClassVar[bool] = False

    def dormant(self) -> bool:
        """Whether this middleware would pass a call straight through right now (e.g.
        telemetry with nothing to report to). Asked once per call when overridden; a
        dormant middleware's hooks are left out of that call and its attempts."""
        return False


class ResponseCache(ClientResource):
    """What ``open_client(..., cache=...)`` takes (``ailib_anyio.cache.CacheManager`` is
    one, opened and closed as a ``ClientResource``): a service giving each client a
    call-level middleware, the innermost."""

    @abc.abstractmethod
    def middleware_for(self, client: Client) -> Middleware:
        """The call-level middleware serving ``client``."""


class _Hook(Protocol):
    def __call__(self, call: Call, next: Next) -> Awaitable[Any]: ...


#: How a chain runs a tuple of hooks (``MiddlewareChain._plan``).
_Plan = Literal[True] | tuple[CodeType, ...] | None


def _name(middleware: object) -> str:
    """A middleware object's ``display_name`` (a plugin's name), a function's name, or the
    object's class name."""
    for attribute in ("display_name", "__name__"):
        name = getattr(middleware, attribute, None)
        if isinstance(name, str) and name:
            return name
    return type(middleware).__name__


class MiddlewareChain:
    """The client's middleware, split by level once, when the client is configured."""

    __slots__ = (
        "_awake",
        "_codes",
        "_dormancy",
        "_plans",
        "_unchecked",
        "attempt_hooks",
        "call_hooks",
        "event_hooks",
    )

    def __init__(self, middleware: Sequence[object]) -> None:
        calls: list[tuple[str, _Hook]] = []
        attempts: list[tuple[str, _Hook]] = []
        events: list[tuple[str, Callable[[Call, StreamingEvent], None]]] = []
        dormancy: list[Callable[[], bool]] = []
        unchecked: set[int] = set()
        for item in middleware:
            name = _name(item)
            if isinstance(item, Middleware):
                cls = type(item)
                if cls.dormant is not Middleware.dormant:
                    dormancy.append(item.dormant)
                if cls.on_call is not Middleware.on_call:
                    calls.append((name, item.on_call))
                if cls.on_attempt is not Middleware.on_attempt:
                    attempts.append((name, item.on_attempt))
                if cls.on_event is not Middleware.on_event:
                    events.append((name, item.on_event))
            elif callable(item):
                calls.append((name, item))
            else:
                raise ConfigurationError(
                    "middleware must be Middleware objects or async functions (call, next),"
                    f" got {item!r}"
                )
        self.call_hooks = tuple(calls)
        self.attempt_hooks = tuple(attempts)
        self.event_hooks = tuple(events)
        for _, hook in (*self.call_hooks, *self.attempt_hooks):
            if getattr(getattr(hook, "__self__", None), "unchecked", False) is True:
                unchecked.add(id(hook))  # the bound method, kept alive by the tuples
        #: the hooks of ``unchecked`` middleware (by id), run without the checks
        self._unchecked = frozenset(unchecked)
        #: the code of each hook (by id) that is a coroutine function: a chain of those
        #: runs an ``execute()`` without a checking frame per layer (see ``_Flat``)
        self._codes = {
            id(hook): code
            for _, hook in (*self.call_hooks, *self.attempt_hooks)
            if (code := _coroutine_code(hook)) is not None
        }
        #: the ``dormant`` checks of the middleware that has one
        self._dormancy = tuple(dormancy)
        #: the hooks of the middleware that has no ``dormant`` check: what a call runs
        #: while every one of those with a check is dormant
        owners = {id(check.__self__) for check in dormancy}  # type: ignore[attr-defined]
        self._awake = (
            tuple(h for h in self.call_hooks if id(getattr(h[1], "__self__", None)) not in owners),
            tuple(
                h for h in self.attempt_hooks if id(getattr(h[1], "__self__", None)) not in owners
            ),
        )
        #: how ``run`` runs each hooks tuple the chain holds (by id, with the tuple)
        self._plans = {
            id(hooks): (hooks, self._plan(hooks))
            for hooks in (self.call_hooks, self.attempt_hooks, *self._awake)
        }

    def _plan(self, hooks: tuple[tuple[str, _Hook], ...]) -> _Plan:
        """How ``run`` runs ``hooks``: True when every one is ``unchecked`` (nested with no
        checks at all), else the codes of their coroutines when every one is a coroutine
        function (an ``execute()`` runs them as a ``_Flat`` chain), else None."""
        unchecked, codes = self._unchecked, self._codes
        if not any(id(hook) not in unchecked for _, hook in hooks):
            return True
        found = tuple(codes.get(id(hook)) for _, hook in hooks)
        return None if None in found else found  # type: ignore[return-value]

    def active(
        self,
    ) -> tuple[tuple[tuple[str, _Hook], ...], tuple[tuple[str, _Hook], ...]]:
        """The call and attempt hooks one call runs: a dormant middleware's left out."""
        dormancy = self._dormancy
        if not dormancy:
            return self.call_hooks, self.attempt_hooks
        asleep = [check.__self__ for check in dormancy if check()]  # type: ignore[attr-defined]
        if not asleep:
            return self.call_hooks, self.attempt_hooks
        if len(asleep) == len(dormancy):
            return self._awake
        ids = {id(owner) for owner in asleep}
        return (
            tuple(h for h in self.call_hooks if id(getattr(h[1], "__self__", None)) not in ids),
            tuple(h for h in self.attempt_hooks if id(getattr(h[1], "__self__", None)) not in ids),
        )

    def __bool__(self) -> bool:
        return bool(self.call_hooks or self.attempt_hooks or self.event_hooks)

    def run(
        self,
        hooks: tuple[tuple[str, _Hook], ...],
        call: Call,
        last: Callable[[Call], Awaitable[R]],
        discard: Callable[[Any], Awaitable[None]] | None,
    ) -> Awaitable[R]:
        """``last(call)`` inside ``hooks`` (outermost first). ``discard`` closes a stream
        result that a middleware drops; a response of ``execute()`` must stay a
        ``ChatResponse``."""
        held = self._plans.get(id(hooks))
        plan = held[1] if held is not None and held[0] is hooks else self._plan(hooks)
        if plan is True:
            return _nest(hooks, last)(call)
        if plan is not None and not call.request.stream:
            return _Flat(hooks, plan, last).start(call)
        return _link(hooks, last, discard, self._unchecked)(call)

    def observe(self, call: Call, event: StreamingEvent) -> None:
        """Hand one stream event to every ``on_event`` hook."""
        for name, hook in self.event_hooks:
            try:
                hook(call, event)
            except Exception as exc:
                raise MiddlewareError(
                    f"middleware {name} failed in on_event: {type(exc).__name__}: {exc}",
                    middleware=name,
                ) from exc


def _coroutine_code(hook: object) -> CodeType | None:
    """The code of a hook's coroutine frames: a coroutine function's, a method's, or an
    object's ``async def __call__``; None for anything else (a function returning some
    other awaitable has no frame of its own while it runs)."""
    func = getattr(hook, "__func__", hook)
    code = getattr(func, "__code__", None)
    if code is None and not inspect.isroutine(func):
        code = getattr(inspect.getattr_static(type(hook), "__call__", None), "__code__", None)
    if isinstance(code, CodeType) and code.co_flags & inspect.CO_COROUTINE:
        return code
    return None


def _nest(
    hooks: tuple[tuple[str, _Hook], ...], last: Callable[[Call], Awaitable[Any]]
) -> Callable[[Call], Awaitable[Any]]:
    """``last`` inside ``hooks`` with no checks (every hook ``unchecked``)."""
    inner = last
    for _, hook in reversed(hooks):
        inner = functools.partial(hook, next=inner)
    return inner


class _Flat:
    """One ``execute()`` run of a chain of coroutine-function hooks, with one checking
    frame for the whole chain instead of one per layer (at every suspension of a request,
    each frame on the stack is resumed in turn: ten layers of checks would cost more
    than the hooks).

    Each hook's ``next`` is a plain function that checks the ``Call`` it is given and
    returns the next hook's coroutine (the last one: ``last``'s, whose code is kept). An
    exception reaching ``start``'s frame is told apart by its traceback, which lists the
    frames it went through, outermost first: one that went through every layer into the
    code of ``last``'s coroutine is ``next``'s own error and passes untouched; any other
    was raised by the innermost layer it went through (matched by the hooks' codes, in
    order), and is named after it. A result that is not a ``ChatResponse`` is named after
    the outermost middleware, the one that returned it."""

    __slots__ = ("codes", "hooks", "inner", "last")

    def __init__(
        self,
        hooks: tuple[tuple[str, _Hook], ...],
        codes: tuple[CodeType, ...],
        last: Callable[[Call], Awaitable[Any]],
    ) -> None:
        self.hooks, self.codes, self.last = hooks, codes, last
        #: the code of the coroutine ``last`` returned (None until a layer called it)
        self.inner: CodeType | None = None

    def start(self, call: Call) -> Awaitable[Any]:
        inner: Callable[[Call], Awaitable[Any]] = self.finish
        hooks = self.hooks
        for k in range(len(hooks) - 1, 0, -1):
            inner = functools.partial(self.enter, k, hooks[k][1], inner)
        return self.outer(hooks[0][1], inner, call)

    def _not_a_call(self, k: int, call: object) -> MiddlewareError:
        caller = self.hooks[k - 1][0]
        return MiddlewareError(
            f"middleware {caller} called next() with {call!r}, not a Call", middleware=caller
        )

    def enter(
        self, k: int, hook: _Hook, inner: Callable[[Call], Awaitable[Any]], call: Call
    ) -> Awaitable[Any]:
        """Layer ``k - 1``'s ``next``: layer ``k``'s coroutine."""
        if type(call) is not Call and not isinstance(call, Call):
            raise self._not_a_call(k, call)
        return hook(call, inner)

    def finish(self, call: Call) -> Awaitable[Any]:
        """The innermost layer's ``next``: ``last``'s coroutine, whose code is kept."""
        if type(call) is not Call and not isinstance(call, Call):
            raise self._not_a_call(len(self.hooks), call)
        # an error ``last`` raises before it returns (a replaced request that does not
        # encode) goes through this frame
        self.inner = _Flat.finish.__code__
        awaitable = self.last(call)
        code = getattr(awaitable, "cr_code", None)
        if not isinstance(code, CodeType):  # not a coroutine: a frame of ours marks it
            awaitable = _awaited(awaitable)
            code = _awaited.__code__
        self.inner = code
        return awaitable

    def culprit(self, exc: BaseException) -> int | None:
        """The layer that raised ``exc`` (None: ``last`` did)."""
        codes, inner = self.codes, self.inner
        n = len(codes)
        k = -1
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if k + 1 < n and code is codes[k + 1]:
                k += 1
            elif k == n - 1 and code is inner:
                return None
            tb = tb.tb_next
        return max(k, 0)

    async def outer(self, hook: _Hook, inner: Callable[[Call], Awaitable[Any]], call: Call) -> Any:
        try:
            result = await hook(call, inner)
        except Exception as exc:
            if isinstance(exc, MiddlewareError):
                raise
            k = self.culprit(exc)
            if k is None:
                raise
            name = self.hooks[k][0]
            raise MiddlewareError(
                f"middleware {name} failed: {type(exc).__name__}: {exc}", middleware=name
            ) from exc
        if type(result) is not ChatResponse and not isinstance(result, ChatResponse):
            name = self.hooks[0][0]
            raise MiddlewareError(
                f"middleware {name} returned {type(result).__name__}, not a ChatResponse",
                middleware=name,
            )
        return result


async def _awaited(awaitable: Awaitable[R]) -> R:
    return await awaitable


def _link(
    hooks: tuple[tuple[str, _Hook], ...],
    last: Callable[[Call], Awaitable[Any]],
    discard: Callable[[Any], Awaitable[None]] | None,
    unchecked: frozenset[int],
) -> Callable[[Call], Awaitable[Any]]:
    """``last`` inside ``hooks``, outermost first: each hook run by ``_Run.step`` (which
    checks what it is called with, naming the hook that called it, and what the hook
    returns or raises), or, for an ``unchecked`` middleware's, given the rest of the chain
    as its ``next``. What a stream call runs (and an ``execute()`` whose hooks are not
    all coroutine functions: see ``_Flat``).

    Per call, one ``_Run`` holds the state (what the chain's ``last`` raised and, for a
    stream, every stream a layer returned; which layers a stream entered), and each layer
    is a ``functools.partial`` of it: a layer costs its step's coroutine frame and its
    hook's, and no object of its own to initialize."""
    run = _Run(hooks, last, discard)
    inner: Callable[[Call], Awaitable[Any]] = run.finish
    for k in range(len(hooks) - 1, -1, -1):
        hook = hooks[k][1]
        if id(hook) in unchecked:
            inner = functools.partial(hook, next=inner)
        else:
            inner = functools.partial(run.step, k, hook, inner)
    return inner


class _Run:
    """One run of a chain (see ``_link``): ``step(k, ...)`` runs layer ``k``'s hook,
    ``finish`` the chain's ``last``."""

    __slots__ = ("discard", "entered", "hooks", "last", "seen")

    def __init__(
        self,
        hooks: tuple[tuple[str, _Hook], ...],
        last: Callable[[Call], Awaitable[Any]],
        discard: Callable[[Any], Awaitable[None]] | None,
    ) -> None:
        self.hooks, self.last, self.discard = hooks, last, discard
        #: what ``last`` raised; for a stream also what it and each layer returned
        self.seen: list[object] = []
        #: bit k: layer k was entered (for a stream, once only)
        self.entered = 0

    def _check(self, k: int, call: object) -> None:
        """What the hook of layer ``k - 1`` may call its ``next`` (layer ``k``) with."""
        if type(call) is not Call and not isinstance(call, Call):
            caller = self.hooks[k - 1][0]
            raise MiddlewareError(
                f"middleware {caller} called next() with {call!r}, not a Call",
                middleware=caller,
            )
        if call.request.stream:
            bit = 1 << k
            if self.entered & bit:
                caller = self.hooks[k - 1][0]
                raise MiddlewareError(
                    f"middleware {caller} called next() twice for a stream", middleware=caller
                )
            self.entered |= bit

    async def finish(self, call: Call) -> Any:
        if type(call) is not Call or call.request.stream:
            self._check(len(self.hooks), call)
        try:
            result = await self.last(call)
        except BaseException as exc:
            self.seen.append(exc)
            raise
        if call.request.stream:
            self.seen.append(result)
        return result

    async def step(
        self, k: int, hook: _Hook, inner: Callable[[Call], Awaitable[Any]], call: Call
    ) -> Any:
        if k and (type(call) is not Call or call.request.stream):
            self._check(k, call)  # (a Call of an execute() passes as it is)
        try:
            result = await hook(call, inner)
        except BaseException as exc:
            seen, discard = self.seen, self.discard
            if discard is not None:
                await _drop(seen, None, discard)
            if (
                not isinstance(exc, Exception)
                or isinstance(exc, MiddlewareError)
                or any(exc is item for item in seen)
            ):
                raise  # next's own error, or cancellation: untouched
            name = self.hooks[k][0]
            raise MiddlewareError(
                f"middleware {name} failed: {type(exc).__name__}: {exc}", middleware=name
            ) from exc
        if call.request.stream:
            seen, discard = self.seen, self.discard
            # a ReplayStream answers a stream call (a cache hit); anything else must be the
            # stream next opened
            if not isinstance(result, ReplayStream) and not any(result is item for item in seen):
                if discard is not None:
                    await _drop(seen, None, discard)
                name = self.hooks[k][0]
                raise MiddlewareError(
                    f"middleware {name} returned {type(result).__name__} for a stream;"
                    " a stream can be observed or refused, not replaced (a ReplayStream of"
                    " recorded events can answer it)",
                    middleware=name,
                )
            if discard is not None and _others(seen, result):
                await _drop(seen, result, discard)
            seen.append(result)
        elif type(result) is not ChatResponse and not isinstance(result, ChatResponse):
            name = self.hooks[k][0]
            raise MiddlewareError(
                f"middleware {name} returned {type(result).__name__}, not a ChatResponse",
                middleware=name,
            )
        return result


def _others(seen: list[object], kept: object) -> bool:
    """Whether ``seen`` holds a result other than ``kept``."""
    return any(item is not kept and not isinstance(item, BaseException) for item in seen)


async def _drop(
    seen: list[object], kept: object, discard: Callable[[Any], Awaitable[None]] | None
) -> None:
    """Close every stream result of ``next`` except the one passed on."""
    if discard is None:
        return
    for item in seen:
        if item is not kept and not isinstance(item, BaseException):
            with anyio.CancelScope(shield=True):
                await discard(item)


#: What every client installs before its own middleware: ``factory(client)`` returns a
#: middleware or None. The services layer's OpenTelemetry instrumentation registers here
#: (through the package's ``__init__``), so the client never imports a layer above it.
_DEFAULTS: list[Callable[[Any], object | None]] = []


def add_default_middleware(factory: Callable[[Any], object | None]) -> None:
    """Register ``factory(client) -> middleware | None``, asked by every client made from
    now on, outermost first in the order registered."""
    if factory not in _DEFAULTS:
        _DEFAULTS.append(factory)


def default_middleware(client: Any) -> tuple[object, ...]:
    """The middleware the registered factories give ``client`` (none: an empty tuple)."""
    if not _DEFAULTS:
        return ()
    found = (factory(client) for factory in _DEFAULTS)
    return tuple(item for item in found if item is not None)
