"""What every example shares: its command line, and where its requests go.

``python examples/NAME.py`` runs on asyncio against the built-in mock provider (a real
HTTP server on 127.0.0.1, no key, no network). ``--backend trio`` runs it under trio.

To talk to a real provider instead, set ``AILIB_EXAMPLES_LIVE=1``, or give
``--base-url URL`` (any server speaking the provider's format, e.g. ``ailib mock-server``
or a local vLLM). The key then comes from the provider's usual variable, e.g.
``OPENAI_API_KEY`` (any value for a local server that checks none).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ailib_anyio.testing import MockProvider


class Target:
    """Where an example's client connects: ``settings`` go to ``open_client(...)``.

    ``mock`` is the running mock provider, or None when the example talks to a real
    server (an example only scripts replies when ``mock`` is set)."""

    def __init__(self, settings: dict[str, Any], mock: MockProvider | None) -> None:
        self.settings = settings
        self.mock = mock


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--base-url", default=None, help="a real server instead of the mock")
    return parser.parse_args()


_ARGS: argparse.Namespace | None = None


@asynccontextmanager
async def target(dialect: str = "openai") -> AsyncIterator[Target]:
    """The mock provider (``dialect``: openai, anthropic or gemini), or the live server."""
    args = _ARGS or argparse.Namespace(base_url=None)
    if args.base_url:
        yield Target({"base_url": args.base_url}, None)
    elif os.environ.get("AILIB_EXAMPLES_LIVE") == "1":
        yield Target({}, None)
    else:
        async with MockProvider() as mock:
            yield Target(
                {"api_key": "test", "base_url": getattr(mock, f"{dialect}_base_url")}, mock
            )


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on the backend the command line names."""
    global _ARGS
    _ARGS = _arguments()
    anyio.run(main, backend=_ARGS.backend)
