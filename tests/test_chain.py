"""Issue 10, items 11-14: transport failures retried by kind under a manifest's status
filter; every manifest file found is loaded and its problems reported; a lent
``http_client``'s timeout, ``AI_HTTP_TIMEOUT_SECS`` and ``<PROVIDER>_BASE_URL``; fallbacks
with their own settings and credentials resolved per fallback."""

from __future__ import annotations

import pytest

from ailib_anyio import (
    TransportError,
    open_client,
)
from ailib_anyio._core._retry import RetryConfig, RetryPolicy
from ailib_anyio.testing import MockProvider, ScriptedReply

pytestmark = pytest.mark.anyio

# ------------------------------------------------------------------ item 11: retries


def test_a_status_filter_does_not_judge_a_status_that_is_no_error() -> None:
    policy = RetryPolicy(RetryConfig(retry_on_status=[429, 503]))

    def retries(kind: str, status: int | None) -> bool:
        decision = policy.decide(
            kind=kind, retryable=True, status=status, attempt=1, retry_after=None, random=lambda: 0
        )
        return decision.should_retry

    assert retries("transport", 200)  # the body was cut after a 200
    assert retries("timeout", 204)
    assert retries("transport", None)
    assert retries("rate_limited", 429)
    assert not retries("server_error", 500)


@pytest.mark.parametrize("stream", [False, True], ids=["execute", "stream"])
async def test_a_200_cut_before_its_first_event_is_retried_by_the_manifest_policy(
    stream: bool,
) -> None:
    """The shipped OpenAI manifest's policy (``retry_on_http_status`` without 200): the
    connection closes right after the 200 headers, the retry gets the answer."""
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedReply(content="lost", close_after_bytes=0),
            ScriptedReply(content="second try"),
        )
        async with open_client("openai/gpt-4o", api_key="k", base_url=mock.openai_base_url) as c:
            builder = c.chat().user("hi")
            if stream:
                async with builder.stream() as s:
                    content = "".join([e.text async for e in s if hasattr(e, "text")])
            else:
                content = (await builder.execute()).content
            stats = c.get_resilience_stats()
        assert content == "second try"
        assert stats.retries == 1
        assert len(mock.requests) == 2


async def test_a_cut_200_is_still_reported_when_retries_run_out() -> None:
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="lost", close_after_bytes=0))
        async with open_client(
            "openai/gpt-4o", api_key="k", base_url=mock.openai_base_url, max_retries=0
        ) as c:
            with pytest.raises(TransportError) as info:
                await c.chat().user("hi").execute()
    assert info.value.retryable is True
    assert info.value.status_code == 200
