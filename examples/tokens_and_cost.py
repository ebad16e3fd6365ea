"""Token counting and cost: the provider's exact count, local counts and prices."""

from _run import run, target

from ailib_anyio import Message, open_client
from ailib_anyio.tokens import TokenCounter, estimate_cost, get_model_pricing


async def main() -> None:
    counter = TokenCounter.for_model("openai/gpt-4o")  # tiktoken, when installed
    print("text tokens:", counter.count("Hello, how are you?"))
    messages = [Message.system("Be brief."), Message.user("Hello!")]
    print("message tokens:", counter.count_messages(messages))
    cost = estimate_cost(input_tokens=1000, output_tokens=500, model="openai/gpt-4o")
    print(f"cost of 1000 in + 500 out: ${cost.total_cost}")
    pricing = get_model_pricing("openai/gpt-4o")
    print("per 1k tokens:", pricing.input_price_per_1k, "in,", pricing.output_price_per_1k, "out")

    async with (
        target("anthropic") as where,
        open_client("anthropic/claude-sonnet-4-5", **where.settings) as client,
    ):
        request = client.chat().system("Be brief.").user("What is 2+2?")
        counted = await client.count_tokens(request)  # the provider's count_tokens endpoint
        reply = await request.execute()
        print("counted:", counted.tokens, "exact:", counted.exact)
        print("used:", reply.usage.input_tokens, "cost:", reply.cost)


run(main)
