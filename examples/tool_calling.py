"""Tool calling: the model asks for a tool, we run it and send the result back."""

import json

from _run import run, target

from ailib_anyio import Message, ToolDefinition, open_client
from ailib_anyio.testing import ScriptedReply

weather = ToolDefinition(
    "get_weather",
    "Get the current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def get_weather(city: str) -> dict[str, object]:
    return {"city": city, "temp_c": 18, "sky": "cloudy"}


async def main() -> None:
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        if where.mock is not None:  # what a real model would answer
            where.mock.enqueue(
                ScriptedReply(tool_calls=[("get_weather", {"city": "Paris"})]),
                ScriptedReply(content="It is 18 °C and cloudy in Paris."),
            )
        question = Message.user("What's the weather in Paris?")
        first = await client.chat().messages([question]).tools([weather]).execute()
        for call in first.tool_calls:
            print("tool call:", call.name, call.arguments)
        results = [
            Message.tool(call.id, json.dumps(get_weather(**call.arguments)), name=call.name)
            for call in first.tool_calls
        ]
        answer = await (
            client.chat()
            .messages([question, first.to_message(), *results])
            .tools([weather])
            .execute()
        )
        print("answer:", answer.content)


run(main)
