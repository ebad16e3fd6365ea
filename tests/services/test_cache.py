"""The response cache: each backend alone (memory, SQLite, a real Redis), then through a
client against the loopback mock provider (hits cost no HTTP request, streams replay the
same events, single flight, cancellation, errors), on both anyio backends."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs
import pytest

import ailib_anyio
from ailib_anyio import (
    CacheError,
    Call,
    ChatResponse,
    ConfigurationError,
    InvalidRequestError,
    Message,
    Middleware,
    MiddlewareError,
    ReplayStream,
    StreamWatcher,
    open_client,
)
from ailib_anyio._client._middleware import Next
from ailib_anyio.cache import (
    CacheBackend,
    CacheConfig,
    CacheManager,
    CacheStats,
    DiskCache,
    MemoryCache,
    NullCache,
    RedisCache,
)
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("collect_redis_leftovers")]

KEY = "sk-cache-test-key-0123456789"
MODEL = "openai/gpt-4o"
REPO = Path(ailib_anyio.__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _prefix() -> str:
    return f"ailib-test:{uuid.uuid4().hex}:"


@pytest.fixture(params=["memory", "disk", "redis"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., CacheBackend]:
    """Makes backends of one kind (``clock`` where the backend measures time itself)."""
    kind = request.param
    if kind == "memory":
        return lambda clock=None: MemoryCache(max_size=100, **({"clock": clock} if clock else {}))
    if kind == "disk":
        return lambda clock=None: DiskCache(
            tmp_path / "cache.sqlite3", **({"clock": clock} if clock else {})
        )
    url = request.getfixturevalue("redis_url")
    return lambda clock=None: RedisCache(url, prefix=_prefix(), timeout=2.0)


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def _client(mock: MockProvider, cache: CacheManager, **settings: Any) -> Any:
    return open_client(MODEL, api_key=KEY, base_url=mock.openai_base_url, cache=cache, **settings)


async def _read(stream: Any) -> list[Any]:
    return [event async for event in stream]


# ------------------------------------------------------------------ backends alone


async def test_backend_get_set_delete_clear(make_backend: Callable[..., CacheBackend]) -> None:
    async with make_backend() as backend:
        assert await backend.get("a") is None
        await backend.set("a", b"\x00one", None)
        await backend.set("b", b"two", 60)
        assert await backend.get("a") == b"\x00one"
        await backend.set("a", b"replaced", 60)  # an upsert
        assert await backend.get("a") == b"replaced"
        await backend.delete("a")
        await backend.delete("missing")
        assert await backend.get("a") is None
        assert await backend.get("b") == b"two"
        await backend.clear()
        assert await backend.get("b") is None


async def test_backend_entries_expire(make_backend: Callable[..., CacheBackend]) -> None:
    clock = FakeClock()
    backend = make_backend(clock)
    async with backend:
        if isinstance(backend, RedisCache):
            # Redis measures time itself: a short server TTL and a generous wait
            await backend.set("short", b"x", 0.05)
            await backend.set("long", b"y", 30)
            await backend.set("forever", b"z", None)
            left = await backend.ttl("long")
            assert left is not None and 20 < left <= 30
            assert await backend.ttl("forever") is None
            await anyio.sleep(0.5)
        else:
            await backend.set("short", b"x", 5)
            await backend.set("long", b"y", 30)
            await backend.set("forever", b"z", None)
            clock.now += 4.9
            assert await backend.get("short") == b"x"
            clock.now += 0.2
        assert await backend.get("short") is None
        assert await backend.get("long") == b"y"
        assert await backend.get("forever") == b"z"


async def test_memory_cache_evicts_the_least_recently_used() -> None:
    backend = MemoryCache(max_size=3)
    for key in "abc":
        await backend.set(key, key.encode(), None)
    assert await backend.get("a") == b"a"  # now b is the least recently used
    await backend.set("d", b"d", None)
    assert await backend.get("b") is None
    assert [await backend.get(k) for k in "acd"] == [b"a", b"c", b"d"]
    assert len(backend) == 3


async def test_memory_cache_evicts_expired_entries_before_live_ones() -> None:
    clock = FakeClock()
    backend = MemoryCache(max_size=2, clock=clock)
    await backend.set("old", b"1", 1)
    await backend.set("live", b"2", 100)
    await backend.get("old")  # recently used, but expired below
    clock.now += 2
    await backend.set("new", b"3", 100)
    assert await backend.get("live") == b"2"
    assert await backend.get("new") == b"3"


async def test_disk_cache_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "cache.sqlite3"  # directories are created
    first = DiskCache(path)
    await first.set("k", b"v", None)
    await first.aclose()
    second = DiskCache(path)
    assert await second.get("k") == b"v"
    await second.aclose()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


async def test_disk_cache_purges_expired_rows(tmp_path: Path) -> None:
    clock = FakeClock()
    disk = DiskCache(tmp_path / "c.sqlite3", clock=clock)
    await disk.set("gone", b"1", 1)
    await disk.set("kept", b"2", None)
    clock.now += 2
    assert await disk.purge_expired() == 1
    assert await disk.get("kept") == b"2"
    await disk.aclose()


async def test_disk_cache_a_cancelled_set_leaves_the_file_consistent(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    disk = DiskCache(path)
    await disk.set("warm", b"x", None)  # creates the file and its schema
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the set waits in its thread
    value = b"v" * 200_000

    async def release_later() -> None:
        await anyio.sleep(0.3)
        blocker.execute("COMMIT")

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_later)
        with anyio.move_on_after(0.05) as scope:
            await disk.set("k", value, None)
    assert scope.cancel_called
    # the caller came back only once its statement had finished: the value is whole
    assert await disk.get("k") == value
    assert blocker.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    blocker.close()
    await disk.aclose()


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import anyio
    from ailib_anyio.cache import DiskCache

    path, name, backend, ready_dir = sys.argv[1:5]
    async def main() -> None:
        disk = DiskCache(path)
        Path(ready_dir, name).touch()
        deadline = time.monotonic() + 20  # both processes start writing together
        while len(list(Path(ready_dir).iterdir())) < 2 and time.monotonic() < deadline:
            await anyio.sleep(0.01)

        async def write(part: int) -> None:
            for i in range(part, 300, 10):
                await disk.set(f"{name}-{i}", f"{name}:{i}".encode() * 50, None)
                await disk.set(f"shared-{i}", name.encode() * 100, 3600)

        async with anyio.create_task_group() as tg:
            for part in range(10):
                tg.start_soon(write, part)
        await disk.aclose()

    anyio.run(main, backend=backend)
    """
)


def test_disk_cache_two_processes_writing_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    ready = tmp_path / "ready"
    ready.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), name, backend, str(ready)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name, backend in (("p1", "asyncio"), ("p2", "trio"))
    ]
    outputs = [w.communicate(timeout=120)[0].decode() for w in writers]
    assert [w.returncode for w in writers] == [0, 0], outputs
    db = sqlite3.connect(path)
    rows = dict(db.execute("SELECT key, value FROM ailib_cache").fetchall())
    for name in ("p1", "p2"):
        for i in range(300):
            assert rows[f"{name}-{i}"] == f"{name}:{i}".encode() * 50
    for i in range(300):  # both wrote it: one of the two, whole
        assert rows[f"shared-{i}"] in (b"p1" * 100, b"p2" * 100)
    assert len(rows) == 900
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


# ------------------------------------------------------------------ Redis unreachable


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_redis_fails_fast_with_a_typed_error() -> None:
    url = f"redis://:hunter2@127.0.0.1:{_closed_port()}/0"
    cache = CacheManager(backend=RedisCache(url, timeout=1.0))
    start = time.monotonic()
    with anyio.fail_after(10):
        with pytest.raises(CacheError, match=r"cannot reach Redis at redis://127\.0\.0\.1") as info:
            async with open_client(MODEL, api_key=KEY, cache=cache):
                pass  # pragma: no cover
    assert time.monotonic() - start < 3
    assert info.value.backend == "RedisCache"
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(cache.backend)
    assert not cache.is_open


async def test_a_redis_that_never_answers_fails_at_open_not_hangs() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    held: list[anyio.abc.SocketStream] = []

    async def accept_and_say_nothing(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            held.append(stream)
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept_and_say_nothing)
        start = time.monotonic()
        with anyio.fail_after(15):
            with pytest.raises(CacheError, match="cannot reach Redis"):
                async with CacheManager(
                    backend=RedisCache(f"redis://127.0.0.1:{port}/0", timeout=0.5)
                ):
                    pass  # pragma: no cover
        assert time.monotonic() - start < 5
        tg.cancel_scope.cancel()
    await listener.aclose()


# ------------------------------------------------------------------ the manager alone


async def test_reference_usage_get_set_and_stats() -> None:
    cache = CacheManager(
        config=CacheConfig(default_ttl_seconds=3600), backend=MemoryCache(max_size=1000)
    )
    messages = [Message.user("2+2?")]
    key = cache.generate_key(model="gpt-4o", messages=messages)
    assert await cache.get(key) is None
    response = ChatResponse(content="4", model="gpt-4o", raw={"id": "x"})
    await cache.set(key, response)
    cached = await cache.get(key)
    assert cached == response and cached is not response and cached.raw == {"id": "x"}
    assert cache.stats() == CacheStats(hits=1, misses=1, stores=1)
    assert cache.stats().hit_ratio == 0.5
    cache.reset_stats()
    assert cache.stats().hit_ratio == 0.0


def test_keys_are_stable_across_processes_and_sensitive_to_every_part() -> None:
    cache = CacheManager()
    messages = [Message.system("Be brief."), Message.user("2+2?")]
    key = cache.generate_key(model="gpt-4o", messages=messages, temperature=0.5)
    assert len(key) == 64 and int(key, 16) >= 0
    code = textwrap.dedent(
        """
        from ailib_anyio import Message
        from ailib_anyio.cache import CacheManager
        messages = [Message.system("Be brief."), Message.user("2+2?")]
        print(CacheManager().generate_key(model="gpt-4o", messages=messages, temperature=0.5))
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == key
    others = {
        cache.generate_key(model="gpt-4o-mini", messages=messages, temperature=0.5),
        cache.generate_key(model="gpt-4o", messages=messages[1:], temperature=0.5),
        cache.generate_key(model="gpt-4o", messages=messages, temperature=0.6),
        cache.generate_key(model="gpt-4o", messages=messages, temperature=0.5, stream=True),
        CacheManager(CacheConfig(namespace="tenant-b")).generate_key(
            model="gpt-4o", messages=messages, temperature=0.5
        ),
    }
    assert key not in others and len(others) == 5
    # parameters left as None are left out; mapping order does not matter
    assert cache.generate_key(model="m", body={"a": 1, "b": 2}, top_p=None) == (
        cache.generate_key(model="m", body=b'{"b": 2, "a": 1}')
    )


def test_bad_settings_are_named() -> None:
    with pytest.raises(ConfigurationError, match="default_ttl_seconds must be a positive number"):
        CacheConfig(default_ttl_seconds=0)
    with pytest.raises(ConfigurationError, match="single_flight must be True or False"):
        CacheConfig(single_flight="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="backend must be a CacheBackend"):
        CacheManager(backend={})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_size must be a positive integer"):
        MemoryCache(max_size=0)
    with pytest.raises(ConfigurationError, match="url must be a redis://"):
        RedisCache("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError, match=r"cache must be a CacheManager"):
        open_client(MODEL, api_key=KEY, cache=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot be part of a cache key"):
        CacheManager().generate_key(model="m", seed=object())


# ------------------------------------------------------------------ through a client


@pytest.fixture
def cache(make_backend: Callable[..., CacheBackend]) -> CacheManager:
    return CacheManager(backend=make_backend())


async def test_a_hit_costs_no_http_request(mock: MockProvider, cache: CacheManager) -> None:
    mock.enqueue(ScriptedReply(content="cached answer", usage=(3, 2)))
    async with _client(mock, cache) as client:
        first = await client.chat().user("hi").execute()
        second = await client.chat().user("hi").execute()
        assert len(mock.requests) == 1
        assert second == first and second.raw == first.raw
        assert first.cost is not None and second.cost == first.cost  # prices kept exact
        other = await client.chat().user("something else").execute()
        assert other.content == "Mock reply to: something else"
        assert len(mock.requests) == 2
    # a second client (the same process or another) finds the entry too: the key holds no
    # client identity
    async with _client(mock, cache) as client:
        assert await client.chat().user("hi").execute() == first
    assert len(mock.requests) == 2
    assert cache.stats() == CacheStats(hits=2, misses=2, stores=2)


async def test_a_stream_replays_the_same_events(mock: MockProvider, cache: CacheManager) -> None:
    mock.enqueue(
        ScriptedReply(
            content="It is sunny in Paris today.",
            reasoning="The user wants weather.",
            tool_calls=[("get_weather", {"city": "Paris"})],
            chunk_size=4,
            usage=(7, 11),
        )
    )
    async with _client(mock, cache) as client:
        builder = client.chat().user("weather?")
        async with builder.stream() as stream:
            original = await _read(stream)
            original_response = stream.response
            original_who = (stream.provider, stream.model, stream.request_id)
        async with client.chat().user("weather?").stream() as stream:
            assert isinstance(stream._live, ReplayStream)
            replayed = await _read(stream)
            assert stream.response == original_response
            assert (stream.provider, stream.model, stream.request_id) == original_who
        assert len(mock.requests) == 1
        assert client.current_inflight == 0
    assert replayed == original
    assert len(original) > 10
    assert {type(e).__name__ for e in original} >= {
        "ReasoningDelta",
        "ContentDelta",
        "ToolCallStarted",
        "ToolCallCompleted",
        "Usage",
        "Finished",
    }
    # a stream and a request are cached apart: a request still goes upstream once
    async with _client(mock, cache) as client:
        await client.chat().user("weather?").execute()
    assert len(mock.requests) == 2


async def test_streams_read_only_partly_are_not_cached(mock: MockProvider) -> None:
    cache = CacheManager()
    async with _client(mock, cache) as client:
        async with client.chat().user("hi").stream() as stream:
            async for _ in stream:
                break
        async with client.chat().user("hi").stream() as stream:
            assert [e async for e in stream]
        async with client.chat().user("hi").stream() as stream:
            assert isinstance(stream._live, ReplayStream)
    assert len(mock.requests) == 2


async def test_errors_are_never_cached(mock: MockProvider) -> None:
    cache = CacheManager()
    mock.enqueue(Reply.error(400, "bad"), Reply.error(400, "bad"))
    async with _client(mock, cache, max_retries=0) as client:
        with pytest.raises(InvalidRequestError):
            await client.chat().user("hi").execute()
        with pytest.raises(InvalidRequestError):
            async with client.chat().user("hi").stream():
                pass  # pragma: no cover
        ok = await client.chat().user("hi").execute()
        assert await client.chat().user("hi").execute() == ok
    assert len(mock.requests) == 3
    assert cache.stats().stores == 1


async def test_a_stream_that_fails_midway_is_not_cached(mock: MockProvider) -> None:
    cache = CacheManager()
    mock.enqueue(ScriptedReply(content="x" * 400, chunk_size=4, close_after_bytes=600))
    async with _client(mock, cache, max_retries=0) as client:
        with pytest.raises(ailib_anyio.AiLibError):
            async with client.chat().user("hi").stream() as stream:
                await _read(stream)
        async with client.chat().user("hi").stream() as stream:
            assert not isinstance(stream._live, ReplayStream)
            await _read(stream)
    assert len(mock.requests) == 2


async def test_a_hundred_identical_requests_make_one(
    mock: MockProvider, cache: CacheManager
) -> None:
    mock.enqueue(ScriptedReply(content="once", delay_before_headers=0.3))
    replies: list[ChatResponse] = []
    async with _client(mock, cache) as client:

        async def ask() -> None:
            replies.append(await client.chat().user("same").execute())

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(ask)
    assert len(mock.requests) == 1
    assert len(replies) == 100 and {r.content for r in replies} == {"once"}
    stats = cache.stats()
    assert (stats.misses, stats.hits + stats.coalesced) == (1, 99)


async def test_identical_streams_in_flight_make_one_request(mock: MockProvider) -> None:
    cache = CacheManager()
    mock.enqueue(
        ScriptedReply(content="shared stream " * 5, chunk_size=5, delay_between_chunks=0.01)
    )
    seen: list[list[Any]] = []
    async with _client(mock, cache) as client:

        async def read() -> None:
            async with client.chat().user("same").stream() as stream:
                seen.append(await _read(stream))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(read)
    assert len(mock.requests) == 1
    assert len(seen) == 20 and all(events == seen[0] for events in seen)


async def test_a_cancelled_first_caller_does_not_strand_the_rest(mock: MockProvider) -> None:
    cache = CacheManager()
    mock.enqueue(ScriptedReply(content="never seen", delay_before_headers=5))
    replies: list[str] = []
    async with _client(mock, cache) as client:
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                first = anyio.CancelScope()

                async def leader() -> None:
                    with first:
                        await client.chat().user("same").execute()

                async def follower() -> None:
                    replies.append((await client.chat().user("same").execute()).content)

                tg.start_soon(leader)
                await anyio.sleep(0.1)  # the leader's request is in flight
                for _ in range(5):
                    tg.start_soon(follower)
                await anyio.sleep(0.1)  # the followers wait on it
                assert replies == [] and len(mock.requests) == 1
                first.cancel()
    # one follower took over (one more request); the others took its answer
    assert replies == ["Mock reply to: same"] * 5
    assert len(mock.requests) == 2


async def test_a_stream_closed_unfinished_hands_over_to_a_waiter(mock: MockProvider) -> None:
    cache = CacheManager()
    mock.enqueue(ScriptedReply(content="abcdefgh" * 20, chunk_size=2))
    seen: list[str] = []
    async with _client(mock, cache) as client:
        with anyio.fail_after(15):

            async def follower() -> None:
                async with client.chat().user("same").stream() as other:
                    await _read(other)
                    seen.append(other.response.content)

            async with (
                anyio.create_task_group() as tg,
                client.chat().user("same").stream() as stream,
            ):
                for _ in range(3):
                    tg.start_soon(follower)
                await anyio.sleep(0.1)  # they wait for this stream
                async for _ in stream:
                    break  # read only one event: nothing to share
    assert seen == ["Mock reply to: same"] * 3
    assert len(mock.requests) == 2


async def test_the_same_task_never_waits_for_its_own_open_stream(mock: MockProvider) -> None:
    cache = CacheManager()
    async with _client(mock, cache) as client:
        with anyio.fail_after(10):
            async with client.chat().user("same").stream() as outer:
                async with client.chat().user("same").stream() as inner:
                    inner_events = await _read(inner)
                outer_events = await _read(outer)
    assert inner_events == outer_events
    assert len(mock.requests) == 2


async def test_when_the_first_fails_the_waiters_ask_themselves(mock: MockProvider) -> None:
    cache = CacheManager()
    mock.enqueue(Reply.error(500, "boom", delay_before_headers=0.3))
    outcomes: list[str] = []
    async with _client(mock, cache, max_retries=0) as client:

        async def ask() -> None:
            try:
                outcomes.append((await client.chat().user("same").execute()).content)
            except ailib_anyio.ServerError:
                outcomes.append("error")

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(ask)
    assert sorted(outcomes) == ["Mock reply to: same"] * 3 + ["error"]
    assert len(mock.requests) == 4  # the failure was not shared


async def test_the_key_never_holds_the_api_key(
    mock: MockProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ailib_anyio._services._cache import _manager

    materials: list[bytes] = []
    original = _manager.canonical_json

    def spy(material: Any) -> bytes:
        materials.append(original(material))
        return materials[-1]

    monkeypatch.setattr(_manager, "canonical_json", spy)
    backend = MemoryCache()
    cache = CacheManager(backend=backend)
    request = None
    async with _client(mock, cache, headers={"x-api-key-extra": "sk-header-secret-999"}) as client:
        await client.chat().user("hi").execute()
        request = client.chat().user("hi").build()
        key = cache.key_for(client, client.call_view(request))
    async with open_client(
        MODEL, api_key="sk-another-key-42", base_url=mock.openai_base_url, cache=cache
    ) as other:
        assert cache.key_for(other, other.call_view(request)) == key  # the key plays no part
        await other.chat().user("hi").execute()
    assert len(mock.requests) == 1
    stored = list(backend._entries.items())
    for secret in (KEY, "sk-header-secret-999", "sk-another-key-42"):
        assert secret not in key
        assert all(secret.encode() not in m for m in materials)
        assert all(secret not in k and secret.encode() not in v for k, (v, _) in stored)
    assert materials and b'"Bearer' not in materials[0]


async def test_backend_failures_fail_open_or_raise(mock: MockProvider) -> None:
    class Broken(MemoryCache):
        async def get(self, key: str) -> bytes | None:
            raise CacheError("down", backend="Broken")

        async def set(self, key: str, value: bytes, ttl: float | None) -> None:
            raise CacheError("down", backend="Broken")

    cache = CacheManager(backend=Broken())
    async with _client(mock, cache) as client:
        assert (await client.chat().user("hi").execute()).content == "Mock reply to: hi"
        assert (await client.chat().user("hi").execute()).content == "Mock reply to: hi"
    assert len(mock.requests) == 2
    assert cache.stats().errors == 4
    strict = CacheManager(CacheConfig(fail_open=False), backend=Broken())
    async with _client(mock, strict) as client:
        with pytest.raises(MiddlewareError) as info:
            await client.chat().user("hi").execute()
    assert isinstance(info.value.__cause__, CacheError)


async def test_the_client_opens_only_a_cache_that_is_not_open(redis_url: str) -> None:
    async with MockProvider() as server:
        owned = CacheManager(backend=RedisCache(redis_url, prefix=_prefix()))
        async with _client(server, owned) as client:
            assert owned.is_open
            await client.chat().user("hi").execute()
        assert not owned.is_open and not owned.backend.is_open  # type: ignore[attr-defined]
        lent = CacheManager(backend=RedisCache(redis_url, prefix=_prefix()))
        async with lent:
            for _ in range(2):
                async with _client(server, lent) as client:
                    await client.chat().user("hi").execute()
                assert lent.is_open
            await lent.clear()
        assert len(server.requests) == 2  # one per cache; the second client of `lent` hit


async def test_a_middleware_may_answer_a_stream_with_a_replay_and_watch_it(
    mock: MockProvider,
) -> None:
    from ailib_anyio import ContentDelta, Finished, FinishReason

    closed: list[str] = []

    class Watch(StreamWatcher):
        def on_close(self) -> None:
            closed.append("closed")

    class Canned(Middleware):
        async def on_call(self, call: Call, next: Next) -> Any:
            response = ChatResponse(content="ab", finish_reason=FinishReason("stop", "stop"))
            events = [ContentDelta("a"), ContentDelta("b"), Finished(response.finish_reason)]
            stream = ReplayStream(events, response, provider="canned", model="m")
            stream.watch(Watch())
            return stream

    async with open_client(
        MODEL, api_key=KEY, base_url=mock.openai_base_url, middleware=[Canned()]
    ) as client:
        async with client.chat().user("hi").stream() as stream:
            assert [getattr(e, "text", None) for e in await _read(stream)] == ["a", "b", None]
            assert stream.response.content == "ab" and stream.provider == "canned"
        assert closed == ["closed"]
    assert mock.requests == []


async def test_null_cache_still_shares_one_call(mock: MockProvider) -> None:
    cache = CacheManager(backend=NullCache())
    mock.enqueue(ScriptedReply(content="slow", delay_before_headers=0.2))
    async with _client(mock, cache) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(lambda: client.chat().user("q").execute())
        await client.chat().user("q").execute()
    assert len(mock.requests) == 2


def test_replay_stream_checks_its_watchers() -> None:
    stream = ReplayStream([], ChatResponse(), provider="p", model="m")
    with pytest.raises(TypeError, match="expected a StreamWatcher"):
        stream.watch(object())  # type: ignore[arg-type]
    assert stream.complete  # no events: replayed whole at once
    assert attrs.has(CacheConfig)
