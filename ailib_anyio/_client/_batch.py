"""Batching: run many calls concurrently under a limit, or group calls into batches.

``BatchExecutor`` runs one async function over many items in a single task group, at most
``max_concurrent`` at a time (an ``anyio.CapacityLimiter``), and returns a ``BatchResult``
with one outcome per item, in input order: the value, or the ``Exception`` the item raised.
Cancellation is never collected: cancelling the caller cancels every item, and nothing the
executor started outlives ``execute()``. ``client.batch(...)`` is this executor over chat
requests.

``BatchCollector`` goes the other way: callers submit single items, and the collector hands
them to a handler in groups, when a group reaches ``max_size`` items or ``max_wait``
seconds after its first item, whichever comes first. Its tasks run in a task group it
owns (``async with BatchCollector(...)``), in one the caller passes, or in a client's
background task group.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
import anyio.abc
import attrs

from .._core._errors import ConfigurationError
from .._resilience._taskgroups import exit_task_group

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["BatchCollector", "BatchExecutor", "BatchResult"]

T = TypeVar("T")
R = TypeVar("R")

#: ``on_progress(done, total)``: called after each item finishes (success or failure).
ProgressCallback = Callable[[int, int], None]


@attrs.frozen
class BatchResult(Generic[R]):
    """The outcome of a batch: one entry per input item, in input order.

    ``results[i]`` is item ``i``'s return value, or the ``Exception`` it raised;
    ``failed_indices`` lists (ascending) the items that raised, so a function that
    *returns* an exception object is still counted as a success::

        requests = [client.chat().user(q) for q in ("2+2?", "Capital of France?")]
        result = await client.batch(requests, max_concurrent=20)
        print(result.successful_count, result.failed_count)
        for index, error in result.get_errors():
            print(index, error)
    """

    results: tuple[R | Exception, ...]
    failed_indices: tuple[int, ...] = ()

    @property
    def successful_count(self) -> int:
        """How many items returned a value."""
        return len(self.results) - len(self.failed_indices)

    @property
    def failed_count(self) -> int:
        """How many items raised an ``Exception``."""
        return len(self.failed_indices)

    def get_successful_results(self) -> list[R]:
        """The values of the items that succeeded, in input order."""
        failed = set(self.failed_indices)
        return [r for i, r in enumerate(self.results) if i not in failed]  # type: ignore[misc]

    def get_errors(self) -> list[tuple[int, Exception]]:
        """``(index, exception)`` for each item that failed, in input order."""
        errors: list[tuple[int, Exception]] = []
        for index in self.failed_indices:
            error = self.results[index]
            assert isinstance(error, Exception)
            errors.append((index, error))
        return errors

    def __len__(self) -> int:
        return len(self.results)


def _check_max_concurrent(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"max_concurrent must be a positive integer, got {value!r}")
    return value


class _Missing:
    """Placeholder for an item that has not finished (never seen in a returned result)."""


_MISSING = _Missing()


class BatchExecutor(Generic[T, R]):
    """Run ``fn`` over many items concurrently, at most ``max_concurrent`` at a time.

    ::

        async def ask(question: str) -> str:
            return (await client.chat().user(question).execute()).content

        questions = ["2+2?", "Capital of France?"]
        result = await BatchExecutor(ask, max_concurrent=5).execute(questions)
        answers = result.get_successful_results()

    - Every item runs in one task group, inside ``execute()``; an item's task exists only
      while it holds one of the ``max_concurrent`` slots, so a batch of a million items
      never has more than ``max_concurrent`` tasks.
    - An ``Exception`` raised by an item is recorded in its place in the ``BatchResult``;
      cancellation and other ``BaseException``\\ s are never collected: they cancel the
      batch and propagate.
    - ``fail_fast=True``: the first ``Exception`` cancels every other item and
      ``execute()`` raises that exception itself (not wrapped in a group); no
      ``BatchResult`` is returned.
    - ``on_progress(done, total)`` is called synchronously after each item finishes,
      succeeded or failed, from the batch's own tasks: keep it quick and make it not
      raise (an exception in it cancels the batch and propagates). It is not called for
      items cancelled by ``fail_fast`` or by the caller.
    - Cancelling the caller (a cancel scope around ``execute()``) cancels every running
      item and starts no more; when ``execute()`` returns or raises, none is left running.
    """

    def __init__(
        self,
        fn: Callable[[T], Awaitable[R]],
        *,
        max_concurrent: int,
        fail_fast: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._fn = fn
        self.max_concurrent = _check_max_concurrent(max_concurrent)
        self.fail_fast = fail_fast
        self._on_progress = on_progress

    def __repr__(self) -> str:
        return f"<BatchExecutor max_concurrent={self.max_concurrent} fail_fast={self.fail_fast}>"

    async def execute(self, items: Iterable[T]) -> BatchResult[R]:
        """Run every item; return their outcomes in input order (see the class docs)."""
        pending = list(items)
        total = len(pending)
        outcomes: list[R | Exception | _Missing] = [_MISSING] * total
        failed: list[int] = []
        first_error: list[Exception] = []
        done = 0
        fn, fail_fast, on_progress = self._fn, self.fail_fast, self._on_progress
        limiter = anyio.CapacityLimiter(self.max_concurrent)

        async def run(index: int, item: T, slot: object, scope: anyio.CancelScope) -> None:
            nonlocal done
            try:
                try:
                    outcomes[index] = await fn(item)
                except Exception as exc:  # noqa: BLE001 - collected per item, by design
                    outcomes[index] = exc
                    failed.append(index)
                    if fail_fast and not first_error:
                        first_error.append(exc)
                        scope.cancel()
            finally:
                limiter.release_on_behalf_of(slot)
            done += 1
            if on_progress is not None:
                on_progress(done, total)

        async with anyio.create_task_group() as task_group:
            for index, item in enumerate(pending):
                # Take the slot here, so a task exists only while it holds one.
                slot = object()
                await limiter.acquire_on_behalf_of(slot)
                if first_error:  # pragma: no cover - the acquire above is a checkpoint
                    break
                task_group.start_soon(run, index, item, slot, task_group.cancel_scope)
        if first_error:
            raise first_error[0]
        assert not any(isinstance(o, _Missing) for o in outcomes)
        failed.sort()
        return BatchResult(tuple(outcomes), tuple(failed))  # type: ignore[arg-type]


@attrs.define(eq=False)
class _Slot(Generic[T, R]):
    """One submitted item and, once its group ran, its outcome."""

    item: T
    done: anyio.Event = attrs.field(factory=anyio.Event)
    value: R | None = None
    error: BaseException | None = None


@attrs.define(eq=False)
class _Group(Generic[T, R]):
    """The items collected so far for one handler call."""

    slots: list[_Slot[T, R]] = attrs.field(factory=list)
    full: anyio.Event = attrs.field(factory=anyio.Event)


class BatchCollector(Generic[T, R]):
    """Group single submissions into batches for a handler that takes a list.

    ``await collector.submit(item)`` adds ``item`` to the current group and returns that
    item's result once the group has been handled. A group is handed to
    ``await handler(items)`` when it reaches ``max_size`` items or ``max_wait`` seconds
    after its first item, whichever comes first; the handler returns one result per item,
    in the same order. If the handler raises an ``Exception``, every submitter of that
    group gets it raised from ``submit()``.

    Where its tasks (one per group: the timer, then the handler call) run:

    - ``async with BatchCollector(handler, max_size=..., max_wait=...) as collector:`` —
      a task group the collector owns; leaving the block hands over the group still
      collecting at once and waits for the handler (or cancels it, if the block raises);
    - ``BatchCollector(..., task_group=tg)`` — a task group the caller owns;
    - ``BatchCollector(..., task_group=client)`` — the client's background task group
      (``Client.start_background``), cancelled when the client closes. The first
      ``submit`` starts that group in its task, which binds the client to it: submit first
      from the task that closes the client, at the level of the client's block.

    ::

        async def embed_many(texts: list[str]) -> list[list[float]]:
            result = await EmbeddingClient(client).embed(texts)  # one request per group
            return [list(vector) for vector in result.vectors]

        async with BatchCollector(embed_many, max_size=64, max_wait=0.05) as collector:
            vector = await collector.submit("hello")  # from many tasks at once

    A submitter cancelled before its group is handed over takes its item out of the
    group; after that, the handler still sees the item and its result is dropped. If the
    task group is cancelled before a group's handler finishes, its submitters get a
    ``RuntimeError``.
    """

    def __init__(
        self,
        handler: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_size: int,
        max_wait: float,
        task_group: anyio.abc.TaskGroup | Client | None = None,
    ) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ConfigurationError(f"max_size must be a positive integer, got {max_size!r}")
        if (
            isinstance(max_wait, bool)
            or not isinstance(max_wait, (int, float))
            or math.isnan(max_wait)
            or max_wait < 0
        ):
            raise ConfigurationError(
                f"max_wait must be a non-negative number of seconds, got {max_wait!r}"
            )
        self._handler = handler
        self.max_size = max_size
        self.max_wait = float(max_wait)
        # Where a group's task starts: a task group's start_soon, or the client's
        # start_background (awaited).
        self._spawner: Callable[..., object] | None = None
        self._client: Client | None = None
        if isinstance(task_group, anyio.abc.TaskGroup):
            self._spawner = task_group.start_soon
        elif task_group is not None:
            self._client = task_group
        self._owned: anyio.abc.TaskGroup | None = None
        self._group: _Group[T, R] | None = None
        self._closed = False

    def __repr__(self) -> str:
        collecting = len(self._group.slots) if self._group is not None else 0
        return (
            f"<BatchCollector max_size={self.max_size} max_wait={self.max_wait}"
            f" collecting={collecting}{' closed' if self._closed else ''}>"
        )

    async def __aenter__(self) -> BatchCollector[T, R]:
        if self._spawner is not None or self._client is not None or self._closed:
            raise RuntimeError(
                "a BatchCollector is entered once, and only when it has no task_group"
            )
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._owned = task_group
        self._spawner = task_group.start_soon
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closed = True
        self.flush()
        task_group, self._owned = self._owned, None
        assert task_group is not None
        if exc is not None:
            task_group.cancel_scope.cancel()
        return await exit_task_group(task_group, exc_type, exc, tb)

    def flush(self) -> None:
        """Hand the group being collected to the handler now, without waiting."""
        if self._group is not None:
            self._group.full.set()
            self._group = None

    async def submit(self, item: T) -> R:
        """Add ``item`` to the current group; return its result once the group is handled."""
        if self._closed:
            raise RuntimeError("the BatchCollector is closed")
        group = self._group
        if group is None:
            group = _Group()
            if self._client is not None:
                await self._client.start_background(self._run_group, group)
            elif self._spawner is not None:
                self._spawner(self._run_group, group)
            else:
                raise RuntimeError(
                    "use 'async with BatchCollector(...)' or pass task_group= (a task group"
                    " or a client)"
                )
            self._group = group
        slot: _Slot[T, R] = _Slot(item)
        group.slots.append(slot)
        if len(group.slots) >= self.max_size:
            self.flush()
        try:
            await slot.done.wait()
        except BaseException:
            if not group.full.is_set() and slot in group.slots:
                group.slots.remove(slot)  # not handed over yet: withdraw the item
            raise
        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[return-value]

    async def _run_group(self, group: _Group[T, R]) -> None:
        settled = False
        try:
            with anyio.move_on_after(self.max_wait):
                await group.full.wait()
            if self._group is group:
                self._group = None
            group.full.set()  # handed over: from here on, submitters no longer withdraw
            slots = list(group.slots)
            if slots:
                error: Exception | None = None
                try:
                    results = list(await self._handler([slot.item for slot in slots]))
                except Exception as exc:  # noqa: BLE001 - delivered to every submitter
                    error = exc
                else:
                    if len(results) != len(slots):
                        error = ValueError(
                            f"the batch handler returned {len(results)} results "
                            f"for {len(slots)} items"
                        )
                    else:
                        for slot, value in zip(slots, results, strict=True):
                            slot.value = value
                for slot in slots:
                    slot.error = error
            settled = True
        finally:
            # Cancelled (or failed) before the handler finished: nobody waits forever.
            if self._group is group:
                self._group = None
            for slot in group.slots:
                if not settled:
                    slot.error = RuntimeError("the batch was cancelled before it was handled")
                slot.done.set()
