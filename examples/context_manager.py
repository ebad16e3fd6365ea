"""The client is an async context manager: leaving the block closes its connections and
ends its background tasks, also on an error or a cancellation."""

from _run import run, target

from ailib_anyio import open_client


async def main() -> None:
    async with target() as where:
        async with open_client("openai/gpt-4o", **where.settings) as client:
            reply = await client.chat().user("Hi!").execute()
            print("inside:", reply.content)
        print("closed: the connection pool is gone")
        try:
            await client.chat().user("Hi again").execute()
        except RuntimeError as error:  # a closed client says so
            print("after the block:", error)


run(main)
