"""Health checks against the loopback mock provider, on asyncio and trio.

Under trio the clock is virtual (``MockClock``), so probe intervals and circuit cooldowns
of many seconds cost nothing; under asyncio they are real and kept short. Every scenario
ends with no task left and no connection open at the server.
"""

from __future__ import annotations

from datetime import datetime

import anyio
import pytest
import trio.testing

from ailib_anyio import CircuitBreakerConfig, CircuitState, ConfigurationError, ServerError
from ailib_anyio._client._client import Client, open_client
from ailib_anyio._client._target import Target
from ailib_anyio._services._health import _overall
from ailib_anyio.health import (
    HealthChecker,
    HealthReport,
    HealthStatus,
    TargetHealth,
    chat_probe,
)
from ailib_anyio.testing import MockProvider, Reply

pytestmark = pytest.mark.anyio

KEY = "sk-test-secret-health-123"
HEALTHY, DEGRADED = HealthStatus.HEALTHY, HealthStatus.DEGRADED
UNHEALTHY, UNKNOWN = HealthStatus.UNHEALTHY, HealthStatus.UNKNOWN


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


@pytest.fixture
def interval(anyio_backend: object) -> float:
    """Seconds between probes: long in virtual time, short in real time."""
    return 10.0 if virtual(anyio_backend) else 0.05


def client_for(mock: MockProvider, model: str = "openai/gpt-4o", **kw: object) -> Client:
    return open_client(model, api_key=KEY, base_url=mock.openai_base_url, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("interval", 0, "HealthChecker.interval must be a finite number of seconds > 0, not 0"),
        ("interval", float("nan"), "HealthChecker.interval must be a finite number"),
        ("interval", True, "HealthChecker.interval must be a finite number"),
        ("timeout", -1.0, "HealthChecker.timeout must be a finite number of seconds > 0"),
        ("timeout", float("inf"), "HealthChecker.timeout must be a finite number"),
        ("unhealthy_after", 0, "HealthChecker.unhealthy_after must be an int >= 1, not 0"),
        ("unhealthy_after", 2.0, "HealthChecker.unhealthy_after must be an int >= 1, not 2.0"),
        ("healthy_after", False, "HealthChecker.healthy_after must be an int >= 1, not False"),
        (
            "degraded_latency",
            "1",
            "HealthChecker.degraded_latency must be a finite number of seconds > 0 (or None),"
            " not '1'",
        ),
        ("probe", "ping", "HealthChecker.probe must be an async function taking a Target"),
        ("on_change", 3, "HealthChecker.on_change must be a function taking a TargetHealth"),
    ],
)
def test_bad_settings_are_named(setting: str, value: object, message: str) -> None:
    client = Client("openai/gpt-4o", api_key=KEY, base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError) as info:
        HealthChecker(client, **{setting: value})  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_checker_needs_a_client_and_chat_models_for_the_default_probe() -> None:
    with pytest.raises(ConfigurationError, match="HealthChecker needs a Client"):
        HealthChecker("openai/gpt-4o")  # type: ignore[arg-type]
    embedder = Client("mistral/mistral-embed", api_key=KEY, base_url="http://x.invalid")
    with pytest.raises(ConfigurationError, match="not a chat model: pass probe="):
        HealthChecker(embedder)

    async def probe(target: Target) -> None:
        pass

    HealthChecker(embedder, probe=probe)  # any probe will do


def test_the_client_status_combines_its_targets() -> None:
    def health(status: HealthStatus) -> TargetHealth:
        return TargetHealth("p/m", "p", "m", "http://x", status, "")

    def overall(*states: HealthStatus) -> HealthStatus:
        return _overall(tuple(health(s) for s in states))

    assert overall(UNKNOWN, UNKNOWN) is UNKNOWN
    assert overall(HEALTHY, HEALTHY) is HEALTHY
    assert overall(HEALTHY, UNKNOWN) is HEALTHY  # not probed yet: left out
    assert overall(UNHEALTHY, UNKNOWN) is UNHEALTHY
    assert overall(HEALTHY, UNHEALTHY) is DEGRADED  # a fallback still answers
    assert overall(DEGRADED, UNHEALTHY) is DEGRADED
    assert overall(HEALTHY, DEGRADED) is DEGRADED
    assert overall(UNHEALTHY, UNHEALTHY) is UNHEALTHY


# ------------------------------------------------------------------ probing


async def test_healthy_then_unhealthy_then_recovered(
    mock: MockProvider, interval: float, anyio_backend: object
) -> None:
    changes: list[TargetHealth] = []
    recovered = anyio.Event()

    def on_change(health: TargetHealth) -> None:
        changes.append(health)
        if len(changes) == 4:
            recovered.set()

    async with client_for(mock, max_retries=3) as client:
        checker = HealthChecker(client, interval=interval, unhealthy_after=2, on_change=on_change)
        assert checker.status().status is UNKNOWN
        assert checker.status().targets[0].reason == "no probe has finished yet"
        await checker.start()
        report = await checker.wait_probed()
        assert report.status is HEALTHY
        first = report.targets[0]
        assert (first.name, first.provider, first.model) == ("openai/gpt-4o", "openai", "gpt-4o")
        assert first.last_ok and first.last_latency is not None and first.last_latency >= 0
        assert isinstance(first.last_probe_at, datetime) and first.last_probe_at.tzinfo
        assert first.seconds_since_probe is not None and first.seconds_since_probe >= 0
        # the provider fails twice: degraded, then unhealthy; then it answers again
        mock.enqueue(*[Reply.error(500, "boom", type="server_error") for _ in range(2)])
        with anyio.fail_after(100 * interval):
            await recovered.wait()
    assert [c.status for c in changes] == [HEALTHY, DEGRADED, UNHEALTHY, HEALTHY]
    down = changes[2]
    assert down.consecutive_failures == 2 and down.last_ok is False
    assert down.last_error_kind == "server_error" and "boom" in (down.last_error or "")
    assert down.reason == "2 consecutive probes failed"
    back = changes[3]
    assert back.consecutive_failures == 0 and back.failures == 2
    assert back.last_error_kind == "server_error"  # the last failure stays on record
    # a probe is one request: with the client's max_retries=3, one probe would have
    # retried through both 500s and never made the target unhealthy


async def test_the_default_probe_is_one_word_and_one_token(mock: MockProvider) -> None:
    async with client_for(mock) as client:
        report = await HealthChecker(client).check()
    assert report.status is HEALTHY
    (request,) = mock.requests
    assert request.path == "/v1/chat/completions"
    assert request.json["max_completion_tokens"] == 1  # max_tokens, as the manifest maps it
    assert request.json["messages"] == [{"role": "user", "content": "ping"}]
    assert request.headers["authorization"] == f"Bearer {KEY}"


async def test_an_open_circuit_is_unhealthy_and_half_open_degraded(
    mock: MockProvider, anyio_backend: object
) -> None:
    cooldown = 30.0 if virtual(anyio_backend) else 0.3
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=cooldown)
    async with client_for(mock, max_retries=0, circuit_breaker=breaker) as client:
        checker = HealthChecker(client)
        mock.enqueue(Reply.error(500, "down", type="server_error"))
        with pytest.raises(ServerError):
            await client.chat().user("hi").execute()
        report = await checker.check()  # the probe itself succeeds: the circuit decides
        (target,) = report.targets
        assert target.last_ok is True
        assert (target.status, target.circuit) == (UNHEALTHY, CircuitState.OPEN)
        assert target.reason == "the circuit is open"
        assert report.status is UNHEALTHY and report.available() == ()
        # the probe did not steer the circuit: still open, and it admitted nothing
        assert client.get_resilience_stats().circuits["openai/gpt-4o"].state is CircuitState.OPEN
        await anyio.sleep(cooldown)
        half = checker.status().targets[0]
        assert (half.status, half.circuit) == (DEGRADED, CircuitState.HALF_OPEN)
        assert half.reason == "the circuit is half-open"
        await client.chat().user("hi").execute()  # a user request closes it
        assert checker.status().targets[0].status is HEALTHY


async def test_probes_stop_when_the_client_closes(mock: MockProvider, interval: float) -> None:
    async with client_for(mock) as client:
        checker = HealthChecker(client, interval=interval)
        await checker.start()
        await checker.wait_probed()
        await checker.wait_probed()
        names = [t.name for t in anyio.get_running_tasks()]
        assert "HealthChecker(openai/gpt-4o)" in names
    sent = len(mock.requests)
    await anyio.sleep(5 * interval)
    assert len(mock.requests) == sent  # the fixture checks that no task is left
    with pytest.raises(RuntimeError, match="the client is closed"):
        await checker.check()  # the results stay; no probe runs on a closed client


async def test_stop_ends_the_probes_before_the_client(mock: MockProvider, interval: float) -> None:
    async with client_for(mock) as client:
        checker = HealthChecker(client, interval=interval)
        await checker.start()
        await checker.wait_probed()
        checker.stop()
        await anyio.sleep(interval / 2)
        sent = len(mock.requests)
        await anyio.sleep(5 * interval)
        assert len(mock.requests) == sent
        assert checker.status().targets[0].status is HEALTHY  # still readable
        assert "HealthChecker(openai/gpt-4o)" not in [t.name for t in anyio.get_running_tasks()]
        with pytest.raises(RuntimeError, match="started only once"):
            await checker.start()


async def test_start_needs_an_open_client(mock: MockProvider) -> None:
    checker = HealthChecker(client_for(mock))
    with pytest.raises(RuntimeError, match="background work needs an open client"):
        await checker.start()


async def test_a_probe_takes_no_inflight_slot(mock: MockProvider, interval: float) -> None:
    async with client_for(mock, max_inflight=1) as client:
        checker = HealthChecker(client, interval=interval)
        await checker.start()  # where the client's block is (see Client.start_background)
        async with client.chat().user("hold the only slot").stream():
            assert client.current_inflight == 1
            with anyio.fail_after(100 * interval):  # a probe waiting for the slot never ends
                report = await checker.check()
                assert report.status is HEALTHY
                await checker.wait_probed()  # the background loop's probes too
            assert client.current_inflight == 1  # the user's stream only


async def test_a_custom_probe_and_its_failures(mock: MockProvider, anyio_backend: object) -> None:
    slow = 20.0 if virtual(anyio_backend) else 0.5
    mode = ["ok"]
    seen: list[Target] = []

    async def probe(target: Target) -> None:
        seen.append(target)
        if mode[0] == "raise":
            raise ValueError(f"bad answer with key {KEY}")
        if mode[0] == "hang":
            await anyio.sleep_forever()

    async with client_for(mock) as client:
        checker = HealthChecker(client, probe=probe, timeout=slow / 4, unhealthy_after=1)
        assert (await checker.check()).status is HEALTHY
        assert seen == [client.primary] and mock.requests == []  # the default probe never ran
        mode[0] = "raise"
        target = (await checker.check()).targets[0]
        assert (target.status, target.last_error_kind) == (UNHEALTHY, "ValueError")
        assert target.last_error == "bad answer with key <redacted>"  # no secret kept
        mode[0] = "hang"
        start = anyio.current_time()
        target = (await checker.check()).targets[0]
        assert slow / 4 <= anyio.current_time() - start < slow
        assert (target.last_error_kind, target.last_error) == (
            "timeout",
            f"no answer within {slow / 4:g}s",
        )
        assert (target.probes, target.failures) == (3, 2)


async def test_recovery_and_latency_thresholds(mock: MockProvider, anyio_backend: object) -> None:
    delay = 2.0 if virtual(anyio_backend) else 0.1
    mode = ["fail"]

    async def probe(target: Target) -> None:
        if mode[0] == "fail":
            raise ServerError("down", provider=target.provider, model=target.model_id)
        if mode[0] == "slow":
            await anyio.sleep(delay)

    async with client_for(mock) as client:
        checker = HealthChecker(
            client, probe=probe, healthy_after=2, degraded_latency=delay / 2, timeout=delay * 10
        )
        target = (await checker.check()).targets[0]
        assert (target.status, target.last_error_kind) == (DEGRADED, "server_error")
        assert target.reason == "1 consecutive probe failed"
        mode[0] = "ok"
        target = (await checker.check()).targets[0]
        assert (target.status, target.reason) == (DEGRADED, "recovering: 1 of 2 probes succeeded")
        target = (await checker.check()).targets[0]
        assert target.status is HEALTHY
        mode[0] = "slow"
        target = (await checker.check()).targets[0]
        assert target.status is DEGRADED and target.reason.startswith("slow: ")
        assert target.last_latency is not None and target.last_latency >= delay


async def test_a_failing_default_probe_is_classified(mock: MockProvider) -> None:
    mock.enqueue(
        Reply.error(401, "Incorrect API key", code="invalid_api_key"),
        Reply(status=200, headers={"content-type": "application/json"}, body=b"<html>"),
    )
    async with client_for(mock) as client:
        checker = HealthChecker(client)
        first = (await checker.check()).targets[0]
        second = (await checker.check()).targets[0]
        third = (await checker.check()).targets[0]
    assert first.last_error_kind == "authentication"
    assert second.last_error_kind == "malformed_response"
    assert "not a JSON object" in (second.last_error or "")
    assert (third.status, third.consecutive_failures) == (HEALTHY, 0)


async def test_every_target_is_probed(mock: MockProvider, interval: float) -> None:
    fallback = Client("openai/gpt-4o-mini", api_key=KEY, base_url=mock.openai_base_url)
    async with client_for(mock, fallbacks=[fallback]) as client:
        checker = HealthChecker(client, interval=interval)
        await checker.start()
        report = await checker.wait_probed()
    assert [t.name for t in report.targets] == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    assert report.status is HEALTHY
    assert {r.json["model"] for r in mock.requests} == {"gpt-4o", "gpt-4o-mini"}


async def test_one_target_down_degrades_the_client(mock: MockProvider) -> None:
    async def probe(target: Target) -> None:
        if target.model_id == "gpt-4o":
            raise ConnectionError("refused")
        await chat_probe(target)

    fallback = Client("openai/gpt-4o-mini", api_key=KEY, base_url=mock.openai_base_url)
    async with client_for(mock, fallbacks=[fallback]) as client:
        report = await HealthChecker(client, probe=probe, unhealthy_after=1).check()
    assert isinstance(report, HealthReport)
    assert report.status is DEGRADED and not report.healthy
    assert [t.name for t in report.available()] == ["openai/gpt-4o-mini"]
    primary = report.get("openai/gpt-4o")
    assert primary is not None and primary.status is UNHEALTHY
    assert primary.last_error_kind == "ConnectionError"
    assert report.get("nope/model") is None
    assert [r.json["model"] for r in mock.requests] == ["gpt-4o-mini"]


async def test_client_health_reads_its_checker_or_its_circuits(
    mock: MockProvider, interval: float
) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=600)
    async with client_for(mock, max_retries=0, circuit_breaker=breaker) as client:
        (before,) = client.health().targets  # no checker: the circuit alone
        assert (before.status, before.circuit, before.probes) == (UNKNOWN, CircuitState.CLOSED, 0)
        mock.enqueue(Reply.error(500, "down", type="server_error"))
        with pytest.raises(ServerError):
            await client.chat().user("hi").execute()
        (opened,) = client.health().targets
        assert (opened.status, opened.reason) == (UNHEALTHY, "the circuit is open")
    async with client_for(mock) as client:
        checker = HealthChecker(client, interval=interval)
        await checker.start()
        report = await checker.wait_probed()
        (via_client,) = client.health().targets
        (probed,) = report.targets
        assert (via_client.status, via_client.probes, via_client.last_probe_at) == (
            HEALTHY,
            probed.probes,
            probed.last_probe_at,
        )
