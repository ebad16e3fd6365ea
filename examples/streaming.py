"""Streaming: print the text as it arrives; the whole reply is kept on the stream."""

from _run import run, target

from ailib_anyio import ContentDelta, open_client


async def main() -> None:
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        async with client.chat().user("Tell me a short story").stream() as stream:
            async for event in stream:
                if isinstance(event, ContentDelta):
                    print(event.text, end="", flush=True)
        print()
        print("accumulated:", stream.response.content)


run(main)
