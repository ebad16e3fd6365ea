"""The retry schedule and the fallback rule, as pure functions.

:class:`RetryPolicy` answers one question: after this failure, retry, and after how long?
It never sleeps and never reads a clock or a random generator of its own; the random
source is injected, so every decision reproduces in a plain synchronous test. The async
resilience layer asks it, then sleeps.

The rules of :meth:`RetryPolicy.decide`, in order (the first that applies decides):

1. an error that is not retryable is not retried (``retryable`` is the classifier's verdict:
   the kind's, or the provider's ``x-should-retry`` header, which wins);
2. the config's ``retry_on_kinds`` / ``retry_on_status`` only narrow that: an error outside
   them is not retried. A status filter judges only errors the provider answered with an
   HTTP error status (>= 400): a connection cut, a timeout or a body cut after a 200 has
   no error status, and is retried by its kind;
3. no retry past ``max_retries`` (``attempt`` counts retries: 1 for the first);
4. a provider asking to wait longer than ``max_retry_after`` fails fast, instead of sleeping
   that long (or sleeping less and hitting the same wall);
5. otherwise the delay is the backoff with jitter, raised to the provider's ``retry_after``
   when it asked for longer.

Backoff (seconds): ``min_delay * 2**(attempt-1)`` (``exponential_backoff``),
``min_delay * attempt`` (``linear_backoff``) or ``min_delay`` (``fixed_delay``), capped at
``max_delay``. Call it ``ceiling``; ``min_delay`` is a floor no jitter goes under:

- ``full``: uniform in ``[min_delay, ceiling]`` (so the first retry waits ``min_delay``;
  the spread grows with every retry);
- ``equal``: uniform in ``[max(min_delay, ceiling / 2), ceiling]``;
- ``none``: ``ceiling``.

Without a ``retry_after`` every delay lies in ``[min_delay, max_delay]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Literal, Protocol, cast

import attrs

from ._errors import STANDARD_ERRORS, ConfigurationError

__all__ = [
    "DEFAULT_MAX_RETRY_AFTER",
    "RetryConfig",
    "RetryDecision",
    "RetryPolicy",
    "RetryPolicySpecLike",
    "should_fallback",
]

Jitter = Literal["full", "equal", "none"]
Strategy = Literal["exponential_backoff", "linear_backoff", "fixed_delay"]

#: The longest server-given delay (``retry-after``, a rate-limit reset) honoured by default.
DEFAULT_MAX_RETRY_AFTER = 30.0

_JITTERS: tuple[str, ...] = ("full", "equal", "none")
_STRATEGIES: tuple[str, ...] = ("exponential_backoff", "linear_backoff", "fixed_delay")

#: AI-Protocol error code -> standard kind ("E3002" -> "overloaded").
_KIND_BY_CODE = {code: kind for kind, (code, _) in STANDARD_ERRORS.items()}


class RetryPolicySpecLike(Protocol):
    """What :meth:`RetryConfig.from_manifest` reads: a manifest's ``RetryPolicySpec``
    (typed structurally, so the core does not import the protocol layer above it)."""

    @property
    def strategy(self) -> str: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def min_delay_ms(self) -> int: ...
    @property
    def max_delay_ms(self) -> int: ...
    @property
    def jitter(self) -> str: ...
    @property
    def retry_on_http_status(self) -> tuple[int, ...]: ...


def _frozen_ints(value: Iterable[int] | None) -> frozenset[int] | None:
    return None if value is None else frozenset(value)


def _frozen_strs(value: Iterable[str] | None) -> frozenset[str] | None:
    if isinstance(value, str):  # "rate_limited" is one kind, not twelve letters
        return frozenset((value,))
    return None if value is None else frozenset(value)


def _check_number(name: str, value: float, *, finite: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"RetryConfig.{name} must be a number, not {value!r}")
    if math.isnan(value) or value < 0 or (finite and math.isinf(value)):
        raise ConfigurationError(
            f"RetryConfig.{name} must be a {'finite ' if finite else ''}number >= 0, not {value!r}"
        )


@attrs.frozen
class RetryConfig:
    """How to retry a failed request. Delays are in seconds.

    >>> RetryConfig(max_retries=5, min_delay=0.5, max_delay=8.0)  # doctest: +ELLIPSIS
    RetryConfig(max_retries=5, min_delay=0.5, max_delay=8.0, jitter='full', ...)

    ``max_retry_after`` caps how long a provider's ``retry-after`` may make us wait: a
    longer request fails at once with the error. ``retry_on_status`` and
    ``retry_on_kinds``, when given, restrict retries to those HTTP statuses / error kinds
    (they never make a non-retryable error retryable); the status filter leaves transport
    failures (no HTTP error status) to their kind. A provider manifest's
    ``retry_policy`` is the default (:meth:`from_manifest`); a config given to the client
    replaces it.
    """

    max_retries: int = 3
    min_delay: float = 1.0
    max_delay: float = 60.0
    jitter: Jitter = "full"
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    retry_on_status: frozenset[int] | None = attrs.field(default=None, converter=_frozen_ints)
    retry_on_kinds: frozenset[str] | None = attrs.field(default=None, converter=_frozen_strs)
    strategy: Strategy = "exponential_backoff"

    def __attrs_post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ConfigurationError(
                f"RetryConfig.max_retries must be an int >= 0, not {self.max_retries!r}"
            )
        _check_number("min_delay", self.min_delay)
        _check_number("max_delay", self.max_delay)
        _check_number("max_retry_after", self.max_retry_after, finite=False)
        if self.min_delay > self.max_delay:
            raise ConfigurationError(
                f"RetryConfig.min_delay ({self.min_delay!r}) is greater than max_delay"
                f" ({self.max_delay!r})"
            )
        if self.jitter not in _JITTERS:
            raise ConfigurationError(
                f"RetryConfig.jitter must be one of {', '.join(_JITTERS)}, not {self.jitter!r}"
            )
        if self.strategy not in _STRATEGIES:
            raise ConfigurationError(
                f"RetryConfig.strategy must be one of {', '.join(_STRATEGIES)},"
                f" not {self.strategy!r}"
            )

    @classmethod
    def from_manifest(
        cls, spec: RetryPolicySpecLike, *, max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    ) -> RetryConfig:
        """The config a manifest's ``retry_policy`` (a ``RetryPolicySpec``) describes.

        Its ``*_ms`` fields become seconds; an empty ``retry_on_http_status`` means "no
        status filter". An invalid policy raises ``ConfigurationError``.
        """
        return cls(
            max_retries=spec.max_retries,
            min_delay=_ms(spec.min_delay_ms, "min_delay_ms"),
            max_delay=_ms(spec.max_delay_ms, "max_delay_ms"),
            jitter=cast(Jitter, spec.jitter),
            max_retry_after=max_retry_after,
            retry_on_status=spec.retry_on_http_status or None,
            strategy=cast(Strategy, spec.strategy),
        )


def _ms(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"retry_policy.{name} must be a number, not {value!r}")
    return value / 1000.0


@attrs.frozen
class RetryDecision:
    """Whether to retry, after how many seconds, and why (for logs and error notes)."""

    should_retry: bool
    delay: float
    reason: str


@attrs.frozen
class RetryPolicy:
    """The pure retry schedule of a :class:`RetryConfig`; see the module docstring."""

    config: RetryConfig = attrs.field(factory=RetryConfig)

    def backoff(self, attempt: int, random: Callable[[], float]) -> float:
        """The jittered backoff before retry ``attempt`` (1-based), in seconds."""
        cfg = self.config
        if cfg.strategy == "exponential_backoff":
            # 2**1100 overflows a float; past ~64 doublings every delay is max_delay anyway
            ceiling = cfg.min_delay * 2.0 ** min(attempt - 1, 64)
        elif cfg.strategy == "linear_backoff":
            ceiling = cfg.min_delay * attempt
        else:
            ceiling = cfg.min_delay
        ceiling = min(ceiling, cfg.max_delay)
        if cfg.jitter == "none":
            return ceiling
        low = cfg.min_delay if cfg.jitter == "full" else max(cfg.min_delay, ceiling / 2)
        r = min(max(float(random()), 0.0), 1.0)  # a bad source must not break the bounds
        return min(low + r * (ceiling - low), ceiling)

    def decide(
        self,
        *,
        kind: str,
        retryable: bool,
        status: int | None,
        attempt: int,
        retry_after: float | None,
        random: Callable[[], float],
    ) -> RetryDecision:
        """Whether to make retry number ``attempt`` (1 for the first) after this error.

        ``kind``, ``retryable``, ``status`` and ``retry_after`` (seconds) describe the
        error, as the classifier reported them; ``status`` is the HTTP error status the
        provider answered with, None for a transport failure (a 2xx status counts as none);
        ``random`` returns floats in ``[0, 1)``.
        """
        if attempt < 1:
            raise ValueError(f"attempt counts retries from 1, got {attempt!r}")
        cfg = self.config
        if not retryable:
            return RetryDecision(False, 0.0, f"{kind} errors are not retryable")
        if cfg.retry_on_kinds is not None and kind not in cfg.retry_on_kinds:
            return RetryDecision(False, 0.0, f"{kind} is not in retry_on_kinds")
        statuses = cfg.retry_on_status
        if statuses is not None and status is not None and status >= 400 and status not in statuses:
            return RetryDecision(False, 0.0, f"HTTP {status} is not in retry_on_status")
        if attempt > cfg.max_retries:
            return RetryDecision(
                False, 0.0, f"retries exhausted ({cfg.max_retries} allowed, this is {attempt})"
            )
        if retry_after is not None and retry_after > cfg.max_retry_after:
            return RetryDecision(
                False,
                0.0,
                f"the provider asked to wait {retry_after:g}s, more than max_retry_after"
                f" ({cfg.max_retry_after:g}s)",
            )
        delay = self.backoff(attempt, random)
        if retry_after is not None and retry_after > delay:
            return RetryDecision(
                True, retry_after, f"retry {attempt} after the provider's retry-after"
            )
        return RetryDecision(True, delay, f"retry {attempt} after backoff ({cfg.jitter} jitter)")


def should_fallback(error_code_or_kind: str) -> bool:
    """Whether another provider could succeed where this error happened.

    Takes an AI-Protocol code (``"E3002"``) or kind (``"overloaded"``); anything else is
    ``unknown`` (E9999), which does not fall back. ``should_fallback("authentication")`` is
    true (another provider has another key), ``should_fallback("invalid_request")`` false.
    """
    kind = _KIND_BY_CODE.get(error_code_or_kind, error_code_or_kind)
    return STANDARD_ERRORS.get(kind, STANDARD_ERRORS["unknown"])[1]
