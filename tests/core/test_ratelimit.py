"""Rate-limit headers parsed into a snapshot, on responses and on errors."""

from __future__ import annotations

import pytest

from ailib_anyio import RateLimitedError, RateLimitSnapshot, open_client
from ailib_anyio._core._ratelimit import parse_duration_text, parse_rate_limits
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

OPENAI_HEADERS = {
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-limit-tokens": "800000",
    "x-ratelimit-remaining-tokens": "799969",
    "x-ratelimit-reset-tokens": "6m0s",
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12ms", 0.012),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("2m59.56s", 179.56),
        ("1h2m3s", 3723.0),
        ("30", 30.0),
        ("0.5", 0.5),
        ("", None),
        ("soon", None),
        ("5x", None),
        ("s", None),
        ("1s2", None),
        ("inf", None),
    ],
)
def test_durations(text: str, seconds: float | None) -> None:
    got = parse_duration_text(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


def test_openai_headers() -> None:
    names = ProtocolRegistry().get("openai").rate_limit_headers
    snap = parse_rate_limits(names, OPENAI_HEADERS, now=0)
    assert snap == RateLimitSnapshot(
        requests_limit=5000,
        requests_remaining=4999,
        requests_reset=0.012,
        tokens_limit=800000,
        tokens_remaining=799969,
        tokens_reset=360.0,
    )


def test_timestamps_garbage_and_absence() -> None:
    names = {
        "requests_remaining": "a-remaining",
        "requests_reset": "a-reset",
        "tokens_reset": "b-reset",
        "tokens_remaining": "b-remaining",
        "not_a_field": "x",
    }
    headers = {
        "a-remaining": "7",
        "a-reset": "2026-01-01T00:00:30Z",  # RFC 3339, 30 s after `now`
        "b-reset": "not a time",
        "b-remaining": "-3",
        "x": "1",
        "retry-after": "2",
    }
    now = 1767225600.0  # 2026-01-01T00:00:00Z
    snap = parse_rate_limits(names, headers, now=now)
    assert snap == RateLimitSnapshot(requests_remaining=7, requests_reset=30.0, retry_after=2.0)
    assert parse_rate_limits(names, {}, now=now) is None


@pytest.mark.anyio
async def test_snapshot_on_response_stream_and_error() -> None:
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedReply(content="hi", headers=OPENAI_HEADERS),
            ScriptedReply(content="streamed", headers=OPENAI_HEADERS),
            Reply.error(429, "slow down", headers={**OPENAI_HEADERS, "retry-after": "3"}),
        )
        async with open_client(
            "openai/gpt-4o", api_key="k", base_url=mock.openai_base_url, max_retries=0
        ) as c:
            reply = await c.chat().user("x").execute()
            async with c.chat().user("x").stream() as stream:
                async for _ in stream:
                    pass
            with pytest.raises(RateLimitedError) as info:
                await c.chat().user("x").execute()
    for snap in (reply.rate_limits, stream.response.rate_limits, info.value.rate_limits):
        assert snap is not None
        assert snap.requests_remaining == 4999
        assert snap.tokens_reset == pytest.approx(360.0)
    assert info.value.rate_limits is not None and info.value.rate_limits.retry_after == 3.0
