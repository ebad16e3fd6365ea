"""Prices and costs: a model's prices, and what a usage report costs at them.

Pure arithmetic on ``Decimal`` (no float rounding): the protocol layer builds a
``ModelPricing`` from a manifest's ``metadata.models.<id>.pricing``, the client hands it
to every response it builds, and ``ChatResponse.cost`` applies it to the response's usage
with ``cost_of_usage``.

The unified ``Usage`` means the same in every dialect (the manifests normalize it):
``input_tokens`` counts every prompt token, ``cached_input_tokens`` of them included
(cache hits); ``output_tokens`` counts every generated token, ``reasoning_tokens`` of them
included. So a usage is billed as: the uncached input at the input price, the cached input
at the cached-input price (the input price where the manifest gives none), the output at
the output price, except the reasoning tokens at the reasoning price where the manifest
gives one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from ._types import Usage

__all__ = ["CostEstimate", "ModelPricing", "cost_of_tokens", "cost_of_usage"]

_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1_000)
_ZERO = Decimal(0)


def _per_1k(price: Decimal | None) -> Decimal | None:
    return None if price is None else price / _THOUSAND


@attrs.frozen
class ModelPricing:
    """A model's prices per 1M tokens (as the manifests write them), with its limits.

    ``input_price_per_1k`` and the other ``*_per_1k`` properties give the same prices per
    1,000 tokens. ``cached_input_per_1m`` is the price of a cache hit (None: the manifest
    gives no discount, cache hits cost the input price); ``reasoning_per_1m`` is a price
    for reasoning tokens apart from the output price (None: they are output).
    """

    model: str
    input_per_1m: Decimal
    output_per_1m: Decimal
    cached_input_per_1m: Decimal | None = None
    reasoning_per_1m: Decimal | None = None
    currency: str = "USD"
    provider: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None

    @property
    def input_price_per_1k(self) -> Decimal:
        return self.input_per_1m / _THOUSAND

    @property
    def output_price_per_1k(self) -> Decimal:
        return self.output_per_1m / _THOUSAND

    @property
    def cached_input_price_per_1k(self) -> Decimal | None:
        return _per_1k(self.cached_input_per_1m)

    @property
    def reasoning_price_per_1k(self) -> Decimal | None:
        return _per_1k(self.reasoning_per_1m)

    @property
    def max_output(self) -> int | None:
        """``max_output_tokens`` (the reference's spelling)."""
        return self.max_output_tokens


@attrs.frozen
class CostEstimate:
    """What a request costs (or would cost), by part, in ``currency``.

    ``input_cost`` is the uncached input, ``cached_input_cost`` the cache hits,
    ``output_cost`` the output (reasoning included unless the model prices reasoning
    apart, which ``reasoning_cost`` then holds). ``total_cost`` is their sum.
    """

    input_cost: Decimal
    output_cost: Decimal
    cached_input_cost: Decimal = _ZERO
    reasoning_cost: Decimal = _ZERO
    currency: str = "USD"
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_cost(self) -> Decimal:
        return self.input_cost + self.cached_input_cost + self.output_cost + self.reasoning_cost

    @property
    def total(self) -> Decimal:
        return self.total_cost

    def __str__(self) -> str:
        return f"{self.total_cost} {self.currency}"


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def cost_of_tokens(
    pricing: ModelPricing,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> CostEstimate:
    """The cost of these token counts at ``pricing`` (counts as in ``Usage``: the cached
    input is part of ``input_tokens``, the reasoning part of ``output_tokens``)."""
    input_tokens = _count("input_tokens", input_tokens)
    output_tokens = _count("output_tokens", output_tokens)
    cached = _count("cached_input_tokens", cached_input_tokens)
    reasoning = _count("reasoning_tokens", reasoning_tokens)
    if cached > input_tokens:
        raise ConfigurationError(
            f"cached_input_tokens ({cached}) is part of input_tokens ({input_tokens}):"
            " it cannot be larger"
        )
    if reasoning > output_tokens:
        raise ConfigurationError(
            f"reasoning_tokens ({reasoning}) is part of output_tokens ({output_tokens}):"
            " it cannot be larger"
        )
    cached_price = pricing.cached_input_per_1m
    if cached_price is None:
        cached_price = pricing.input_per_1m
    reasoning_price = pricing.reasoning_per_1m
    if reasoning_price is None:  # reasoning is output, at the output price
        billed_output, reasoning_cost = output_tokens, _ZERO
    else:
        billed_output = output_tokens - reasoning
        reasoning_cost = reasoning * reasoning_price / _MILLION
    return CostEstimate(
        input_cost=(input_tokens - cached) * pricing.input_per_1m / _MILLION,
        cached_input_cost=cached * cached_price / _MILLION,
        output_cost=billed_output * pricing.output_per_1m / _MILLION,
        reasoning_cost=reasoning_cost,
        currency=pricing.currency,
        model=pricing.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
    )


def cost_of_usage(pricing: ModelPricing | None, usage: Usage | None) -> CostEstimate | None:
    """The cost of a provider's usage report; None without a price or a usage.

    A report that contradicts itself (more cached than input tokens, more reasoning than
    output tokens) is read at its word for the larger count: the parts are capped, never
    negative.
    """
    if pricing is None or usage is None:
        return None
    input_tokens = max(usage.input_tokens, 0)
    output_tokens = max(usage.output_tokens, 0)
    return cost_of_tokens(
        pricing,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=min(max(usage.cached_input_tokens or 0, 0), input_tokens),
        reasoning_tokens=min(max(usage.reasoning_tokens or 0, 0), output_tokens),
    )
