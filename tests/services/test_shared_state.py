"""Rate limits and circuit state shared through a real Redis (``ailib_anyio.shared``).

First the server-side scripts against the pure decisions they transcribe (``TokenBucket``
and ``CircuitBreaker``, on the same inputs and an injected clock), then clients standing in
for workers — two in this process, each with its own Redis connection, and four real
processes (two on asyncio, two on trio) — against the loopback mock provider: one rate
for all, a 429 pausing all, a circuit opened for all, one probe. Then what happens when
Redis cannot be reached. Every timing bound is generous: the windows are short, the
limits far from them.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import ailib_anyio
from ailib_anyio import (
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    ClientBuilder,
    ConfigurationError,
    RateLimitedError,
    RateLimiterConfig,
    RateLimitSnapshot,
    ServerError,
    SharedStateError,
    open_client,
)
from ailib_anyio._core._breaker import Admission, CircuitBreaker
from ailib_anyio._core._bucket import TokenBucket
from ailib_anyio._services._shared._lua import BUCKET, CIRCUIT
from ailib_anyio.shared import (
    RedisCircuitStore,
    RedisRateLimiter,
    RedisState,
    SharedScope,
)
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("collect_redis_leftovers")]

KEY = "sk-shared-worker-key-0123456789"  # the workers' (tests/services/shared_worker.py)
MODEL = "openai/gpt-4o"
WORKER = Path(__file__).with_name("shared_worker.py")
REPO = Path(ailib_anyio.__file__).resolve().parents[1]


def _prefix() -> str:
    return f"ailib-test:{uuid.uuid4().hex}:"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(mock: MockProvider, state: RedisState, **more: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "api_key": KEY,
        "base_url": mock.openai_base_url,
        "max_retries": 0,
        "shared_state": state,
    }
    settings.update(more)
    return settings


@contextlib.asynccontextmanager
async def _two_workers(
    redis_url: str, **settings: Any
) -> AsyncIterator[tuple[MockProvider, ailib_anyio.Client, ailib_anyio.Client]]:
    """The mock provider and two clients standing in for two workers: each with its own
    ``RedisState`` (its own connection), under one prefix."""
    prefix = _prefix()
    async with (
        MockProvider() as mock,
        open_client(
            MODEL, **_settings(mock, RedisState(redis_url, prefix=prefix), **settings)
        ) as a,
        open_client(
            MODEL, **_settings(mock, RedisState(redis_url, prefix=prefix), **settings)
        ) as b,
    ):
        yield mock, a, b


async def _keys(state: RedisState) -> list[str]:
    client = state._connection.client
    assert client is not None
    return [key.decode() async for key in client.scan_iter(match=state.prefix + "*")]


# ------------------------------------------------------------------ the scripts


async def test_the_bucket_script_follows_the_pure_token_bucket(redis_url: str) -> None:
    """Random operations on random limits, with an injected clock: the script's levels,
    block and delays are the pure ``TokenBucket``'s."""
    rng = random.Random(1414)
    async with RedisState(redis_url, prefix=_prefix()) as state:
        for case in range(60):
            rpm = rng.choice([None, 6.0, 60.0, 600.0])
            tpm = rng.choice([None, 100.0, 1000.0]) if rpm is not None else 1000.0
            burst = rng.choice([None, 1.0, 3.0]) if rpm is not None else None
            config = RateLimiterConfig(requests_per_minute=rpm, tokens_per_minute=tpm, burst=burst)
            limiter = state.rate_limiter(config, SharedScope.of("p", f"m{case}"))
            now = 1000.0 + rng.random()
            pure = TokenBucket(config, now)
            for _ in range(25):
                now += rng.choice([0.0, 0.01, 0.3, 2.0, 20.0])
                op = rng.choice(["take", "peek", "refund", "penalize", "observe"])
                tokens = rng.choice([0, 10, 400, 5000])
                cost = limiter._cost(tokens)
                args: list[str]
                if op in ("take", "peek"):
                    args = ["take", repr(cost), "1" if op == "take" else "0", "", ""]
                elif op == "refund":
                    args = ["refund", repr(cost), "", "", ""]
                    pure.refund(now, tokens)
                elif op == "penalize":
                    seconds = rng.choice([None, 0.5, 5.0, 99.0])
                    args = ["penalize", "" if seconds in (None, 99.0) else repr(seconds)]
                    args += ["", "", ""]
                    pure.penalize(now, seconds, max_delay=30.0)
                else:
                    remaining = rng.choice([None, 0.0, 1.0, 50.0])
                    reset = rng.choice([None, 0.5, 4.0])
                    snapshot = RateLimitSnapshot(
                        requests_remaining=remaining,
                        requests_reset=reset,
                        tokens_remaining=remaining,
                        tokens_reset=reset,
                    )
                    pure.observe(snapshot, now, max_delay=30.0)
                    value = "" if remaining is None else repr(remaining)
                    delay = "" if reset is None else repr(reset)
                    args = ["observe", value, delay, value, delay]
                head = [repr(now), *limiter._head[1:]]
                reply = await state.run(
                    BUCKET, [limiter.key], [*head, *args], what="test", context={}
                )
                if op in ("take", "peek"):
                    expected = pure.delay(now, tokens)
                    assert float(reply[1]) == pytest.approx(expected, abs=1e-6), (case, op)
                    assert int(reply[0]) == (1 if op == "take" and expected == 0 else 0)
                    if int(reply[0]):
                        pure.take(now, tokens)
                snap = pure.snapshot(now)
                if snap.available_requests is not None:
                    assert float(reply[2]) == pytest.approx(snap.available_requests, abs=1e-6)
                if snap.available_tokens is not None:
                    assert float(reply[3]) == pytest.approx(snap.available_tokens, abs=1e-6)
                assert float(reply[4]) == pytest.approx(snap.blocked_for, abs=1e-6)


async def test_the_circuit_script_follows_the_pure_circuit_breaker(redis_url: str) -> None:
    """Random admissions and outcomes, with an injected clock: the script's answers and
    counters are the pure ``CircuitBreaker``'s."""
    rng = random.Random(14)
    async with RedisState(redis_url, prefix=_prefix()) as state:
        for case in range(40):
            config = CircuitBreakerConfig(
                failure_threshold=rng.choice([1, 2, 3]),
                cooldown_seconds=rng.choice([1.0, 5.0]),
                half_open_max_probes=rng.choice([1, 2]),
            )
            store = state.circuit(config, SharedScope.of("p", f"m{case}"))
            pure = CircuitBreaker(config)
            outstanding: list[tuple[Admission, str, str]] = []
            now = 5000.0
            for step in range(40):
                now += rng.choice([0.0, 0.2, 1.0, 3.0])
                lease, ttl = store._tail
                base = [repr(now)]
                if outstanding and rng.random() < 0.5:
                    admission, token, slot = outstanding.pop(rng.randrange(len(outstanding)))
                    op = rng.choice(["success", "failure", "neutral"])
                    getattr(pure, f"record_{op}")(admission, now)
                    args = [*base, op, *store._args, *lease, token, slot, ttl]
                else:
                    token = f"t{step}"
                    args = [*base, "admit", *store._args, *lease, token, "0", ttl]
                reply = await state.run(CIRCUIT, store._keys, args, what="test", context={})
                if args[1] == "admit":
                    admission = pure.admit(now)
                    assert int(reply[0]) == int(admission.allowed), (case, step)
                    assert (int(reply[1]) > 0) == admission.probe, (case, step)
                    assert float(reply[2]) == pytest.approx(admission.retry_in, abs=1e-6)
                    if admission.allowed:
                        outstanding.append((admission, token, str(int(reply[1]))))
                snap = pure.snapshot(now)
                assert reply[3].decode() == snap.state.value, (case, step)
                assert [int(x) for x in reply[4:8]] == [
                    snap.consecutive_failures,
                    snap.times_opened,
                    snap.rejected,
                    snap.probes_in_flight,
                ], (case, step)


# ------------------------------------------------------------------ two clients, one rate


async def test_two_clients_share_one_rate(redis_url: str) -> None:
    # 5 requests a minute, no waiting: of 16 attempts from two workers, exactly 5 go out
    # (the next unit would take 12 s to refill).
    limit = RateLimiterConfig(requests_per_minute=5, burst=5, max_wait=0)
    async with _two_workers(redis_url, rate_limit=limit) as (mock, a, b):
        outcomes: list[str] = []
        waits: list[float | None] = []

        async def worker(client: ailib_anyio.Client) -> None:
            for _ in range(8):
                try:
                    await client.chat().user("hi").execute()
                except RateLimitedError as exc:
                    waits.append(exc.retry_after)
                    outcomes.append("limited")
                else:
                    outcomes.append("ok")

        async with anyio.create_task_group() as tg:
            tg.start_soon(worker, a)
            tg.start_soon(worker, b)
        assert outcomes.count("ok") == 5
        assert all(wait is not None and wait > 5 for wait in waits), waits
        assert len(mock.requests) == 5
        stats = b.get_resilience_stats().rate_limiters[f"{MODEL}"]
        assert stats.available_requests is not None and stats.available_requests < 1


async def test_two_clients_waiting_share_the_rate_over_a_window(redis_url: str) -> None:
    # 20 requests a second with a burst of 2, both waiting their turn: in one second of
    # requests at most about 2 + 20 go out, whoever sends them.
    limit = RateLimiterConfig(requests_per_minute=1200, burst=2)
    async with _two_workers(redis_url, rate_limit=limit) as (mock, a, b):

        async def worker(client: ailib_anyio.Client) -> None:
            while True:
                await client.chat().user("hi").execute()

        with anyio.move_on_after(1.0):
            async with anyio.create_task_group() as tg:
                for client in (a, b, a, b):
                    tg.start_soon(worker, client)
        sent = len(mock.requests)
    assert 10 <= sent <= 2 + 20 + 2, sent


async def test_a_429_on_one_client_pauses_the_other(redis_url: str) -> None:
    limit = RateLimiterConfig(requests_per_minute=6000)
    async with _two_workers(redis_url, rate_limit=limit) as (mock, a, b):
        await b.chat().user("warm up").execute()
        mock.enqueue(Reply.error(429, "Slow down", headers={"retry-after": "1.5"}))
        with pytest.raises(RateLimitedError):
            await a.chat().user("hi").execute()
        await anyio.sleep(0.1)  # another worker: the pause reached Redis by now
        start = time.monotonic()
        await b.chat().user("hi").execute()
        waited = time.monotonic() - start
        assert 1.0 <= waited < 5, waited
        assert b.get_resilience_stats().rate_limiters[MODEL].blocked_for == 0


async def test_rate_limit_headers_seen_by_one_client_slow_the_other(redis_url: str) -> None:
    limit = RateLimiterConfig(requests_per_minute=6000)
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
    async with _two_workers(redis_url, rate_limit=limit) as (mock, a, b):
        mock.enqueue(ScriptedReply(content="last one", headers=headers))
        reply = await a.chat().user("hi").execute()
        assert reply.rate_limits is not None and reply.rate_limits.requests_remaining == 0
        await anyio.sleep(0.1)
        start = time.monotonic()
        await b.chat().user("hi").execute()
        assert 0.6 <= time.monotonic() - start < 5


# ------------------------------------------------------------------ two clients, one circuit


def _breaker(cooldown: float = 0.6) -> CircuitBreakerConfig:
    return CircuitBreakerConfig(failure_threshold=2, cooldown_seconds=cooldown)


async def test_failures_seen_by_one_client_open_the_circuit_of_the_other(redis_url: str) -> None:
    async with _two_workers(redis_url, circuit_breaker=_breaker(30)) as (mock, a, b):
        mock.enqueue(Reply.error(500, "boom", type="server_error"))
        with pytest.raises(ServerError):
            await a.chat().user("1").execute()
        assert b.circuit_state is CircuitState.CLOSED
        mock.enqueue(Reply.error(500, "boom", type="server_error"))
        with pytest.raises(ServerError):
            await b.chat().user("2").execute()  # the second failure: across workers
        sent = len(mock.requests)
        with pytest.raises(CircuitOpenError) as info:
            await a.chat().user("3").execute()
        assert info.value.retry_after is not None and 25 < info.value.retry_after <= 30
        with pytest.raises(CircuitOpenError):
            await b.chat().user("4").execute()
        assert len(mock.requests) == sent  # refused without a request
        snapshot = b.get_resilience_stats().circuits[MODEL]  # as of b's last admission
        assert snapshot.state is CircuitState.OPEN
        assert snapshot.times_opened == 1 and snapshot.rejected == 2


async def test_only_one_probe_goes_out_across_clients(redis_url: str) -> None:
    async with _two_workers(redis_url, circuit_breaker=_breaker()) as (mock, a, b):
        for client in (a, b):
            mock.enqueue(Reply.error(500, "down", type="server_error"))
            with pytest.raises(ServerError):
                await client.chat().user("fail").execute()
        await anyio.sleep(0.8)  # past the cooldown: half-open
        sent = len(mock.requests)
        mock.enqueue(ScriptedReply(content="back", delay_before_headers=0.5))
        outcomes: list[str] = []
        refusals: list[CircuitOpenError] = []

        async def try_once(client: ailib_anyio.Client) -> None:
            try:
                await client.chat().user("probe?").execute()
            except CircuitOpenError as exc:
                refusals.append(exc)
                outcomes.append("refused")
            else:
                outcomes.append("probe")

        async with anyio.create_task_group() as tg:
            for client in (a, b, a, b):
                tg.start_soon(try_once, client)
        assert sorted(outcomes) == ["probe", "refused", "refused", "refused"]
        assert [exc.retry_after for exc in refusals] == [0, 0, 0]  # a probe is under way
        assert len(mock.requests) == sent + 1
        # the probe succeeded: closed for both
        await b.chat().user("after").execute()
        await a.chat().user("after").execute()
        assert a.circuit_state is b.circuit_state is CircuitState.CLOSED


async def test_a_probe_lease_runs_out_when_its_worker_never_reports(redis_url: str) -> None:
    prefix = _prefix()
    config = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=0.2)
    scope = SharedScope.of("openai", "gpt-4o", api_key=KEY, base_url="http://x")
    async with (
        RedisState(redis_url, prefix=prefix, probe_lease=0.5) as one,
        RedisState(redis_url, prefix=prefix, probe_lease=0.5) as two,
    ):
        a, b = one.circuit(config, scope), two.circuit(config, scope)
        await a.record_failure(await a.admit())
        await anyio.sleep(0.3)
        probe = await a.admit()
        assert probe.allowed and probe.probe
        refused = await b.admit()
        assert not refused.allowed and refused.retry_in == 0
        assert b.snapshot(anyio.current_time()).probes_in_flight == 1
        await anyio.sleep(0.7)  # worker A died: its lease runs out
        second = await b.admit()
        assert second.allowed and second.probe
        await b.record_success(second)
        assert b.state(anyio.current_time()) is CircuitState.CLOSED
        assert a.state(anyio.current_time()) is CircuitState.HALF_OPEN  # as A saw it last
        await a.record_neutral(probe)  # A comes back: its lapsed slot changes nothing
        assert (await a.refresh()) is CircuitState.CLOSED
        assert a.snapshot(anyio.current_time()).probes_in_flight == 0


async def test_a_cancelled_probe_frees_its_slot(redis_url: str) -> None:
    prefix = _prefix()
    async with MockProvider() as mock:
        state = RedisState(redis_url, prefix=prefix)
        settings = _settings(mock, state, circuit_breaker=_breaker(0.3))
        async with open_client(MODEL, **settings) as client:
            for _ in range(2):
                mock.enqueue(Reply.error(500, "boom", type="server_error"))
                with pytest.raises(ServerError):
                    await client.chat().user("fail").execute()
            await anyio.sleep(0.5)
            mock.enqueue(ScriptedReply(content="slow", delay_before_headers=5))
            with anyio.move_on_after(0.3):
                await client.chat().user("probe").execute()
            with anyio.fail_after(5):
                while client.get_resilience_stats().circuits[MODEL].probes_in_flight:
                    await anyio.sleep(0.05)
                    await client.primary.guard.shared_circuit.refresh()  # type: ignore[union-attr]
            reply = await client.chat().user("probe again").execute()  # a new probe
            assert reply.content
            assert client.circuit_state is CircuitState.CLOSED


# ------------------------------------------------------------------ four processes


class Worker:
    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None and process.stdin is not None
        self.stdout = BufferedByteReceiveStream(process.stdout)

    async def line(self) -> str:
        with anyio.fail_after(60):
            return (await self.stdout.receive_until(b"\n", 1 << 16)).decode()

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(command).encode() + b"\n")

    async def ask(self, command: dict[str, Any]) -> Any:
        await self.send(command)
        return json.loads(await self.line())


async def _all(workers: list[Worker], command: dict[str, Any]) -> list[Any]:
    """Send ``command`` to every worker at once; their answers, in order."""
    answers: list[Any] = [None] * len(workers)

    async def one(index: int) -> None:
        answers[index] = await workers[index].ask(command)

    async with anyio.create_task_group() as tg:
        for index in range(len(workers)):
            tg.start_soon(one, index)
    return answers


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[tuple[MockProvider, list[Worker]]]:
    """A mock provider, and four worker processes (two asyncio, two trio) talking to it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    async with MockProvider() as mock:
        started: list[Worker] = []
        try:
            for backend in ("asyncio", "trio", "asyncio", "trio"):
                command = [sys.executable, str(WORKER), backend, redis_url, mock.openai_base_url]
                process = await anyio.open_process(command, env=env, stderr=None)
                started.append(Worker(process))
            for worker in started:
                assert await worker.line() == "ready"
            yield mock, started
        finally:
            with anyio.CancelScope(shield=True):
                for worker in started:
                    try:
                        await worker.send({"do": "quit"})
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass
                for worker in started:
                    with anyio.move_on_after(10):
                        await worker.process.wait()
                    if worker.process.returncode is None:
                        worker.process.kill()
                        await worker.process.wait()
                    await worker.process.aclose()


async def test_four_processes_share_one_rate_a_pause_and_a_circuit(
    redis_url: str, workers: tuple[MockProvider, list[Worker]]
) -> None:
    mock, procs = workers

    # One rate: 6 requests per minute for everyone; 4 workers x 4 attempts, no waiting.
    prefix = _prefix()
    assert await _all(procs, {"do": "open", "prefix": prefix, "burst": 6}) == [{"opened": True}] * 4
    answers = await _all(procs, {"do": "requests", "count": 4})
    outcomes = [o for answer in answers for o in answer["outcomes"]]
    assert outcomes.count("ok") == 6 and outcomes.count("rate_limited") == 10
    assert len(mock.requests) == 6
    await _all(procs, {"do": "close"})

    # One pause: a 429 with retry-after seen here delays every worker's next request.
    # (The bounds leave seconds for a loaded machine to pass the commands around.)
    prefix = _prefix()
    await _all(procs, {"do": "open", "prefix": prefix, "cooldown": 3.0})
    state = RedisState(redis_url, prefix=prefix)
    limit = RateLimiterConfig(requests_per_minute=6000)
    breaker = CircuitBreakerConfig(failure_threshold=2, cooldown_seconds=3.0)
    async with open_client(
        MODEL, **_settings(mock, state, rate_limit=limit, circuit_breaker=breaker)
    ) as here:
        mock.enqueue(Reply.error(429, "Slow down", headers={"retry-after": "3"}))
        with pytest.raises(RateLimitedError):
            await here.chat().user("hi").execute()
        await anyio.sleep(0.1)
        answers = await _all(procs, {"do": "requests", "count": 1})
        assert [a["outcomes"] for a in answers] == [["ok"]] * 4
        assert all(1.0 <= a["seconds"][0] < 10 for a in answers), answers

        # One circuit: opened here, seen by all at once; then one probe goes out.
        for _ in range(2):
            mock.enqueue(Reply.error(500, "boom", type="server_error"))
            with pytest.raises(ServerError):
                await here.chat().user("fail").execute()
        sent = len(mock.requests)
        assert here.circuit_state is CircuitState.OPEN
        answers = await _all(procs, {"do": "requests", "count": 1})
        assert [a["outcomes"] for a in answers] == [["circuit_open"]] * 4
        assert len(mock.requests) == sent
        await anyio.sleep(3.2)  # past the cooldown
        mock.enqueue(ScriptedReply(content="back", delay_before_headers=2.0))
        answers = await _all(procs, {"do": "requests", "count": 1})
        outcomes = sorted(a["outcomes"][0] for a in answers)
        assert outcomes == ["circuit_open", "circuit_open", "circuit_open", "ok"]
        assert len(mock.requests) == sent + 1
        await here.chat().user("closed again").execute()
    await _all(procs, {"do": "close"})


# ------------------------------------------------------------------ the key never leaves


async def test_the_key_is_only_ever_a_fingerprint(redis_url: str) -> None:
    secret = "sk-live-" + uuid.uuid4().hex
    prefix = _prefix()
    async with MockProvider() as mock:
        state = RedisState(redis_url, prefix=prefix)
        settings = _settings(
            mock,
            state,
            api_key=secret,
            rate_limit=RateLimiterConfig(requests_per_minute=600),
            circuit_breaker=_breaker(),
        )
        async with open_client(MODEL, **settings) as client:
            mock.enqueue(Reply.error(500, "boom", type="server_error"))
            with pytest.raises(ServerError):
                await client.chat().user("fail").execute()
            await client.chat().user("hi").execute()
            scope = client.primary.shared_scope()
            keys = await _keys(state)
            values = []
            redis = state._connection.client
            assert redis is not None
            for key in keys:
                values.append(repr(await redis.hgetall(key)))
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:16]
    assert scope.key == fingerprint
    assert scope == SharedScope.of(
        "openai", "gpt-4o", api_key=secret, base_url=mock.openai_base_url
    )
    assert len(keys) == 2  # the bucket and the circuit
    assert any(fingerprint in key for key in keys)
    for text in (*keys, *values, repr(scope), repr(client.primary.guard.limiter)):
        assert secret not in text and secret[8:] not in text
    limiter = client.primary.guard.limiter
    assert isinstance(limiter, RedisRateLimiter)
    assert isinstance(client.primary.guard.breaker, RedisCircuitStore)


def test_scopes_without_a_key_are_told_apart_by_endpoint() -> None:
    one = SharedScope.of("openai-compatible", "llama", base_url="http://127.0.0.1:8000/v1")
    two = SharedScope.of("openai-compatible", "llama", base_url="http://127.0.0.1:8001/v1")
    assert one.key != two.key and one.key.startswith("nokey-")
    keyed = SharedScope.of("openai", "gpt-4o", api_key="sk-a", base_url="http://a")
    assert keyed.key == SharedScope.of("openai", "gpt-4o", api_key="sk-a", base_url="http://b").key
    assert keyed.endpoint != SharedScope.of("openai", "gpt-4o", api_key="sk-a").endpoint


# ------------------------------------------------------------------ Redis unreachable


async def test_unreachable_redis_fails_at_open_with_a_typed_error() -> None:
    state = RedisState(f"redis://:hunter2@127.0.0.1:{_closed_port()}/0", timeout=1.0)
    start = time.monotonic()
    with anyio.fail_after(10):
        with pytest.raises(SharedStateError, match=r"cannot reach Redis at redis://127\.0\.0\.1"):
            async with open_client(
                MODEL,
                api_key=KEY,
                rate_limit=RateLimiterConfig.from_rps(1),
                shared_state=state,
            ):
                pass  # pragma: no cover
    assert time.monotonic() - start < 3
    assert not state.is_open
    assert "hunter2" not in repr(state)


async def test_a_redis_that_never_answers_fails_at_open_not_hangs() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def accept_and_say_nothing(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept_and_say_nothing)
        start = time.monotonic()
        with anyio.fail_after(15):
            with pytest.raises(SharedStateError, match="cannot reach Redis"):
                async with open_client(
                    MODEL,
                    api_key=KEY,
                    circuit_breaker=CircuitBreakerConfig(),
                    shared_state=RedisState(f"redis://127.0.0.1:{port}/0", timeout=0.5),
                ):
                    pass  # pragma: no cover
        assert time.monotonic() - start < 5
        tg.cancel_scope.cancel()
    await listener.aclose()


async def test_fallback_to_local_when_redis_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = RedisState(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.5, fallback_to_local=True)
    limit = RateLimiterConfig(requests_per_minute=2, burst=2, max_wait=0)
    async with MockProvider() as mock:
        with caplog.at_level(logging.WARNING, logger="ailib_anyio.shared"):
            async with open_client(
                MODEL,
                **_settings(mock, state, rate_limit=limit, circuit_breaker=_breaker(30)),
            ) as client:
                assert state.is_open and not state.available
                assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
                await client.chat().user("1").execute()
                await client.chat().user("2").execute()
                with pytest.raises(RateLimitedError):  # the local limiter answers
                    await client.chat().user("3").execute()
                stats = client.get_resilience_stats()
                assert stats.rate_limiters[MODEL].available_requests == pytest.approx(0, abs=0.1)
                assert len(mock.requests) == 2
    assert "the local rate limiters and circuit breakers answer" in caplog.text


async def test_fallback_circuit_is_local_when_redis_is_unreachable() -> None:
    state = RedisState(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.5, fallback_to_local=True)
    async with (
        MockProvider() as mock,
        open_client(MODEL, **_settings(mock, state, circuit_breaker=_breaker(30))) as c,
    ):
        for _ in range(2):
            mock.enqueue(Reply.error(500, "boom", type="server_error"))
            with pytest.raises(ServerError):
                await c.chat().user("fail").execute()
        with pytest.raises(CircuitOpenError):
            await c.chat().user("refused").execute()
        assert c.circuit_state is CircuitState.OPEN
        assert len(mock.requests) == 2


class OwnRedis:
    """A redis-server of a test's own, which the test may stop and start again (on the
    same port)."""

    def __init__(self, server: str) -> None:
        self.port = _closed_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.command = [server, "--bind", "127.0.0.1", "--port", str(self.port)]
        self.command += ["--save", "", "--appendonly", "no"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:  # pragma: no cover
                    self.stop()
                    pytest.skip("redis-server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    redis = OwnRedis(server)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


# coredis leaves a connection's memory streams unclosed when the connection fails (the
# ResourceWarning of their __del__); collected here, so no later test sees them.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function MemoryObject:pytest.PytestUnraisableExceptionWarning"
)
async def test_redis_going_away_fails_fast_then_falls_back_then_comes_back(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    url = own_redis.url
    limit = RateLimiterConfig(requests_per_minute=6000)
    breaker = _breaker(30)
    async with MockProvider() as mock:
        strict = RedisState(url, prefix=_prefix(), timeout=0.5, recheck_after=60)
        lenient = RedisState(
            url, prefix=_prefix(), timeout=0.5, fallback_to_local=True, recheck_after=0.5
        )
        async with (
            open_client(MODEL, **_settings(mock, strict, rate_limit=limit)) as a,
            open_client(
                MODEL, **_settings(mock, lenient, rate_limit=limit, circuit_breaker=breaker)
            ) as b,
        ):
            await a.chat().user("1").execute()
            await b.chat().user("1").execute()
            own_redis.stop()
            with caplog.at_level(logging.WARNING, logger="ailib_anyio.shared"):
                for _ in range(2):  # the second fails at once: known down
                    start = time.monotonic()
                    with pytest.raises(SharedStateError) as info:
                        await a.chat().user("2").execute()
                    assert time.monotonic() - start < 3
                    assert info.value.provider == "openai" and not info.value.retryable
                assert "is unreachable" in str(info.value)
                await b.chat().user("2").execute()  # the local limiter and breaker answer
                assert not lenient.available
                assert len(mock.requests) == 3
                assert caplog.text.count("shared state unavailable") == 2  # once per state

                own_redis.start()  # back, empty: the scripts are loaded again
                await anyio.sleep(0.6)  # past recheck_after
                await b.chat().user("3").execute()
                assert lenient.available
                assert "shared state available again" in caplog.text
                guard = b.primary.guard
                assert isinstance(guard.limiter, RedisRateLimiter)
                assert await _keys(lenient) == [guard.limiter.key]  # Redis counts again
    gc.collect()


# ------------------------------------------------------------------ settings


async def test_a_state_opened_by_the_caller_is_shared_and_left_open(redis_url: str) -> None:
    limit = RateLimiterConfig(requests_per_minute=6000)
    async with MockProvider() as mock, RedisState(redis_url, prefix=_prefix()) as state:
        async with (
            open_client(MODEL, **_settings(mock, state, rate_limit=limit)) as a,
            open_client(MODEL, **_settings(mock, state, rate_limit=limit)) as b,
        ):
            await a.chat().user("hi").execute()
            await b.chat().user("hi").execute()
            # one limiter object per scope in a process: one FIFO queue
            assert a.primary.guard.limiter is b.primary.guard.limiter
        assert state.is_open and state.available
    assert not state.is_open


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="shared_state must be a SharedState"):
        open_client(MODEL, api_key=KEY, shared_state="redis://127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="url must be a redis://"):
        RedisState("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError, match="probe_lease must be a positive number"):
        RedisState(probe_lease=0)
    with pytest.raises(ConfigurationError, match="fallback_to_local must be True or False"):
        RedisState(fallback_to_local="yes")  # type: ignore[arg-type]
    state = RedisState()
    builder = ClientBuilder().model(MODEL).api_key(KEY).with_shared_state(state)
    assert builder.build().config.shared_state is state
