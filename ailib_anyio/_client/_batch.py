"""Batching: run many calls concurrently under a limit, or group calls into batches.

``BatchExecutor`` runs one async function over many items in a single task group, at most
``max_concurrent`` at a time (an ``anyio.CapacityLimiter``), and returns a ``BatchResult``
with one outcome per item, in input order: the value, or the ``Exception`` the item raised.
Cancellation is never collected: cancelling the caller cancels every item, and nothing the
executor started outlives ``execute()``. ``client.batch(...)`` is this executor over chat
requests. With ``output=`` a JSONL file records each item's outcome as it finishes (its
value, or its error), and a run over the same items later skips those already answered:
a job cut short resumes where it stopped.

``BatchCollector`` goes the other way: callers submit single items, and the collector hands
them to a handler in groups, when a group reaches ``max_size`` items or ``max_wait``
seconds after its first item, whichever comes first. Its tasks run in a task group it
owns (``async with BatchCollector(...)``), in one the caller passes, or in a client's
background task group.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.abc
import attrs

from .._core._cost import ModelPricing
from .._core._errors import AiLibError, ConfigurationError
from .._core._structured import structured_reply
from .._core._types import ChatRequest, ChatResponse, FinishReason, ToolCall, Usage
from .._resilience._taskgroups import exit_task_group
from ._chat import ChatBuilder

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "BatchCollector",
    "BatchExecutor",
    "BatchResult",
    "chat_batch",
    "error_record",
    "response_from_record",
    "response_record",
]

T = TypeVar("T")
R = TypeVar("R")

#: ``on_progress(done, total)``: called after each item finishes (success or failure).
ProgressCallback = Callable[[int, int], None]


@attrs.frozen
class BatchResult(Generic[R]):
    """The outcome of a batch: one entry per input item, in input order.

    ``results[i]`` is item ``i``'s return value, or the ``Exception`` it raised;
    ``failed_indices`` lists (ascending) the items that raised, so a function that
    *returns* an exception object is still counted as a success; ``resumed_indices`` those
    whose value came from the ``output`` file of an earlier run::

        requests = [client.chat().user(q) for q in ("2+2?", "Capital of France?")]
        result = await client.batch(requests, max_concurrent=20)
        print(result.successful_count, result.failed_count)
        for index, error in result.get_errors():
            print(index, error)
    """

    results: tuple[R | Exception, ...]
    failed_indices: tuple[int, ...] = ()
    #: the items not run this time: their value was read back from the ``output`` file
    resumed_indices: tuple[int, ...] = ()

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
    - ``execute(items, output="run.jsonl")`` appends one JSON line per finished item:
      ``{"key", "index", "result"}`` (the value, through ``to_json``; default: as it is,
      which must be JSON) or ``{"key", "index", "error"}`` (the error's type, message
      and, for an ``AiLibError``, its kind, status code, request id and retryability).
      An item whose key has a result line in the file already is not run: its value is
      ``from_json(result, item)`` (default: the result as it is) and its index is in
      ``resumed_indices``; items that failed run again. ``keys`` name the items (default:
      their positions, for a list given in the same order each time). A line cut short
      by a crash is ignored.
    """

    def __init__(
        self,
        fn: Callable[[T], Awaitable[R]],
        *,
        max_concurrent: int,
        fail_fast: bool = False,
        on_progress: ProgressCallback | None = None,
        to_json: Callable[[R], Any] | None = None,
        from_json: Callable[[Any, T], R] | None = None,
    ) -> None:
        self._fn = fn
        self.max_concurrent = _check_max_concurrent(max_concurrent)
        self.fail_fast = fail_fast
        self._on_progress = on_progress
        self._to_json = to_json
        self._from_json = from_json

    def __repr__(self) -> str:
        return f"<BatchExecutor max_concurrent={self.max_concurrent} fail_fast={self.fail_fast}>"

    async def execute(
        self,
        items: Iterable[T],
        *,
        output: str | os.PathLike[str] | None = None,
        keys: Sequence[str] | None = None,
    ) -> BatchResult[R]:
        """Run every item; return their outcomes in input order (see the class docs;
        ``output`` and ``keys``: resuming from a JSONL file)."""
        pending = list(items)
        total = len(pending)
        names = _keys(keys, total)
        outcomes: list[R | Exception | _Missing] = [_MISSING] * total
        failed: list[int] = []
        first_error: list[Exception] = []
        resumed: list[int] = []
        fn, fail_fast, on_progress = self._fn, self.fail_fast, self._on_progress
        limiter = anyio.CapacityLimiter(self.max_concurrent)
        journal: _Journal | None = None
        if output is not None:
            journal = await _Journal.open(os.fspath(output))
            from_json = self._from_json
            for index, key in enumerate(names):
                if key not in journal.answered:
                    continue
                value = journal.answered[key]
                try:
                    outcomes[index] = (
                        value if from_json is None else from_json(value, pending[index])
                    )
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue  # a record this version cannot read back: run the item again
                resumed.append(index)
        done = len(resumed)
        to_json = self._to_json

        async def run(index: int, item: T, slot: object, scope: anyio.CancelScope) -> None:
            nonlocal done
            try:
                error: Exception | None = None
                try:
                    value = outcomes[index] = await fn(item)
                except Exception as exc:  # noqa: BLE001 - collected per item, by design
                    error = outcomes[index] = exc
                    failed.append(index)
                    if fail_fast and not first_error:
                        first_error.append(exc)
                        scope.cancel()
                if journal is not None:
                    line: dict[str, Any] = {"key": names[index], "index": index}
                    if error is not None:
                        line["error"] = error_record(error)
                    else:
                        line["result"] = value if to_json is None else to_json(value)
                    with anyio.CancelScope(shield=True):  # an answer paid for is kept
                        await journal.write(line)
            finally:
                limiter.release_on_behalf_of(slot)
            done += 1
            if on_progress is not None:
                on_progress(done, total)

        try:
            if resumed and on_progress is not None:
                on_progress(done, total)
            skip = set(resumed)
            async with anyio.create_task_group() as task_group:
                for index, item in enumerate(pending):
                    if index in skip:
                        continue
                    # Take the slot here, so a task exists only while it holds one.
                    slot = object()
                    await limiter.acquire_on_behalf_of(slot)
                    if first_error:  # pragma: no cover - the acquire above is a checkpoint
                        break
                    task_group.start_soon(run, index, item, slot, task_group.cancel_scope)
        finally:
            if journal is not None:
                await journal.aclose()
        if first_error:
            raise first_error[0]
        assert not any(isinstance(o, _Missing) for o in outcomes)
        failed.sort()
        return BatchResult(tuple(outcomes), tuple(failed), tuple(resumed))  # type: ignore[arg-type]


def _keys(keys: Sequence[str] | None, total: int) -> list[str]:
    if keys is None:
        return [str(index) for index in range(total)]
    names = list(keys)
    if len(names) != total:
        raise ConfigurationError(f"{len(names)} keys for {total} items")
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise ConfigurationError(f"keys must be strings, got {name!r}")
        if name in seen:
            raise ConfigurationError(f"key {name!r} names two items")
        seen.add(name)
    return names


class _Journal:
    """The ``output`` JSONL file of a run: what earlier runs answered, and the lines of
    this one, appended one at a time (each whole, flushed, in a worker thread)."""

    def __init__(self, file: Any, answered: dict[str, Any]) -> None:
        self._file = file
        self.answered = answered
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, path: str) -> _Journal:
        answered, clean = await anyio.to_thread.run_sync(_read_journal, path)
        file = await anyio.open_file(path, "a", encoding="utf-8")
        journal = cls(file, answered)
        if not clean:  # a line cut short by a crash: the next one starts on its own line
            await journal._append("\n")
        return journal

    async def write(self, line: Mapping[str, Any]) -> None:
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)
        await self._append(text + "\n")

    async def _append(self, text: str) -> None:
        async with self._lock:
            await self._file.write(text)
            await self._file.flush()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._file.aclose()


def _read_journal(path: str) -> tuple[dict[str, Any], bool]:
    """``(key -> result, whether the file ends with a whole line)`` of a JSONL output
    file (a missing file: nothing answered); the last line about a key wins."""
    answered: dict[str, Any] = {}
    line = "\n"
    try:
        with open(path, encoding="utf-8", errors="replace", newline="\n") as file:
            for line in file:  # one line at a time: the file may be large
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    continue  # cut short by a crash, or not ours
                key = record.get("key") if isinstance(record, dict) else None
                if not isinstance(key, str):
                    continue
                if "result" in record:
                    answered[key] = record["result"]
                else:
                    answered.pop(key, None)
    except FileNotFoundError:
        return {}, True
    return answered, line.endswith("\n")


def error_record(error: BaseException) -> dict[str, Any]:
    """An item's error as an ``output`` line says it."""
    record: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, AiLibError):
        record.update(
            kind=error.kind,
            status_code=error.status_code,
            request_id=error.request_id,
            retryable=error.retryable,
            provider=error.provider,
            model=error.model,
        )
    return record


def response_record(response: ChatResponse) -> dict[str, Any]:
    """A ``ChatResponse`` as JSON, for an ``output`` line (``response_from_record``
    reads it back)."""
    finish = response.finish_reason
    usage = response.usage
    return {
        "content": response.content,
        "reasoning": response.reasoning,
        "refusal": response.refusal,
        "tool_calls": [
            {
                "id": call.id,
                "name": call.name,
                "arguments": dict(call.arguments),
                "raw_arguments": call.raw_arguments,
                "signature": call.signature,
                "id_generated": call.id_generated,
            }
            for call in response.tool_calls
        ],
        "finish_reason": None if finish is None else [finish.normalized, finish.raw],
        "usage": None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
        "model": response.model,
        "request_id": response.request_id,
        "reasoning_signature": response.reasoning_signature,
        "raw": response.raw,
    }


def response_from_record(record: Any, *, pricing: ModelPricing | None) -> ChatResponse:
    """The ``ChatResponse`` a ``response_record`` holds, priced with ``pricing``; a record
    of another shape raises ``ValueError``, ``TypeError`` or ``KeyError``."""
    if not isinstance(record, dict):
        raise TypeError("a response record is an object")
    finish = record.get("finish_reason")
    usage = record.get("usage")
    return ChatResponse(
        content=str(record.get("content") or ""),
        reasoning=str(record.get("reasoning") or ""),
        refusal=record.get("refusal"),
        tool_calls=tuple(
            ToolCall(
                call["id"],
                call["name"],
                call.get("arguments") or {},
                call.get("raw_arguments", ""),
                signature=call.get("signature"),
                id_generated=bool(call.get("id_generated")),
            )
            for call in record.get("tool_calls") or ()
        ),
        finish_reason=None if finish is None else FinishReason(finish[0], finish[1]),
        usage=None if usage is None else Usage(**usage),
        model=record.get("model"),
        request_id=record.get("request_id"),
        raw=record.get("raw"),
        reasoning_signature=record.get("reasoning_signature"),
        pricing=pricing,
    )


async def chat_batch(
    client: Client,
    requests: Iterable[ChatBuilder | ChatRequest] | Mapping[str, ChatBuilder | ChatRequest],
    *,
    max_concurrent: int,
    fail_fast: bool,
    on_progress: ProgressCallback | None,
    output: str | os.PathLike[str] | None,
) -> BatchResult[ChatResponse]:
    """``client.batch(...)``: chat requests run by a ``BatchExecutor`` (see there)."""
    keys: list[str] | None = None
    if isinstance(requests, Mapping):
        keys, items = list(requests), list(requests.values())
    else:
        items = list(requests)
    if output is not None and keys is None:
        # Each request's key is its body's: built and encoded (and so checked) now.
        from .._protocol._batch import derive_custom_ids

        keys = derive_custom_ids(client.primary.encode(_built(item)) for item in items)

    async def run(request: ChatBuilder | ChatRequest) -> ChatResponse:
        if isinstance(request, ChatBuilder):
            return await request.execute()
        return await client.execute(_built(request))

    def read_back(record: Any, request: ChatBuilder | ChatRequest) -> ChatResponse:
        response = response_from_record(record, pricing=client.primary.pricing)
        built = _built(request)
        if built.response_format is not None:
            response = structured_reply(built, response)
        return response

    executor: BatchExecutor[ChatBuilder | ChatRequest, ChatResponse] = BatchExecutor(
        run,
        max_concurrent=max_concurrent,
        fail_fast=fail_fast,
        on_progress=on_progress,
        to_json=response_record,
        from_json=read_back,
    )
    return await executor.execute(items, output=output, keys=keys)


def _built(request: object) -> ChatRequest:
    """A batch item as the request it sends (never streamed)."""
    if isinstance(request, ChatBuilder):
        return request.build()
    if not isinstance(request, ChatRequest):
        raise ConfigurationError(
            f"a batch request is a ChatBuilder or a ChatRequest, got {type(request).__name__}"
        )
    return attrs.evolve(request, stream=False) if request.stream else request


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
