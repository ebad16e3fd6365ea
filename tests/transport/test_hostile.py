"""Hostile or broken servers (issue 10): huge server-given delays, trickling streams,
decompression bombs, bodies of the wrong shape or type, and bytes past a response's end.

Raw servers here are a few lines of anyio sockets on loopback, so that they can break
HTTP in ways a well-behaved server library will not."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from ailib_anyio import (
    Client,
    ConfigurationError,
    ContentDelta,
    Deadlines,
    IdleTimeoutError,
    MalformedResponseError,
    RateLimitedError,
    RetryConfig,
    open_client,
)
from ailib_anyio._core._bucket import RateLimiterConfig, TokenBucket
from ailib_anyio._core._types import RateLimitSnapshot
from ailib_anyio.testing import MockProvider, Reply

pytestmark = pytest.mark.anyio

KEY = "sk-hostile-test-key"
ROOT = Path(__file__).resolve().parents[2]

Handler = Callable[[anyio.abc.SocketStream, int], Awaitable[bool]]


def completion(text: str) -> bytes:
    body = {
        "id": "c1",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
    }
    return json.dumps(body).encode()


def head(status: str = "200 OK", **headers: str | int) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def delta(text: str) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


class RawServer:
    """HTTP/1.1 on loopback, answered by ``handler(stream, request_number)`` with raw
    bytes; the handler returns whether the connection may serve another request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests = 0
        self.connections = 0
        self.url = ""

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        buffer = b""
        async with stream:
            while True:
                try:
                    while b"\r\n\r\n" not in buffer:
                        buffer += await stream.receive()
                    header, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in header.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buffer) < length:
                        buffer += await stream.receive()
                    buffer = buffer[length:]
                    self.requests += 1
                    if not await self.handler(stream, self.requests):
                        return
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server.url = f"http://127.0.0.1:{port}/v1"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server._serve)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


@asynccontextmanager
async def serving(handler: Handler, **kw: object) -> AsyncIterator[tuple[RawServer, Client]]:
    async with raw_server(handler) as server, client(server.url, **kw) as c:
        yield server, c


def client(url: str, **kw: object) -> Client:
    return open_client("openai/gpt-4o", api_key=KEY, base_url=url, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


# ------------------------------------------------------------------ 3: server-given delays


def test_bucket_refuses_delays_over_the_cap() -> None:
    bucket = TokenBucket(RateLimiterConfig(requests_per_minute=600), now=0.0)
    bucket.penalize(0.0, 1e9, max_delay=1.0)
    bucket.observe(RateLimitSnapshot(requests_remaining=0, requests_reset=1e9), 0.0, max_delay=1.0)
    assert bucket.snapshot(0.0).blocked_for == 0.0
    assert bucket.delay(0.0) == pytest.approx(0.1)  # the emptied bucket's one refill only
    bucket.penalize(0.0, 0.75, max_delay=1.0)  # within the cap: honoured
    assert bucket.snapshot(0.0).blocked_for == 0.75


async def test_huge_retry_after_fails_at_once_and_never_parks_the_limiter(
    mock: MockProvider,
) -> None:
    mock.enqueue(Reply.error(429, "slow down", headers={"retry-after": "1000000000"}))
    mock.enqueue(Reply.json(json.loads(completion("after"))))
    retry = RetryConfig(max_retries=3, min_delay=0.01, max_delay=0.05, max_retry_after=1)
    limit = RateLimiterConfig(requests_per_minute=6000, burst=10)
    async with client(mock.openai_base_url, retry=retry, rate_limit=limit) as c:
        with anyio.fail_after(10):
            with pytest.raises(RateLimitedError) as info:
                await c.chat().user("hi").execute()
            assert info.value.retry_after == 1e9
            stats = c.get_resilience_stats().rate_limiters["openai/gpt-4o"]
            assert stats.blocked_for == 0.0
            assert (await c.chat().user("hi").execute()).content == "after"
    assert len(mock.requests) == 2


async def test_far_rate_limit_reset_never_parks_the_limiter(mock: MockProvider) -> None:
    far = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "100000000s"}
    mock.enqueue(Reply.json(json.loads(completion("one")), headers=far))
    mock.enqueue(Reply.json(json.loads(completion("two"))))
    limit = RateLimiterConfig(requests_per_minute=6000, burst=10)
    async with client(mock.openai_base_url, max_retries=0, rate_limit=limit) as c:
        with anyio.fail_after(10):
            assert (await c.chat().user("hi").execute()).content == "one"
            stats = c.get_resilience_stats().rate_limiters["openai/gpt-4o"]
            assert stats.blocked_for == 0.0
            assert (await c.chat().user("hi").execute()).content == "two"


async def test_reset_within_the_cap_still_blocks(mock: MockProvider) -> None:
    near = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"}
    mock.enqueue(Reply.json(json.loads(completion("one")), headers=near))
    limit = RateLimiterConfig(requests_per_minute=6000, burst=10)
    async with client(mock.openai_base_url, max_retries=0, rate_limit=limit) as c:
        await c.chat().user("hi").execute()
        stats = c.get_resilience_stats().rate_limiters["openai/gpt-4o"]
        assert 15 < stats.blocked_for <= 20


# ------------------------------------------------------------------ 4: idle between events


def trickler(first: bytes = b"") -> Handler:
    async def handler(stream: anyio.abc.SocketStream, n: int) -> bool:
        await stream.send(head(content_type="text/event-stream", connection="close") + first)
        await stream.send(b"data: {")
        while True:  # one byte of a line that never ends, every 50 ms
            await anyio.sleep(0.05)
            await stream.send(b" ")

    return handler


async def test_trickle_before_the_first_event_is_cut_by_idle() -> None:
    async with serving(trickler(), max_retries=0, deadlines=Deadlines(idle=0.5)) as (_server, c):
        start = anyio.current_time()
        with anyio.fail_after(10):
            with pytest.raises(IdleTimeoutError) as info:
                async with c.chat().user("hi").stream():
                    pass
        assert anyio.current_time() - start < 5
    assert info.value.message == "no event from the provider for 0.5s"


async def test_trickle_after_the_first_event_is_cut_by_idle() -> None:
    async with serving(
        trickler(sse(delta("hello"))), max_retries=0, deadlines=Deadlines(idle=0.5)
    ) as (_server, c):
        seen: list[str] = []
        with anyio.fail_after(10):
            with pytest.raises(IdleTimeoutError) as info:
                async with c.chat().user("hi").stream() as stream:
                    async for event in stream:
                        if isinstance(event, ContentDelta):
                            seen.append(event.text)
    assert seen == ["hello"]
    assert info.value.response is not None and info.value.response.content == "hello"


async def test_idle_does_not_count_slow_steady_events_or_the_consumer() -> None:
    async def handler(stream: anyio.abc.SocketStream, n: int) -> bool:
        await stream.send(head(content_type="text/event-stream", connection="close"))
        for i in range(4):
            await anyio.sleep(0.2)  # under the limit between events
            await stream.send(sse(delta(str(i))))
        await stream.send(b"data: [DONE]\n\n")
        return False

    text = ""
    limits = Deadlines(idle=1.0)
    async with (
        serving(handler, max_retries=0, deadlines=limits) as (_server, c),
        c.chat().user("hi").stream() as stream,
    ):
        async for event in stream:
            if isinstance(event, ContentDelta):
                text += event.text
                await anyio.sleep(1.5)  # the consumer's own time is not idle time
    assert text == "0123"


# ------------------------------------------------------------------ 5: body size


def gzip_bomb(raw_mib: int) -> bytes:
    """``raw_mib`` MiB of zeros, gzip-compressed (about 1/1000 of the size), made in
    bounded steps."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [z.compress(block) for _ in range(raw_mib)]
    return b"".join(parts) + z.flush()


def replying(*replies: bytes) -> Handler:
    async def handler(stream: anyio.abc.SocketStream, n: int) -> bool:
        await stream.send(replies[min(n, len(replies)) - 1])
        return True

    return handler


async def test_gzip_bomb_for_execute_is_malformed() -> None:
    bomb = gzip_bomb(64)
    reply = head(content_type="application/json", content_encoding="gzip")
    reply = reply[:-2] + f"content-length: {len(bomb)}\r\n\r\n".encode() + bomb
    async with serving(replying(reply), max_retries=0, max_response_bytes=1 << 20) as (_server, c):
        with pytest.raises(MalformedResponseError) as info:
            await c.chat().user("hi").execute()
    assert info.value.message == (
        "the response body is larger than max_response_bytes (1048576 bytes)"
    )


@pytest.mark.parametrize("chunked", [False, True])
async def test_plain_body_over_the_limit_is_malformed(chunked: bool) -> None:
    body = completion("x" * 5000)
    if chunked:
        reply = head(content_type="application/json", transfer_encoding="chunked")
        reply += f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        reply = head(content_type="application/json", content_length=len(body)) + body
    async with serving(replying(reply), max_retries=0, max_response_bytes=4000) as (_server, c):
        with pytest.raises(MalformedResponseError, match="max_response_bytes"):
            await c.chat().user("hi").execute()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # RFC 9110: zlib-wrapped
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
    ],
)
async def test_compressed_bodies_within_the_limit_decode(
    encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    body = encode(completion("y" * 300_000))  # inflates over many 64 KiB steps
    reply = head(content_type="application/json", content_encoding=encoding)
    reply = reply[:-2] + f"content-length: {len(body)}\r\n\r\n".encode() + body
    async with serving(replying(reply), max_retries=0) as (_server, c):
        assert (await c.chat().user("hi").execute()).content == "y" * 300_000


async def test_bad_and_unasked_encodings_are_malformed() -> None:
    bad = head(content_type="application/json", content_encoding="gzip", content_length=9)
    brotli = head(content_type="application/json", content_encoding="br", content_length=4)
    replies = (bad + b"not gzip!", brotli + b"abcd")
    async with serving(replying(*replies), max_retries=0) as (_server, c):
        with pytest.raises(MalformedResponseError, match="could not decode"):
            await c.chat().user("hi").execute()
        with pytest.raises(MalformedResponseError, match="unsupported content-encoding 'br'"):
            await c.chat().user("hi").execute()


async def test_gzip_bomb_in_a_stream_hits_the_event_cap() -> None:
    bomb = gzip_bomb(24)  # zeros: never a line end, so past the SSE decoder's 16 MiB cap
    reply = head(content_type="text/event-stream", content_encoding="gzip", connection="close")
    async with serving(replying(reply + bomb), max_retries=0) as (_server, c):
        with pytest.raises(MalformedResponseError, match="max_buffer"):
            async with c.chat().user("hi").stream():
                pass


async def test_max_response_bytes_is_checked() -> None:
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ConfigurationError, match="max_response_bytes must be a positive"):
            client("http://127.0.0.1:9/v1", max_response_bytes=bad)


BOMB_SCRIPT = textwrap.dedent(
    """
    import resource, sys, zlib
    import anyio
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from ailib_anyio import MalformedResponseError
    from test_hostile import gzip_bomb, head, replying, serving

    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB

    async def main(mode):
        bomb = gzip_bomb(255)  # 255 MiB of zeros: about 255 KiB on the wire
        if mode == "execute":
            reply = head(content_type="application/json", content_encoding="gzip",
                         content_length=len(bomb))
        else:
            reply = head(content_type="text/event-stream", content_encoding="gzip",
                         connection="close")
        reply += bomb
        async with serving(replying(reply), max_retries=0) as (server, c):
            base = rss()
            try:
                if mode == "execute":
                    await c.chat().user("hi").execute()
                else:
                    async with c.chat().user("hi").stream():
                        pass
            except MalformedResponseError:
                print(len(bomb), rss() - base)
                return
        raise SystemExit("no MalformedResponseError")

    anyio.run(main, sys.argv[1], backend=sys.argv[2])
    """
)


@pytest.mark.parametrize("mode", ["execute", "stream"])
def test_gzip_bomb_peak_memory(mode: str, anyio_backend: str, tmp_path: Path) -> None:
    script = tmp_path / "bomb.py"
    script.write_text(BOMB_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests" / "transport")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), mode, anyio_backend],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    wire, grew = done.stdout.split()
    assert int(wire) < 300 * 1024
    assert float(grew) < 64, f"peak RSS grew {grew} MiB for a {mode} gzip bomb"


# ------------------------------------------------------------------ 6: wrong shapes


@pytest.mark.parametrize("body", [[1, 2, 3], "hello", None, 42, True, {}, {"id": "x"}])
async def test_wrong_shape_json_is_malformed(mock: MockProvider, body: object) -> None:
    mock.enqueue(Reply.json(body))
    async with client(mock.openai_base_url, max_retries=0) as c:
        with pytest.raises(MalformedResponseError) as info:
            await c.chat().user("hi").execute()
    text = json.dumps(body)
    assert info.value.message == (
        f"the response has no choice, candidate or content the manifest can find: {text}"
    )
    assert info.value.status_code == 200


@pytest.mark.parametrize(
    "choice",
    [
        {"message": {"role": "assistant", "content": ""}, "finish_reason": "stop"},
        {"message": {"role": "assistant", "content": None}, "finish_reason": "length"},
        {
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            }
        },
    ],
)
async def test_empty_content_with_something_else_is_fine(
    mock: MockProvider, choice: dict[str, object]
) -> None:
    mock.enqueue(Reply.json({"id": "c", "model": "gpt-4o", "choices": [{"index": 0, **choice}]}))
    async with client(mock.openai_base_url, max_retries=0) as c:
        response = await c.chat().user("hi").execute()
    assert response.content == ""
    assert response.finish_reason is not None or response.tool_calls


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", b"<html><body>Welcome to the hotel wifi</body></html>"),
        ("application/json", completion("not a stream")),
    ],
)
async def test_non_stream_answer_to_a_stream_request_is_malformed(
    mock: MockProvider, content_type: str, body: bytes
) -> None:
    mock.enqueue(Reply(headers={"content-type": content_type}, body=body))
    retry = RetryConfig(max_retries=3, min_delay=0.01, max_delay=0.05)
    async with client(mock.openai_base_url, retry=retry) as c:
        with pytest.raises(MalformedResponseError) as info:
            async with c.chat().user("hi").stream():
                pass
    media = content_type.partition(";")[0]
    assert info.value.message == (
        f"the provider answered a stream request with {media!r}, not a stream"
    )
    assert not info.value.retryable
    assert len(mock.requests) == 1


# ------------------------------------------------------------------ 7: bytes past the end


async def test_bytes_after_content_length_never_answer_the_next_request() -> None:
    first, injected, second = completion("first"), completion("INJECTED"), completion("second")

    async def handler(stream: anyio.abc.SocketStream, n: int) -> bool:
        if n == 1:  # a response, then a forged one in the same write
            await stream.send(
                head(content_type="application/json", content_length=len(first))
                + first
                + head(content_type="application/json", content_length=len(injected))
                + injected
            )
            await anyio.sleep(0.2)
            return True
        await stream.send(head(content_type="application/json", content_length=len(second)))
        await stream.send(second)
        return True

    async with serving(handler, max_retries=0) as (server, c):
        assert (await c.chat().user("hi").execute()).content == "first"
        assert (await c.chat().user("hi").execute()).content == "second"
        assert (await c.chat().user("hi").execute()).content == "second"
    assert server.requests == 3
    assert server.connections == 2  # the dirty one was dropped, the clean one reused


async def test_bytes_after_a_stream_never_answer_the_next_request() -> None:
    events = sse(delta("streamed")) + b"data: [DONE]\n\n"
    chunked = f"{len(events):x}\r\n".encode() + events + b"\r\n0\r\n\r\n"
    injected = completion("INJECTED")
    forged = head(content_type="application/json", content_length=len(injected)) + injected
    second = completion("second")

    async def handler(stream: anyio.abc.SocketStream, n: int) -> bool:
        if n == 1:
            sse_head = head(content_type="text/event-stream", transfer_encoding="chunked")
            await stream.send(sse_head + chunked + forged)
            await anyio.sleep(0.2)
            return True
        await stream.send(head(content_type="application/json", content_length=len(second)))
        await stream.send(second)
        return True

    async with serving(handler, max_retries=0) as (server, c):
        async with c.chat().user("hi").stream() as stream:
            async for _ in stream:
                pass
        assert stream.response.content == "streamed"
        assert (await c.chat().user("hi").execute()).content == "second"
    assert server.connections == 2


async def test_clean_responses_keep_their_connection() -> None:
    body = completion("same")
    reply = head(content_type="application/json", content_length=len(body)) + body
    async with serving(replying(reply), max_retries=0) as (server, c):
        for _ in range(3):
            assert (await c.chat().user("hi").execute()).content == "same"
    assert server.connections == 1
