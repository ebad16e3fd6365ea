"""Batch processing: many requests at once, bounded concurrency, one result per request."""

from _run import run, target

from ailib_anyio import open_client

QUESTIONS = ["What is 1+1?", "What is 2+2?", "What is 3+3?", "What is 4+4?", "What is 5+5?"]


async def main() -> None:
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        result = await client.batch([client.chat().user(q) for q in QUESTIONS], max_concurrent=3)
        print("succeeded:", result.successful_count, "errors:", len(result.get_errors()))
        for question, reply in zip(QUESTIONS, result.get_successful_results(), strict=True):
            print(question, "->", reply.content)


run(main)
