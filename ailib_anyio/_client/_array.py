"""Model arrays: one client spreading its calls over several endpoints.

A ``ModelArray`` is a list of endpoints (``"provider/model"`` strings, or unopened clients
with settings of their own) and a load-balancing strategy. ``open_client(ModelArray(...))``
opens one client whose targets are the endpoints, then its ``fallbacks``; for each call
the client's ``ArrayRouter`` picks the endpoint that goes first, and the other eligible
endpoints follow it as that call's fallback chain, in the array's order after the chosen
one. Retries, fallbacks, hedging, deadlines, ``max_inflight`` and middleware are the
client's own, unchanged: an array only decides the order of the chain, call by call::

    array = ModelArray(["openai/gpt-4o", "openai/gpt-4.1"], strategy="least_inflight")
    async with open_client(array, circuit_breaker=CircuitBreakerConfig()) as client:
        reply = await client.chat().user("2+2?").execute()

An endpoint is *eligible* unless its circuit is open (``circuit_breaker`` set, and it
failed enough) or the array's ``health`` callable says ``False`` for its name. When no
endpoint is eligible, every endpoint is tried in order anyway: the call then ends in the
real error (an open circuit fails fast with ``CircuitOpenError``, without a request; a
health verdict may be stale).

The decisions themselves are pure functions in ``_core/_balance.py``; the router keeps
their state (the cursor, the weighted counters, each endpoint's measured latency) and
reads the live numbers: each target's requests and streams in flight, its breaker's
state, the health callable.
"""

from __future__ import annotations

import enum
import math
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs

from .._core._balance import (
    LatencyStats,
    pick_fastest,
    pick_least,
    pick_round_robin,
    pick_weighted,
    rotation,
)
from .._core._breaker import CircuitState
from .._core._errors import ConfigurationError
from ._middleware import Call, Middleware, Next

if TYPE_CHECKING:
    from ._client import Client
    from ._config import ClientConfig
    from ._target import Target

__all__ = [
    "ArrayRouter",
    "EndpointStats",
    "LatencyTracker",
    "LoadBalancingStrategy",
    "ModelArray",
    "ModelEndpoint",
    "open_router",
]

_R = TypeVar("_R")

#: ``health(name)``: True (healthy), False (known bad: skipped) or None (unknown: used).
HealthCheck = Callable[[str], "bool | None"]


class LoadBalancingStrategy(enum.Enum):
    """How a ``ModelArray`` picks the endpoint that goes first.

    - ``ROUND_ROBIN``: each eligible endpoint in turn;
    - ``WEIGHTED``: in proportion to the endpoints' ``weight`` (smooth weighted round
      robin: exact shares, spread out);
    - ``LEAST_INFLIGHT``: the endpoint with the fewest requests and streams open right now;
    - ``LOWEST_LATENCY``: the endpoint with the lowest measured latency (a moving average
      of the time to the first event for streams, to the whole response for requests);
      an endpoint not measured yet is tried first.

    Ties go round, so equal endpoints take turns.
    """

    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"
    LEAST_INFLIGHT = "least_inflight"
    LOWEST_LATENCY = "lowest_latency"


def _client_class() -> type | None:
    # ``_client`` imports this module (when a client gets an array): ``Client`` is looked up
    # where it lives instead of imported back, which would be an import cycle.
    return getattr(sys.modules.get(f"{__package__}._client"), "Client", None)


def _check_target(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    client = _client_class()
    if isinstance(value, str) and value:
        return
    if client is not None and isinstance(value, client):
        return
    raise ConfigurationError(
        f"a ModelArray endpoint must be a 'provider/model' string or an unopened Client,"
        f" got {value!r}"
    )


def _check_weight(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < math.inf  # NaN fails too
    ):
        raise ConfigurationError(f"an endpoint's weight must be a finite number > 0, got {value!r}")


def _check_name(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"an endpoint's name must be a non-empty string, got {value!r}")


@attrs.frozen
class ModelEndpoint:
    """One endpoint of a ``ModelArray``: a ``"provider/model"`` (the array's client's
    settings) or an unopened client with settings of its own (``open_client("openai/gpt-4o",
    base_url=..., api_key=...)``: its own key, URL, retries and circuit breaker, as for a
    client given as a fallback); its ``weight`` for the weighted strategy; its ``name``
    (default: the ``"provider/model"``), which stats and the health callable use and
    which must be unique within the array."""

    target: str | Client = attrs.field(validator=_check_target)
    weight: float = attrs.field(default=1.0, validator=_check_weight)
    name: str | None = attrs.field(default=None, validator=_check_name)

    @property
    def label(self) -> str:
        """The endpoint's name: ``name``, else its ``"provider/model"``."""
        if self.name is not None:
            return self.name
        target = self.target
        if isinstance(target, str):
            return target
        return f"{target.provider}/{target.model_id}"


def _as_endpoints(value: Any) -> tuple[ModelEndpoint, ...]:
    if isinstance(value, Mapping):
        return tuple(ModelEndpoint(target, weight=weight) for target, weight in value.items())
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        value = (value,)
    return tuple(item if isinstance(item, ModelEndpoint) else ModelEndpoint(item) for item in value)


def _as_strategy(value: Any) -> LoadBalancingStrategy:
    if isinstance(value, LoadBalancingStrategy):
        return value
    try:
        return LoadBalancingStrategy(value)
    except ValueError:
        known = ", ".join(repr(s.value) for s in LoadBalancingStrategy)
        raise ConfigurationError(
            f"strategy must be a LoadBalancingStrategy or one of {known}, got {value!r}"
        ) from None


def _check_endpoints(
    _: Any, attribute: attrs.Attribute[Any], value: tuple[ModelEndpoint, ...]
) -> None:
    if not value:
        raise ConfigurationError("a ModelArray needs at least one endpoint")
    seen: set[str] = set()
    for endpoint in value:
        name = endpoint.label
        if name in seen:
            raise ConfigurationError(
                f"two endpoints of the ModelArray are named {name!r}: give them distinct"
                " names (ModelEndpoint(..., name=...))"
            )
        seen.add(name)


def _check_health(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError(
            f"health must be a callable (endpoint name -> True, False or None), got {value!r}"
        )


@attrs.frozen
class ModelArray:
    """Endpoints to spread calls over, and how: pass it to ``open_client`` in place of a
    ``"provider/model"`` (see the module docstring)::

        ModelArray(["openai/gpt-4o", "openai/gpt-4.1"])  # round robin
        ModelArray({"openai/gpt-4o": 3, "openai/gpt-4.1": 1}, strategy="weighted")
        second = open_client("openai/gpt-4o", base_url="http://10.0.0.2:8000/v1")
        ModelArray(
            [ModelEndpoint(second, name="second"), "openai/gpt-4o"],
            strategy="least_inflight",
            health=lambda name: name != "second",  # e.g. a health checker's verdict
        )

    ``endpoints``: ``"provider/model"`` strings, unopened clients or ``ModelEndpoint``
    objects (a mapping gives each endpoint its weight); ``strategy``: a
    ``LoadBalancingStrategy`` or its value; ``health``: an optional callable taking an
    endpoint's name and returning False for one known to be down (it is skipped).

    String endpoints share the client's settings, key included: endpoints of different
    providers need their own settings (unopened clients), unless the client sets no
    ``api_key``, ``base_url`` or ``headers`` (each provider's key then comes from its own
    credential chain). The array is a description: the state (cursor, counters,
    latencies) lives in each client opened from it.
    """

    endpoints: tuple[ModelEndpoint, ...] = attrs.field(
        converter=_as_endpoints, validator=_check_endpoints
    )
    strategy: LoadBalancingStrategy = attrs.field(
        default=LoadBalancingStrategy.ROUND_ROBIN, converter=_as_strategy
    )
    health: HealthCheck | None = attrs.field(default=None, validator=_check_health)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(endpoint.label for endpoint in self.endpoints)


@attrs.frozen
class EndpointStats:
    """One endpoint of a client's model array, now: its name, provider and model, weight,
    requests and streams in flight, how many calls it went first for (``picks``), its
    circuit state (None without a breaker), the health verdict (None: unknown or no
    health callable) and its measured latencies in seconds (moving averages; None until
    measured): ``time_to_first_token`` of streams, ``duration`` of requests."""

    name: str
    provider: str
    model: str
    weight: float
    inflight: int
    picks: int
    circuit: CircuitState | None
    healthy: bool | None
    time_to_first_token: float | None
    duration: float | None

    @property
    def eligible(self) -> bool:
        return self.circuit is not CircuitState.OPEN and self.healthy is not False


class ArrayRouter:
    """The load-balancing state of one client's model array (made by the client)."""

    def __init__(self, array: ModelArray, members: Sequence[Target]) -> None:
        self.array = array
        #: the endpoints' targets, in the array's order
        self.members: tuple[Target, ...] = tuple(members)
        self.names = array.names
        count = len(self.members)
        self._index = {id(target): n for n, target in enumerate(self.members)}
        self._weights = [endpoint.weight for endpoint in array.endpoints]
        self._current = [0.0] * count
        self._cursor = 0
        #: per endpoint: time to the first event of streams, to the response of requests
        self._stream_latency = [LatencyStats() for _ in range(count)]
        self._request_latency = [LatencyStats() for _ in range(count)]
        self._stream_tried = [False] * count
        self._request_tried = [False] * count
        self.picks = [0] * count
        self._breakers = any(target.guard.breaker is not None for target in self.members)

    def _health(self, index: int) -> bool | None:
        check = self.array.health
        return None if check is None else check(self.names[index])

    def _circuit(self, index: int, now: float) -> CircuitState | None:
        breaker = self.members[index].guard.breaker
        return None if breaker is None else breaker.state(now)

    def eligible(self) -> list[bool]:
        """Which endpoints may go first now: circuit not open, health not False."""
        count = len(self.members)
        if not self._breakers and self.array.health is None:
            return [True] * count
        now = anyio.current_time() if self._breakers else 0.0
        return [
            self._circuit(n, now) is not CircuitState.OPEN and self._health(n) is not False
            for n in range(count)
        ]

    def order(self, stream: bool, targets: Sequence[Target]) -> list[Target]:
        """The chain of one call: the chosen endpoint, the other eligible endpoints in the
        array's order after it, then the client's fallbacks (``targets`` past the
        members)."""
        eligible = self.eligible()
        if not any(eligible):
            eligible = [True] * len(eligible)  # every endpoint anyway: see the module doc
        chosen = self._choose(eligible, stream)
        self.picks[chosen] += 1
        members = self.members
        chain = [members[n] for n in rotation(len(members), chosen) if eligible[n]]
        chain.extend(targets[len(members) :])
        return chain

    def _choose(self, eligible: list[bool], stream: bool) -> int:
        strategy = self.array.strategy
        if strategy is LoadBalancingStrategy.WEIGHTED:
            chosen, self._current = pick_weighted(eligible, self._weights, self._current)
            return chosen
        if strategy is LoadBalancingStrategy.LEAST_INFLIGHT:
            inflight = [target.inflight for target in self.members]
            chosen = pick_least(eligible, inflight, self._cursor)
        elif strategy is LoadBalancingStrategy.LOWEST_LATENCY:
            stats = self._stream_latency if stream else self._request_latency
            tried = self._stream_tried if stream else self._request_tried
            chosen = pick_fastest(eligible, [s.average for s in stats], tried, self._cursor)
        else:
            chosen = pick_round_robin(eligible, self._cursor)
        self._cursor = chosen + 1
        return chosen

    def timed(
        self, run: Callable[[Target], Awaitable[_R]], stream: bool
    ) -> Callable[[Target], Awaitable[_R]]:
        """``run`` measuring each endpoint's time to answer: until the first event for a
        stream, the whole response for a request (its retries included). Only successes
        are measured; an endpoint is marked tried when its attempt starts."""
        index = self._index
        stats = self._stream_latency if stream else self._request_latency
        tried = self._stream_tried if stream else self._request_tried

        async def measured(target: Target) -> _R:
            n = index.get(id(target))
            if n is None:  # a fallback of the client, not an endpoint
                return await run(target)
            tried[n] = True
            start = anyio.current_time()
            result = await run(target)
            stats[n].add(anyio.current_time() - start)
            return result

        return measured

    def snapshot(self) -> tuple[EndpointStats, ...]:
        """Every endpoint's numbers now (see ``EndpointStats``)."""
        now = anyio.current_time() if self._breakers else 0.0
        return tuple(
            EndpointStats(
                name=self.names[n],
                provider=target.provider,
                model=target.model_id,
                weight=self._weights[n],
                inflight=target.inflight,
                picks=self.picks[n],
                circuit=self._circuit(n, now),
                healthy=self._health(n),
                time_to_first_token=self._stream_latency[n].average,
                duration=self._request_latency[n].average,
            )
            for n, target in enumerate(self.members)
        )


def open_router(array: ModelArray, config: ClientConfig) -> ArrayRouter:
    """The targets of ``array``'s endpoints, with the client's ``config`` for strings."""
    from ._target import Target

    members: list[Target] = []
    for endpoint in array.endpoints:
        spec = endpoint.target
        if isinstance(spec, str):
            members.append(Target(spec, config))
            continue
        if spec.state.value != "unopened":
            raise ConfigurationError(
                f"ModelArray endpoint {endpoint.label!r} is already open; pass it unopened"
            )
        if len(spec.targets) > 1:
            raise ConfigurationError(
                f"ModelArray endpoint {endpoint.label!r} has fallbacks of its own: give the"
                " client opened from the array its fallbacks"
            )
        members.append(spec.primary.limit_body(config.max_response_bytes))
    shared = [t for t, e in zip(members, array.endpoints, strict=True) if isinstance(e.target, str)]
    providers = sorted({t.manifest.id for t in shared})
    if len(providers) > 1 and (config.api_key is not None or config.base_url or config.headers):
        raise ConfigurationError(
            "the ModelArray's 'provider/model' endpoints share the client's api_key,"
            f" base_url and headers, but they are of several providers ({', '.join(providers)}):"
            " give one provider's endpoints their own settings as unopened clients"
            " (ModelEndpoint(open_client('provider/model', api_key=...)))"
        )
    return ArrayRouter(array, members)


class LatencyTracker(Middleware):
    """A middleware recording how long each target takes, per ``"provider/model"``:
    ``time_to_first_token`` of stream attempts (an attempt's stream is handed on at its
    first event) and ``duration`` of request attempts (the whole response). Only
    successful attempts are measured; each attempt (retries included) is one sample.
    ``LatencyBasedSelector`` reads it::

        tracker = LatencyTracker()
        async with open_client("openai/gpt-4o", middleware=[tracker]) as client:
            await client.chat().user("2+2?").execute()
        tracker.stats("openai/gpt-4o").duration.average  # seconds, a moving average
        tracker.snapshot("duration")  # {"openai/gpt-4o": 0.41}

    ``alpha`` is the weight of a new sample in the moving averages.
    """

    def __init__(self, *, alpha: float = 0.3) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise ConfigurationError(f"alpha must be a number in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self._ttft: dict[str, LatencyStats] = {}
        self._duration: dict[str, LatencyStats] = {}

    async def on_attempt(self, call: Call, next: Next) -> Any:
        start = anyio.current_time()
        result = await next(call)
        self.record(
            f"{call.provider}/{call.model}",
            **{"time_to_first_token" if call.stream else "duration": anyio.current_time() - start},
        )
        return result

    def record(
        self,
        model: str,
        *,
        time_to_first_token: float | None = None,
        duration: float | None = None,
    ) -> None:
        """Add a sample by hand (seconds) for ``"provider/model"``."""
        for table, value in ((self._ttft, time_to_first_token), (self._duration, duration)):
            if value is not None:
                stats = table.get(model)
                if stats is None:
                    stats = table[model] = LatencyStats(alpha=self.alpha)
                stats.add(value)

    def stats(self, model: str) -> TargetLatency:
        """The samples of ``"provider/model"`` so far."""
        return TargetLatency(
            time_to_first_token=self._ttft.get(model), duration=self._duration.get(model)
        )

    def snapshot(self, metric: str = "time_to_first_token") -> dict[str, float]:
        """``{"provider/model": moving average in seconds}`` of ``metric``
        (``"time_to_first_token"`` or ``"duration"``), for every target measured."""
        table = _metric_table(self, metric)
        return {model: s.average for model, s in sorted(table.items()) if s.average is not None}


def _metric_table(tracker: LatencyTracker, metric: str) -> dict[str, LatencyStats]:
    if metric == "time_to_first_token":
        return tracker._ttft
    if metric == "duration":
        return tracker._duration
    raise ConfigurationError(f"metric must be 'time_to_first_token' or 'duration', got {metric!r}")


@attrs.frozen
class TargetLatency:
    """A target's latency samples (``LatencyStats``: ``count``, ``last``, ``low``,
    ``average``), None where none was taken."""

    time_to_first_token: LatencyStats | None
    duration: LatencyStats | None
