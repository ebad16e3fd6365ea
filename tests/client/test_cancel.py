"""The cancel API (``create_cancel_pair``, ``CancelToken``, ``CancelHandle``,
``CancellableStream``) and the measured disconnect latency of every way of ending a stream
early, on asyncio and trio, against the loopback mock provider.

The latency is measured on the real clock (no MockClock): from the moment the client
leaves (just before ``break``, ``raise``, ``scope.cancel()``, ``handle.cancel()``, or the
caller's deadline) to ``RecordedRequest.disconnected_at``, when the mock noticed the
client hang up. ``pytest -s tests/client/test_cancel.py`` prints one line per case; the values
are also kept in ``LATENCIES``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator

import anyio
import pytest

from ailib_anyio import (
    CancelHandle,
    CancellableStream,
    CancelReason,
    CancelToken,
    ChatStream,
    ContentDelta,
    create_cancel_pair,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio.testing import MockProvider, ScriptedReply

pytestmark = pytest.mark.anyio

LONG = "word " * 400  # 500 chunks of 4 characters: still streaming when the test leaves
BAR = 0.05  # the bar for the mock noticing the disconnect, in seconds

#: (case id, backend, seconds from leaving to the mock seeing the disconnect)
LATENCIES: list[tuple[str, str, float]] = []


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    before = len(anyio.get_running_tasks())
    async with MockProvider() as server:
        yield server
    # Nothing the server, the client or a canceller started may outlive the block.
    assert len(anyio.get_running_tasks()) == before


def client_for(mock: MockProvider, **kw: object) -> Client:
    return open_client("openai/gpt-4o", api_key="sk-test", base_url=mock.openai_base_url, **kw)  # type: ignore[arg-type]


def pool_connections(client: Client) -> int:
    """Open connections in the client's httpx pool (httpcore internals, test-only)."""
    assert client.primary.transport is not None
    pool = client.primary.transport.client._transport._pool  # type: ignore[attr-defined]
    return len(pool.connections)


def client_tasks() -> int:
    """Live tasks other than the mock server's own (it finishes its side on its own time;
    the ``mock`` fixture checks that it too leaves nothing behind)."""
    return sum("testing._mock" not in (task.name or "") for task in anyio.get_running_tasks())


def slow_reply() -> ScriptedReply:
    return ScriptedReply(content=LONG, chunk_size=4, delay_between_chunks=0.02)


# ------------------------------------------------------------------ the API itself


async def test_pair_semantics() -> None:
    token, handle = create_cancel_pair()
    assert isinstance(token, CancelToken)
    assert isinstance(handle, CancelHandle)
    assert handle.token is token
    # One tuple, so that mypy does not narrow these properties for the rest of the test.
    assert (token.is_cancelled, handle.is_cancelled, token.reason) == (False, False, None)
    assert repr(token) == "<CancelToken active>"
    handle.cancel()
    assert token.is_cancelled and handle.is_cancelled
    assert token.reason is CancelReason.USER_REQUEST
    handle.cancel(CancelReason.SHUTDOWN)  # idempotent: the first reason wins
    assert token.reason is CancelReason.USER_REQUEST
    assert repr(token) == "<CancelToken cancelled (USER_REQUEST)>"
    with anyio.fail_after(1):
        await token.wait()  # already cancelled: returns at once
    with pytest.raises(TypeError, match="reason must be a CancelReason"):
        handle.cancel("user")  # type: ignore[arg-type]
    assert {r.value for r in CancelReason} == {"user_request", "timeout", "shutdown", "error"}


async def test_wait_wakes_every_waiter_without_polling() -> None:
    token, handle = create_cancel_pair()
    woken: list[tuple[int, CancelReason | None]] = []

    async def waiter(n: int) -> None:
        await token.wait()
        woken.append((n, token.reason))

    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(waiter, n)
            await anyio.sleep(0.01)
            assert woken == []
            handle.cancel(CancelReason.TIMEOUT)
    assert sorted(woken) == [(n, CancelReason.TIMEOUT) for n in range(3)]


async def test_constructor_and_misuse_errors(mock: MockProvider) -> None:
    token, _ = create_cancel_pair()
    async with client_for(mock) as client:
        stream = client.chat().user("hi").stream()
        with pytest.raises(TypeError, match="expected a ChatStream"):
            CancellableStream(object(), token)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected a CancelToken"):
            CancellableStream(stream, object())  # type: ignore[arg-type]
        cancellable = CancellableStream(stream, token)
        assert cancellable.stream is stream and cancellable.token is token
        with pytest.raises(RuntimeError, match="inside its block"):
            cancellable.__aiter__()
        async with cancellable:
            with pytest.raises(RuntimeError, match="entered only once"):
                await cancellable.__aenter__()
        assert client.current_inflight == 0
        assert pool_connections(client) == 0


async def test_runs_to_the_end_when_not_cancelled(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="Hello streaming world", chunk_size=5))
    token, handle = create_cancel_pair()
    async with client_for(mock) as client:
        async with CancellableStream(client.chat().user("hi").stream(), token) as stream:
            texts = [e.text async for e in stream if isinstance(e, ContentDelta)]
        handle.cancel()  # after the end: changes nothing about this stream
        assert "".join(texts) == "Hello streaming world"
        assert stream.response.content == "Hello streaming world"
        assert stream.cancel_reason is None
        assert mock.requests[0].completed
        assert client.current_inflight == 0


async def test_cancelled_before_entry_sends_nothing(mock: MockProvider) -> None:
    token, handle = create_cancel_pair()
    handle.cancel(CancelReason.SHUTDOWN)
    async with client_for(mock) as client:
        async with CancellableStream(client.chat().user("hi").stream(), token) as stream:
            events = [event async for event in stream]
        assert events == []
        assert stream.cancel_reason is CancelReason.SHUTDOWN
        assert stream.response.content == ""
        assert client.current_inflight == 0
    assert mock.requests == []


async def test_cancel_from_another_task_while_waiting_for_headers(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
    token, handle = create_cancel_pair()
    async with client_for(mock) as client, anyio.create_task_group() as tg:

        async def cancel_soon() -> None:
            await anyio.sleep(0.05)
            handle.cancel(CancelReason.TIMEOUT)

        tg.start_soon(cancel_soon)
        start = anyio.current_time()
        with anyio.fail_after(5):
            async with CancellableStream(client.chat().user("hi").stream(), token) as stream:
                events = [event async for event in stream]
        assert anyio.current_time() - start < 1
        assert events == []
        assert stream.cancel_reason is CancelReason.TIMEOUT
        assert client.current_inflight == 0
        assert pool_connections(client) == 0
        with anyio.fail_after(5):
            await mock.requests[-1].wait_finished()
        assert not mock.requests[-1].completed


async def test_cancel_from_another_task_while_waiting_for_a_chunk(mock: MockProvider) -> None:
    # One chunk, then a 30 s silence: only the token can end this stream quickly.
    mock.enqueue(ScriptedReply(content="Hi, and then nothing", chunk_size=4, stall_after_bytes=600))
    token, handle = create_cancel_pair()
    first = anyio.Event()
    async with client_for(mock) as client, anyio.create_task_group() as tg:

        async def cancel_after_first_chunk() -> None:
            await first.wait()
            await anyio.sleep(0.05)  # the consumer is now blocked on the next chunk
            handle.cancel()

        tg.start_soon(cancel_after_first_chunk)
        with anyio.fail_after(5):
            async with CancellableStream(client.chat().user("hi").stream(), token) as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        first.set()
        assert stream.cancel_reason is CancelReason.USER_REQUEST
        assert stream.response.content.startswith("Hi,")
        assert stream.response.content != "Hi, and then nothing"
        with anyio.fail_after(5):
            await mock.requests[-1].wait_disconnected()
        assert client.current_inflight == 0
        assert pool_connections(client) == 0


# ------------------------------------------- every way out closes the connection fast


async def leave_early(way: str, client: Client, wrapped: bool) -> tuple[float, ChatStream]:
    """Stream ``slow_reply()`` and leave it ``way``; return the moment of leaving."""
    token, handle = create_cancel_pair()
    inner = client.chat().user("long story").stream()
    got_content = anyio.Event()
    left = 0.0

    async def consume() -> None:
        nonlocal left
        async with CancellableStream(inner, token) if wrapped else inner as stream:
            async for event in stream:
                if not isinstance(event, ContentDelta):
                    continue
                got_content.set()
                if len(stream.response.content) < 40:
                    continue  # leave mid-stream, a few chunks in
                if way == "break":
                    left = anyio.current_time()
                    break
                if way == "exception":
                    left = anyio.current_time()
                    raise KeyError("boom")
                if way == "cancel-scope":
                    left = anyio.current_time()
                    scope.cancel()
        if way == "cancel-token":
            assert isinstance(stream, CancellableStream)
            assert stream.cancel_reason is CancelReason.USER_REQUEST

    if way == "exception":
        with pytest.raises(KeyError, match="boom"):
            await consume()
    elif way == "cancel-scope":
        with anyio.CancelScope() as scope:
            await consume()
        assert scope.cancelled_caught
    elif way == "cancel-token":

        async def cancel_from_another_task() -> None:
            nonlocal left
            await got_content.wait()
            await anyio.sleep(0.1)  # the consumer waits for a chunk most of this time
            left = anyio.current_time()
            handle.cancel(CancelReason.USER_REQUEST)

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_from_another_task)
            await consume()
    elif way == "fail-after":
        with pytest.raises(builtins.TimeoutError):
            with anyio.fail_after(0.15) as scope:
                left = scope.deadline
                await consume()
    elif way == "move-on-after":
        with anyio.move_on_after(0.15) as scope:
            left = scope.deadline
            await consume()
        assert scope.cancelled_caught
    else:
        await consume()
    return left, inner


WAYS = [
    pytest.param(way, wrapped, id=f"{way}-{'cancellable' if wrapped else 'plain'}")
    for way in ("break", "exception", "cancel-scope", "cancel-token", "fail-after", "move-on-after")
    for wrapped in (False, True)
    if wrapped or way != "cancel-token"
]


@pytest.mark.parametrize(("way", "wrapped"), WAYS)
async def test_leaving_early_disconnects_within_the_bar(
    mock: MockProvider, anyio_backend: str, way: str, wrapped: bool
) -> None:
    mock.enqueue(slow_reply())
    async with client_for(mock) as client:
        tasks_before = client_tasks()
        left, stream = await leave_early(way, client, wrapped)
        assert left > 0
        # Closed on the way out, synchronously: no connection, no slot, no task left.
        assert pool_connections(client) == 0
        assert client.current_inflight == 0
        assert client_tasks() == tasks_before
        assert 0 < len(stream.response.content) < len(LONG)
        request = mock.requests[-1]
        with anyio.fail_after(5):
            await request.wait_disconnected()
        assert not request.completed
        assert request.disconnected_at is not None
        latency = request.disconnected_at - left
    case = f"{way}-{'cancellable' if wrapped else 'plain'}"
    LATENCIES.append((case, anyio_backend, latency))
    print(f"\ndisconnect latency {case:<26} {anyio_backend:<7} {latency * 1000:7.2f} ms")
    assert latency < BAR, f"the mock saw the disconnect {latency * 1000:.1f} ms after leaving"
