"""Every script in examples/ runs, as a subprocess, on asyncio and on trio, against the
built-in mock provider (no key, no network), and prints what it is about.

A script added to examples/ without an entry in EXPECTED fails
``test_every_example_is_checked``: each one must be run here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from ailib_anyio.testing import MockProvider

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# script name -> text its output must contain (the same on both backends)
EXPECTED = {
    "basic_usage": "content: Mock reply to: Hello! What's 2+2?",
    "streaming": "accumulated: Mock reply to: Tell me a short story",
    "messages_list": "messages sent: 4",
    "tool_calling": "tool call: get_weather {'city': 'Paris'}\nanswer: It is 18 °C",
    "multimodal": "parts sent: ['text', 'image_url']",
    "production_ready": "circuit openai/gpt-4o closed",
    "custom_resilience": "retries: 1 fallbacks: 0",
    "context_manager": "after the block: the client is closed",
    "tokens_and_cost": "counted: 5 exact: True",
    "metrics_and_telemetry": "requests: 3",
    "batch_processing": "succeeded: 5 errors: 0",
    "connection_pooling": (
        "while streaming: 8 active, 0 idle, 2 clients\nafterwards: 0 active, 8 idle\n"
        "requests served: 8\none more: 9 served, 8 idle\norigin: http://127.0.0.1:"
    ),
    "embeddings": "dimensions: 8",
    "response_caching": "HTTP requests: 1\nhits: 1, hit ratio: 50%",
    "plugins": "asking gpt-4o\nanswered with",
    "model_routing": "picks: [('openai/gpt-4o', 2), ('openai/gpt-4o-mini', 2)]",
    "structured_output": "parsed: City(name='Tokyo', population=37400068)\nnot a City",
    "stream_cancellation": "cancelled: CancelReason.USER_REQUEST",
    "user_feedback": "feedback: ['RatingFeedback', 'ThumbsFeedback']",
}


def scripts() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_every_example_is_checked() -> None:
    assert scripts() == sorted(EXPECTED)


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AILIB_EXAMPLES_LIVE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("name", scripts())
def test_example_runs(name: str, backend: str) -> None:
    env = environment()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--backend", backend],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert EXPECTED.get(name, "\0") in done.stdout, done.stdout


@pytest.mark.anyio
async def test_base_url_sends_to_that_server() -> None:
    """``--base-url``: the script's requests go to the server named, not to its own mock."""
    env = environment() | {"OPENAI_API_KEY": "sk-from-env"}
    script = str(EXAMPLES / "basic_usage.py")
    async with MockProvider() as mock:
        done = await anyio.run_process(
            [sys.executable, script, "--base-url", mock.openai_base_url], env=env, check=False
        )
    assert done.returncode == 0, done.stderr.decode()
    assert len(mock.requests) == 1
    assert mock.requests[0].headers["authorization"] == "Bearer sk-from-env"
