"""The async client, resilience and transport layers' safety net: behaviour a mutation run
showed no other test would notice breaking. Each test names the code change it catches.

Everything runs on asyncio and trio against real HTTP on loopback (``MockProvider`` or a
small raw server). Under trio the clock is virtual (``MockClock``): sleeps, deadlines and
httpx's own timeouts jump ahead once every task is idle, so the long waits cost nothing;
under asyncio the waits are real and short, and bounds are generous.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.abc
import anyio.lowlevel
import httpx
import pytest
import trio.testing

from ailib_anyio import (
    CircuitBreakerConfig,
    CircuitState,
    ContentDelta,
    DeadlineExceededError,
    Deadlines,
    HedgeConfig,
    IdleTimeoutError,
    InvalidRequestError,
    RetryConfig,
    TimeoutError,
    TransportError,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio._client._target import Target
from ailib_anyio._core._errors import (
    AiLibError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ServerError,
    WriteTimeoutError,
)
from ailib_anyio._resilience._run import race
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-test-secret-123"
FAST_RETRY = RetryConfig(max_retries=1, min_delay=0.01, max_delay=0.02)


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param(
            ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0.05)}), id="trio"
        ),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param


def virtual(anyio_backend: object) -> bool:
    return isinstance(anyio_backend, tuple)


def client_for(mock: MockProvider, model: str = "openai/gpt-4o", **kw: object) -> Client:
    return open_client(model, api_key=KEY, base_url=mock.openai_base_url, **kw)  # type: ignore[arg-type]


def target(mock: MockProvider, model: str = "openai/gpt-4o-mini", **kw: object) -> Client:
    return Client(model, api_key=KEY, base_url=mock.openai_base_url, **kw)  # type: ignore[arg-type]


def pool_of(http: httpx.AsyncClient) -> list[object]:
    return list(http._transport._pool.connections)  # type: ignore[attr-defined]


def pool_connections(client: Client | Target) -> int:
    target = client.primary if isinstance(client, Client) else client
    assert target.transport is not None
    return len(pool_of(target.transport.client))


async def settled(mock: MockProvider, client: Client) -> None:
    """No in-flight slot, and the server is answering nothing any more."""
    assert client.current_inflight == 0
    with anyio.fail_after(5):
        while mock.active_requests:  # noqa: ASYNC110 - the mock offers no event for this
            await anyio.sleep(0.01)


async def text_of(stream: AsyncIterator[object]) -> str:
    return "".join([e.text async for e in stream if isinstance(e, ContentDelta)])


# ------------------------------------------------------------------ 17. half-open probe


@pytest.mark.parametrize("streamed", [False, True], ids=["execute", "stream"])
async def test_cancelled_half_open_probe_frees_its_slot(
    mock: MockProvider, anyio_backend: object, streamed: bool
) -> None:
    # Catches TargetGuard.call not recording a cancelled attempt (record_neutral in the
    # BaseException branch): the probe slot would leak and every later request fail fast.
    cooldown = 30.0 if virtual(anyio_backend) else 0.3
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=cooldown)
    mock.enqueue(
        Reply.error(500, "boom", type="server_error"),
        ScriptedReply(content="too late", delay_before_headers=60),  # the probe, cancelled
        ScriptedReply(content="recovered"),
    )
    async with client_for(mock, max_retries=0, circuit_breaker=breaker) as client:
        with pytest.raises(ServerError):
            await client.chat().user("hi").execute()
        assert client.circuit_state is CircuitState.OPEN
        await anyio.sleep(cooldown)
        assert client.circuit_state is CircuitState.HALF_OPEN
        with anyio.move_on_after(0.5) as scope:
            if streamed:
                async with client.chat().user("hi").stream():
                    pass
            else:
                await client.chat().user("hi").execute()
        assert scope.cancelled_caught
        with anyio.fail_after(5):
            await mock.requests[1].wait_disconnected()
        snapshot = client.get_resilience_stats().circuits["openai/gpt-4o"]
        assert snapshot.probes_in_flight == 0
        assert client.circuit_state is CircuitState.HALF_OPEN  # a cancellation says nothing
        # The next request is let through as the probe, and its success closes the circuit.
        if streamed:
            async with client.chat().user("hi").stream() as stream:
                assert await text_of(stream) == "recovered"
        else:
            assert (await client.chat().user("hi").execute()).content == "recovered"
        assert client.circuit_state is CircuitState.CLOSED
        await settled(mock, client)
    assert len(mock.requests) == 3


# ------------------------------------------------------------------ 18. total vs idle


async def test_stream_stalled_under_total_deadline_raises_deadline_not_idle(
    mock: MockProvider,
) -> None:
    # The idle limit (20 s) would fire after the total deadline (1 s): the error must be
    # the deadline's. Catches _timed_chunk picking the idle error (or the idle limit)
    # whatever the deadline says.
    mock.enqueue(ScriptedReply(content="abcdefghijklmnop", chunk_size=2, stall_after_bytes=700))
    deadlines = Deadlines(total=1.0, idle=20.0)
    async with client_for(mock, max_retries=0, deadlines=deadlines) as client:
        seen: list[str] = []
        start = anyio.current_time()
        with pytest.raises(DeadlineExceededError) as info:
            async with client.chat().user("hi").stream() as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        seen.append(event.text)
        elapsed = anyio.current_time() - start
        await settled(mock, client)
    assert type(info.value) is DeadlineExceededError
    assert str(info.value).startswith("the request's total deadline ran out")
    assert seen and info.value.response is not None
    assert info.value.response.content == "".join(seen)
    assert 0.9 <= elapsed < 10  # the deadline, not the idle limit
    assert mock.requests[0].client_disconnected


async def test_stream_stalled_with_idle_shorter_than_the_deadline_raises_idle(
    mock: MockProvider,
) -> None:
    # The other way round: catches the deadline error (or limit) always winning.
    mock.enqueue(ScriptedReply(content="abcdefghijklmnop", chunk_size=2, stall_after_bytes=700))
    deadlines = Deadlines(total=20.0, idle=0.5)
    async with client_for(mock, max_retries=0, deadlines=deadlines) as client:
        start = anyio.current_time()
        with pytest.raises(IdleTimeoutError, match=r"^no event from the provider for 0\.5s"):
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass
        assert anyio.current_time() - start < 10
        await settled(mock, client)


# ------------------------------------------------------------------ 19. HTTP timeouts


async def test_per_request_timeout_overrides_a_longer_client_timeout(mock: MockProvider) -> None:
    # Catches the builder's .timeout(x) not reaching the transport (client timeout used).
    mock.enqueue(
        ScriptedReply(content="slow", delay_before_headers=30),
        ScriptedReply(content="slow stream", delay_before_headers=30),
    )
    async with client_for(mock, max_retries=0, timeout=60) as client:
        start = anyio.current_time()
        with pytest.raises(ReadTimeoutError):
            await client.chat().user("hi").timeout(0.5).execute()
        with pytest.raises(ReadTimeoutError):
            async with client.chat().user("hi").timeout(0.5).stream():
                pass
        assert anyio.current_time() - start < 20
        await settled(mock, client)


async def test_per_request_timeout_overrides_a_shorter_client_timeout(mock: MockProvider) -> None:
    # And the other way: a longer per-request timeout lets a slow answer through.
    mock.enqueue(
        ScriptedReply(content="slow but fine", delay_before_headers=1.0),
        ScriptedReply(content="slow stream", delay_before_headers=1.0),
    )
    async with client_for(mock, max_retries=0, timeout=0.3) as client:
        reply = await client.chat().user("hi").timeout(30).execute()
        async with client.chat().user("hi").timeout(30).stream() as stream:
            streamed = await text_of(stream)
        await settled(mock, client)
    assert reply.content == "slow but fine" and streamed == "slow stream"


async def test_read_timeout_maps_to_read_timeout_error(mock: MockProvider) -> None:
    # Before the headers, and mid-body of a stream (with the partial response).
    mock.enqueue(
        ScriptedReply(content="late", delay_before_headers=30),
        ScriptedReply(content="abcdefghijklmnop", chunk_size=2, stall_after_bytes=700),
    )
    async with client_for(mock, max_retries=0, timeout=httpx.Timeout(0.5)) as client:
        with pytest.raises(ReadTimeoutError) as before:
            await client.chat().user("hi").execute()
        with pytest.raises(ReadTimeoutError) as during:
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass
        await settled(mock, client)
    assert type(before.value) is ReadTimeoutError and type(during.value) is ReadTimeoutError
    assert str(before.value).startswith("timed out waiting for data from the provider")
    assert isinstance(before.value.__cause__, httpx.ReadTimeout)
    assert during.value.response is not None and during.value.response.content
    assert during.value.provider == "openai" and during.value.status_code == 200


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port on 127.0.0.1 that listens but never accepts, its backlog already full: a
    new connection's SYN is dropped, so connecting hangs until the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    try:
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_connect_timeout_maps_to_connect_timeout_error(full_backlog: int) -> None:
    base_url = f"http://127.0.0.1:{full_backlog}/v1"
    timeout = httpx.Timeout(30, connect=0.5)
    async with open_client(
        "openai/gpt-4o", api_key=KEY, base_url=base_url, max_retries=0, timeout=timeout
    ) as client:
        start = anyio.current_time()
        with pytest.raises(ConnectTimeoutError) as info:
            await client.chat().user("hi").execute()
        assert anyio.current_time() - start < 20
        assert client.current_inflight == 0
    assert type(info.value) is ConnectTimeoutError
    assert str(info.value).startswith("timed out connecting to the provider")
    assert isinstance(info.value.__cause__, httpx.ConnectTimeout)


@pytest.fixture
def never_accepted() -> Iterator[int]:
    """A port on 127.0.0.1 whose connections the kernel completes but nobody accepts or
    reads, with a tiny receive buffer: a large request body cannot be sent."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


async def test_write_timeout_maps_to_write_timeout_error(never_accepted: int) -> None:
    # 16 MB of body against a few KB of receive buffer (plus the sender's own, at most
    # 4 MB by default on Linux): the write stalls until the write timeout. A model whose
    # context window no manifest gives, so the prompt is not refused before it is sent.
    base_url = f"http://127.0.0.1:{never_accepted}/v1"
    timeout = httpx.Timeout(30, write=0.5)
    async with open_client(
        "openai-compatible/unlisted-model",
        api_key=KEY,
        base_url=base_url,
        max_retries=0,
        timeout=timeout,
    ) as client:
        start = anyio.current_time()
        with pytest.raises(WriteTimeoutError) as info:
            await client.chat().user("x" * 16_000_000).execute()
        assert anyio.current_time() - start < 20
        assert client.current_inflight == 0
    assert type(info.value) is WriteTimeoutError
    assert str(info.value).startswith("timed out sending the request")
    assert isinstance(info.value.__cause__, httpx.WriteTimeout)


async def test_pool_timeout_maps_to_timeout_error(mock: MockProvider) -> None:
    # One connection, held by an open stream: the next request waits for the pool.
    mock.enqueue(ScriptedReply(content="abcdefgh", chunk_size=2, stall_after_bytes=700))
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(limits=limits) as http:
        timeout = httpx.Timeout(30, pool=0.5)
        async with client_for(mock, max_retries=0, http_client=http, timeout=timeout) as client:
            async with client.chat().user("hi").stream():
                with pytest.raises(TimeoutError) as info:
                    await client.chat().user("hi").execute()
                assert client.current_inflight == 1  # the stream's only
            await settled(mock, client)
    assert type(info.value) is TimeoutError
    assert str(info.value).startswith("timed out waiting for a free connection in the pool")
    assert isinstance(info.value.__cause__, httpx.PoolTimeout)
    assert len(mock.requests) == 1


# ------------------------------------------------------------------ 20. closing responses


async def test_response_whose_body_read_is_cancelled_is_closed(mock: MockProvider) -> None:
    # Headers, then the JSON body stalls: cancelling the read must close the connection.
    # Catches _post_json leaving the response open when aread() is interrupted.
    mock.enqueue(
        Reply.json({"id": "x", "choices": []}, stall_after_bytes=5),
        ScriptedReply(content="next"),
    )
    async with client_for(mock, max_retries=0) as client:
        with anyio.move_on_after(0.5) as scope:
            await client.chat().user("hi").execute()
        assert scope.cancelled_caught
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
        assert client.current_inflight == 0
        assert pool_connections(client) == 0
        assert (await client.chat().user("hi").execute()).content == "next"
        await settled(mock, client)


async def test_response_whose_body_read_fails_is_closed(mock: MockProvider) -> None:
    # The body stalls until the read timeout, or the server hangs up mid-body.
    mock.enqueue(
        Reply.json({"id": "x", "choices": []}, stall_after_bytes=5),
        Reply.json({"id": "x", "choices": []}, close_after_bytes=5),
        ScriptedReply(content="next"),
    )
    async with client_for(mock, max_retries=0, timeout=httpx.Timeout(0.5)) as client:
        with pytest.raises(ReadTimeoutError):
            await client.chat().user("hi").execute()
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
        assert client.current_inflight == 0 and pool_connections(client) == 0
        with pytest.raises(TransportError):
            await client.chat().user("hi").execute()
        assert client.current_inflight == 0 and pool_connections(client) == 0
        assert (await client.chat().user("hi").execute()).content == "next"
        await settled(mock, client)


class _SlowClose(httpx.AsyncByteStream):
    """A response body whose close awaits before closing the real one."""

    def __init__(self, inner: httpx.AsyncByteStream, closed: list[bool]) -> None:
        self._inner = inner
        self._closed = closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        await anyio.sleep(0.01)
        await self._inner.aclose()
        self._closed.append(True)


class _SlowCloseTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.closed: list[bool] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _SlowClose(response.stream, self.closed)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("status", [200, 500], ids=["body", "error-body"])
async def test_lent_client_response_is_closed_when_its_body_read_is_cancelled(
    mock: MockProvider, status: int
) -> None:
    # httpcore's own streams clean up after an interrupted read, but a lent client's
    # transport may not: the library must close the response itself, shielded (the close
    # awaits). Catches the `finally: aclose()` of _post_json / _error_from_response dropped
    # or unshielded.
    body = {"id": "x", "choices": []} if status == 200 else {"error": {"message": "boom"}}
    mock.enqueue(Reply.json(body, status=status, stall_after_bytes=5))
    transport = _SlowCloseTransport()
    http = httpx.AsyncClient(transport=transport)
    async with http, client_for(mock, max_retries=0, http_client=http) as client:
        with anyio.move_on_after(0.5) as scope:
            await client.chat().user("hi").execute()
        assert scope.cancelled_caught
        assert transport.closed == [True]
        assert client.current_inflight == 0
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
        await settled(mock, client)


async def test_lent_client_response_is_closed_when_its_body_read_fails(
    mock: MockProvider,
) -> None:
    mock.enqueue(
        Reply.json({"id": "x", "choices": []}, stall_after_bytes=5),
        Reply.json({"id": "x", "choices": []}, close_after_bytes=5),
    )
    transport = _SlowCloseTransport()
    http = httpx.AsyncClient(transport=transport)
    async with (
        http,
        client_for(mock, max_retries=0, http_client=http, timeout=httpx.Timeout(0.5)) as client,
    ):
        with pytest.raises(ReadTimeoutError):
            await client.chat().user("hi").execute()
        assert transport.closed == [True]
        with pytest.raises(TransportError):
            await client.chat().user("hi").execute()
        assert transport.closed == [True, True]
        assert client.current_inflight == 0
        await settled(mock, client)


async def test_stream_close_is_shielded_with_a_lent_client_whose_close_awaits(
    mock: MockProvider,
) -> None:
    # The stream's block is left by a cancellation: the response close must still run to
    # its end. Catches the shield around _TargetStream.aclose being dropped.
    mock.enqueue(ScriptedReply(content="abcdefgh" * 20, chunk_size=2, delay_between_chunks=0.05))
    transport = _SlowCloseTransport()
    async with httpx.AsyncClient(transport=transport) as http:
        async with client_for(mock, max_retries=0, http_client=http) as client:
            with anyio.CancelScope() as scope:
                async with client.chat().user("hi").stream() as stream:
                    async for _ in stream:
                        scope.cancel()
                        await anyio.lowlevel.checkpoint()
            assert scope.cancelled_caught
            assert transport.closed == [True]  # the close ran to its end
            assert client.current_inflight == 0
            with anyio.fail_after(5):
                await mock.requests[0].wait_disconnected()
            assert list(transport.inner._pool.connections) == []  # the lent pool: empty
            await settled(mock, client)
        assert not http.is_closed  # the library never closes a lent client


# ------------------------------------------------------------------ 21. hedging, fallback


async def test_race_discards_the_loser_of_a_photo_finish() -> None:
    # Both candidates finish in the same instant (shielded): the first to report wins and
    # the other's result goes to `discard`, shielded from the race's own cancellation.
    # Catches the discard being skipped or left unshielded.
    discarded: list[str] = []

    async def run(name: str) -> str:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.05)
        return name

    async def discard(result: str) -> None:
        await anyio.sleep(0.01)  # a close that awaits
        discarded.append(result)

    errors: list[AiLibError] = []
    winner = await race(["a", "b"], run, hedge_delay=0, discard=discard, errors=errors)
    assert {winner, *discarded} == {"a", "b"} and len(discarded) == 1
    assert errors == []


async def test_hedged_streams_both_answering_release_the_losers_connection_and_slot(
    mock: MockProvider,
) -> None:
    # Both targets answer at once; whichever way the photo finish goes, only the winner
    # may hold a connection and an in-flight slot while its stream is read.
    reply = ScriptedReply(
        content="abcdefghij" * 4, chunk_size=2, delay_before_headers=0.2, delay_between_chunks=0.02
    )
    mock.enqueue(reply, reply)
    async with client_for(
        mock,
        max_retries=0,
        max_inflight=2,
        fallbacks=[target(mock, max_retries=0)],
        hedge=HedgeConfig(delay=0),
    ) as client:
        async with client.chat().user("hi").stream() as stream:
            assert client.current_inflight == 1
            loser = 1 if stream.model == "gpt-4o" else 0
            with anyio.fail_after(5):
                await mock.requests[loser].wait_disconnected()
            assert await text_of(stream) == "abcdefghij" * 4
        await settled(mock, client)
        assert pool_connections(client) + pool_connections(client.targets[1]) <= 1
    assert len(mock.requests) == 2


async def test_hedge_delay_zero_hedges_at_once(mock: MockProvider) -> None:
    # Catches a zero delay read as "no hedging" (`if not delay`): the slow target would
    # then be waited for.
    mock.enqueue(
        ScriptedReply(content="slow", delay_before_headers=60), ScriptedReply(content="fast")
    )
    async with client_for(
        mock, max_retries=0, fallbacks=[target(mock)], hedge=HedgeConfig(delay=0)
    ) as client:
        start = anyio.current_time()
        with anyio.fail_after(10):
            reply = await client.chat().user("hi").execute()
        assert anyio.current_time() - start < 5
        stats = client.get_resilience_stats()
        assert (stats.hedges, stats.fallbacks) == (1, 0)
        with anyio.fail_after(5):
            await mock.requests[0].wait_disconnected()
        await settled(mock, client)
    assert reply.content == "fast"


async def test_retryable_but_not_fallbackable_error_moves_on_after_its_retries(
    mock: MockProvider,
) -> None:
    # A 409 the provider marks `x-should-retry: true`: retried, and once the retries are
    # spent the chain still moves on. Catches race() requiring `fallbackable` alone.
    conflict = Reply.error(409, "conflict, try again", headers={"x-should-retry": "true"})
    mock.enqueue(conflict, conflict, ScriptedReply(content="fallback answered"))
    async with client_for(mock, retry=FAST_RETRY, fallbacks=[target(mock)]) as client:
        reply = await client.chat().user("hi").execute()
        assert client.get_resilience_stats().fallbacks == 1
    assert reply.content == "fallback answered"
    assert [r.json["model"] for r in mock.requests] == ["gpt-4o", "gpt-4o", "gpt-4o-mini"]


async def test_not_retryable_not_fallbackable_error_ends_the_chain(mock: MockProvider) -> None:
    # The counterpart: a plain 409 neither retries nor falls back.
    mock.enqueue(Reply.error(409, "conflict"), ScriptedReply(content="never"))
    async with client_for(mock, retry=FAST_RETRY, fallbacks=[target(mock)]) as client:
        with pytest.raises(InvalidRequestError):
            await client.chat().user("hi").execute()
    assert len(mock.requests) == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["execute", "stream"])
async def test_expired_total_deadline_is_not_a_provider_failure(
    mock: MockProvider, streamed: bool
) -> None:
    # Headers then silence (a stream) or no headers at all (a request) until the total
    # deadline: with a threshold of 1 the circuit must stay closed. Catches the deadline
    # counted against the provider (is_provider_failure, or a cancelled attempt recorded
    # as a failure).
    stall = (
        ScriptedReply(content="x", stall_after_bytes=0)
        if streamed
        else ScriptedReply(content="x", delay_before_headers=60)
    )
    mock.enqueue(stall, ScriptedReply(content="fine"))
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=600)
    async with client_for(
        mock, max_retries=0, circuit_breaker=breaker, deadlines=Deadlines(total=0.5)
    ) as client:
        with pytest.raises(DeadlineExceededError):
            if streamed:
                async with client.chat().user("hi").stream():
                    pass
            else:
                await client.chat().user("hi").execute()
        assert client.circuit_state is CircuitState.CLOSED
        snapshot = client.get_resilience_stats().circuits["openai/gpt-4o"]
        assert (snapshot.consecutive_failures, snapshot.times_opened) == (0, 0)
        assert (await client.chat().user("hi").execute()).content == "fine"
        await settled(mock, client)


async def test_guard_does_not_count_a_deadline_against_the_circuit() -> None:
    # A stream attempt whose per-chunk wait hits the total deadline raises
    # DeadlineExceededError inside the guard (when the whole-request scope has not fired
    # yet): neutral, unlike a read timeout. Catches is_provider_failure counting it.
    from ailib_anyio._core._breaker import CircuitBreakerConfig as Config
    from ailib_anyio._resilience._run import TargetGuard, is_provider_failure

    guard = TargetGuard.build("p/m", {}, None, Config(failure_threshold=1), None)
    errors: list[AiLibError] = []

    async def deadline() -> None:
        raise DeadlineExceededError("the request's total deadline ran out")

    async def read_timeout() -> None:
        raise ReadTimeoutError("timed out waiting for data from the provider")

    with pytest.raises(DeadlineExceededError):
        await guard.call(deadline, errors)
    assert guard.breaker is not None
    assert guard.breaker.state(anyio.current_time()) is CircuitState.CLOSED
    assert not is_provider_failure(DeadlineExceededError("x"))
    with pytest.raises(ReadTimeoutError):
        await guard.call(read_timeout, errors)
    assert guard.breaker.state(anyio.current_time()) is CircuitState.OPEN
    assert len(errors) == 2
