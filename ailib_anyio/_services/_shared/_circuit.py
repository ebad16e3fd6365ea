"""``RedisCircuitStore``: one circuit breaker per provider endpoint and model, in Redis.

The state (closed or open, when it opened, consecutive failures, counters) is one Redis
hash, changed only by the ``CIRCUIT`` script (``_lua``), which applies the rules of the
pure ``CircuitBreaker`` on the server's clock: a failure any worker sees counts for all,
and the admission that follows the one that opened the circuit is refused in every
worker. Half-open probe slots are keys taken with ``SET NX PX``: exactly one worker gets
each slot, and a worker that dies while probing frees it when its lease
(``RedisState.probe_lease``) runs out.

``state()`` and ``snapshot()`` are synchronous: they read what Redis said last (each
admission and outcome refreshes it; ``await refresh()`` asks).
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Any

import anyio

from ..._core._breaker import (
    Admission,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitSnapshot,
    CircuitState,
)
from ..._core._bucket import seconds_until
from ..._core._errors import SharedStateError
from ..._core._logging import get_logger
from ..._resilience._shared import SharedAdmission, SharedCircuit, SharedScope
from ._lua import CIRCUIT

if TYPE_CHECKING:
    from ._state import RedisState

__all__ = ["RedisCircuitStore"]

log = get_logger("ailib_anyio.attempts")

_STATES = {
    b"closed": CircuitState.CLOSED,
    b"open": CircuitState.OPEN,
    b"half_open": CircuitState.HALF_OPEN,
}
_NOT_A_PROBE = "0"
_ANY_SLOT = "-1"  # release whichever slot this admission's token holds


class RedisCircuitStore(SharedCircuit):
    """A circuit breaker shared by every process using the same Redis, provider endpoint
    (base URL) and model; see the module docstring. Made by ``RedisState.circuit(config,
    scope)`` (a client with ``shared_state=`` does it)::

        # not run: needs a Redis server (see tests/services/test_shared_state.py)
        circuit = state.circuit(CircuitBreakerConfig(), SharedScope.of(...))
        admission = await circuit.admit()
        if admission.allowed:
            ...  # the request, then exactly one of:
            await circuit.record_success(admission)  # or record_failure / record_neutral
    """

    def __init__(self, state: RedisState, config: CircuitBreakerConfig, scope: SharedScope) -> None:
        self._state = state
        self._config = config
        self.scope = scope
        #: the Redis hash of the circuit; the probe slots are ``key + ":probe:N"``
        self.key = state.key("circuit", scope.provider, scope.endpoint, scope.model)
        self._keys = [
            self.key,
            *(f"{self.key}:probe:{n}" for n in range(1, config.half_open_max_probes + 1)),
        ]
        self._context: dict[str, Any] = {"provider": scope.provider, "model": scope.model}
        lease_ms = max(1, round(state.probe_lease * 1000))
        ttl_ms = round(max(3600.0, 10 * config.cooldown_seconds) * 1000)
        # now (the server's clock), then the operation goes in between
        self._args = [str(config.failure_threshold), repr(float(config.cooldown_seconds))]
        self._tail = [str(lease_ms)], str(ttl_ms)
        #: answers when Redis is unreachable and the state falls back to local
        self._local = CircuitBreaker(config)
        self._tokens = itertools.count(1)
        self._instance = os.urandom(6).hex()
        # what Redis said last: state, failures, times opened, rejected, probes, and
        # when the cooldown ends (this process's clock)
        self._seen: tuple[CircuitState, int, int, int, int, float] = (
            CircuitState.CLOSED,
            0,
            0,
            0,
            0,
            0.0,
        )

    def __repr__(self) -> str:
        return f"<RedisCircuitStore {self.key}>"

    @property
    def config(self) -> CircuitBreakerConfig:
        return self._config

    def _falls_back(self) -> bool:
        return self._state.fallback_to_local and not self._state.available

    async def _run(self, op: str, token: str, slot: str, what: str) -> list[bytes]:
        lease, ttl = self._tail
        reply = await self._state.run(
            CIRCUIT,
            self._keys,
            ["", op, *self._args, *lease, token, slot, ttl],
            what=what,
            context=self._context,
        )
        state = _STATES[reply[3]]
        retry_in = float(reply[2])
        self._seen = (
            state,
            int(reply[4]),
            int(reply[5]),
            int(reply[6]),
            int(reply[7]),
            anyio.current_time() + retry_in,
        )
        return reply

    # ------------------------------------------------------------ admission

    async def admit(self) -> Admission:
        """Whether a request may go now, in every worker's view (``SharedStateError`` when
        Redis cannot be reached, unless the state falls back to the local breaker)."""
        token = f"{self._instance}:{next(self._tokens)}"
        try:
            reply = await self._run("admit", token, _NOT_A_PROBE, "circuit admission")
        except SharedStateError:
            if not self._state.fallback_to_local:
                raise
            local = self._local.admit(anyio.current_time())
            if not local.allowed:
                return local
            return SharedAdmission(allowed=True, probe=local.probe, retry_in=0.0, local=True)
        except BaseException:
            # Cancelled while Redis was answering: a probe slot may be ours; free it.
            self._release_soon(token, _ANY_SLOT)
            raise
        if int(reply[0]) != 1:
            return Admission(allowed=False, probe=False, retry_in=float(reply[2]))
        slot = int(reply[1])
        return SharedAdmission(allowed=True, probe=slot > 0, retry_in=0.0, lease=slot, token=token)

    # ------------------------------------------------------------ outcomes

    def _check(self, admission: Admission) -> SharedAdmission:
        if not admission.allowed:
            raise ValueError("a refused admission has no outcome to record")
        if not isinstance(admission, SharedAdmission):
            raise TypeError(f"not an admission of this circuit: {admission!r}")
        return admission

    def _local_admission(self, admission: SharedAdmission) -> Admission:
        return Admission(allowed=True, probe=admission.probe, retry_in=0.0)

    async def record_success(self, admission: Admission) -> None:
        """The admitted request succeeded. A probe's success closes the circuit for every
        worker before this returns. Any other success resets the count of consecutive
        failures: it is sent in the background (adding no wait), and only when Redis last
        reported failures to reset (nothing else would change)."""
        shared = self._check(admission)
        if shared.local:
            self._local.record_success(self._local_admission(shared), anyio.current_time())
        elif shared.lease:
            await self._outcome("success", shared)
        elif self._seen[1]:
            self._state.start_soon(self._outcome, "success", shared)

    async def record_failure(self, admission: Admission) -> None:
        """The admitted request failed on the provider's side: counted for every worker
        (opening the circuit for all of them at the threshold) before this returns."""
        shared = self._check(admission)
        if shared.local:
            self._local.record_failure(self._local_admission(shared), anyio.current_time())
            return
        await self._outcome("failure", shared)
        if self._falls_back():  # Redis went away just now: count it locally
            self._local.record_failure(
                Admission(allowed=True, probe=False, retry_in=0.0), anyio.current_time()
            )

    async def record_neutral(self, admission: Admission) -> None:
        """The admitted request said nothing about the provider: a probe frees its slot."""
        shared = self._check(admission)
        if shared.local:
            self._local.record_neutral(self._local_admission(shared), anyio.current_time())
        elif shared.lease:
            await self._outcome("neutral", shared)

    def abandon(self, admission: Admission) -> None:
        """The admitted request was cancelled: a probe frees its slot, in the background."""
        shared = self._check(admission)
        if shared.local:
            self._local.record_neutral(self._local_admission(shared), anyio.current_time())
        elif shared.lease:
            self._release_soon(shared.token, str(shared.lease))

    async def _outcome(self, op: str, admission: SharedAdmission) -> None:
        # An outcome never raises: the request's own result or error is the news. A
        # Redis outage is logged by the state; the next admission reports it.
        try:
            await self._run(op, admission.token, str(admission.lease), f"circuit {op}")
        except SharedStateError:
            pass

    def _release_soon(self, token: str, slot: str) -> None:
        async def release() -> None:
            try:
                await self._run("neutral", token, slot, "circuit probe release")
            except SharedStateError:
                pass  # the lease runs out by itself

        self._state.start_soon(release)

    # ------------------------------------------------------------ reading

    async def refresh(self) -> CircuitState:
        """Ask Redis for the state now (``state()`` then answers with it)."""
        await self._run("peek", "", _NOT_A_PROBE, "circuit read")
        return self.state(anyio.current_time())

    def state(self, now: float) -> CircuitState:
        """The state as Redis last reported it (open turns half-open when the cooldown it
        reported has passed); the local breaker's while it stands in."""
        if self._falls_back():
            return self._local.state(now)
        state, *_, reopens_at = self._seen
        if state is CircuitState.OPEN and now >= reopens_at:
            return CircuitState.HALF_OPEN
        return state

    def snapshot(self, now: float) -> CircuitSnapshot:
        """The state and the shared counters as Redis last reported them."""
        if self._falls_back():
            return self._local.snapshot(now)
        state = self.state(now)
        _, failures, times_opened, rejected, probes, reopens_at = self._seen
        return CircuitSnapshot(
            state=state,
            consecutive_failures=failures,
            times_opened=times_opened,
            rejected=rejected,
            probes_in_flight=probes,
            retry_in=seconds_until(now, reopens_at) if state is CircuitState.OPEN else 0.0,
        )
