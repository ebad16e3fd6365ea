"""The sync facade ``ailib_anyio.sync``: blocking calls over a portal of the client's own.

These are plain synchronous tests. The mock provider runs in a blocking portal of its own
(another thread and event loop), as it would for a script; each test checks that the
client's portal thread is gone once its block is left.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.from_thread
import pytest

from ailib_anyio import (
    ChatResponse,
    ConfigurationError,
    ConnectionPool,
    ContentDelta,
    PoolConfig,
    RateLimitedError,
    ServerError,
    StreamNotOpenError,
    Usage,
)
from ailib_anyio.sync import SyncClient, open_client, open_pool
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

LONG = "word " * 400  # enough chunks that the stream is still going when the test leaves it

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]


class Served:
    """A MockProvider running in a blocking portal, and a way to wait on it."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, mock: MockProvider) -> None:
        self.portal = portal
        self.mock = mock

    def wait_disconnected(self, timeout: float = 5) -> None:
        async def wait() -> None:
            with anyio.fail_after(timeout):
                await self.mock.requests[-1].wait_disconnected()

        self.portal.call(wait)
        assert self.mock.requests[-1].client_disconnected
        assert not self.mock.requests[-1].completed


@pytest.fixture
def served() -> Iterator[Served]:
    before = set(threading.enumerate())
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(MockProvider()) as mock,
    ):
        yield Served(portal, mock)
    # No thread left behind (an idle worker thread of an earlier test may end meanwhile).
    assert set(threading.enumerate()) <= before


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(served: Served, model: str = "openai/gpt-4o", **kw: Any) -> SyncClient:
    return open_client(
        model,
        api_key="sk-test-secret-123",
        base_url=served.mock.openai_base_url,
        **{"max_retries": 0, **kw},
    )


def portal_threads(name: str = "ailib_anyio.sync portal") -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


POOL_PORTAL = "ailib_anyio.sync pool portal"


# ------------------------------------------------------------------ happy paths


def test_execute(served: Served, backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content="Four.", usage=(12, 2)))
    with client_for(served, backend=backend) as client:
        assert len(portal_threads()) == 1
        reply = client.chat().system("Be brief.").user("2+2?").temperature(0).execute()
    assert portal_threads() == []
    assert isinstance(reply, ChatResponse)
    assert reply.content == "Four."
    assert reply.usage is not None
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 2)
    assert reply.finish_reason == "stop"
    sent = served.mock.requests[0].json
    assert sent["model"] == "gpt-4o"
    assert sent["temperature"] == 0
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_stream_events_and_response(served: Served, backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content="Hello streaming world", chunk_size=5, usage=(3, 4)))
    with client_for(served, backend=backend) as client:
        with client.chat().user("hi").stream() as stream:
            events = list(stream)
        texts = [e.text for e in events if isinstance(e, ContentDelta)]
        assert texts == ["Hello", " stre", "aming", " worl", "d"]
        assert Usage(input_tokens=3, output_tokens=4) in events
        assert stream.response.content == "Hello streaming world"
        assert stream.response.finish_reason == "stop"
        assert client.current_inflight == 0
    assert served.mock.requests[0].completed


def test_several_requests_on_one_client(served: Served) -> None:
    served.mock.enqueue(*(ScriptedReply(content=f"reply {i}") for i in range(3)))
    with client_for(served) as client:
        replies = [client.chat().user("again").execute().content for _ in range(3)]
    assert replies == ["reply 0", "reply 1", "reply 2"]


def test_embed(served: Served) -> None:
    served.mock.enqueue(
        Reply.json({"data": [{"embedding": [0.5, -1, 2]}], "usage": {"prompt_tokens": 2}})
    )
    with client_for(served, "openai/text-embedding-3-small") as client:
        result = client.embed("one text")
    assert result.vectors == [[0.5, -1.0, 2.0]]
    assert result.usage == Usage(input_tokens=2)
    assert served.mock.requests[0].json["input"] == ["one text"]


# ------------------------------------------------------- early exits close the stream


def test_break_closes_the_connection(served: Served, backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content=LONG, chunk_size=4, delay_between_chunks=0.005))
    with client_for(served, backend=backend) as client:
        with client.chat().user("long story").stream() as stream:
            for event in stream:
                if isinstance(event, ContentDelta):
                    break
        assert stream.response.content == "word"  # what was delivered before the break
        served.wait_disconnected()
        assert client.current_inflight == 0


def test_exception_in_stream_block_propagates_and_closes(served: Served, backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content=LONG, chunk_size=4, delay_between_chunks=0.005))
    with client_for(served, backend=backend) as client:
        with pytest.raises(KeyError, match="boom"), client.chat().user("story").stream() as s:
            for _ in s:
                raise KeyError("boom")
        served.wait_disconnected()
        assert client.current_inflight == 0


def test_exception_in_client_block_propagates_and_closes(served: Served, backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content=LONG, chunk_size=4, delay_between_chunks=0.005))
    with pytest.raises(KeyError, match="boom"), client_for(served, backend=backend) as client:
        stream = client.chat().user("story").stream().__enter__()  # never left: the client
        next(stream)  # block's exit must still close everything
        raise KeyError("boom")
    assert portal_threads() == []
    served.wait_disconnected()
    with pytest.raises(RuntimeError, match="the client is closed"):
        client.chat().user("again").execute()


# ------------------------------------------------------------------ errors


def test_errors_propagate_unchanged(served: Served, backend: str) -> None:
    served.mock.enqueue(
        Reply.error(429, "Slow down", type="rate_limit_error", headers={"retry-after": "7"}),
        Reply.error(429, "Still too fast", type="rate_limit_error"),
        Reply.error(500, "Oops", type="server_error"),
    )
    with client_for(served, backend=backend) as client:
        with pytest.raises(RateLimitedError, match="Slow down") as info:
            client.chat().user("hi").execute()
        assert info.value.status_code == 429
        assert info.value.retry_after == 7
        assert info.value.provider == "openai"
        stream = client.chat().user("hi").stream()
        with pytest.raises(RateLimitedError, match="Still too fast"), stream:
            pytest.fail("the block must not run")
        assert client.current_inflight == 0
        with pytest.raises(RuntimeError, match="inside its block"):
            iter(stream)
        with pytest.raises(ServerError):
            client.chat().user("hi").execute()
        # The client is still usable after errors.
        served.mock.enqueue(ScriptedReply(content="fine"))
        assert client.chat().user("hi").execute().content == "fine"


def test_configuration_errors_are_raised_before_any_thread_starts() -> None:
    with pytest.raises(ConfigurationError, match="base_url must start with http"):
        open_client("openai/gpt-4o", api_key="k", base_url="ftp://example")
    with pytest.raises(ConfigurationError, match="at least one message"):
        open_client("openai/gpt-4o", api_key="k").chat().stream()
    assert portal_threads() == []


def test_clients_share_a_sync_pool(served: Served, backend: str) -> None:
    """Clients given an ``open_pool`` pool run in its event loop (no portal of their own)
    and share its connections: one origin, two clients, the second request on the
    connection the first one left idle."""
    served.mock.enqueue(ScriptedReply(content="one"), ScriptedReply(content="two"))
    with open_pool(PoolConfig(max_keepalive_connections=4), backend=backend) as pool:
        assert len(portal_threads(POOL_PORTAL)) == 1
        with (
            client_for(served, pool=pool) as big,
            client_for(served, "openai/gpt-4o-mini", pool=pool) as small,
        ):
            assert portal_threads() == []  # the clients' loop is the pool's
            assert big.chat().user("1").execute().content == "one"
            assert small.chat().user("2").execute().content == "two"
            stats = pool.get_stats()["openai"]
            assert (stats.clients, stats.requests_served) == (2, 2)
            assert (stats.active_connections, stats.idle_connections) == (0, 1)
        assert pool.get_stats()["openai"].clients == 0
    assert portal_threads(POOL_PORTAL) == []
    assert [r.json["model"] for r in served.mock.requests] == ["gpt-4o", "gpt-4o-mini"]


def test_leaving_a_sync_pool_closes_its_clients(served: Served, backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content="fine"))
    with open_pool(backend=backend) as pool:
        client = client_for(served, pool=pool).__enter__()
        assert client.chat().user("hi").execute().content == "fine"
    # the pool closed the client still open on it (its tasks lived in the pool's loop)
    with pytest.raises(RuntimeError, match="the client is closed"):
        client.chat().user("hi").execute()
    client.close()  # idempotent
    assert portal_threads(POOL_PORTAL) == []
    with (
        pytest.raises(RuntimeError, match="SyncConnectionPool is closed"),
        client_for(served, pool=pool),
    ):
        pass
    pool.close()  # idempotent


def test_a_sync_pool_is_checked_before_any_thread_starts(served: Served) -> None:
    pool = open_pool(backend="trio")
    with (
        pytest.raises(RuntimeError, match="SyncConnectionPool is not open"),
        client_for(served, pool=pool),
    ):
        pass
    with pytest.raises(ConfigurationError, match=r"backend='asyncio' differs from the pool's"):
        client_for(served, pool=pool, backend="asyncio")
    with pytest.raises(ConfigurationError, match="backend_options cannot be given"):
        client_for(served, pool=pool, backend_options={"debug": True})
    with pytest.raises(ConfigurationError, match=r"a ConnectionPool belongs to the event loop"):
        client_for(served, pool=ConnectionPool())
    with pytest.raises(ConfigurationError, match="PoolConfig"):
        open_pool(config={"max_connections": 4})  # type: ignore[arg-type]
    assert portal_threads() == [] and portal_threads(POOL_PORTAL) == []


def test_misuse_is_a_clear_runtime_error(served: Served) -> None:
    served.mock.enqueue(ScriptedReply(content="Hello"))
    client = client_for(served)
    with pytest.raises(RuntimeError, match=r"not open: use it inside 'with open_client\(...\)'"):
        client.chat().user("hi").execute()
    with client:
        stream = client.chat().user("hi").stream()
        message = r"iterate a stream inside its block: 'with builder.stream\(\) as stream'"
        with pytest.raises(RuntimeError, match=message):
            iter(stream)
        with pytest.raises(RuntimeError, match=message):
            next(stream)
        with stream:
            pass
        with pytest.raises(RuntimeError, match=message):
            iter(stream)
        with pytest.raises(StopIteration):
            next(stream)  # closed: the end, as for a stream closed while iterating
        with pytest.raises(RuntimeError, match="entered only once"), stream:
            pass
        with pytest.raises(RuntimeError, match="opened only once"), client:
            pass
    with pytest.raises(RuntimeError, match="the client is closed"):
        client.embed("x")
    client.close()  # idempotent


def test_a_stream_iterated_outside_its_block_says_why(served: Served, backend: str) -> None:
    block = "iterate a stream inside its block: 'with builder.stream() as stream'"
    before = (
        f"{block}; entering the block sends the request and opens the HTTP response, which"
        " leaving the block closes"
    )
    after = (
        f"{block}; this stream's block has ended, which closed its HTTP response"
        " (stream.response keeps what was received)"
    )
    served.mock.enqueue(ScriptedReply(content="one two three", chunk_size=4))
    with client_for(served, backend=backend) as client:
        stream = client.chat().user("hi").stream()
        with pytest.raises(StreamNotOpenError, match=f"^{re.escape(before)}$"):
            for _ in stream:
                pass
        with pytest.raises(StreamNotOpenError, match=f"^{re.escape(before)}$"):
            next(stream)
        with stream:
            for _ in stream:
                break
        with pytest.raises(StreamNotOpenError, match=f"^{re.escape(after)}$"):
            for _ in stream:
                pass
        assert stream.response.content == "one "


def test_async_spellings_on_the_sync_facade_say_blocking(served: Served, backend: str) -> None:
    with client_for(served, backend=backend) as client:
        stream = client.chat().user("hi").stream()

        async def iterate() -> None:
            async for _ in stream:  # type: ignore[attr-defined]
                pass

        with pytest.raises(TypeError) as info:
            anyio.run(iterate, backend=backend)
        assert str(info.value) == (
            "a SyncChatStream is blocking: iterate it with 'for event in stream' inside"
            " 'with builder.stream() as stream' (async code: ailib_anyio.open_client)"
        )
    unopened = client_for(served, backend=backend)

    async def enter() -> None:
        async with unopened:  # type: ignore[attr-defined]
            pytest.fail("the block must not run")

    with pytest.raises(TypeError) as info:
        anyio.run(enter, backend=backend)
    assert str(info.value) == (
        "a SyncClient is blocking: use 'with open_client(...) as client:' (async code:"
        " 'async with ailib_anyio.open_client(...) as client:')"
    )
    assert served.mock.requests == []
    assert portal_threads() == []


def test_a_stream_shows_its_state_events_and_text(served: Served, backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content="Hello <b>world</b>", chunk_size=6, usage=(3, 4)))
    with client_for(served, backend=backend) as client:
        stream = client.chat().user("hi").stream()
        assert "<strong>SyncChatStream (unopened)</strong>" in stream._repr_html_()
        with stream:
            first = next(stream)
            assert first == ContentDelta("Hello ")
            html = stream._repr_html_()
            assert "<strong>SyncChatStream (open)</strong>" in html
            assert '>events so far</th><td style="text-align:left">1</td>' in html
            assert "Hello </pre>" in html
            rest = list(stream)
            markdown = stream._repr_markdown_()
            assert markdown.startswith(
                "**SyncChatStream (finished)**\n\n> Hello &lt;b&gt;world&lt;/b&gt;\n\n"
                f"- state: finished\n- events so far: {1 + len(rest)}\n"
                "- text so far: 18 characters\n"
            )
            assert "- tokens: 3 in, 4 out" in markdown
        assert "<strong>SyncChatStream (closed)</strong>" in stream._repr_html_()


# ------------------------------------------------------------------ where it runs


def test_from_a_plain_script() -> None:
    script = textwrap.dedent(
        """
        import anyio.from_thread
        from ailib_anyio.sync import open_client
        from ailib_anyio.testing import MockProvider, ScriptedReply

        with anyio.from_thread.start_blocking_portal() as portal:
            with portal.wrap_async_context_manager(MockProvider()) as mock:
                mock.enqueue(
                    ScriptedReply(content="Four."),
                    ScriptedReply(content="Hello there", chunk_size=3),
                )
                url = mock.openai_base_url
                with open_client("openai/gpt-4o", api_key="k", base_url=url) as client:
                    print(client.chat().user("2+2?").execute().content)
                    with client.chat().user("hi").stream() as stream:
                        print(sum(1 for _ in stream) > 1)
                    print(stream.response.content)
        print("done")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines() == ["Four.", "True", "Hello there", "done"]


def test_from_a_thread_without_an_event_loop(served: Served, backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content="from a thread"), Reply.error(429, "Slow down"))
    results: list[object] = []

    def work() -> None:
        try:
            with client_for(served, backend=backend) as client:
                results.append(client.chat().user("hi").execute().content)
                client.chat().user("again").execute()
        except BaseException as exc:  # handed to the test's thread
            results.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert results[0] == "from a thread"
    assert isinstance(results[1], RateLimitedError)
    assert portal_threads() == []


def test_one_client_shared_by_threads(served: Served) -> None:
    served.mock.enqueue(*(ScriptedReply(content="ok", delay_before_headers=0.05) for _ in range(4)))
    results: list[str] = []
    with client_for(served) as client:

        def work() -> None:
            results.append(client.chat().user("hi").execute().content)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == ["ok"] * 4
    assert served.mock.max_active_requests == 4  # concurrent, not serialised


@pytest.mark.parametrize("loop_backend", BACKENDS)
def test_refused_inside_a_running_event_loop(served: Served, loop_backend: str) -> None:
    served.mock.enqueue(ScriptedReply(content="outside"))
    message = f"cannot be used inside a running {loop_backend} event loop"
    client = client_for(served)

    async def open_inside() -> None:
        with pytest.raises(RuntimeError, match=message):
            client.__enter__()

    anyio.run(open_inside, backend=loop_backend)
    assert portal_threads() == []

    with client:

        async def call_inside() -> None:
            with pytest.raises(RuntimeError, match=message):
                client.chat().user("hi").execute()
            with pytest.raises(RuntimeError, match=message):
                client.chat().user("hi").stream().__enter__()
            with pytest.raises(RuntimeError, match=message):
                client.embed("x")

        anyio.run(call_inside, backend=loop_backend)
        assert client.chat().user("hi").execute().content == "outside"
    assert len(served.mock.requests) == 1


def test_interrupt_while_waiting_cancels_the_request() -> None:
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        import anyio, anyio.from_thread
        from ailib_anyio.sync import open_client
        from ailib_anyio.testing import MockProvider, ScriptedReply

        # Ctrl-C raises KeyboardInterrupt, as in a program started from a shell, even when
        # this test runs in a process that ignores SIGINT (a pytest-xdist worker)
        signal.signal(signal.SIGINT, signal.default_int_handler)

        with anyio.from_thread.start_blocking_portal() as portal:
            with portal.wrap_async_context_manager(MockProvider()) as mock:
                mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
                url = mock.openai_base_url

                def interrupt_once_sent() -> None:
                    deadline = time.monotonic() + 10
                    while not mock.requests and time.monotonic() < deadline:
                        time.sleep(0.01)
                    os.kill(os.getpid(), signal.SIGINT)

                interrupter = threading.Thread(target=interrupt_once_sent)
                interrupter.start()
                started = time.monotonic()
                try:
                    with open_client("openai/gpt-4o", api_key="k", base_url=url) as client:
                        client.chat().user("hi").execute()
                except KeyboardInterrupt:
                    print("interrupted", time.monotonic() - started < 10)

                async def wait() -> None:
                    with anyio.fail_after(5):
                        await mock.requests[-1].wait_finished()

                portal.call(wait)
                print("disconnected", mock.requests[-1].client_disconnected)
                interrupter.join()
        print("threads", threading.active_count())
        """
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines() == ["interrupted True", "disconnected True", "threads 1"]


def test_a_notebook_kernel_loop_is_allowed(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    # Jupyter runs cells inside its asyncio loop, yet cells are blocking code to their
    # authors; only that loop (the kernel's, in the main thread) is let through.
    class ZMQInteractiveShell:
        pass

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    served.mock.enqueue(ScriptedReply(content="from a cell"))

    async def cell() -> str:
        with client_for(served) as client:
            return client.chat().user("hi").execute().content

    assert asyncio.run(cell()) == "from a cell"
    with pytest.raises(RuntimeError, match="running trio event loop"):
        anyio.run(cell, backend="trio")
