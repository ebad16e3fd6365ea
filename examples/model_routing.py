"""Model routing: pick models by capability and price from the manifests, and spread
calls over several models with a strategy."""

from _run import run, target

from ailib_anyio import open_client
from ailib_anyio.routing import (
    CostBasedSelector,
    ModelArray,
    ModelEndpoint,
    create_anthropic_models,
    create_openai_models,
)


async def main() -> None:
    manager = create_openai_models().merge(create_anthropic_models())
    capable = manager.filter_by_capability("tools", "vision")
    cheapest = CostBasedSelector().select(capable)
    print("cheapest with tools and vision:", cheapest.full_id)
    print(
        "  input per 1k:", cheapest.pricing.input_price_per_1k, "context:", cheapest.context_window
    )

    array = ModelArray(
        [ModelEndpoint("openai/gpt-4o", weight=3), ModelEndpoint("openai/gpt-4o-mini", weight=1)],
        strategy="round_robin",  # or "weighted", "least_inflight", "lowest_latency"
    )
    async with target() as where, open_client(array, **where.settings) as client:
        for _ in range(4):
            await client.chat().user("hi").execute()
        print("picks:", [(e.name, e.picks) for e in client.router.snapshot()])


run(main)
