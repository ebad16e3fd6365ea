"""Batching on asyncio and trio: ``BatchExecutor`` / ``client.batch`` (bounded concurrency,
input order, per-item errors, fail-fast, cancellation) and ``BatchCollector`` (groups by
size and by time window). No task may outlive a scenario."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.lowlevel
import pytest

from ailib_anyio import (
    BatchCollector,
    BatchExecutor,
    BatchResult,
    ChatResponse,
    ConfigurationError,
    InvalidRequestError,
    ServerError,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

pytestmark = pytest.mark.anyio

_ITEM_TASK = "BatchExecutor.execute.<locals>.run"


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    before = len(anyio.get_running_tasks())
    yield
    assert len(anyio.get_running_tasks()) == before


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def client_for(mock: MockProvider) -> Client:
    return open_client(
        "openai/gpt-4o", api_key="sk-test", base_url=mock.openai_base_url, max_retries=0
    )


def batch_tasks() -> list[str]:
    return [t.name for t in anyio.get_running_tasks() if _ITEM_TASK in (t.name or "")]


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not condition():  # noqa: ASYNC110 - polls counters that have no event
            await anyio.sleep(0.005)


def user_text(body: object) -> str:
    assert isinstance(body, dict)
    return str(body["messages"][-1]["content"])


# ----------------------------------------------------------------- BatchExecutor


async def test_executor_over_a_plain_function_keeps_order_and_collects_errors() -> None:
    async def work(n: int) -> int:
        await anyio.sleep((n % 7) * 0.001)  # finish out of order
        if n % 10 == 3:
            raise ValueError(f"bad {n}")
        return n * n

    result = await BatchExecutor(work, max_concurrent=8).execute(range(50))
    assert isinstance(result, BatchResult)
    assert len(result) == 50
    assert result.failed_indices == tuple(range(3, 50, 10))
    assert (result.successful_count, result.failed_count) == (45, 5)
    assert result.get_successful_results() == [n * n for n in range(50) if n % 10 != 3]
    errors = result.get_errors()
    assert [index for index, _ in errors] == [3, 13, 23, 33, 43]
    assert [str(error) for _, error in errors] == ["bad 3", "bad 13", "bad 23", "bad 33", "bad 43"]
    for n, outcome in enumerate(result.results):
        assert outcome == (errors[n // 10][1] if n % 10 == 3 else n * n)


async def test_executor_bounds_concurrency_and_reports_progress() -> None:
    active = peak = 0
    progress: list[tuple[int, int]] = []

    async def work(n: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        # The executor only starts an item once it holds a slot: at most 4 item tasks.
        assert len(batch_tasks()) <= 4
        await anyio.sleep(0.002)
        active -= 1
        return n

    executor = BatchExecutor(
        work, max_concurrent=4, on_progress=lambda done, total: progress.append((done, total))
    )
    result = await executor.execute(iter(range(40)))  # any iterable
    assert peak == 4
    assert result.results == tuple(range(40))
    assert progress == [(done, 40) for done in range(1, 41)]


async def test_a_returned_exception_object_is_a_success() -> None:
    async def work(n: int) -> object:
        return KeyError(n)

    result = await BatchExecutor(work, max_concurrent=2).execute([1, 2])
    assert (result.successful_count, result.failed_count) == (2, 0)
    assert result.get_errors() == []


async def test_empty_batch() -> None:
    async def work(n: int) -> int:
        raise AssertionError("never called")

    result = await BatchExecutor(work, max_concurrent=1).execute([])
    assert len(result) == 0
    assert result.get_successful_results() == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
async def test_max_concurrent_is_validated(bad: object) -> None:
    async def work(n: int) -> int:
        return n

    with pytest.raises(ConfigurationError) as info:
        BatchExecutor(work, max_concurrent=bad)  # type: ignore[arg-type]
    assert str(info.value) == f"max_concurrent must be a positive integer, got {bad!r}"


async def test_fail_fast_cancels_the_rest_and_raises_the_first_error() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def work(n: int) -> int:
        started.append(n)
        if n == 2:
            await anyio.sleep(0.01)
            raise ValueError("item 2 failed")
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.append(n)
            raise
        return n

    with anyio.fail_after(5):
        with pytest.raises(ValueError, match="item 2 failed"):
            await BatchExecutor(work, max_concurrent=5, fail_fast=True).execute(range(100))
    assert sorted(started) == [0, 1, 2, 3, 4]  # nothing started after the failure
    assert sorted(cancelled) == [0, 1, 3, 4]
    assert batch_tasks() == []


async def test_base_exceptions_are_not_collected() -> None:
    class Stop(BaseException):
        pass

    async def work(n: int) -> int:
        if n == 1:
            raise Stop
        await anyio.sleep(30)
        return n

    with anyio.fail_after(5), pytest.raises(BaseExceptionGroup) as info:
        await BatchExecutor(work, max_concurrent=3).execute(range(3))
    assert info.group_contains(Stop)
    assert batch_tasks() == []


async def test_cancelling_the_caller_cancels_every_item() -> None:
    done: list[int] = []

    async def work(n: int) -> int:
        await anyio.sleep(0.05 if n < 3 else 30)
        done.append(n)
        return n

    with anyio.move_on_after(0.2) as scope:
        await BatchExecutor(work, max_concurrent=10).execute(range(20))
    assert scope.cancelled_caught
    assert sorted(done) == [0, 1, 2]
    assert batch_tasks() == []


# ------------------------------------------------------------------- client.batch


async def test_done_when_1000_requests_with_max_concurrent_50(mock: MockProvider) -> None:
    n = 1000
    server_errors = {17, 250, 251, 999}
    bad_requests = {0, 500, 777}
    replies: list[Reply | ScriptedReply] = []
    for k in range(n):
        if k in server_errors:
            replies.append(Reply.error(500, f"boom {k}", delay_before_headers=0.002))
        elif k in bad_requests:
            replies.append(Reply.error(400, f"bad {k}", delay_before_headers=0.002))
        else:
            replies.append(ScriptedReply(content=f"reply {k}", delay_before_headers=0.002))
    mock.enqueue(*replies)
    progress: list[int] = []
    async with client_for(mock) as client:
        requests = [client.chat().user(f"item {i}") for i in range(n)]
        result = await client.batch(
            requests, max_concurrent=50, on_progress=lambda done, total: progress.append(done)
        )
        assert client.current_inflight == 0

    # The client's own CPU time per request bounds how far concurrency builds up against
    # a 2 ms server (see the test below for a full 50); it must never pass the limit.
    assert 1 < mock.max_active_requests <= 50
    assert progress == list(range(1, n + 1))
    assert len(result) == n
    assert len(mock.requests) == n
    # The k-th request to arrive took the k-th reply; find which item sent it.
    reply_for_item = {
        int(user_text(request.json).removeprefix("item ")): k
        for k, request in enumerate(mock.requests)
    }
    assert sorted(reply_for_item) == list(range(n))
    expected_failures = []
    for i, outcome in enumerate(result.results):
        k = reply_for_item[i]
        if k in server_errors:
            assert isinstance(outcome, ServerError)
            assert f": boom {k} (" in str(outcome)
            expected_failures.append(i)
        elif k in bad_requests:
            assert isinstance(outcome, InvalidRequestError)
            assert f": bad {k} (" in str(outcome)
            expected_failures.append(i)
        else:
            assert isinstance(outcome, ChatResponse)
            assert outcome.content == f"reply {k}"
    assert list(result.failed_indices) == sorted(expected_failures)
    assert (result.successful_count, result.failed_count) == (n - 7, 7)
    assert [r.content for r in result.get_successful_results()] == [
        f"reply {reply_for_item[i]}" for i in range(n) if i not in expected_failures
    ]


async def test_client_batch_reaches_but_never_passes_max_concurrent(mock: MockProvider) -> None:
    # The first 50 replies wait long enough for all 50 to be in flight even on a loaded
    # machine; the rest answer at once.
    mock.enqueue(
        *[
            ScriptedReply(content=f"r{k}", delay_before_headers=1.5 if k < 50 else 0)
            for k in range(100)
        ]
    )
    async with client_for(mock) as client:
        result = await client.batch(
            [client.chat().user(f"item {i}") for i in range(100)], max_concurrent=50
        )
    assert mock.max_active_requests == 50
    assert result.successful_count == 100


# Requests cancelled mid-send used to leave httpx's body generator for trio to finalize (a
# ResourceWarning); the transport now sends bodies without one, and no warning is allowed.
async def test_cancelling_a_client_batch_halfway_leaves_nothing_running(
    mock: MockProvider,
) -> None:
    n = 1000
    mock.enqueue(*[ScriptedReply(content=f"r{k}", delay_before_headers=0.02) for k in range(n)])
    async with client_for(mock) as client:
        before = len(anyio.get_running_tasks())
        requests = [client.chat().user(f"item {i}") for i in range(n)]
        seen: list[int] = []
        with anyio.CancelScope() as scope:

            def on_progress(done: int, total: int) -> None:
                seen.append(done)
                if done == n // 2:
                    scope.cancel()

            await client.batch(requests, max_concurrent=50, on_progress=on_progress)
        assert scope.cancelled_caught
        # Items whose response was already in hand may still finish; no new one starts.
        assert seen == list(range(1, len(seen) + 1))
        assert n // 2 <= len(seen) < n // 2 + 50
        assert batch_tasks() == []
        assert client.current_inflight == 0
        # The cancelled requests' connections were closed: the server sees them go.
        await until(lambda: mock.active_requests == 0)
        assert n // 2 < len(mock.requests) <= n // 2 + 50
        cut = [r for r in mock.requests if not r.completed]
        assert len(cut) <= 50  # (a request cancelled while being sent never arrives)
        assert all(r.client_disconnected for r in cut)
        # What is left are the idle pooled connections' server-side handlers (the handlers
        # of connections just closed may still be finishing: wait for them)
        await until(lambda: len(anyio.get_running_tasks()) - before == mock.open_connections)


async def test_client_batch_fail_fast_and_chat_requests(mock: MockProvider) -> None:
    mock.enqueue(
        ScriptedReply(content="a"),
        ScriptedReply(content="b", delay_before_headers=0.01),
        Reply.error(400, "nope", delay_before_headers=0.05),
    )
    async with client_for(mock) as client:
        requests = [client.chat().user("x").build(stream=True), client.chat().user("y").build()]
        result = await client.batch(requests, max_concurrent=1)
        assert [r.content for r in result.get_successful_results()] == ["a", "b"]
        assert mock.requests[0].json.get("stream") in (None, False)

        # fail_fast: the 400 cancels the other, slow request and is raised as is.
        mock.enqueue(ScriptedReply(content="slow", delay_before_headers=30))
        with anyio.fail_after(5), pytest.raises(InvalidRequestError, match="nope"):
            await client.batch(
                [client.chat().user("p"), client.chat().user("q")],
                max_concurrent=2,
                fail_fast=True,
            )
        assert client.current_inflight == 0
        with pytest.raises(ConfigurationError):
            await client.batch([], max_concurrent=0)
    await until(lambda: mock.active_requests == 0)


# ----------------------------------------------------------------- BatchCollector


class Recorder:
    """A batch handler that records each group it gets."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    async def __call__(self, items: list[int]) -> list[str]:
        self.groups.append(items)
        await anyio.lowlevel.checkpoint()
        return [f"<{item}>" for item in items]


async def test_collector_flushes_by_size() -> None:
    handler = Recorder()
    results: dict[int, str] = {}

    async def submit(collector: BatchCollector[int, str], item: int) -> None:
        results[item] = await collector.submit(item)

    start = anyio.current_time()
    async with (
        BatchCollector(handler, max_size=4, max_wait=60) as collector,
        anyio.create_task_group() as tg,
    ):
        for item in range(8):
            tg.start_soon(submit, collector, item)
    assert anyio.current_time() - start < 5  # the size, not the 60 s window, flushed them
    assert [len(group) for group in handler.groups] == [4, 4]
    assert sorted(item for group in handler.groups for item in group) == list(range(8))
    assert results == {item: f"<{item}>" for item in range(8)}


async def test_collector_flushes_by_time_window() -> None:
    handler = Recorder()
    results: list[str] = []

    async def submit(collector: BatchCollector[int, str], item: int) -> None:
        results.append(await collector.submit(item))

    async with anyio.create_task_group() as tg:
        collector: BatchCollector[int, str] = BatchCollector(
            handler, max_size=100, max_wait=0.05, task_group=tg
        )
        start = anyio.current_time()
        for item in range(3):
            tg.start_soon(submit, collector, item)
    elapsed = anyio.current_time() - start
    assert 0.04 <= elapsed < 5
    assert [sorted(group) for group in handler.groups] == [[0, 1, 2]]
    assert sorted(results) == ["<0>", "<1>", "<2>"]
    # A later submission starts a new window.
    async with anyio.create_task_group() as tg:
        collector = BatchCollector(handler, max_size=100, max_wait=0.01, task_group=tg)
        assert await collector.submit(9) == "<9>"
    assert handler.groups[-1] == [9]


async def test_collector_delivers_handler_errors_to_every_submitter() -> None:
    async def failing(items: list[int]) -> list[int]:
        raise RuntimeError(f"handler failed on {sorted(items)}")

    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    errors: list[BaseException] = []

    async def submit(collector: BatchCollector[int, int], item: int) -> None:
        try:
            await collector.submit(item)
        except Exception as exc:
            errors.append(exc)

    for handler in (failing, short):
        async with (
            BatchCollector(handler, max_size=2, max_wait=60) as collector,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(submit, collector, 1)
            tg.start_soon(submit, collector, 2)
    assert [str(e) for e in errors[:2]] == ["handler failed on [1, 2]"] * 2
    assert errors[0] is errors[1]
    assert [str(e) for e in errors[2:]] == ["the batch handler returned 1 results for 2 items"] * 2


async def test_collector_block_exit_flushes_the_open_group_and_closes() -> None:
    handler = Recorder()
    results: list[str] = []

    async def submit(collector: BatchCollector[int, str], item: int) -> None:
        results.append(await collector.submit(item))

    start = anyio.current_time()
    async with (
        anyio.create_task_group() as tg,
        BatchCollector(handler, max_size=10, max_wait=60) as collector,
    ):
        for item in range(3):
            tg.start_soon(submit, collector, item)
        await until(lambda: "collecting=3" in repr(collector))
    assert anyio.current_time() - start < 5
    assert [sorted(group) for group in handler.groups] == [[0, 1, 2]]
    assert sorted(results) == ["<0>", "<1>", "<2>"]
    with pytest.raises(RuntimeError, match="the BatchCollector is closed"):
        await collector.submit(4)


async def test_a_cancelled_submitter_withdraws_its_item() -> None:
    handler = Recorder()
    async with anyio.create_task_group() as tg:
        collector: BatchCollector[int, str] = BatchCollector(
            handler, max_size=10, max_wait=0.1, task_group=tg
        )
        with anyio.move_on_after(0.01):
            await collector.submit(1)
        assert await collector.submit(2) == "<2>"
    assert handler.groups == [[2]]


async def test_collector_in_a_client_background_group() -> None:
    handler = Recorder()
    errors: list[BaseException] = []

    async def submit(collector: BatchCollector[int, str], item: int) -> None:
        try:
            await collector.submit(item)
        except RuntimeError as exc:
            errors.append(exc)

    async with (
        anyio.create_task_group() as tg,
        open_client("openai/gpt-4o", api_key="sk-test", base_url="http://127.0.0.1:9/v1") as client,
    ):
        collector: BatchCollector[int, str] = BatchCollector(
            handler, max_size=100, max_wait=0.2, task_group=client
        )
        assert await collector.submit(1) == "<1>"
        tg.start_soon(submit, collector, 7)
        await until(lambda: "collecting=1" in repr(collector))
        # The client's block exited: its background group (running the collector's
        # timer) was cancelled, so the waiting submitter is told instead of hanging.
    assert [str(e) for e in errors] == ["the batch was cancelled before it was handled"]
    assert handler.groups == [[1]]


async def test_collector_needs_a_task_group_and_valid_limits() -> None:
    handler = Recorder()
    with pytest.raises(RuntimeError, match="use 'async with BatchCollector"):
        await BatchCollector(handler, max_size=1, max_wait=1).submit(1)
    with pytest.raises(ConfigurationError, match="max_size must be a positive integer, got 0"):
        BatchCollector(handler, max_size=0, max_wait=1)
    with pytest.raises(
        ConfigurationError, match="max_wait must be a non-negative number of seconds, got -1"
    ):
        BatchCollector(handler, max_size=1, max_wait=-1)


async def test_collector_block_exception_propagates_unchanged() -> None:
    async def handler(items: list[int]) -> list[int]:
        return items

    with pytest.raises(KeyError, match="mine"):
        async with BatchCollector(handler, max_size=2, max_wait=1.0):
            raise KeyError("mine")
