"""Model routing and selection (the reference's ``ai_lib_python.routing``).

The catalogue comes from the manifests' ``metadata.models``; selectors choose from it by
price, declared quality or measured latency, and never make a number up::

    from ailib_anyio.routing import CostBasedSelector, ModelManager

    manager = ModelManager.for_provider("openai").merge(ModelManager.for_provider("anthropic"))
    cheapest = CostBasedSelector().select(manager.filter_by_capability("tools", "vision"))
    manager.recommend_for("long_context")

A ``ModelArray`` spreads one client's calls over several endpoints, each call's other
endpoints being its fallbacks; endpoints whose circuit is open, or that a health check
says are down, are skipped::

    from ailib_anyio import open_client
    from ailib_anyio.routing import ModelArray

    array = ModelArray({"openai/gpt-4o": 3, "openai/gpt-4.1": 1}, strategy="weighted")
    async with open_client(array) as client:
        reply = await client.chat().user("2+2?").execute()
        client.router.snapshot()          # each endpoint: picks, in flight, latency...
"""

from ._client._array import EndpointStats as EndpointStats
from ._client._array import LatencyTracker as LatencyTracker
from ._client._array import LoadBalancingStrategy as LoadBalancingStrategy
from ._client._array import ModelArray as ModelArray
from ._client._array import ModelEndpoint as ModelEndpoint
from ._client._array import TargetLatency as TargetLatency
from ._core._balance import LatencyStats as LatencyStats
from ._core._errors import ModelSelectionError as ModelSelectionError
from ._core._publish import publish
from ._services._routing import CAPABILITY_ALIASES as CAPABILITY_ALIASES
from ._services._routing import USE_CASES as USE_CASES
from ._services._routing import CapabilityFilter as CapabilityFilter
from ._services._routing import CostBasedSelector as CostBasedSelector
from ._services._routing import LatencyBasedSelector as LatencyBasedSelector
from ._services._routing import ModelInfo as ModelInfo
from ._services._routing import ModelManager as ModelManager
from ._services._routing import ModelSelector as ModelSelector
from ._services._routing import QualityBasedSelector as QualityBasedSelector
from ._services._routing import UseCase as UseCase
from ._services._routing import create_anthropic_models as create_anthropic_models
from ._services._routing import create_openai_models as create_openai_models

__all__ = [
    "CAPABILITY_ALIASES",
    "USE_CASES",
    "CapabilityFilter",
    "CostBasedSelector",
    "EndpointStats",
    "LatencyBasedSelector",
    "LatencyStats",
    "LatencyTracker",
    "LoadBalancingStrategy",
    "ModelArray",
    "ModelEndpoint",
    "ModelInfo",
    "ModelManager",
    "ModelSelectionError",
    "ModelSelector",
    "QualityBasedSelector",
    "TargetLatency",
    "UseCase",
    "create_anthropic_models",
    "create_openai_models",
]

publish(__name__, globals(), __all__)
