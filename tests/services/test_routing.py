"""The model catalogue and the selectors: the catalogue against the manifests' own
tables (read apart, with PyYAML), the selectors as pure functions checked by hypothesis,
and a latency tracker fed by real calls against the loopback mock provider on asyncio and
trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ailib_anyio import ConfigurationError, ModelPricing, ProtocolError, open_client
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio._protocol._registry import builtin_protocol_dir
from ailib_anyio.routing import (
    CAPABILITY_ALIASES,
    USE_CASES,
    CapabilityFilter,
    CostBasedSelector,
    LatencyBasedSelector,
    LatencyTracker,
    ModelInfo,
    ModelManager,
    ModelSelectionError,
    QualityBasedSelector,
    UseCase,
    create_anthropic_models,
    create_openai_models,
)
from ailib_anyio.testing import MockProvider

KEY = "sk-routing-test-key-000"


def yaml_models(provider: str) -> dict[str, dict[str, Any]]:
    path = builtin_protocol_dir() / f"{provider}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return dict(data.get("metadata", {}).get("models", {}))


# ------------------------------------------------------------------ the catalogue


@pytest.mark.parametrize("provider", sorted(p.stem for p in builtin_protocol_dir().glob("*.yaml")))
def test_the_catalogue_is_the_manifest(provider: str) -> None:
    manager = ModelManager.for_provider(provider)
    table = yaml_models(provider)
    assert [m.id for m in manager.list_models()] == list(table)
    for model in manager.list_models():
        raw = table[model.id]
        assert model.provider == provider
        assert model.full_id == f"{provider}/{model.id}" and model.name == model.id
        assert model.context_window == raw.get("context_window")
        assert model.max_output_tokens == model.max_output == raw.get("max_output_tokens")
        flags = raw.get("model_capabilities", {})
        declared_true = {name for name, value in flags.items() if value is True}
        assert declared_true <= model.capabilities
        assert ("chat" in model.capabilities) == (flags.get("chat") is not False)
        assert model.capabilities - declared_true <= {"chat"}
        price = raw.get("pricing")
        if price is None or "input_per_1m" not in price:
            assert model.pricing is None
        else:
            assert model.pricing is not None
            assert model.pricing.input_per_1m == Decimal(str(price["input_per_1m"]))
            assert model.pricing.output_per_1m == Decimal(str(price["output_per_1m"]))
        assert model.quality is None  # no shipped manifest declares a score
        assert model.input_modalities[0] == "text"
        assert ("image" in model.input_modalities) == ("vision" in model.capabilities)


def test_model_info_reads_what_the_manifest_declares() -> None:
    manager = create_openai_models()
    gpt4o = manager.get("openai/gpt-4o")
    assert gpt4o.capabilities == {"chat", "tool_call", "vision", "structured_output"}
    assert gpt4o.input_modalities == ("text", "image")
    assert gpt4o.output_modalities == ("text",)
    assert gpt4o.pricing == ModelPricing(
        model="gpt-4o",
        input_per_1m=Decimal("2.5"),
        output_per_1m=Decimal("10.0"),
        cached_input_per_1m=Decimal("1.25"),
        provider="openai",
        context_window=128000,
        max_output_tokens=16384,
    )
    assert gpt4o.supports("tools", "multimodal") and not gpt4o.supports("reasoning")
    embedder = ModelManager.for_provider("gemini").get("gemini/gemini-embedding-001")
    assert embedder.capabilities == {"embeddings"}
    assert (embedder.input_modalities, embedder.output_modalities) == (("text",), ("embedding",))


MANIFEST = """
id: scored
protocol_version: "2.0"
endpoint: {base_url: "https://x.example"}
metadata:
  models:
    big:
      context_window: 200000
      quality: 0.9
      pricing: {input_per_1m: 3, output_per_1m: 15}
      modalities: {input: [text, image, pdf], output: [text]}
      model_capabilities: {tool_call: true}
    small:
      context_window: 32000
      quality: 0.6
      pricing: {input_per_1m: 0.1, output_per_1m: 0.4}
    unscored:
      pricing: {input_per_1m: 0.05, output_per_1m: 0.1}
"""


@pytest.fixture
def scored(tmp_path: Path) -> Path:
    (tmp_path / "scored.yaml").write_text(MANIFEST, encoding="utf-8")
    return tmp_path


def test_a_declared_quality_and_modalities_are_read(scored: Path) -> None:
    manager = ModelManager.for_provider("scored", protocol_path=[scored])
    big = manager.get("scored/big")
    assert big.quality == 0.9
    assert big.input_modalities == ("text", "image", "pdf")
    assert big.capabilities == {"chat", "tool_call", "vision"}  # an image input is vision
    assert QualityBasedSelector().select(manager).full_id == "scored/big"
    # "unscored" has no score: left out, never given one
    assert [m.id for m in QualityBasedSelector().rank(manager)] == ["big", "small"]


def test_quality_scores_are_validated() -> None:
    text = MANIFEST.replace("quality: 0.9", "quality: 1.5").replace("quality: 0.6", 'quality: "x"')
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(text, source="m.yaml")
    assert info.value.issues == [
        "m.yaml:9:16: $.metadata.models.big.quality: a quality score must be a number in"
        " [0, 1], got float 1.5",
        "m.yaml:15:16: $.metadata.models.small.quality: a quality score must be a number in"
        " [0, 1], got str 'x'",
    ]


def test_merge_and_the_reference_spellings() -> None:
    manager = create_openai_models()
    assert manager.merge(create_anthropic_models()) is manager
    assert len(manager) == len(yaml_models("openai")) + len(yaml_models("anthropic"))
    assert "anthropic/claude-sonnet-5-5" in manager
    assert manager.get("openai/gpt-4o") in manager
    everything = ModelManager.from_manifests()
    assert len(everything) == sum(
        len(yaml_models(p.stem)) for p in builtin_protocol_dir().glob("*.yaml")
    )
    # a model added again replaces the first
    changed = ModelInfo(provider="openai", id="gpt-4o", capabilities={"chat"})
    manager.add(changed)
    assert manager.get("openai/gpt-4o") is changed
    assert manager.list_models().count(changed) == 1
    with pytest.raises(ConfigurationError, match=r"no model 'openai/nope' in this catalogue"):
        manager.get("openai/nope")


def test_filter_by_capability_and_aliases() -> None:
    manager = ModelManager.from_manifests()
    tools = manager.filter_by_capability("tools", "vision")
    assert tools == manager.filter_by_capability("tool_call", "vision")
    assert tools and all(m.supports("tool_call", "vision") for m in tools)
    assert [m.full_id for m in manager.filter_by_capability("embeddings")] == [
        "gemini/gemini-embedding-001",
        "mistral/mistral-embed",
        "openai/text-embedding-3-small",
        "openai/text-embedding-3-large",
        "qwen/text-embedding-v4",
    ]
    with pytest.raises(ConfigurationError) as info:
        manager.filter_by_capability("code_generation")
    assert str(info.value) == (
        "unknown capability 'code_generation': no model declares it (known: chat,"
        " embeddings, reasoning, structured_output, tool_call, vision; other spellings: "
        + ", ".join(sorted(CAPABILITY_ALIASES))
        + ")"
    )
    long = manager.filter(CapabilityFilter({"chat"}, min_context_window=1_000_000))
    assert long and all(m.context_window and m.context_window >= 1_000_000 for m in long)


def test_recommend_for_each_use_case() -> None:
    manager = ModelManager.from_manifests()
    for name, use_case in USE_CASES.items():
        chosen = manager.recommend_for(name)
        fits = use_case.filter(manager)
        assert chosen in fits
        if use_case.prefer == "cost":
            cost = CostBasedSelector().cost
            priced = [cost(m) for m in fits if m.pricing is not None]
            assert cost(chosen) == min(c for c in priced if c is not None)
        else:
            assert chosen.context_window == max(m.context_window or 0 for m in fits)
    with pytest.raises(ConfigurationError, match=r"unknown use case 'poetry' \(known: chat, "):
        manager.recommend_for("poetry")
    custom = UseCase(CapabilityFilter({"embeddings"}, min_context_window=100_000))
    with pytest.raises(ModelSelectionError) as info:
        manager.recommend_for(custom)
    assert str(info.value) == (
        "no model has capabilities embeddings and a context window of at least 100,000"
        f" tokens (of {len(manager)} candidates)"
    )


def test_selectors_never_make_data_up(scored: Path) -> None:
    models = create_openai_models().list_models()
    with pytest.raises(ModelSelectionError) as info:
        QualityBasedSelector().select(models)
    assert str(info.value) == (
        "no candidate has a quality score (openai/gpt-5, openai/gpt-5-mini, openai/gpt-5-nano,"
        " openai/gpt-4.1, openai/gpt-4.1-mini and 6 more): scores are never made up; declare"
        " metadata.models.<id>.quality in the manifest, or pass"
        " QualityBasedSelector(scores={'provider/model': score})"
    )
    unpriced = ModelManager.for_provider("gemini").get("gemini/gemini-3.8-flash")
    with pytest.raises(ModelSelectionError) as info:
        CostBasedSelector().select([unpriced])
    assert str(info.value) == (
        "no candidate has a price in its manifest (gemini/gemini-3.8-flash): a cost is never"
        " made up"
    )
    with pytest.raises(ModelSelectionError, match="there is no model to select from"):
        CostBasedSelector().select([])
    # a user's scores win over the manifest's
    manager = ModelManager.for_provider("scored", protocol_path=[scored])
    user = QualityBasedSelector({"scored/small": 0.95, "scored/unscored": 0.1})
    assert [m.id for m in user.rank(manager)] == ["small", "big", "unscored"]


def test_cost_selector_counts_tokens() -> None:
    manager = ModelManager.for_provider("openai")
    gpt4o = manager.get("openai/gpt-4o")
    assert CostBasedSelector().cost(gpt4o) == Decimal("0.0125")  # 2.5/1000 + 10/1000
    assert CostBasedSelector(input_tokens=4000, output_tokens=0).cost(gpt4o) == Decimal("0.01")
    with pytest.raises(ConfigurationError, match="input_tokens must be an integer >= 0"):
        CostBasedSelector(input_tokens=-1)
    euro = ModelInfo(
        provider="eu",
        id="m",
        pricing=ModelPricing("m", Decimal(1), Decimal(1), currency="EUR"),
    )
    with pytest.raises(ConfigurationError, match=r"several currencies \(EUR, USD\)"):
        CostBasedSelector().select([euro, gpt4o])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="quality must be a number in"):
        ModelInfo(provider="p", id="m", quality=2)
    with pytest.raises(ConfigurationError, match="provider must be a non-empty string"):
        ModelInfo(provider="", id="m")
    with pytest.raises(ConfigurationError, match="scores are keyed by 'provider/model'"):
        QualityBasedSelector({"gpt-4o": 1.0})
    with pytest.raises(ConfigurationError, match="the score of 'a/b' must be a finite number"):
        QualityBasedSelector({"a/b": float("nan")})
    with pytest.raises(ConfigurationError, match="metric must be 'time_to_first_token' or"):
        LatencyBasedSelector({}, metric="p99")
    with pytest.raises(ConfigurationError, match="filter must be a CapabilityFilter"):
        CostBasedSelector(filter={"chat"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="expected ModelInfo objects"):
        CostBasedSelector().select(["openai/gpt-4o"])  # type: ignore[list-item]


# ------------------------------------------------------------------ selectors, as properties

CAPABILITIES = sorted({"chat", "tool_call", "vision", "reasoning"})


@st.composite
def catalogues(draw: st.DrawFn) -> list[ModelInfo]:
    """Models with random capabilities, prices (some missing), scores (some missing) and
    ties on purpose (prices and scores from small sets)."""
    ids = draw(st.lists(st.text("abcdef", min_size=1, max_size=3), unique=True, max_size=8))
    models = []
    for model_id in ids:
        price = draw(st.none() | st.sampled_from([0, 1, 2, 5]))
        models.append(
            ModelInfo(
                provider=draw(st.sampled_from(["p", "q"])),
                id=model_id,
                capabilities=draw(st.sets(st.sampled_from(CAPABILITIES))),
                pricing=None
                if price is None
                else ModelPricing(
                    model_id,
                    Decimal(price),
                    Decimal(draw(st.sampled_from([0, 1, 3]))),
                ),
                quality=draw(st.none() | st.sampled_from([0.0, 0.5, 1.0])),
                context_window=draw(st.none() | st.sampled_from([1000, 8000])),
            )
        )
    return models


filters = st.builds(
    CapabilityFilter,
    st.sets(st.sampled_from(CAPABILITIES), max_size=2),
    st.none() | st.sampled_from([1000, 8000]),
)


def check_choice(selector: Any, models: list[ModelInfo], key: Any, spec: CapabilityFilter) -> None:
    """``selector.select(models)`` is a candidate that passes ``spec``, has a key, and has
    the lowest key, the lowest ``full_id`` among equals; none: the right error."""
    fits = [m for m in models if spec.matches(m)]
    keyed = [m for m in fits if key(m) is not None]
    try:
        chosen = selector.select(models)
    except ModelSelectionError:
        assert not keyed
        return
    assert chosen in keyed
    best = min(key(m) for m in keyed)
    assert key(chosen) == best
    assert chosen.full_id == min(m.full_id for m in keyed if key(m) == best)
    # the input order does not matter
    assert selector.select(list(reversed(models))) == chosen


@given(catalogues(), filters)
def test_cost_selector_picks_a_cheapest_fitting_model(
    models: list[ModelInfo], spec: CapabilityFilter
) -> None:
    selector = CostBasedSelector(filter=spec)
    check_choice(selector, models, selector.cost, spec)


@given(
    catalogues(),
    filters,
    st.dictionaries(st.sampled_from(["p/a", "q/b", "p/cc"]), st.floats(-5, 5)),
)
def test_quality_selector_picks_a_best_scored_fitting_model(
    models: list[ModelInfo], spec: CapabilityFilter, scores: dict[str, float]
) -> None:
    selector = QualityBasedSelector(scores, filter=spec)

    def key(model: ModelInfo) -> float | None:
        score = scores.get(model.full_id, model.quality)
        return None if score is None else -score

    check_choice(selector, models, key, spec)


@given(catalogues(), filters, st.data())
def test_latency_selector_picks_a_fastest_fitting_model(
    models: list[ModelInfo], spec: CapabilityFilter, data: st.DataObject
) -> None:
    measured = data.draw(st.sets(st.sampled_from([m.full_id for m in models] or ["x/y"])))
    table = {name: data.draw(st.sampled_from([0.1, 0.2, 0.4])) for name in measured}
    check_choice(
        LatencyBasedSelector(table, filter=spec), models, lambda m: table.get(m.full_id), spec
    )


@given(catalogues(), filters)
def test_the_filter_keeps_exactly_the_matching_models(
    models: list[ModelInfo], spec: CapabilityFilter
) -> None:
    kept = spec(models)
    assert kept == [m for m in models if spec.matches(m)]
    for model in kept:
        assert spec.capabilities <= model.capabilities
        if spec.min_context_window is not None:
            assert (model.context_window or 0) >= spec.min_context_window


# ------------------------------------------------------------------ live latencies


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


@pytest.mark.anyio
async def test_the_tracker_measures_real_calls(mock: MockProvider) -> None:
    tracker = LatencyTracker()
    async with open_client(
        "openai/gpt-4o", api_key=KEY, base_url=mock.openai_base_url, middleware=[tracker]
    ) as client:
        await client.chat().user("hi").execute()
        async with client.chat().user("hi").stream() as stream:
            async for _ in stream:
                pass
    stats = tracker.stats("openai/gpt-4o")
    assert stats.duration is not None and stats.duration.count == 1
    assert stats.time_to_first_token is not None and stats.time_to_first_token.count == 1
    assert 0 < stats.duration.average < 10  # type: ignore[operator]
    assert list(tracker.snapshot("duration")) == ["openai/gpt-4o"]
    # the selector reads it: the measured model wins over faster-looking unmeasured ones
    manager = create_openai_models()
    selector = LatencyBasedSelector(tracker, metric="duration")
    assert selector.select(manager).full_id == "openai/gpt-4o"
    tracker.record("openai/gpt-4o-mini", duration=0.0)
    assert selector.select(manager).full_id == "openai/gpt-4o-mini"
    with pytest.raises(ModelSelectionError, match="no candidate has a time to first token"):
        LatencyBasedSelector(tracker).select([manager.get("openai/gpt-4.1")])
    with pytest.raises(ConfigurationError, match="metric must be"):
        tracker.snapshot("p50")
    await anyio.lowlevel.checkpoint()
