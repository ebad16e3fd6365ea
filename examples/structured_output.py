"""Structured output: the reply parsed into an attrs class, checked against its schema."""

import attrs
from _run import run, target

from ailib_anyio import StructuredOutputError, open_client
from ailib_anyio.testing import ScriptedReply


@attrs.define
class City:
    name: str
    population: int


async def main() -> None:
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        if where.mock is not None:
            where.mock.enqueue(
                ScriptedReply(content='{"name": "Tokyo", "population": 37400068}'),
                ScriptedReply(content='{"name": "Lagos"}'),
            )
        reply = await client.chat().user("Largest city?").response_format(City).execute()
        print("parsed:", reply.parsed)
        try:
            reply = await client.chat().user("Another?").response_format(City).execute()
            print("parsed:", reply.parsed)
        except StructuredOutputError as error:
            print("not a City:", error.path)


run(main)
