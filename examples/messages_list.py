"""A conversation given as a list of messages."""

from _run import run, target

from ailib_anyio import Message, open_client


async def main() -> None:
    messages = [
        Message.system("You are a helpful assistant."),
        Message.user("What is the capital of France?"),
        Message.assistant("The capital of France is Paris."),
        Message.user("And its population?"),
    ]
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        reply = await client.chat().messages(messages).execute()
        print("reply:", reply.content)
        if where.mock is not None:
            print("messages sent:", len(where.mock.requests[0].json["messages"]))


run(main)
