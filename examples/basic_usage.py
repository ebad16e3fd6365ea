"""Basic usage: one chat request, its reply and its token usage."""

from _run import run, target

from ailib_anyio import open_client


async def main() -> None:
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        reply = await client.chat().system("Be brief.").user("Hello! What's 2+2?").execute()
        print("content:", reply.content)
        print("tokens:", reply.usage.input_tokens, "in,", reply.usage.output_tokens, "out")
        print("finish:", reply.finish_reason)


run(main)
