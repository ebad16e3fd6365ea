"""Rate limits and circuit state shared by many processes: the interfaces.

A provider's limits are per API key, not per process, and a failing provider fails for
every worker. ``open_client(..., shared_state=...)`` takes a :class:`SharedState` (the
services layer's ``RedisState`` is one): when the client opens, each of its targets swaps
its in-process rate limiter and circuit breaker for the state's shared ones, made for
that target's :class:`SharedScope`. The client layer only knows these interfaces; the
store lives in the services layer, as the response cache does.

A shared limiter has the interface of the in-process ``RateLimiter`` (``acquire``,
``refund``, ``observe``, ``penalize``, ``stats``, ``config``, ``max_wait``); a shared
circuit (:class:`SharedCircuit`) is awaited where the in-process breaker is called, and
reads like it (``state(now)``, ``snapshot(now)``, ``config``).
"""

from __future__ import annotations

import abc
import hashlib
from types import TracebackType
from typing import TYPE_CHECKING

import attrs

from .._core._breaker import Admission
from .._core._retry import DEFAULT_MAX_RETRY_AFTER

if TYPE_CHECKING:
    from .._core._breaker import CircuitBreakerConfig, CircuitSnapshot, CircuitState
    from .._core._bucket import RateLimiterConfig
    from .._core._types import RateLimitSnapshot
    from ._ratelimiter import RateLimiterStats

__all__ = [
    "ClientResource",
    "SharedAdmission",
    "SharedCircuit",
    "SharedRateLimiter",
    "SharedScope",
    "SharedState",
    "fingerprint",
]

#: hex digits kept of a SHA-256 digest: 64 bits, plenty to keep keys apart
FINGERPRINT_LENGTH = 16


def fingerprint(text: str) -> str:
    """The first 16 hex digits of the SHA-256 of ``text``: an API key's stand-in in a
    shared store's key names (the key itself is never stored or sent)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:FINGERPRINT_LENGTH]


@attrs.frozen
class SharedScope:
    """What one target's shared state is keyed by: its provider, its model, a fingerprint
    of its API key (the rate limits are per key) and a fingerprint of its base URL (the
    circuit is per endpoint). Build it with :meth:`of`, never from the key itself.

    >>> scope = SharedScope.of("openai", "gpt-4o", api_key="sk-test", base_url="https://x")
    >>> scope.key == SharedScope.of("openai", "gpt-4o", api_key="sk-test").key
    True
    >>> "sk-test" in repr(scope)
    False
    """

    provider: str
    model: str
    #: the API key's fingerprint; without a key, ``"nokey-"`` and the endpoint's
    key: str
    #: the base URL's fingerprint
    endpoint: str

    @classmethod
    def of(
        cls, provider: str, model: str, *, api_key: str | None = None, base_url: str = ""
    ) -> SharedScope:
        """The scope of ``provider``/``model`` reached with ``api_key`` at ``base_url``.
        Without a key (a local server), servers at different URLs get different limits."""
        endpoint = fingerprint(base_url)
        key = fingerprint(api_key) if api_key else f"nokey-{endpoint[:10]}"
        return cls(provider=provider, model=model, key=key, endpoint=endpoint)


@attrs.frozen
class SharedAdmission(Admission):
    """An admission granted by a shared circuit: ``lease`` is the probe slot held (0: not
    a probe), ``token`` proves it is this worker's; ``local`` marks one the local breaker
    granted while the store was unreachable (``fallback_to_local``)."""

    lease: int = 0
    token: str = ""
    local: bool = False


class SharedRateLimiter(abc.ABC):
    """A rate limiter whose buckets live in a shared store; the interface of the
    in-process ``RateLimiter``."""

    @property
    @abc.abstractmethod
    def config(self) -> RateLimiterConfig: ...

    @abc.abstractmethod
    async def acquire(self, tokens: int = 0) -> float:
        """Wait for the turn of one request costing ``tokens`` tokens, take it, and return
        the seconds waited (``RateLimitedError`` beyond ``config.max_wait``)."""

    @abc.abstractmethod
    def refund(self, tokens: int = 0) -> None:
        """Give back what :meth:`acquire` took, for a request that never went out."""

    @abc.abstractmethod
    def observe(
        self, snapshot: RateLimitSnapshot, *, max_delay: float = DEFAULT_MAX_RETRY_AFTER
    ) -> None:
        """Adapt to a response's rate-limit headers, for every worker."""

    @abc.abstractmethod
    def penalize(
        self, seconds: float | None = None, *, max_delay: float = DEFAULT_MAX_RETRY_AFTER
    ) -> None:
        """The provider answered 429: pause every worker (``seconds``: its retry-after)."""

    @abc.abstractmethod
    def stats(self) -> RateLimiterStats:
        """The limiter's state as last seen."""


class SharedCircuit(abc.ABC):
    """A circuit breaker whose state lives in a shared store: failures counted across
    workers, an opened circuit refusing every worker, one probe at a time (per probe
    slot) across all of them when half-open."""

    @property
    @abc.abstractmethod
    def config(self) -> CircuitBreakerConfig: ...

    @abc.abstractmethod
    async def admit(self) -> Admission:
        """Whether a request may go now; an admitted one must have its outcome recorded
        (or be :meth:`abandon`-ed), a refused one must not."""

    @abc.abstractmethod
    async def record_success(self, admission: Admission) -> None: ...

    @abc.abstractmethod
    async def record_failure(self, admission: Admission) -> None:
        """The admitted request failed on the provider's side."""

    @abc.abstractmethod
    async def record_neutral(self, admission: Admission) -> None:
        """The admitted request ended in a way that says nothing about the provider."""

    @abc.abstractmethod
    def abandon(self, admission: Admission) -> None:
        """The admitted request was cancelled: record it as neutral without waiting (in
        the background), since a cancelled task cannot wait for the store."""

    @abc.abstractmethod
    def state(self, now: float) -> CircuitState:
        """The state as last seen from the store (every admission refreshes it)."""

    @abc.abstractmethod
    def snapshot(self, now: float) -> CircuitSnapshot:
        """The state and counters as last seen from the store."""


class ClientResource(abc.ABC):
    """A service a client opens with itself unless it is open already (a response cache,
    a shared state): one that cannot open fails ``open_client`` there, and the client
    closes what it opened when it closes; one the caller opened (``async with ...:``) is
    only used, never closed, by the client, so several clients can share it."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """Whether it is open (entered and not yet left)."""

    @abc.abstractmethod
    async def __aenter__(self) -> ClientResource: ...

    @abc.abstractmethod
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class SharedState(ClientResource):
    """What ``open_client(..., shared_state=...)`` takes (``ailib_anyio.shared.RedisState``
    is one, opened and closed as a ``ClientResource``): a store giving each target a
    shared rate limiter and circuit breaker."""

    @abc.abstractmethod
    def rate_limiter(self, config: RateLimiterConfig, scope: SharedScope) -> SharedRateLimiter:
        """The shared limiter of ``scope`` (the same object for the same scope and
        config: one FIFO queue per process)."""

    @abc.abstractmethod
    def circuit(self, config: CircuitBreakerConfig, scope: SharedScope) -> SharedCircuit:
        """The shared circuit breaker of ``scope``."""
