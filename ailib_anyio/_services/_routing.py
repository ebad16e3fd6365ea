"""The model catalogue and model selection: ``ModelInfo``, ``ModelManager``, selectors.

The catalogue is read from the manifests' ``metadata.models`` tables, never written by
hand here: a model's capabilities, context window, maximum output, prices (the same
``ModelPricing`` every response's ``cost`` uses), modalities and, where the manifest's
author declares one, a quality score. Selectors are pure functions of what they are
given: the models, and the data to choose by (prices, scores, latencies). A model
without that data is left out, never given a made-up value; when none is left,
``ModelSelectionError`` says what is missing.

::

    manager = ModelManager.for_provider("openai").merge(ModelManager.for_provider("anthropic"))
    vision = manager.filter_by_capability("vision", "tool_call")
    cheapest = CostBasedSelector().select(vision)
    manager.recommend_for("long_context")
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from .._client._array import LatencyTracker
from .._core._cost import ModelPricing, cost_of_tokens
from .._core._errors import ConfigurationError, ModelSelectionError
from .._protocol._models import ModelInfo as _ManifestModel
from .._protocol._models import ProviderManifest
from .._protocol._registry import ProtocolRegistry

__all__ = [
    "CAPABILITY_ALIASES",
    "USE_CASES",
    "CapabilityFilter",
    "CostBasedSelector",
    "LatencyBasedSelector",
    "ModelInfo",
    "ModelManager",
    "ModelSelector",
    "QualityBasedSelector",
    "UseCase",
    "create_anthropic_models",
    "create_openai_models",
]

ProtocolPath = Sequence[str | os.PathLike[str]]

#: The capability names the manifests' ``model_capabilities`` use, plus ``chat`` (every
#: model but one marked ``chat: false``).
STANDARD_CAPABILITIES = frozenset(
    {"chat", "embeddings", "tool_call", "vision", "reasoning", "structured_output"}
)

#: Other spellings of capability names (the reference's and common ones) -> the manifests'.
CAPABILITY_ALIASES: Mapping[str, str] = {
    "tools": "tool_call",
    "tool_use": "tool_call",
    "function_calling": "tool_call",
    "functions": "tool_call",
    "multimodal": "vision",
    "image": "vision",
    "images": "vision",
    "embedding": "embeddings",
    "json": "structured_output",
    "json_mode": "structured_output",
    "thinking": "reasoning",
}


def capability_name(name: str) -> str:
    """The manifests' name of a capability (``"tools"`` -> ``"tool_call"``)."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a capability must be a non-empty string, got {name!r}")
    return CAPABILITY_ALIASES.get(name, name)


# ------------------------------------------------------------------ ModelInfo


def _as_names(value: str | Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise ConfigurationError(f"expected capability names, got {value!r}")
    return frozenset(capability_name(item) for item in value)


def _as_modalities(value: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigurationError(f"a modality must be a non-empty string, got {item!r}")
    return items


def _non_empty(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _optional_count(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"{attribute.name} must be a positive integer, got {value!r}")


def _check_quality(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1
    ):
        raise ConfigurationError(f"quality must be a number in [0, 1], got {value!r}")


def _check_pricing(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, ModelPricing):
        raise ConfigurationError(f"pricing must be a ModelPricing, got {value!r}")


@attrs.frozen
class ModelInfo:
    """One model of the catalogue, as its manifest describes it.

    - ``provider``, ``id``: ``full_id`` is ``"provider/id"``, what ``open_client`` takes
      (``name`` is ``id``, the reference's spelling);
    - ``capabilities``: what ``model_capabilities`` declares true, ``chat`` unless it says
      ``chat: false``, and ``vision`` when an image is among the input modalities;
    - ``context_window``, ``max_output_tokens``: as declared (None: not declared);
    - ``pricing``: the model's ``ModelPricing`` (None when the manifest gives no price);
    - ``input_modalities``, ``output_modalities``: the manifest's ``modalities`` when it
      declares them, else read from the capabilities (text, an image with ``vision``; an
      embedding out of an embedding model);
    - ``quality``: a score in [0, 1] the manifest declares (None: none; never made up).
    """

    provider: str = attrs.field(validator=_non_empty)
    id: str = attrs.field(validator=_non_empty)
    capabilities: frozenset[str] = attrs.field(default=frozenset(), converter=_as_names)
    context_window: int | None = attrs.field(default=None, validator=_optional_count)
    max_output_tokens: int | None = attrs.field(default=None, validator=_optional_count)
    pricing: ModelPricing | None = attrs.field(default=None, validator=_check_pricing)
    input_modalities: tuple[str, ...] = attrs.field(default=("text",), converter=_as_modalities)
    output_modalities: tuple[str, ...] = attrs.field(default=("text",), converter=_as_modalities)
    quality: float | None = attrs.field(default=None, validator=_check_quality)

    @property
    def full_id(self) -> str:
        """``"provider/id"``."""
        return f"{self.provider}/{self.id}"

    @property
    def name(self) -> str:
        """The model id (the reference's spelling)."""
        return self.id

    @property
    def max_output(self) -> int | None:
        return self.max_output_tokens

    def supports(self, *capabilities: str) -> bool:
        """Whether the model declares every one of ``capabilities`` (aliases allowed)."""
        return all(capability_name(c) in self.capabilities for c in capabilities)

    @classmethod
    def from_manifest(cls, manifest: ProviderManifest, model_id: str) -> ModelInfo:
        """The model ``model_id`` of ``manifest``'s ``metadata.models``."""
        info = manifest.model_info(model_id)
        if info is None:
            raise ConfigurationError(
                f"manifest {manifest.id!r} lists no model {model_id!r} in metadata.models",
                provider=manifest.id,
                model=model_id,
            )
        return _from_manifest(manifest, model_id, info)


def _from_manifest(manifest: ProviderManifest, model_id: str, info: _ManifestModel) -> ModelInfo:
    caps = {name for name, value in info.model_capabilities.items() if value is True}
    if info.supports_chat:
        caps.add("chat")
    declared = info.modalities
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    if declared is not None and (declared.input or declared.output):
        inputs, outputs = declared.input, declared.output
        if "image" in inputs:
            caps.add("vision")
    else:
        inputs = ("text", "image") if "vision" in caps else ("text",)
        outputs = (("text",) if "chat" in caps else ()) + (
            ("embedding",) if "embeddings" in caps else ()
        )
    return ModelInfo(
        provider=manifest.id,
        id=model_id,
        capabilities=frozenset(caps),
        context_window=info.context_window,
        max_output_tokens=info.max_output_tokens,
        pricing=manifest.model_pricing(model_id),
        input_modalities=inputs,
        output_modalities=outputs,
        quality=info.quality,
    )


# ------------------------------------------------------------------ the filter


def _check_known(names: Iterable[str], models: Sequence[ModelInfo]) -> None:
    """A capability no candidate declares and no manifest uses is most likely a typo."""
    known = set(STANDARD_CAPABILITIES).union(*(m.capabilities for m in models))
    unknown = sorted(set(names) - known)
    if unknown:
        aliases = ", ".join(sorted(CAPABILITY_ALIASES))
        raise ConfigurationError(
            f"unknown capability {unknown[0]!r}: no model declares it (known:"
            f" {', '.join(sorted(known))}; other spellings: {aliases})"
        )


@attrs.frozen
class CapabilityFilter:
    """What a model must have: ``capabilities`` (names or aliases, all of them), at least
    ``min_context_window`` and ``min_output_tokens`` (a model that does not declare one
    fails it), and every one of ``input_modalities``. ``filter(models)`` keeps those that
    match, in order::

        wanted = CapabilityFilter({"tool_call", "vision"}, min_context_window=200_000)
        wanted(ModelManager.for_provider("openai"))  # [gpt-5, gpt-5-mini, ...]
    """

    capabilities: frozenset[str] = attrs.field(default=frozenset(), converter=_as_names)
    min_context_window: int | None = attrs.field(default=None, validator=_optional_count)
    min_output_tokens: int | None = attrs.field(default=None, validator=_optional_count)
    input_modalities: tuple[str, ...] = attrs.field(default=(), converter=_as_modalities)

    def matches(self, model: ModelInfo) -> bool:
        if not self.capabilities <= model.capabilities:
            return False
        if self.min_context_window is not None and (
            model.context_window is None or model.context_window < self.min_context_window
        ):
            return False
        if self.min_output_tokens is not None and (
            model.max_output_tokens is None or model.max_output_tokens < self.min_output_tokens
        ):
            return False
        return all(m in model.input_modalities for m in self.input_modalities)

    def __call__(self, models: Iterable[ModelInfo]) -> list[ModelInfo]:
        candidates = _models(models)
        _check_known(self.capabilities, candidates)
        return [m for m in candidates if self.matches(m)]

    def describe(self) -> str:
        parts = (
            [f"capabilities {', '.join(sorted(self.capabilities))}"] if self.capabilities else []
        )
        if self.min_context_window is not None:
            parts.append(f"a context window of at least {self.min_context_window:,} tokens")
        if self.min_output_tokens is not None:
            parts.append(f"at least {self.min_output_tokens:,} output tokens")
        if self.input_modalities:
            parts.append(f"input {', '.join(self.input_modalities)}")
        return " and ".join(parts) or "nothing"


def _models(models: Iterable[ModelInfo]) -> list[ModelInfo]:
    if isinstance(models, ModelManager):
        return models.list_models()
    out = list(models)
    for model in out:
        if not isinstance(model, ModelInfo):
            raise ConfigurationError(f"expected ModelInfo objects, got {model!r}")
    return out


# ------------------------------------------------------------------ selectors


class ModelSelector:
    """Base of the selectors: ``rank(models)`` orders the models that pass the ``filter``
    and have the data the selector chooses by, best first (ties by ``full_id``, so the
    answer never depends on the input order); ``select(models)`` is the first, or
    ``ModelSelectionError`` saying why there is none."""

    #: what the selector chooses by, and what to do when no model has it (for errors)
    data = "data"
    hint = ""

    def __init__(self, *, filter: CapabilityFilter | None = None) -> None:
        if filter is not None and not isinstance(filter, CapabilityFilter):
            raise ConfigurationError(f"filter must be a CapabilityFilter, got {filter!r}")
        self.filter = filter

    def key(self, model: ModelInfo) -> Any:
        """What the model is ranked by (lower first), or None when it lacks the data."""
        raise NotImplementedError

    def _candidates(self, models: Iterable[ModelInfo]) -> list[ModelInfo]:
        candidates = _models(models)
        if self.filter is not None:
            kept = self.filter(candidates)
            if candidates and not kept:
                raise ModelSelectionError(
                    f"no model has {self.filter.describe()} (of {len(candidates)} candidates)"
                )
            return kept
        return candidates

    def rank(self, models: Iterable[ModelInfo]) -> list[ModelInfo]:
        scored = [(self.key(m), m.full_id, m) for m in self._candidates(models)]
        ranked = sorted((item for item in scored if item[0] is not None), key=lambda i: i[:2])
        return [model for _, _, model in ranked]

    def select(self, models: Iterable[ModelInfo]) -> ModelInfo:
        candidates = self._candidates(models)
        if not candidates:
            raise ModelSelectionError("there is no model to select from")
        ranked = self.rank(candidates)
        if not ranked:
            raise ModelSelectionError(self.missing(candidates))
        return ranked[0]

    def missing(self, candidates: Sequence[ModelInfo]) -> str:
        names = ", ".join(m.full_id for m in candidates[:5])
        more = f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
        return f"no candidate has {self.data} ({names}{more}){self.hint}"


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be an integer >= 0, got {value!r}")
    return value


class CostBasedSelector(ModelSelector):
    """The cheapest model: the lowest cost of ``input_tokens`` in and ``output_tokens``
    out at its manifest's prices (default: 1,000 of each, i.e. the sum of the per-1K
    prices). A model without a price is left out (it is never taken as free); prices in
    different currencies are not compared (``ConfigurationError``)."""

    data = "a price in its manifest"
    hint = ": a cost is never made up"

    def __init__(
        self,
        *,
        input_tokens: int = 1_000,
        output_tokens: int = 1_000,
        filter: CapabilityFilter | None = None,
    ) -> None:
        super().__init__(filter=filter)
        self.input_tokens = _count("input_tokens", input_tokens)
        self.output_tokens = _count("output_tokens", output_tokens)

    def cost(self, model: ModelInfo) -> Decimal | None:
        """The model's cost of the selector's token counts (None without a price)."""
        if model.pricing is None:
            return None
        return cost_of_tokens(
            model.pricing, input_tokens=self.input_tokens, output_tokens=self.output_tokens
        ).total_cost

    def key(self, model: ModelInfo) -> Decimal | None:
        return self.cost(model)

    def rank(self, models: Iterable[ModelInfo]) -> list[ModelInfo]:
        ranked = super().rank(models)
        currencies = sorted({m.pricing.currency for m in ranked if m.pricing is not None})
        if len(currencies) > 1:
            raise ConfigurationError(
                f"the candidates are priced in several currencies ({', '.join(currencies)}):"
                " costs in different currencies are not compared; filter them first"
            )
        return ranked


def _scores(value: Mapping[str, float] | None) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"scores must be a mapping of 'provider/model' to a number, got {value!r}"
        )
    out: dict[str, float] = {}
    for model, score in value.items():
        if not isinstance(model, str) or "/" not in model:
            raise ConfigurationError(f"scores are keyed by 'provider/model', got {model!r}")
        if (
            isinstance(score, bool)
            or not isinstance(score, (int, float))
            or not math.isfinite(score)
        ):
            raise ConfigurationError(
                f"the score of {model!r} must be a finite number, got {score!r}"
            )
        out[model] = float(score)
    return out


class QualityBasedSelector(ModelSelector):
    """The model with the highest quality score: the one in ``scores`` (``{"provider/model":
    score}``, any scale, higher is better; yours win) or else the ``quality`` its manifest
    declares. A model with neither is left out: no score is ever made up, so with no
    scores at all ``select`` raises ``ModelSelectionError`` saying so. Mixing your scores
    with the manifests' is only meaningful on the same scale."""

    data = "a quality score"
    hint = (
        ": scores are never made up; declare metadata.models.<id>.quality in the manifest,"
        " or pass QualityBasedSelector(scores={'provider/model': score})"
    )

    def __init__(
        self,
        scores: Mapping[str, float] | None = None,
        *,
        filter: CapabilityFilter | None = None,
    ) -> None:
        super().__init__(filter=filter)
        self.scores = _scores(scores)

    def score(self, model: ModelInfo) -> float | None:
        return self.scores.get(model.full_id, model.quality)

    def key(self, model: ModelInfo) -> float | None:
        score = self.score(model)
        return None if score is None else -score


class LatencyBasedSelector(ModelSelector):
    """The model with the lowest measured latency: a ``LatencyTracker``'s moving average
    of ``metric`` (``"time_to_first_token"`` or ``"duration"``), or a mapping
    ``{"provider/model": seconds}``. A model not measured yet is left out."""

    def __init__(
        self,
        latencies: LatencyTracker | Mapping[str, float],
        *,
        metric: str = "time_to_first_token",
        filter: CapabilityFilter | None = None,
    ) -> None:
        super().__init__(filter=filter)
        if metric not in ("time_to_first_token", "duration"):
            raise ConfigurationError(
                f"metric must be 'time_to_first_token' or 'duration', got {metric!r}"
            )
        if not isinstance(latencies, (LatencyTracker, Mapping)):
            raise ConfigurationError(
                f"latencies must be a LatencyTracker or a mapping, got {latencies!r}"
            )
        self.latencies = latencies
        self.metric = metric
        self.data = f"a {metric.replace('_', ' ')} measured yet"
        if isinstance(latencies, LatencyTracker):
            self.hint = ": the tracker sees the clients it is installed on (middleware=[...])"

    def _table(self) -> Mapping[str, float]:
        if isinstance(self.latencies, LatencyTracker):
            return self.latencies.snapshot(self.metric)
        return self.latencies

    def rank(self, models: Iterable[ModelInfo]) -> list[ModelInfo]:
        table = self._table()  # one snapshot for the whole ranking
        scored = [(table.get(m.full_id), m.full_id, m) for m in self._candidates(models)]
        ranked = sorted((item for item in scored if item[0] is not None), key=lambda i: i[:2])
        return [model for _, _, model in ranked]

    def key(self, model: ModelInfo) -> float | None:
        return self._table().get(model.full_id)


# ------------------------------------------------------------------ use cases


@attrs.frozen
class UseCase:
    """What a use case needs (``filter``) and which of the models that have it is best:
    ``prefer="cost"`` the cheapest (``CostBasedSelector``), ``prefer="context"`` the
    largest context window (then the cheapest, then ``full_id``)."""

    filter: CapabilityFilter
    prefer: str = attrs.field(default="cost", validator=attrs.validators.in_(("cost", "context")))
    description: str = ""


#: The use cases ``ModelManager.recommend_for`` knows, by name.
USE_CASES: Mapping[str, UseCase] = {
    "chat": UseCase(CapabilityFilter({"chat"}), "cost", "a chat model, the cheapest"),
    "tools": UseCase(CapabilityFilter({"chat", "tool_call"}), "cost", "tool calling, the cheapest"),
    "vision": UseCase(CapabilityFilter({"chat", "vision"}), "cost", "image input, the cheapest"),
    "reasoning": UseCase(
        CapabilityFilter({"chat", "reasoning"}), "cost", "a reasoning model, the cheapest"
    ),
    "structured_output": UseCase(
        CapabilityFilter({"chat", "structured_output"}),
        "cost",
        "native JSON-schema output, the cheapest",
    ),
    "coding": UseCase(
        CapabilityFilter({"chat", "tool_call", "reasoning"}, min_context_window=128_000),
        "cost",
        "tool calling and reasoning with at least 128K tokens of context, the cheapest",
    ),
    "long_context": UseCase(
        CapabilityFilter({"chat"}), "context", "the largest context window, then the cheapest"
    ),
    "embeddings": UseCase(
        CapabilityFilter({"embeddings"}), "cost", "an embedding model, the cheapest"
    ),
}


# ------------------------------------------------------------------ the manager


class ModelManager:
    """A catalogue of models (``ModelInfo``), keyed by ``full_id``::

        manager = ModelManager.for_provider("openai")          # from its manifest
        manager.merge(ModelManager.for_provider("anthropic"))
        manager.filter_by_capability("tools", "vision")
        manager.recommend_for("coding")

    ``ModelManager(models)`` holds the models given; ``ModelManager.from_manifests()``
    every model of every manifest found.
    """

    def __init__(self, models: Iterable[ModelInfo] = ()) -> None:
        self._models: dict[str, ModelInfo] = {}
        for model in _models(models):
            self.add(model)

    @classmethod
    def for_provider(cls, provider: str, *, protocol_path: ProtocolPath = ()) -> ModelManager:
        """The models of ``provider``'s manifest (``metadata.models``), in its order."""
        manifest = ProtocolRegistry(protocol_path).get(provider)
        return cls(_manifest_models(manifest))

    @classmethod
    def from_manifests(cls, *, protocol_path: ProtocolPath = ()) -> ModelManager:
        """Every model of every manifest that loads (providers by id, models in order)."""
        registry = ProtocolRegistry(protocol_path)
        manager = cls()
        for provider in registry.providers():
            manager.merge(_manifest_models(registry.get(provider)))
        return manager

    def add(self, model: ModelInfo) -> ModelManager:
        """Add ``model`` (replacing one with the same ``full_id``); returns the manager."""
        if not isinstance(model, ModelInfo):
            raise ConfigurationError(f"expected a ModelInfo, got {model!r}")
        self._models[model.full_id] = model
        return self

    def merge(self, other: ModelManager | Iterable[ModelInfo]) -> ModelManager:
        """Add every model of ``other`` (its models replace ones with the same
        ``full_id``); returns this manager."""
        for model in _models(other):
            self.add(model)
        return self

    def list_models(self) -> list[ModelInfo]:
        """The models, in the order they were added."""
        return list(self._models.values())

    def get(self, model: str) -> ModelInfo:
        """The model ``"provider/id"``."""
        found = self._models.get(model)
        if found is None:
            raise ConfigurationError(
                f"no model {model!r} in this catalogue ({len(self._models)} models)"
            )
        return found

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(list(self._models.values()))

    def __contains__(self, model: object) -> bool:
        if isinstance(model, ModelInfo):
            model = model.full_id
        return model in self._models

    def __repr__(self) -> str:
        return f"<ModelManager {len(self._models)} models>"

    def filter_by_capability(self, *capabilities: str) -> list[ModelInfo]:
        """The models that declare every one of ``capabilities`` (the manifests' names,
        or aliases such as ``"tools"``); a name no model declares is a
        ``ConfigurationError`` (it is most likely misspelt)."""
        return CapabilityFilter(capabilities)(self.list_models())

    def filter(self, spec: CapabilityFilter) -> list[ModelInfo]:
        """The models ``spec`` matches."""
        if not isinstance(spec, CapabilityFilter):
            raise ConfigurationError(f"expected a CapabilityFilter, got {spec!r}")
        return spec(self.list_models())

    def recommend_for(self, use_case: str | UseCase) -> ModelInfo:
        """The best model of the catalogue for ``use_case``: a name of ``USE_CASES``
        (``chat``, ``tools``, ``vision``, ``reasoning``, ``structured_output``,
        ``coding``, ``long_context``, ``embeddings``) or a ``UseCase``.
        ``ModelSelectionError`` when no model fits (or, preferring cost, none of those
        that fit has a price)."""
        if isinstance(use_case, str):
            found = USE_CASES.get(use_case)
            if found is None:
                raise ConfigurationError(
                    f"unknown use case {use_case!r} (known: {', '.join(USE_CASES)};"
                    " or pass a UseCase)"
                )
            use_case = found
        if not isinstance(use_case, UseCase):
            raise ConfigurationError(f"use_case must be a name or a UseCase, got {use_case!r}")
        if use_case.prefer == "context":
            return _LargestContext(filter=use_case.filter).select(self.list_models())
        return CostBasedSelector(filter=use_case.filter).select(self.list_models())


class _LargestContext(ModelSelector):
    data = "a context window in its manifest"
    _cost = CostBasedSelector()

    def key(self, model: ModelInfo) -> tuple[int, bool, Decimal] | None:
        if model.context_window is None:
            return None
        cost = self._cost.cost(model)
        # the largest window; among equals a priced model before an unpriced one, cheapest
        return (-model.context_window, cost is None, cost if cost is not None else Decimal(0))


def _manifest_models(manifest: ProviderManifest) -> list[ModelInfo]:
    models = manifest.metadata.models if manifest.metadata is not None else {}
    return [_from_manifest(manifest, model_id, info) for model_id, info in models.items()]


def create_openai_models(*, protocol_path: ProtocolPath = ()) -> ModelManager:
    """The models of the ``openai`` manifest (the reference's spelling of
    ``ModelManager.for_provider("openai")``)."""
    return ModelManager.for_provider("openai", protocol_path=protocol_path)


def create_anthropic_models(*, protocol_path: ProtocolPath = ()) -> ModelManager:
    """The models of the ``anthropic`` manifest (the reference's spelling of
    ``ModelManager.for_provider("anthropic")``)."""
    return ModelManager.for_provider("anthropic", protocol_path=protocol_path)
