"""The spellings a user of the reference README tries get a hint, not a bare Python error:
``await open_client(...)``, a stream iterated outside its block, ``for``/``with`` on an
async stream. Each message is checked word for word: it is user interface."""

from __future__ import annotations

import re

import pytest

from ailib_anyio import (
    AiLibError,
    CancellableStream,
    ContentDelta,
    StreamNotOpenError,
    create_cancel_pair,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio.testing import MockProvider, ScriptedReply

pytestmark = pytest.mark.anyio

BEFORE = (
    "iterate a stream inside its block: 'async with builder.stream() as stream'; entering"
    " the block sends the request and opens the HTTP response, which leaving the block closes"
)
AFTER = (
    "iterate a stream inside its block: 'async with builder.stream() as stream'; this"
    " stream's block has ended, which closed its HTTP response (stream.response keeps what"
    " was received)"
)


def client_for(mock: MockProvider) -> Client:
    return open_client(
        "openai/gpt-4o", api_key="sk-test-secret-123", base_url=mock.openai_base_url, max_retries=0
    )


async def test_await_open_client_says_use_async_with(mock: MockProvider) -> None:
    message = (
        "a Client is not awaitable: open it with 'async with open_client(...) as client:'"
        " (the block owns its connections and tasks, and closes them when it ends)"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        await client_for(mock)  # type: ignore[misc]
    async with client_for(mock) as client:  # the spelling that works
        assert (await client.chat().user("hi").execute()).content == "Mock reply to: hi"


async def test_a_stream_iterated_before_its_block_says_why(mock: MockProvider) -> None:
    async with client_for(mock) as client:
        stream = client.chat().user("hi").stream()
        with pytest.raises(StreamNotOpenError, match=f"^{re.escape(BEFORE)}$") as info:
            async for _ in stream:
                pass
        assert isinstance(info.value, AiLibError) and isinstance(info.value, RuntimeError)
        assert info.value.kind == "stream_not_open"
        with pytest.raises(StreamNotOpenError, match=re.escape(BEFORE)):
            await stream.__anext__()
    assert mock.requests == []  # nothing was sent


async def test_a_stream_iterated_after_its_block_says_why(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="one two three", chunk_size=4))
    async with client_for(mock) as client:
        async with client.chat().user("hi").stream() as stream:
            async for event in stream:
                assert isinstance(event, ContentDelta)
                break
        with pytest.raises(StreamNotOpenError, match=f"^{re.escape(AFTER)}$"):
            async for _ in stream:
                pass
        assert stream.response.content == "one "  # kept, as the message says
        async with client.chat().user("hi").stream() as whole:
            async for _ in whole:
                pass
        with pytest.raises(StreamNotOpenError, match=re.escape(AFTER)):
            whole.__aiter__()
        assert whole.response.content == "Mock reply to: hi"


async def test_an_iteration_begun_in_the_block_ends_quietly_when_closed(
    mock: MockProvider,
) -> None:
    mock.enqueue(ScriptedReply(content="one two three", chunk_size=4))
    async with client_for(mock) as client:
        async with client.chat().user("hi").stream() as stream:
            seen = []
            async for event in stream:
                seen.append(event)
                await stream.aclose()  # closed under the loop: its end, not an error
        assert len(seen) == 1


async def test_blocking_spellings_on_an_async_stream_say_async(mock: MockProvider) -> None:
    async with client_for(mock) as client:
        stream = client.chat().user("hi").stream()
        with pytest.raises(TypeError) as info, stream:  # type: ignore[attr-defined]
            pytest.fail("the block must not run")
        assert str(info.value) == (
            "a ChatStream is an async context manager: use 'async with builder.stream() as"
            " stream' (blocking code: ailib_anyio.sync)"
        )
        async with stream:
            with pytest.raises(TypeError) as info:
                for _ in stream:  # type: ignore[attr-defined]
                    pass
            assert str(info.value) == (
                "a ChatStream is asynchronous: iterate it with 'async for event in stream'"
                " inside 'async with builder.stream() as stream' (blocking code:"
                " ailib_anyio.sync)"
            )
            assert [e async for e in stream]  # still usable the right way
    assert len(mock.requests) == 1


async def test_a_cancellable_stream_iterated_outside_its_block(mock: MockProvider) -> None:
    block = "async with CancellableStream(builder.stream(), token) as stream"
    token, _ = create_cancel_pair()
    async with client_for(mock) as client:
        stream = CancellableStream(client.chat().user("hi").stream(), token)
        with pytest.raises(StreamNotOpenError, match=re.escape(f"'{block}'; entering the block")):
            stream.__aiter__()
        async with stream:
            assert [e async for e in stream]
        with pytest.raises(StreamNotOpenError, match=re.escape(f"'{block}'; this stream's block")):
            async for _ in stream:
                pass
