"""Model prices and cost estimates, from the manifests' ``metadata.models`` tables.

::

    pricing = get_model_pricing("openai/gpt-4o")          # None: the model has no price
    pricing.input_per_1m, pricing.input_price_per_1k, pricing.context_window
    cost = estimate_cost(input_tokens=1000, output_tokens=500, model="openai/gpt-4o")
    cost.total_cost                                        # Decimal('0.0075')

Responses carry their own cost (``ChatResponse.cost``), computed by the client from the
same prices; these functions are for planning. A model is written ``"provider/model-id"``
as for ``open_client``; a bare id (``"gpt-4o"``) is looked up in every manifest's model
table and must be listed by exactly one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .._core._cost import CostEstimate, ModelPricing, cost_of_tokens
from .._core._errors import ConfigurationError
from .._protocol._models import ProviderManifest
from .._protocol._registry import ProtocolRegistry

__all__ = ["CostEstimate", "ModelPricing", "estimate_cost", "get_model_pricing", "resolve_model"]

ProtocolPath = Sequence[str | os.PathLike[str]]


def resolve_model(model: str, protocol_path: ProtocolPath = ()) -> tuple[ProviderManifest, str]:
    """``(manifest, model id)`` for ``"provider/model-id"``, or for a bare model id that
    exactly one manifest lists in its ``metadata.models``."""
    if not isinstance(model, str) or not model:
        raise ConfigurationError(f"model must be a non-empty string, got {model!r}")
    registry = ProtocolRegistry(protocol_path)
    if "/" in model:
        try:
            resolved = registry.resolve(model)
        except ConfigurationError as exc:  # "meta-llama/llama-4-...": an id with a slash
            found = _listing(registry, model)
            if len(found) == 1:
                return found[0], model
            raise exc from None
        return resolved.manifest, resolved.model_id
    found = _listing(registry, model)
    if len(found) == 1:
        return found[0], model
    if not found:
        raise ConfigurationError(
            f"no manifest lists a model {model!r}: write it 'provider/model-id'"
            " (e.g. 'openai/gpt-4o')"
        )
    names = ", ".join(f"'{m.id}/{model}'" for m in found)
    raise ConfigurationError(f"several manifests list {model!r}: name one of {names}")


def _listing(registry: ProtocolRegistry, model_id: str) -> list[ProviderManifest]:
    manifests = (registry.get(provider) for provider in registry.providers())
    return [m for m in manifests if m.model_info(model_id) is not None]


def get_model_pricing(model: str, *, protocol_path: ProtocolPath = ()) -> ModelPricing | None:
    """The model's prices (per 1M tokens, as in its manifest; ``input_price_per_1k``...)
    with its context window and maximum output; None when its manifest gives no price."""
    manifest, model_id = resolve_model(model, protocol_path)
    return manifest.model_pricing(model_id)


def estimate_cost(
    *,
    input_tokens: int,
    output_tokens: int,
    model: str | ModelPricing,
    cached_input_tokens: int = 0,
    reasoning_tokens: int = 0,
    protocol_path: ProtocolPath = (),
) -> CostEstimate:
    """What ``input_tokens`` in and ``output_tokens`` out cost with ``model`` (a
    ``"provider/model-id"`` or a ``ModelPricing``), in ``Decimal``.

    Counted as providers report usage: ``cached_input_tokens`` (cache hits, billed at the
    cached-input price) are part of ``input_tokens``, and ``reasoning_tokens`` part of
    ``output_tokens`` (billed as output, or at a reasoning price where the manifest has
    one). A model without a price in its manifest raises ``ConfigurationError``: no cost
    is ever made up.
    """
    if isinstance(model, ModelPricing):
        pricing = model
    else:
        manifest, model_id = resolve_model(model, protocol_path)
        found = manifest.model_pricing(model_id)
        if found is None:
            raise ConfigurationError(
                f"manifest {manifest.id!r} gives no price for model {model_id!r}",
                provider=manifest.id,
                model=model_id,
            )
        pricing = found
    return cost_of_tokens(
        pricing,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        reasoning_tokens=reasoning_tokens,
    )
