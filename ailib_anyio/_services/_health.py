"""Health: periodic cheap probes of each target of a client, combined with its circuit.

::

    async with open_client("openai/gpt-4o", fallbacks=["anthropic/claude-sonnet-4-5"]) as c:
        checker = HealthChecker(c, interval=30.0)
        await checker.start()                  # probes run in the client's task group
        ...
        report = checker.status()              # a HealthReport: one TargetHealth per target
        report.status, report.targets[0].status, report.targets[0].last_latency

``start()`` runs one probe loop per target in the client's own task group
(``Client.start_background``): the loops end when the client closes (or at ``stop()``).
Each probe ends within the checker's ``timeout`` and is never retried. The default
probe is one request, the cheapest every chat manifest declares: a chat of one user word
with ``max_tokens=1`` (no manifest of the project declares a model-list endpoint, and
such an endpoint would not show the model answering); ``probe=`` replaces it with any
``async def probe(target)`` that raises when the target is not fit.

A probe **takes no ``max_inflight`` slot and skips the target's retry policy, rate
limiter and circuit breaker**: it observes the target, it never steers it or waits
behind user requests, so a saturated client still reports fresh health and its
``current_inflight`` counts user requests only. The loops add one probe per target per
``interval`` (a loop waits for its probe before the next one); ``check()`` probes on
demand on top of them.

A target's status combines its probes with its circuit (``target.guard.breaker``):

- an **open** circuit: ``unhealthy``, whatever the probes say; **half-open**: at best
  ``degraded``;
- ``unhealthy_after`` consecutive failed probes: ``unhealthy``; fewer: ``degraded``;
- after a failure, ``degraded`` until ``healthy_after`` consecutive probes succeed;
- a successful probe slower than ``degraded_latency`` (if set): ``degraded``;
- no probe finished yet: ``unknown``; otherwise ``healthy``.

The client's status: that of its targets when they agree; else ``degraded`` while any
target is healthy or degraded, ``unhealthy`` when none is (targets not yet probed are
left out, unless all are).
"""

from __future__ import annotations

import enum
import json
import math
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs

from .._client._client import Client
from .._core._breaker import CircuitState
from .._core._errors import AiLibError, ConfigurationError, MalformedResponseError
from .._core._secrets import mask_text
from .._core._types import ChatRequest, Message

if TYPE_CHECKING:
    from .._client._target import Target

__all__ = [
    "HealthChecker",
    "HealthReport",
    "HealthStatus",
    "Probe",
    "TargetHealth",
    "chat_probe",
]

#: ``async def probe(target)``: returns when the target is fit, raises when it is not
Probe = Callable[["Target"], Awaitable[object]]

#: the user message of the default probe
PROBE_TEXT = "ping"


class HealthStatus(str, enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@attrs.frozen
class TargetHealth:
    """One target's health at one moment (see the module docstring for ``status``).

    ``name`` is ``"provider/model"`` (as in ``get_resilience_stats()``), ``base_url`` tells
    apart two targets of the same name. ``reason`` says why ``status`` is what it is.
    ``last_probe_at`` is the wall-clock time (UTC) the last probe finished and
    ``seconds_since_probe`` how long ago (by the event loop's clock); ``last_latency`` is
    the last *successful* probe's duration in seconds; ``last_error_kind`` the last failed
    probe's error kind (an ``AiLibError.kind`` such as ``server_error`` or ``timeout``,
    else the exception's class name) and ``last_error`` its message (secrets masked).
    ``circuit`` is the circuit's state (None without a circuit breaker).
    """

    name: str
    provider: str
    model: str
    base_url: str
    status: HealthStatus
    reason: str
    circuit: CircuitState | None = None
    last_probe_at: datetime | None = None
    seconds_since_probe: float | None = None
    last_ok: bool | None = None
    last_latency: float | None = None
    last_error_kind: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    probes: int = 0
    failures: int = 0

    @property
    def available(self) -> bool:
        """Worth sending a request to: not ``unhealthy``."""
        return self.status is not HealthStatus.UNHEALTHY


@attrs.frozen
class HealthReport:
    """A client's health: its overall ``status`` and one ``TargetHealth`` per target, in
    the client's order (the primary first)."""

    status: HealthStatus
    targets: tuple[TargetHealth, ...]

    @property
    def healthy(self) -> bool:
        return self.status is HealthStatus.HEALTHY

    def get(self, name: str) -> TargetHealth | None:
        """The first target named ``name`` (``"provider/model"``), or None."""
        return next((t for t in self.targets if t.name == name), None)

    def available(self) -> tuple[TargetHealth, ...]:
        """The targets worth sending a request to (not ``unhealthy``), in order."""
        return tuple(t for t in self.targets if t.available)


def _seconds(name: str, value: object, *, optional: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < math.inf  # NaN fails too
    ):
        extra = " (or None)" if optional else ""
        raise ConfigurationError(
            f"HealthChecker.{name} must be a finite number of seconds > 0{extra}, not {value!r}"
        )
    return float(value)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"HealthChecker.{name} must be an int >= 1, not {value!r}")
    return value


async def chat_probe(target: Target, http_timeout: float | None = None) -> None:
    """The default probe: a chat of one user word with ``max_tokens=1``, sent once to
    ``target`` — outside the client's ``max_inflight`` limiter, retry policy, rate limiter
    and circuit breaker. Returns when the provider answers 2xx with a JSON object; raises
    the classified ``RemoteError`` for an error status, ``TransportError`` when the
    connection fails, ``MalformedResponseError`` for a body that is not JSON."""
    request = ChatRequest(model=target.model_id, messages=(Message.user(PROBE_TEXT),), max_tokens=1)
    content = target.encode(request)
    transport, _ = target.opened()  # the limiter is left alone: see the module docstring
    response = await transport.send(
        target.chat_url, content, timeout=http_timeout, context=target.context()
    )
    try:
        if response.status_code >= 400:
            raise await target.error_from_response(response)
        context = target.context(
            status_code=response.status_code, request_id=target.request_id_of(response)
        )
        raw = await response.aread(context=context)
    finally:
        with anyio.CancelScope(shield=True):
            await response.aclose()
    try:
        body: Any = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        text = mask_text(raw.decode("utf-8", "replace"))[:200]
        raise MalformedResponseError(
            f"the health probe's response is not a JSON object: {text!r}", **context
        )


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, AiLibError):
        return exc.kind
    return type(exc).__name__


@attrs.define(eq=False)
class _Record:
    """What the probes of one target found so far."""

    target: Target
    probes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    ever_failed: bool = False
    last_ok: bool | None = None
    last_probe_at: datetime | None = None
    last_probe_time: float | None = None  # on the event loop's clock
    last_latency: float | None = None
    last_error_kind: str | None = None
    last_error: str | None = None
    last_status: HealthStatus = HealthStatus.UNKNOWN


class HealthChecker:
    """Periodic probes of every target of ``client`` (see the module docstring).

    - ``interval``: seconds from the start of one probe of a target to the next (30);
    - ``timeout``: seconds a probe may take before it counts as failed, kind
      ``timeout`` (10);
    - ``probe``: ``async def probe(target)`` replacing ``chat_probe``; it raises to fail;
    - ``unhealthy_after``: consecutive failed probes that make a target ``unhealthy`` (3);
    - ``healthy_after``: consecutive successful probes after a failure before it is
      ``healthy`` again (1);
    - ``degraded_latency``: seconds above which a successful probe makes it ``degraded``
      (None: latency never does);
    - ``on_change``: called with the new ``TargetHealth`` after a probe that changed a
      target's status (a plain function: it runs in the probe loop and must not raise —
      an exception there ends the client's block, as any background error does).

    Every setting is checked here: a bad one is a ``ConfigurationError`` naming it. The
    default probe needs chat models: with a target that cannot chat, pass ``probe=``.
    """

    def __init__(
        self,
        client: Client,
        *,
        interval: float = 30.0,
        timeout: float = 10.0,
        probe: Probe | None = None,
        unhealthy_after: int = 3,
        healthy_after: int = 1,
        degraded_latency: float | None = None,
        on_change: Callable[[TargetHealth], object] | None = None,
    ) -> None:
        if not isinstance(client, Client):
            raise ConfigurationError(
                f"HealthChecker needs a Client (from open_client), not {type(client).__name__}"
            )
        self.client = client
        self.interval = _seconds("interval", interval)
        self.timeout = _seconds("timeout", timeout)
        self.unhealthy_after = _count("unhealthy_after", unhealthy_after)
        self.healthy_after = _count("healthy_after", healthy_after)
        self.degraded_latency = (
            None
            if degraded_latency is None
            else _seconds("degraded_latency", degraded_latency, optional=True)
        )
        if probe is not None and not callable(probe):
            raise ConfigurationError(
                f"HealthChecker.probe must be an async function taking a Target, not {probe!r}"
            )
        if on_change is not None and not callable(on_change):
            raise ConfigurationError(
                f"HealthChecker.on_change must be a function taking a TargetHealth,"
                f" not {on_change!r}"
            )
        if probe is None:
            for target in client.targets:
                if not target.chats:
                    raise ConfigurationError(
                        f"HealthChecker's default probe is a chat request, and"
                        f" {target.provider}/{target.model_id} is not a chat model: pass"
                        f" probe=",
                        **target.context(),
                    )
        self._probe = probe
        self._on_change = on_change
        self._records = [_Record(target) for target in client.targets]
        self._scope: anyio.CancelScope | None = None
        self._started = False
        self._probed: anyio.Event | None = None  # set (and replaced) after every probe

    def __repr__(self) -> str:
        return f"<HealthChecker {self.client.provider}/{self.client.model_id}>"

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the probe loops in the client's task group (the client must be open; it
        is then bound to this task, see ``Client.start_background``). Each target is
        probed at once, then every ``interval``. Once per checker."""
        if self._started:
            raise RuntimeError("a HealthChecker can be started only once")
        self._started = True
        _CHECKERS[self.client] = self  # what client.health() reports from now on
        name = f"HealthChecker({self.client.provider}/{self.client.model_id})"
        await self.client.start_background(self._run, name=name)

    def stop(self) -> None:
        """Stop probing (the loops end at their next checkpoint). The last results stay
        readable; the circuit part of ``status()`` stays live."""
        if self._scope is not None:
            self._scope.cancel()
        else:
            self._scope = anyio.CancelScope()
            self._scope.cancel()

    async def _run(self) -> None:
        if self._scope is None:
            self._scope = anyio.CancelScope()
        with self._scope:
            async with anyio.create_task_group() as group:
                for record in self._records:
                    group.start_soon(self._loop, record)

    async def _loop(self, record: _Record) -> None:
        while True:
            started = anyio.current_time()
            await self._probe_once(record)
            await anyio.sleep_until(started + self.interval)

    # ------------------------------------------------------------ probing

    async def check(self) -> HealthReport:
        """Probe every target once now, concurrently, in this task (the background loops,
        if started, go on as scheduled), and return the new report. The client must be
        open."""
        self.client.primary.opened()  # raises the error that says why not
        async with anyio.create_task_group() as group:
            for record in self._records:
                group.start_soon(self._probe_once, record)
        return self.status()

    async def wait_probed(self) -> HealthReport:
        """Wait until every target has finished one more probe than when this was
        called (by the background loops or ``check()``), and return the report. Without
        started loops (or after ``stop()``) only ``check()`` ends the wait: wait under a
        deadline of your own."""
        wanted = [record.probes + 1 for record in self._records]
        while any(r.probes < n for r, n in zip(self._records, wanted, strict=True)):
            if self._probed is None:
                self._probed = anyio.Event()
            await self._probed.wait()
        return self.status()

    async def _probe_once(self, record: _Record) -> None:
        target = record.target
        error: Exception | None = None
        start = anyio.current_time()
        with anyio.move_on_after(self.timeout) as scope:
            try:
                if self._probe is None:
                    await chat_probe(target, self.timeout)
                else:
                    await self._probe(target)
            except Exception as exc:  # noqa: BLE001 - any failure of a probe is its verdict
                error = exc
        now = anyio.current_time()
        record.probes += 1
        record.last_probe_at = datetime.now(timezone.utc)
        record.last_probe_time = now
        if scope.cancelled_caught:
            error_kind, message = "timeout", f"no answer within {self.timeout:g}s"
        elif error is not None:
            error_kind, message = _error_kind(error), mask_text(str(error))
        else:
            record.last_ok = True
            record.last_latency = now - start
            record.consecutive_successes += 1
            record.consecutive_failures = 0
            self._settle(record, now)
            return
        record.last_ok = False
        record.failures += 1
        record.ever_failed = True
        record.consecutive_failures += 1
        record.consecutive_successes = 0
        record.last_error_kind, record.last_error = error_kind, message
        self._settle(record, now)

    def _settle(self, record: _Record, now: float) -> None:
        """Tell the waiters and ``on_change`` about a finished probe."""
        probed, self._probed = self._probed, None
        if probed is not None:
            probed.set()
        health = self._health(record, now)
        if health.status is not record.last_status:
            record.last_status = health.status
            if self._on_change is not None:
                self._on_change(health)

    # ------------------------------------------------------------ status

    def status(self) -> HealthReport:
        """The health of every target now: the probes' results so far with the circuits'
        current state (call it from inside the event loop, whose clock it reads)."""
        now = anyio.current_time()
        targets = tuple(self._health(record, now) for record in self._records)
        return HealthReport(status=_overall(targets), targets=targets)

    def _health(self, record: _Record, now: float) -> TargetHealth:
        breaker = record.target.guard.breaker
        circuit = breaker.state(now) if breaker is not None else None
        status, reason = self._verdict(record)
        if circuit is CircuitState.OPEN:
            status, reason = HealthStatus.UNHEALTHY, "the circuit is open"
        elif circuit is CircuitState.HALF_OPEN and status is not HealthStatus.UNHEALTHY:
            status, reason = HealthStatus.DEGRADED, "the circuit is half-open"
        target = record.target
        since = None if record.last_probe_time is None else max(0.0, now - record.last_probe_time)
        return TargetHealth(
            name=target.guard.name,
            provider=target.provider,
            model=target.model_id,
            base_url=target.base_url,
            status=status,
            reason=reason,
            circuit=circuit,
            last_probe_at=record.last_probe_at,
            seconds_since_probe=since,
            last_ok=record.last_ok,
            last_latency=record.last_latency,
            last_error_kind=record.last_error_kind,
            last_error=record.last_error,
            consecutive_failures=record.consecutive_failures,
            consecutive_successes=record.consecutive_successes,
            probes=record.probes,
            failures=record.failures,
        )

    def _verdict(self, record: _Record) -> tuple[HealthStatus, str]:
        """The status the probes alone give."""
        if record.probes == 0:
            return HealthStatus.UNKNOWN, "no probe has finished yet"
        failed = record.consecutive_failures
        if failed >= self.unhealthy_after:
            return HealthStatus.UNHEALTHY, f"{failed} consecutive probes failed"
        if failed:
            plural = "s" if failed > 1 else ""
            return HealthStatus.DEGRADED, f"{failed} consecutive probe{plural} failed"
        succeeded = record.consecutive_successes
        if record.ever_failed and succeeded < self.healthy_after:
            return (
                HealthStatus.DEGRADED,
                f"recovering: {succeeded} of {self.healthy_after} probes succeeded",
            )
        latency, limit = record.last_latency, self.degraded_latency
        if limit is not None and latency is not None and latency > limit:
            return HealthStatus.DEGRADED, f"slow: {latency:.3f}s > {limit:g}s"
        return HealthStatus.HEALTHY, "the last probe succeeded"


#: the checker last started for each client (``client.health()`` reads it)
_CHECKERS: weakref.WeakKeyDictionary[Client, HealthChecker] = weakref.WeakKeyDictionary()


async def _no_probe(target: Any) -> None:  # pragma: no cover - a checker never started
    raise RuntimeError("not a probing checker")


def health_of(client: Client) -> HealthReport:
    """``client.health()``: the report of the ``HealthChecker`` last started for
    ``client``; without one, its targets' circuits alone (probe results ``unknown``)."""
    checker = _CHECKERS.get(client)
    if checker is None:
        checker = HealthChecker(client, probe=_no_probe)
    return checker.status()


def _overall(targets: tuple[TargetHealth, ...]) -> HealthStatus:
    known = {t.status for t in targets} - {HealthStatus.UNKNOWN}
    if not known:
        return HealthStatus.UNKNOWN
    if len(known) == 1:
        return known.pop()
    if known & {HealthStatus.HEALTHY, HealthStatus.DEGRADED}:
        return HealthStatus.DEGRADED
    return HealthStatus.UNHEALTHY
