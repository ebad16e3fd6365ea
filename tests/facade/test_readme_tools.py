"""The README's tool snippet, run as written against each dialect of the mock provider
(OpenAI chat, Anthropic Messages, Gemini generateContent), on asyncio and trio: the
follow-up turn pairs the result with its call on every provider, Gemini included (which
sends calls without ids). And ``python -m ailib_anyio demo --model <provider>/...``."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ailib_anyio import ChatResponse, open_client
from ailib_anyio._cli._main import run_demo
from ailib_anyio.testing import MockProvider, ScriptedReply, ScriptedToolCall

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[2] / "README.md"

# model, base-url attribute of the mock
DIALECTS = {
    "openai": ("openai/gpt-4o", "openai_base_url"),
    "anthropic": ("anthropic/claude-sonnet-4-5", "anthropic_base_url"),
    "gemini": ("gemini/gemini-2.5-flash", "gemini_base_url"),
}


def tools_snippet() -> str:
    """The first Python block under the README's ``### Tools`` heading."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"^### Tools\n.*?```python\n(.*?)```", text, re.S | re.M)
    assert found is not None, "README.md has no ```python block under '### Tools'"
    return found.group(1)


async def run_snippet(client: Any) -> dict[str, Any]:
    """Run the snippet with ``client`` in scope (its ``await``s inside a coroutine); its
    variables come back."""
    source = "async def snippet(client):\n"
    source += textwrap.indent(tools_snippet(), "    ") + "\n    return dict(locals())\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, str(README), "exec"), namespace)
    result: dict[str, Any] = await namespace["snippet"](client)
    return result


def sent_tool_result(dialect: str, body: dict[str, Any]) -> Any:
    """What the second request says the tool result answers: an id, or Gemini's name."""
    if dialect == "openai":
        return [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    if dialect == "anthropic":
        return [
            block["tool_use_id"]
            for m in body["messages"]
            if isinstance(m["content"], list)
            for block in m["content"]
            if block["type"] == "tool_result"
        ]
    return [
        part["functionResponse"]
        for c in body["contents"]
        for part in c["parts"]
        if "functionResponse" in part
    ]


@pytest.mark.parametrize("dialect", list(DIALECTS))
async def test_the_readme_tool_snippet_runs_on_every_dialect(dialect: str) -> None:
    model, base_attr = DIALECTS[dialect]
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})]),
            ScriptedReply(content="18 °C in Paris."),
        )
        async with open_client(model, api_key="mock-key", base_url=getattr(mock, base_attr)) as c:
            scope = await run_snippet(c)
        first: ChatResponse = scope["first"]
        answer: ChatResponse = scope["answer"]
        call = first.tool_calls[0]
        assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
        assert call.id  # every tool call has an id, generated where the provider sends none
        assert answer.content == "18 °C in Paris."
        assert len(mock.requests) == 2
        paired = sent_tool_result(dialect, mock.requests[1].json)
    if dialect == "gemini":
        # Gemini sent no id: the generated one paired the result by name and stays local
        assert call.id_generated
        assert call.id.startswith("call_")
        assert paired == [{"name": "get_weather", "response": {"temp_c": 18}}]
    else:
        assert not call.id_generated
        assert paired == [call.id]


async def test_gemini_ids_are_unique_per_call() -> None:
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedReply(
                tool_calls=[
                    ScriptedToolCall("get_weather", {"city": "Paris"}),
                    ScriptedToolCall("get_weather", {"city": "Oslo"}),
                ]
            )
        )
        async with (
            open_client(
                "gemini/gemini-2.5-flash", api_key="k", base_url=mock.gemini_base_url
            ) as client,
            client.chat().user("Paris and Oslo?").stream() as stream,
        ):
            async for _ in stream:
                pass
    ids = [c.id for c in stream.response.tool_calls]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    assert all(c.id_generated for c in stream.response.tool_calls)


@pytest.mark.parametrize("model", [m for m, _ in DIALECTS.values()])
async def test_the_demo_runs_for_each_dialect(
    model: str, anyio_backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_demo(model=model, backend=anyio_backend)
    out = capsys.readouterr().out
    assert "final answer  : It is 18 °C and clear in Paris." in out
    assert "second turn sent 3 messages: user, " in out
    assert "demo finished" in out
