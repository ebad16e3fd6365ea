"""Prices and costs: ``get_model_pricing`` and ``estimate_cost`` against the manifests'
own numbers, and the ``cost`` every response and stream carries, computed by hand from
the manifest prices for every usage-reporting chat case of the conformance corpus, on
asyncio and trio."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
import yaml
from conformance import (
    PROVIDER_MANIFESTS,
    case_model,
    client_result,
    load_cases,
    provider_model_for,
    replay_reply,
    replay_timeout,
)

from ailib_anyio import (
    ConfigurationError,
    ContentDelta,
    CostEstimate,
    ModelPricing,
    ProtocolError,
    Usage,
    open_client,
)
from ailib_anyio._core._cost import cost_of_usage
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio._protocol._registry import builtin_protocol_dir
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply
from ailib_anyio.tokens import estimate_cost, get_model_pricing

MILLION = Decimal(1_000_000)
CASES = load_cases("openai-chat", "anthropic-messages", "gemini")
BASE_URLS = {
    "openai-chat": "openai_base_url",
    "anthropic-messages": "anthropic_base_url",
    "gemini": "gemini_base_url",
}


def yaml_prices(provider: str) -> dict[str, dict[str, Any]]:
    """``model -> its metadata`` as the manifest file writes it (read with PyYAML, not
    the library's loader)."""
    path = builtin_protocol_dir() / f"{provider}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return dict(data.get("metadata", {}).get("models", {}))


def price(value: Any) -> Decimal:
    return Decimal(str(value))


def by_hand(
    prices: dict[str, Any], tokens_in: int, tokens_out: int, cached: int = 0, reasoning: int = 0
) -> Decimal:
    """A usage billed as the providers bill it: cached input at the cache price, the rest
    of the input at the input price, reasoning (part of the output) as output unless it
    has its own price."""
    cached_price = price(prices.get("cached_input_per_1m", prices["input_per_1m"]))
    total = (tokens_in - cached) * price(prices["input_per_1m"]) + cached * cached_price
    if "reasoning_per_1m" in prices:
        total += (tokens_out - reasoning) * price(prices["output_per_1m"])
        total += reasoning * price(prices["reasoning_per_1m"])
    else:
        total += tokens_out * price(prices["output_per_1m"])
    return total / MILLION


# ---------------------------------------------------------------------- the manifests


def test_get_model_pricing_is_the_manifests_table() -> None:
    priced = 0
    for path in sorted(builtin_protocol_dir().glob("*.yaml")):
        for model, meta in yaml_prices(path.stem).items():
            pricing = get_model_pricing(f"{path.stem}/{model}")
            prices = meta.get("pricing")
            if prices is None:
                assert pricing is None, model
                continue
            priced += 1
            assert pricing is not None
            assert pricing.model == model and pricing.provider == path.stem
            assert pricing.input_per_1m == price(prices["input_per_1m"])
            assert pricing.output_per_1m == price(prices["output_per_1m"])
            cached = prices.get("cached_input_per_1m")
            assert pricing.cached_input_per_1m == (None if cached is None else price(cached))
            assert pricing.input_price_per_1k == price(prices["input_per_1m"]) / 1000
            assert pricing.output_price_per_1k == price(prices["output_per_1m"]) / 1000
            assert pricing.context_window == meta["context_window"]
            assert pricing.max_output_tokens == meta.get("max_output_tokens")
            assert pricing.currency == "USD"
    assert priced > 40


def test_the_reference_example() -> None:
    cost = estimate_cost(input_tokens=1000, output_tokens=500, model="gpt-4o")
    assert cost.total_cost == Decimal("0.0075")  # 1000 x $2.50/1M + 500 x $10/1M
    assert f"${cost.total_cost:.4f}" == "$0.0075"
    pricing = get_model_pricing("gpt-4o")
    assert pricing is not None
    assert pricing.input_price_per_1k == Decimal("0.0025")
    assert pricing.context_window == 128000


def test_estimate_cost_by_parts() -> None:
    cost = estimate_cost(
        input_tokens=1000,
        output_tokens=500,
        cached_input_tokens=400,
        reasoning_tokens=200,
        model="openai/gpt-5",
    )
    prices = yaml_prices("openai")["gpt-5"]["pricing"]
    assert cost == CostEstimate(
        input_cost=600 * price(prices["input_per_1m"]) / MILLION,
        cached_input_cost=400 * price(prices["cached_input_per_1m"]) / MILLION,
        output_cost=500 * price(prices["output_per_1m"]) / MILLION,
        reasoning_cost=Decimal(0),
        currency="USD",
        model="gpt-5",
        input_tokens=1000,
        output_tokens=500,
        cached_input_tokens=400,
        reasoning_tokens=200,
    )
    assert cost.total_cost == by_hand(prices, 1000, 500, cached=400, reasoning=200)
    assert str(cost) == f"{cost.total_cost} USD"
    assert all(isinstance(v, Decimal) for v in (cost.input_cost, cost.total_cost))


def test_estimate_cost_refuses_what_it_cannot_price() -> None:
    with pytest.raises(ConfigurationError) as info:
        estimate_cost(input_tokens=1, output_tokens=1, model="gemini/gemini-3.8-flash")
    assert info.value.message == "manifest 'gemini' gives no price for model 'gemini-3.8-flash'"
    with pytest.raises(ConfigurationError, match="no manifest lists a model 'gpt-99'"):
        estimate_cost(input_tokens=1, output_tokens=1, model="gpt-99")
    with pytest.raises(ConfigurationError) as info:
        estimate_cost(input_tokens=10, output_tokens=1, cached_input_tokens=11, model="gpt-4o")
    assert str(info.value) == (
        "cached_input_tokens (11) is part of input_tokens (10): it cannot be larger"
    )
    with pytest.raises(ConfigurationError) as info:
        estimate_cost(input_tokens=1, output_tokens=1, reasoning_tokens=2, model="gpt-4o")
    assert str(info.value) == (
        "reasoning_tokens (2) is part of output_tokens (1): it cannot be larger"
    )
    with pytest.raises(ConfigurationError, match=r"^input_tokens must be a non-negative"):
        estimate_cost(input_tokens=-1, output_tokens=1, model="gpt-4o")
    with pytest.raises(ConfigurationError, match=r"^output_tokens must be a non-negative"):
        estimate_cost(input_tokens=1, output_tokens=1.5, model="gpt-4o")  # type: ignore[arg-type]


def test_unpriced_and_unlisted_models_have_no_pricing() -> None:
    assert get_model_pricing("gemini/gemini-3.8-flash") is None  # listed without a price
    assert get_model_pricing("openai/gpt-3.5-turbo") is None  # not listed
    assert get_model_pricing("groq/groq/compound") is None
    found = get_model_pricing("meta-llama/llama-4-scout-17b-16e-instruct")  # a bare id
    assert found is not None and found.provider == "groq"


def test_a_usage_that_contradicts_itself_is_capped() -> None:
    pricing = get_model_pricing("openai/gpt-4o")
    assert cost_of_usage(pricing, None) is None
    assert cost_of_usage(None, Usage(1, 1)) is None
    cost = cost_of_usage(pricing, Usage(10, 5, cached_input_tokens=50, reasoning_tokens=9))
    assert cost is not None
    assert (cost.cached_input_tokens, cost.reasoning_tokens, cost.input_cost) == (10, 5, 0)


PRICEY = """
metadata:
  models:
    think-1:
      context_window: 1000
      pricing: {input_per_1m: 1, cached_input_per_1m: 0.5, output_per_1m: 2, reasoning_per_1m: 4}
"""


def _pricey_dir(tmp_path: Path) -> Path:
    """A copy of the OpenAI manifest as provider ``pricey``, with a model whose reasoning
    tokens have their own price."""
    text = (builtin_protocol_dir() / "openai.yaml").read_text(encoding="utf-8")
    head = text[: text.index("\nmetadata:")]
    (tmp_path / "pricey.yaml").write_text(
        head.replace("\nid: openai\n", "\nid: pricey\n") + PRICEY, encoding="utf-8"
    )
    return tmp_path


def test_reasoning_priced_apart(tmp_path: Path) -> None:
    directory = _pricey_dir(tmp_path)
    cost = estimate_cost(
        input_tokens=100,
        output_tokens=50,
        reasoning_tokens=20,
        cached_input_tokens=40,
        model="pricey/think-1",
        protocol_path=[directory],
    )
    assert cost.output_cost == Decimal(30 * 2) / MILLION
    assert cost.reasoning_cost == Decimal(20 * 4) / MILLION
    assert cost.total_cost == Decimal(60 * 1 + 40 * 0.5 + 30 * 2 + 20 * 4) / MILLION
    pricing = ModelPricing("m", Decimal(1), Decimal(2), reasoning_per_1m=Decimal(4))
    assert estimate_cost(input_tokens=0, output_tokens=10, reasoning_tokens=10, model=pricing)
    assert pricing.reasoning_price_per_1k == Decimal("0.004")


def test_prices_are_validated() -> None:
    text = """
id: bad
protocol_version: "2.0"
endpoint: {base_url: "https://x.example"}
metadata:
  models:
    m1:
      pricing: {input_per_1m: -1, output_per_1m: "x", reasoning_per_1m: .nan, currency: usd}
"""
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(text, source="m.yaml")
    assert info.value.issues == [
        "m.yaml:8:31: $.metadata.models.m1.pricing.input_per_1m: a price must be a finite"
        " number >= 0, got -1",
        "m.yaml:8:50: $.metadata.models.m1.pricing.output_per_1m: expected a price (a"
        " number), got str 'x'",
        "m.yaml:8:73: $.metadata.models.m1.pricing.reasoning_per_1m: a price must be a"
        " finite number >= 0, got nan",
        "m.yaml:8:89: $.metadata.models.m1.pricing.currency: expected an ISO 4217 code such"
        " as 'USD', got str 'usd'",
    ]


# ---------------------------------------------------------------------- responses


def _usage_cases() -> list[Any]:
    return [
        c for c in CASES if c.values[0] is None or c.values[0]["expect"].get("usage") is not None
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("case", _usage_cases())
async def test_conformance_case_costs(case: dict[str, Any]) -> None:
    """Each recorded response, replayed through ``open_client`` with its provider's own
    manifest, carries the cost of its usage at that manifest's prices (by hand), or None
    where the manifest has no price for the model."""
    model = provider_model_for(case)
    async with MockProvider() as mock:
        mock.enqueue(replay_reply(case, "whole", seed=0))
        base_url = getattr(mock, BASE_URLS[case["dialect"]])
        async with open_client(
            model,
            api_key="test-key",
            base_url=base_url,
            timeout=replay_timeout(case),
            max_retries=0,
        ) as client:
            response, error = await client_result(client, case)
    assert error is None and response is not None
    want = case["expect"]["usage"]
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (
        want["input_tokens"],
        want["output_tokens"],
    )
    assert usage.cached_input_tokens in (None, 0)  # the corpus has no cache hits
    meta = yaml_prices(PROVIDER_MANIFESTS[case["id"].split("/")[0]]).get(case_model(case))
    prices = meta.get("pricing") if meta is not None else None
    if prices is None:
        assert response.cost is None
        return
    cost = response.cost
    assert cost is not None
    reasoning = usage.reasoning_tokens or 0
    assert reasoning == want.get("reasoning_tokens", 0)
    assert cost.total_cost == by_hand(
        prices, want["input_tokens"], want["output_tokens"], reasoning=reasoning
    )
    assert cost.currency == "USD" and cost.model == case_model(case)


def test_the_corpus_has_priced_cases() -> None:
    """The test above checks real numbers, not only ``None``: most cases are priced."""
    priced = 0
    for param in _usage_cases():
        case = param.values[0]
        if case is None:
            pytest.skip("../shared/conformance not found")
        meta = yaml_prices(PROVIDER_MANIFESTS[case["id"].split("/")[0]]).get(case_model(case))
        priced += meta is not None and "pricing" in meta
    assert priced >= 15


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "base", "body", "parts"),
    [
        (
            "openai/gpt-5",
            "openai_base_url",
            {
                "id": "c1",
                "model": "gpt-5",
                "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": 1000,
                    "completion_tokens": 500,
                    "prompt_tokens_details": {"cached_tokens": 400},
                    "completion_tokens_details": {"reasoning_tokens": 200},
                },
            },
            (1000, 500, 400, 200),
        ),
        (
            "anthropic/claude-haiku-4-5",
            "anthropic_base_url",
            {
                "id": "m1",
                "type": "message",
                "model": "claude-haiku-4-5",
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "usage": {
                    "input_tokens": 100,
                    "cache_read_input_tokens": 900,
                    "cache_creation_input_tokens": 0,
                    "output_tokens": 20,
                },
            },
            (1000, 20, 900, 0),
        ),
        (
            "gemini/gemini-2.5-flash",
            "gemini_base_url",
            {
                "candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                "usageMetadata": {
                    "promptTokenCount": 1000,
                    "cachedContentTokenCount": 600,
                    "candidatesTokenCount": 100,
                    "thoughtsTokenCount": 300,
                },
            },
            (1000, 400, 600, 300),
        ),
    ],
    ids=["openai-cached-reasoning", "anthropic-cache-read", "gemini-cached-thoughts"],
)
async def test_cache_hits_and_reasoning_are_billed_as_the_provider_bills(
    model: str, base: str, body: dict[str, Any], parts: tuple[int, int, int, int]
) -> None:
    async with MockProvider() as mock:
        mock.enqueue(Reply.json(body))
        async with open_client(model, api_key="k", base_url=getattr(mock, base)) as client:
            reply = await client.chat().user("hi").execute()
    tokens_in, tokens_out, cached, reasoning = parts
    assert reply.usage == Usage(
        tokens_in,
        tokens_out,
        cached_input_tokens=cached,
        reasoning_tokens=reasoning or None,
    )
    provider, _, model_id = model.partition("/")
    prices = yaml_prices(provider)[model_id]["pricing"]
    assert reply.cost is not None
    assert reply.cost.total_cost == by_hand(prices, tokens_in, tokens_out, cached, reasoning)
    assert reply.cost.cached_input_tokens == cached


@pytest.mark.anyio
async def test_a_stream_carries_cost_when_finished_broken_or_cancelled() -> None:
    prices = yaml_prices("anthropic")["claude-sonnet-5-5"]["pricing"]
    async with MockProvider() as mock:
        scripted = ScriptedReply(content="one two three four", usage=(100, 50), chunk_size=4)
        mock.enqueue(scripted, scripted, attrs.evolve(scripted, delay_between_chunks=0.05))
        async with open_client(
            "anthropic/claude-sonnet-5-5", api_key="k", base_url=mock.anthropic_base_url
        ) as client:
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass
            finished = stream.response
            async with client.chat().user("hi").stream() as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        break
            broken = stream.response
            with anyio.CancelScope() as scope:
                async with client.chat().user("hi").stream() as stream:
                    async for event in stream:
                        if isinstance(event, ContentDelta):
                            scope.cancel()
            assert scope.cancelled_caught
            cancelled = stream.response
    assert finished.cost is not None
    assert finished.cost.total_cost == by_hand(prices, 100, 50)
    # message_start reported the input and 1 output token so far: that is what is billed
    for partial in (broken, cancelled):
        assert partial.usage == Usage(100, 1)
        assert partial.cost is not None
        assert partial.cost.total_cost == by_hand(prices, 100, 1)


@pytest.mark.anyio
async def test_cost_is_the_answering_models() -> None:
    prices = yaml_prices("openai")["gpt-4o-mini"]["pricing"]
    async with MockProvider() as mock:
        mock.enqueue(Reply.error(500, "boom", type="server_error"), ScriptedReply(usage=(10, 5)))
        fallback = open_client("openai/gpt-4o-mini", api_key="k", base_url=mock.openai_base_url)
        async with open_client(
            "openai/gpt-4o",
            api_key="k",
            base_url=mock.openai_base_url,
            max_retries=0,
            fallbacks=[fallback],
        ) as client:
            reply = await client.chat().user("hi").execute()
    assert reply.cost is not None and reply.cost.model == "gpt-4o-mini"
    assert reply.cost.total_cost == by_hand(prices, 10, 5)


@pytest.mark.anyio
async def test_no_price_no_cost(tmp_path: Path) -> None:
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(usage=(10, 5)), ScriptedReply(usage=(10, 5)))
        async with open_client(
            "gemini/gemini-3.8-flash", api_key="k", base_url=mock.gemini_base_url
        ) as client:
            unpriced = await client.chat().user("hi").execute()
        async with open_client(
            "openai-compatible/llama3", api_key="k", base_url=mock.openai_base_url
        ) as client:
            local = await client.chat().user("hi").execute()
    assert unpriced.usage is not None and unpriced.cost is None
    assert local.usage is not None and local.cost is None


@pytest.mark.anyio
async def test_reasoning_price_applies_to_responses(tmp_path: Path) -> None:
    body = {
        "id": "c1",
        "model": "think-1",
        "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "completion_tokens_details": {"reasoning_tokens": 20},
        },
    }
    async with MockProvider() as mock:
        mock.enqueue(Reply.json(body))
        async with open_client(
            "pricey/think-1",
            api_key="k",
            base_url=mock.openai_base_url,
            protocol_path=[_pricey_dir(tmp_path)],
        ) as client:
            reply = await client.chat().user("hi").execute()
    assert reply.cost is not None
    assert reply.cost.total_cost == Decimal(100 * 1 + 30 * 2 + 20 * 4) / MILLION
