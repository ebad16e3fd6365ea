"""Every log record of a full run at DEBUG — chat, stream, retry, fallback, hedge, errors —
on the library's, httpx's and httpcore's loggers: the library logs its attempts at DEBUG
only, and no record shows a key (issue 13, item 1)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from ailib_anyio import (
    AuthenticationError,
    CircuitBreakerConfig,
    HedgeConfig,
    RetryConfig,
    open_client,
)
from ailib_anyio._protocol._registry import builtin_protocol_dir
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-logging-run-0123456789abcdef"
GEMINI_KEY = "AIzaLoggingRun0123456789"
FAST = RetryConfig(max_retries=2, min_delay=0.01, max_delay=0.02)


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def formatted(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info and not record.exc_text:
        text += logging.Formatter().formatException(record.exc_info)
    return text + (record.exc_text or "") + (record.stack_info or "")


def query_key_manifest(directory: Path) -> Path:
    """Gemini's manifest sending the key as ``?key=``, as some gateways want: httpx then
    logs it in every request line, unless masked."""
    text = (builtin_protocol_dir() / "gemini.yaml").read_text()
    old = "    type: header\n    header: x-goog-api-key\n"
    assert old in text
    text = text.replace(old, "    type: query\n    param_name: key\n")
    text = text.replace("id: gemini\n", "id: querykey\n", 1)
    (directory / "querykey.yaml").write_text(text)
    return directory


async def full_run(mock: MockProvider, protocols: Path) -> None:
    mock.enqueue(
        ScriptedReply(content="chat"),  # chat
        ScriptedReply(content="stream"),  # stream
        Reply.error(500, "boom", type="server_error"),  # retried ...
        ScriptedReply(content="after retry"),  # ... then answered
        Reply.error(401, "bad key", code="invalid_api_key"),  # an error
        Reply.error(503, "overloaded", type="server_error"),  # falls back ...
        ScriptedReply(content="fallback"),
        ScriptedReply(content="slow", delay_before_headers=30),  # hedged
        ScriptedReply(content="fast"),
    )
    fallback = open_client("openai/gpt-4o-mini", api_key=KEY, base_url=mock.openai_base_url)
    async with open_client(
        "openai/gpt-4o",
        api_key=KEY,
        base_url=mock.openai_base_url,
        retry=FAST,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=0.001),
    ) as client:
        assert (await client.chat().user("hi").execute()).content == "chat"
        async with client.chat().user("hi").stream() as stream:
            async for _ in stream:
                pass
        assert (await client.chat().user("hi").execute()).content == "after retry"
        with pytest.raises(AuthenticationError):
            await client.chat().user("hi").execute()
    async with open_client(
        "openai/gpt-4o",
        api_key=KEY,
        base_url=mock.openai_base_url,
        max_retries=0,
        fallbacks=[fallback],
    ) as client:
        assert (await client.chat().user("hi").execute()).content == "fallback"
    hedged = open_client("openai/gpt-4o-mini", api_key=KEY, base_url=mock.openai_base_url)
    async with open_client(
        "openai/gpt-4o",
        api_key=KEY,
        base_url=mock.openai_base_url,
        max_retries=0,
        fallbacks=[hedged],
        hedge=HedgeConfig(delay=0.1),
    ) as client:
        assert (await client.chat().user("hi").execute()).content == "fast"
    mock.enqueue(ScriptedReply(content="gemini"), ScriptedReply(content="query"))
    async with open_client(
        "gemini/gemini-2.5-flash", api_key=GEMINI_KEY, base_url=mock.gemini_base_url
    ) as client:
        assert (await client.chat().user("hi").execute()).content == "gemini"
    async with open_client(
        "querykey/gemini-2.5-flash",
        api_key=GEMINI_KEY,
        base_url=mock.gemini_base_url,
        protocol_path=protocols,
    ) as client:
        assert (await client.chat().user("hi").execute()).content == "query"
    assert f"key={GEMINI_KEY}" in mock.requests[-1].path  # it was sent in the URL


async def test_a_full_run_at_debug_logs_attempts_and_no_key(
    mock: MockProvider, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    with anyio.fail_after(30):
        await full_run(mock, query_key_manifest(tmp_path))
    records = caplog.records
    for record in records:
        text = formatted(record)
        for secret in (KEY, GEMINI_KEY, KEY[8:], GEMINI_KEY[6:]):
            assert secret not in text, (record.name, text)
    ours = [r for r in records if r.name.startswith("ailib_anyio")]
    assert ours and all(r.levelno == logging.DEBUG for r in ours)  # nothing at INFO
    messages = [r.getMessage() for r in ours]
    assert any(m.startswith("attempt target=openai/gpt-4o attempt=1") for m in messages)
    assert any(
        "attempt failed" in m and "error=server_error" in m and "retry_in=" in m for m in messages
    )
    assert any(m.startswith("circuit ") and "after=open" in m for m in messages)
    assert any(m.startswith("fallback candidate=") for m in messages)
    assert any(m.startswith("hedge candidate=") for m in messages)
    assert any("error=authentication" in m for m in messages)
    # httpx and httpcore logged too (full URLs, headers) and were masked, not dropped
    assert any(r.name == "httpx" and "key=<redacted>" in r.getMessage() for r in records)
    assert any(r.name.startswith("httpcore") for r in records)


async def test_fields_are_on_the_library_s_records(
    mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ailib_anyio")
    mock.enqueue(ScriptedReply(content="x"))
    async with open_client("openai/gpt-4o", api_key=KEY, base_url=mock.openai_base_url) as c:
        await c.chat().user("hi").execute()
    (attempt,) = [r for r in caplog.records if r.getMessage().startswith("attempt target")]
    assert attempt.name == "ailib_anyio.attempts"
    assert attempt.fields == {"target": "openai/gpt-4o", "attempt": 1}  # type: ignore[attr-defined]


async def test_rate_limiter_waits_are_logged(
    mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    from ailib_anyio import RateLimiterConfig

    caplog.set_level(logging.DEBUG, logger="ailib_anyio")
    mock.enqueue(ScriptedReply(content="1"), ScriptedReply(content="2"))
    async with open_client(
        "openai/gpt-4o",
        api_key=KEY,
        base_url=mock.openai_base_url,
        rate_limit=RateLimiterConfig(requests_per_minute=30, burst=1),  # 2 s a request
    ) as client:
        await client.chat().user("hi").execute()
        await client.chat().user("hi").execute()
    waits = [r for r in caplog.records if r.getMessage().startswith("rate limiter wait")]
    assert waits and waits[0].name == "ailib_anyio.ratelimit"
