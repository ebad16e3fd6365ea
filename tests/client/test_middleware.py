"""The middleware seam: the chain alone (fake ``last``), then end to end through a client
against the loopback mock provider, on both backends."""

from __future__ import annotations

from typing import Any

import anyio
import attrs
import pytest

from ailib_anyio import (
    Call,
    ChatResponse,
    ContentDelta,
    Message,
    Middleware,
    MiddlewareError,
    RateLimitedError,
    ServerError,
    open_client,
)
from ailib_anyio._client._middleware import MiddlewareChain, Next
from ailib_anyio._core._types import ChatRequest
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-middleware-test-key-000"


def _call(stream: bool = False) -> Call:
    request = ChatRequest(model="m", messages=(Message.user("hi"),), stream=stream)
    return Call(request=request, provider="p", model="m")


class _Stream:
    def __init__(self) -> None:
        self.closed = False


# ------------------------------------------------------------------ the chain alone


def test_levels_a_middleware_does_not_override_cost_nothing() -> None:
    class OnlyCalls(Middleware):
        async def on_call(self, call: Call, next: Next) -> Any:
            return await next(call)

    chain = MiddlewareChain([OnlyCalls(), Middleware()])
    assert [name for name, _ in chain.call_hooks] == ["OnlyCalls"]
    assert chain.attempt_hooks == ()
    assert chain.event_hooks == ()
    assert not MiddlewareChain([Middleware()])
    assert not MiddlewareChain([])


def test_a_dormant_middleware_is_left_out_of_the_call_while_dormant() -> None:
    class Sleepy(Middleware):
        asleep = True

        async def on_call(self, call: Call, next: Next) -> Any:
            return await next(call)

        async def on_attempt(self, call: Call, next: Next) -> Any:
            return await next(call)

        def dormant(self) -> bool:
            return self.asleep

    class Awake(Middleware):
        async def on_call(self, call: Call, next: Next) -> Any:
            return await next(call)

    sleepy = Sleepy()
    chain = MiddlewareChain([sleepy, Awake()])
    calls, attempts = chain.active()
    assert [name for name, _ in calls] == ["Awake"]
    assert attempts == ()
    sleepy.asleep = False
    assert chain.active() == (chain.call_hooks, chain.attempt_hooks)
    assert [name for name, _ in chain.call_hooks] == ["Sleepy", "Awake"]


async def test_an_unchecked_middleware_gets_the_rest_of_the_chain_as_next() -> None:
    nexts: list[object] = []

    class Trusted(Middleware):
        unchecked = True

        async def on_call(self, call: Call, next: Next) -> Any:
            nexts.append(next)
            return await next(call)

    async def last(call: Call) -> ChatResponse:
        return ChatResponse(content="sent")

    chain = MiddlewareChain([Trusted()])
    assert (await chain.run(chain.call_hooks, _call(), last, None)).content == "sent"
    assert nexts[0] is last


def test_non_middleware_is_refused() -> None:
    with pytest.raises(Exception, match="middleware must be Middleware objects or async functions"):
        MiddlewareChain([42])


async def test_order_is_outermost_first_and_request_can_be_replaced() -> None:
    trail: list[str] = []

    def tagger(tag: str) -> Any:
        async def mw(call: Call, next: Next) -> Any:
            trail.append(f"{tag}>")
            text = call.request.messages[0].content
            request = attrs.evolve(call.request, messages=(Message.user(f"{text}+{tag}"),))
            result = await next(attrs.evolve(call, request=request))
            trail.append(f"<{tag}")
            return result

        mw.__qualname__ = tag
        return mw

    async def last(call: Call) -> ChatResponse:
        trail.append("send")
        return ChatResponse(content=str(call.request.messages[0].content), model="m")

    chain = MiddlewareChain([tagger("a"), tagger("b")])
    result = await chain.run(chain.call_hooks, _call(), last, None)
    assert trail == ["a>", "b>", "send", "<b", "<a"]
    assert result.content == "hi+a+b"


async def test_a_response_can_be_replaced_or_served_without_next() -> None:
    sent: list[Call] = []

    async def last(call: Call) -> ChatResponse:
        sent.append(call)
        return ChatResponse(content="from the provider")

    async def cache(call: Call, next: Next) -> Any:
        return ChatResponse(content="cached")

    chain = MiddlewareChain([cache])
    assert (await chain.run(chain.call_hooks, _call(), last, None)).content == "cached"
    assert sent == []


async def test_errors_from_next_pass_through_untouched() -> None:
    seen: list[BaseException] = []
    error = ServerError("boom", status_code=500)

    async def watcher(call: Call, next: Next) -> Any:
        try:
            return await next(call)
        except Exception as exc:
            seen.append(exc)
            raise

    async def last(call: Call) -> ChatResponse:
        raise error

    chain = MiddlewareChain([watcher, watcher])
    with pytest.raises(ServerError) as info:
        await chain.run(chain.call_hooks, _call(), last, None)
    assert info.value is error
    assert seen == [error, error]


async def test_a_middlewares_own_exception_is_named() -> None:
    class Broken(Middleware):
        async def on_call(self, call: Call, next: Next) -> Any:
            await next(call)
            raise KeyError("oops")

    async def last(call: Call) -> ChatResponse:
        return ChatResponse(content="x")

    chain = MiddlewareChain([Broken()])
    with pytest.raises(MiddlewareError) as info:
        await chain.run(chain.call_hooks, _call(), last, None)
    assert info.value.middleware == "Broken"
    assert str(info.value) == "middleware Broken failed: KeyError: 'oops'"
    assert isinstance(info.value.__cause__, KeyError)


async def test_a_library_error_a_middleware_makes_itself_is_named_too() -> None:
    async def refuse(call: Call, next: Next) -> Any:
        raise RateLimitedError("local budget spent")

    async def last(call: Call) -> ChatResponse:  # pragma: no cover - never reached
        raise AssertionError

    chain = MiddlewareChain([refuse])
    with pytest.raises(MiddlewareError, match="middleware refuse failed: RateLimitedError"):
        await chain.run(chain.call_hooks, _call(), last, None)


async def test_wrong_results_are_named() -> None:
    async def bad_call(call: Call, next: Next) -> Any:
        return await next("not a call")

    async def bad_result(call: Call, next: Next) -> Any:
        await next(call)
        return {"content": "x"}

    async def last(call: Call) -> ChatResponse:
        return ChatResponse(content="x")

    for mw, message in [
        (bad_call, r"bad_call called next\(\) with 'not a call', not a Call"),
        (bad_result, "bad_result returned dict, not a ChatResponse"),
    ]:
        chain = MiddlewareChain([mw])
        with pytest.raises(MiddlewareError, match=message):
            await chain.run(chain.call_hooks, _call(), last, None)


class _Layer(Middleware):
    """One of several layers of the same class (so of the same code), told apart by
    name; ``mode`` says what it does around ``next``."""

    def __init__(self, name: str, mode: str = "pass") -> None:
        self.display_name = name
        self.mode = mode

    async def on_call(self, call: Call, next: Next) -> Any:
        if self.mode == "refuse":
            return _refuse(self.display_name)  # raised one frame below the hook
        try:
            result = await next(call)
        except ServerError as exc:
            if self.mode == "translate":
                raise ValueError(f"{self.display_name} saw {exc.message}") from exc
            if self.mode == "reraise":
                raise exc  # the same object, raised again by name
            raise
        if self.mode == "junk":
            return {"from": self.display_name}
        if self.mode == "fail":
            raise KeyError(self.display_name)
        return result


def _refuse(name: str) -> Any:
    raise LookupError(f"{name} refused")


def _layers(*modes: str) -> MiddlewareChain:
    return MiddlewareChain([_Layer(f"m{k}", mode) for k, mode in enumerate(modes)])


async def test_the_layer_that_raised_is_named_among_layers_of_one_class() -> None:
    """A chain of coroutine hooks runs an execute() with one checking frame (not one per
    layer): the traceback tells which layer raised, even when every layer runs the same
    code."""

    async def ok(call: Call) -> ChatResponse:
        return ChatResponse(content="x")

    error = ServerError("boom", status_code=500)

    async def failing(call: Call) -> ChatResponse:
        raise error

    def failing_at_once(call: Call) -> Any:  # raises before it returns an awaitable
        raise error

    for modes, last, expected in [
        (("pass", "pass", "fail", "pass", "pass"), ok, ("m2", KeyError)),
        (("pass", "pass", "pass", "pass", "fail"), ok, ("m4", KeyError)),
        (("fail", "pass", "pass"), ok, ("m0", KeyError)),
        (("pass", "refuse", "pass"), ok, ("m1", LookupError)),
        (("pass", "translate", "pass", "pass"), failing, ("m1", ValueError)),
        (("pass", "pass", "pass"), failing, None),
        (("pass", "pass"), failing_at_once, None),
        (("pass", "reraise", "pass"), failing, None),
    ]:
        chain = _layers(*modes)
        if expected is None:  # next's own error: untouched, whoever let it through
            with pytest.raises(ServerError) as passed:
                await chain.run(chain.call_hooks, _call(), last, None)
            assert passed.value is error
            continue
        with pytest.raises(MiddlewareError) as info:
            await chain.run(chain.call_hooks, _call(), last, None)
        name, cause = expected
        assert info.value.middleware == name, modes
        assert isinstance(info.value.__cause__, cause)


async def test_a_wrong_result_is_named_after_the_middleware_that_returned_it() -> None:
    async def ok(call: Call) -> ChatResponse:
        return ChatResponse(content="x")

    chain = _layers("pass", "junk", "pass")
    with pytest.raises(MiddlewareError, match="middleware m0 returned dict") as info:
        await chain.run(chain.call_hooks, _call(), ok, None)
    assert info.value.middleware == "m0"  # the outermost returned it to the client


async def test_hooks_that_are_not_coroutine_functions_are_checked_layer_by_layer() -> None:
    """A hook that returns some other awaitable has no frame while it runs: such a chain
    is run with a checking frame per layer, and still names the right one."""

    class Plain:
        def __init__(self, name: str, fail: bool) -> None:
            self.__name__ = name
            self.fail = fail

        def __call__(self, call: Call, next: Next) -> Any:
            return self.run(call, next)

        async def run(self, call: Call, next: Next) -> Any:
            result = await next(call)
            if self.fail:
                raise KeyError(self.__name__)
            return result

    async def ok(call: Call) -> ChatResponse:
        return ChatResponse(content="x")

    def not_a_coroutine(call: Call) -> Any:  # last returning a Future-like awaitable
        return _Ready(ChatResponse(content="ready"))

    chain = MiddlewareChain([Plain("p0", False), Plain("p1", True), Plain("p2", False)])
    with pytest.raises(MiddlewareError) as info:
        await chain.run(chain.call_hooks, _call(), ok, None)
    assert info.value.middleware == "p1"
    chain = _layers("pass", "pass")
    assert (await chain.run(chain.call_hooks, _call(), not_a_coroutine, None)).content == "ready"


class _Ready:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return self.value
        yield  # pragma: no cover - makes this a generator


async def test_a_dropped_stream_is_closed() -> None:
    opened: list[_Stream] = []

    async def last(call: Call) -> _Stream:
        opened.append(_Stream())
        return opened[-1]

    async def discard(stream: _Stream) -> None:
        stream.closed = True

    async def refuses_after(call: Call, next: Next) -> Any:
        await next(call)
        raise ValueError("not this one")

    async def replaces(call: Call, next: Next) -> Any:
        await next(call)
        return _Stream()

    async def twice(call: Call, next: Next) -> Any:
        await next(call)
        return await next(call)

    for mw, message in [
        (refuses_after, "failed: ValueError: not this one"),
        (replaces, "a stream can be observed or refused, not replaced"),
        (twice, "called next\\(\\) twice for a stream"),
    ]:
        opened.clear()
        chain = MiddlewareChain([mw])
        with pytest.raises(MiddlewareError, match=message):
            await chain.run(chain.call_hooks, _call(stream=True), last, discard)
        assert opened and all(s.closed for s in opened)


async def test_cancellation_passes_through_a_middleware() -> None:
    async def slow(call: Call) -> ChatResponse:
        await anyio.sleep(10)
        raise AssertionError  # pragma: no cover

    async def swallow_nothing(call: Call, next: Next) -> Any:
        return await next(call)

    chain = MiddlewareChain([swallow_nothing])
    with anyio.move_on_after(0.05) as scope:
        await chain.run(chain.call_hooks, _call(), slow, None)
    assert scope.cancelled_caught


def test_an_event_hook_that_raises_is_named() -> None:
    class Bad(Middleware):
        def on_event(self, call: Call, event: Any) -> None:
            raise RuntimeError("no")

    chain = MiddlewareChain([Bad()])
    with pytest.raises(MiddlewareError, match=r"failed in on_event: RuntimeError: no"):
        chain.observe(_call(stream=True), ContentDelta("x"))


# ------------------------------------------------------------------ through a client


class Recorder(Middleware):
    def __init__(self) -> None:
        self.trail: list[tuple[str, int, str]] = []
        self.events: list[str] = []
        self.errors: list[str] = []

    async def on_call(self, call: Call, next: Next) -> Any:
        self.trail.append(("call", call.attempt, call.model))
        return await next(call)

    async def on_attempt(self, call: Call, next: Next) -> Any:
        self.trail.append(("attempt", call.attempt, call.model))
        try:
            return await next(call)
        except Exception as exc:
            self.errors.append(type(exc).__name__)
            raise

    def on_event(self, call: Call, event: Any) -> None:
        if isinstance(event, ContentDelta):
            self.events.append(event.text)


@pytest.fixture
async def mock() -> Any:
    async with MockProvider() as server:
        yield server


async def test_every_attempt_of_a_call_is_seen_with_its_error(mock: MockProvider) -> None:
    mock.enqueue(Reply.error(500, "boom"), ScriptedReply(content="ok"))
    recorder = Recorder()
    async with open_client(
        "openai/gpt-4o", api_key=KEY, base_url=mock.openai_base_url, middleware=[recorder]
    ) as client:
        reply = await client.chat().user("hi").execute()
    assert reply.content == "ok"
    assert recorder.trail == [
        ("call", 0, "gpt-4o"),
        ("attempt", 1, "gpt-4o"),
        ("attempt", 2, "gpt-4o"),
    ]
    assert recorder.errors == ["ServerError"]


async def test_stream_events_are_observed_and_a_refused_stream_is_closed(
    mock: MockProvider,
) -> None:
    mock.enqueue(ScriptedReply(content="abcdefgh", chunk_size=2))
    recorder = Recorder()
    async with open_client(
        "openai/gpt-4o", api_key=KEY, base_url=mock.openai_base_url, middleware=[recorder]
    ) as client:
        async with client.chat().user("hi").stream() as stream:
            async for _ in stream:
                pass
        assert recorder.events == ["ab", "cd", "ef", "gh"]

        class Refuse(Middleware):
            async def on_attempt(self, call: Call, next: Next) -> Any:
                await next(call)
                raise PermissionError("policy")

    mock.enqueue(ScriptedReply(content="abcdefgh" * 100, chunk_size=2))
    async with open_client(
        "openai/gpt-4o",
        api_key=KEY,
        base_url=mock.openai_base_url,
        middleware=[Refuse()],
        max_inflight=1,
    ) as client:
        with pytest.raises(MiddlewareError, match="Refuse failed: PermissionError: policy"):
            async with client.chat().user("hi").stream():
                pass  # pragma: no cover
        assert client.current_inflight == 0
        await mock.requests[-1].wait_disconnected()
    assert mock.requests[-1].client_disconnected


async def test_middleware_replaces_the_request_before_it_is_encoded(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="ok"))

    async def add_system(call: Call, next: Next) -> Any:
        request = attrs.evolve(
            call.request, messages=(Message.system("Be brief."), *call.request.messages)
        )
        return await next(attrs.evolve(call, request=request))

    async with open_client(
        "openai/gpt-4o", api_key=KEY, base_url=mock.openai_base_url, middleware=[add_system]
    ) as client:
        await client.chat().user("hi").execute()
    sent = mock.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
