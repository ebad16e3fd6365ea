"""Provider batch jobs: many chat requests through a provider's batch API, resumable.

::

    texts = ["The parcel came broken.", "Five stars, would buy again."]
    async with open_client("openai/gpt-4o-mini") as client:
        async with BatchJob(client, ledger="labels.db", poll_interval=0.05) as job:
            await job.submit(client.chat().user(text) for text in texts)
            await job.wait()                        # polls; resumable from the ledger
            async for custom_id, reply in job.results():
                print(custom_id, reply.content)     # ChatResponse, or the item's error

A ``BatchJob`` executes the manifest's ``batch`` section (``_protocol/_batch.py`` says
what each part means): requests are encoded by the client's target exactly as a live
call would send them, wrapped in the provider's envelope, split into batches under its
limits, uploaded or sent inline; results are joined to their requests by ``custom_id``
(providers keep no order) and decoded by the same response decoder as a live call, with
usage priced at the batch price (``ChatResponse.pricing``, ``cost``).

Every step is recorded in a SQLite ledger (``_ledger.py``) before the next: a process
that stops — the wait cancelled, a crash, a kill — resumes polling from the ledger
instead of submitting again. Cancelling ``wait()`` never cancels the batches at the
provider; ``cancel()`` does.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from .._client._chat import ChatBuilder
from .._client._client import Client
from .._core._checks import positive_seconds
from .._core._errors import AiLibError, ConfigurationError, MalformedResponseError
from .._core._ndjson import NDJSONDecoder
from .._core._types import ChatRequest, ChatResponse
from .._protocol._batch import (
    BatchState,
    BatchWire,
    batch_pricing,
    check_custom_id,
    derive_custom_ids,
)
from .._protocol._models import BATCH_TERMINAL
from ._ledger import BatchRow, Ledger

__all__ = ["BatchCounts", "BatchInfo", "BatchJob"]

T = TypeVar("T")

#: what the items of a batch without a record of them get, by the batch's final status
_MISSING_OUTCOME = {
    "ended": "missing",
    "expired": "expired",
    "cancelled": "cancelled",
    "failed": "failed",
}
#: the outcomes ``resubmit_failed`` resubmits by default: every one but success
FAILED_OUTCOMES = ("errored", "expired", "cancelled", "failed", "missing")
#: results recorded per ledger transaction while a results file streams in
_RECORD_EVERY = 2000
_PAGE = 500


@attrs.frozen
class BatchCounts:
    """How many of a job's requests have each outcome; ``pending`` have none yet."""

    total: int = 0
    succeeded: int = 0
    errored: int = 0
    expired: int = 0
    cancelled: int = 0
    failed: int = 0
    missing: int = 0

    @property
    def pending(self) -> int:
        return self.total - self.done

    @property
    def done(self) -> int:
        """Requests with an outcome, success or not."""
        return (
            self.succeeded
            + self.errored
            + self.expired
            + self.cancelled
            + self.failed
            + self.missing
        )

    @property
    def unsuccessful(self) -> int:
        """Requests that ended without a response (what ``resubmit_failed`` sends again)."""
        return self.done - self.succeeded


@attrs.frozen
class BatchInfo:
    """One batch of a job: ``number`` (in submission order), the provider's
    ``remote_id`` once created, ``status`` (``planned`` before it is created, then one of
    ``validating in_progress finalizing ended failed expired cancelled``) and the
    provider's ``raw_status``, its ``requests`` and ``bytes``, the uploaded ``file_id``
    (file-based APIs), whether its results are ``fetched``, the provider's request
    ``counts`` and, for a failed batch, the ``failure`` it gave."""

    number: int
    remote_id: str | None
    status: str
    raw_status: str | None
    requests: int
    bytes: int
    file_id: str | None = None
    fetched: bool = False
    counts: Mapping[str, int] = attrs.field(factory=dict)
    failure: str | None = None

    @property
    def terminal(self) -> bool:
        """The batch changes no more at the provider."""
        return self.status in BATCH_TERMINAL


def _info(row: BatchRow) -> BatchInfo:
    return BatchInfo(
        number=row.number,
        remote_id=row.remote_id,
        status=row.status,
        raw_status=row.raw_status,
        requests=row.requests,
        bytes=row.bytes,
        file_id=row.file_id,
        fetched=row.fetched,
        counts=row.counts,
        failure=row.failure,
    )


class BatchJob:
    """Chat requests run through the provider's batch API (see the module docstring).

    ``client`` is an open client; its primary target's provider and model run the job
    (its fallbacks do not apply). ``ledger`` is the SQLite file recording the job (None:
    in memory, lost with the process); a ledger that holds a job already is resumed.
    ``name`` is the job's name at the provider (where it has one). ``poll_interval`` is
    the first wait between status polls, doubled while nothing changes up to
    ``max_poll_interval``.

    Use it as ``async with BatchJob(client, ledger=...) as job:``; leaving the block
    closes the ledger (the batches go on at the provider). Its methods are not meant to
    run concurrently with each other, except ``cancel()`` while ``wait()`` runs.
    """

    def __init__(
        self,
        client: Client,
        *,
        ledger: str | os.PathLike[str] | None = None,
        name: str = "ailib-batch",
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
    ) -> None:
        if not isinstance(client, Client):
            raise ConfigurationError(f"BatchJob needs a Client, got {type(client).__name__}")
        self._client = client
        self._target = client.primary
        self._wire = BatchWire(client.manifest, provider=client.provider, model=client.model_id)
        self._path = ":memory:" if ledger is None else os.fspath(ledger)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.max_poll_interval = max(
            positive_seconds("max_poll_interval", max_poll_interval), self.poll_interval
        )
        #: the prices batch responses carry: the model's, times the manifest's factor
        self.pricing = batch_pricing(self._target.pricing, self._wire.spec.price_factor)
        self._require_job = False
        self._ledger: Ledger | None = None
        self._db_slot: anyio.CapacityLimiter | None = None
        self._busy: anyio.Lock | None = None
        self._closed = False

    @classmethod
    def resume(cls, client: Client, ledger: str | os.PathLike[str], **settings: Any) -> BatchJob:
        """The job recorded in ``ledger`` (a ``ConfigurationError`` when entered if the
        file holds none): ``async with BatchJob.resume(client, "job.db") as job:``."""
        if not Path(ledger).is_file():
            raise ConfigurationError(f"no batch job ledger at {os.fspath(ledger)!r}")
        job = cls(client, ledger=ledger, **settings)
        job._require_job = True
        return job

    def __repr__(self) -> str:
        return f"<BatchJob {self._client.provider}/{self._client.model_id} ledger={self._path!r}>"

    @property
    def ledger_path(self) -> str:
        return self._path

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> BatchJob:
        if self._ledger is not None or self._closed:
            raise RuntimeError("a BatchJob can be entered only once")
        self._db_slot = anyio.CapacityLimiter(1)
        self._busy = anyio.Lock()
        self._ledger = await anyio.to_thread.run_sync(Ledger, self._path, limiter=self._db_slot)
        try:
            await self._check_ledger()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the ledger (the provider's batches are not touched). Idempotent."""
        self._closed = True
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(ledger.close, limiter=self._db_slot)

    async def _check_ledger(self) -> None:
        client = self._client
        ledger = self._require()
        if self._require_job and not (await self._db(ledger.meta)):
            raise ConfigurationError(f"the ledger {self._path!r} holds no batch job")
        meta = await self._db(
            ledger.start,
            {"provider": client.provider, "model": client.model_id, "name": self.name},
        )
        if (meta.get("provider"), meta.get("model")) != (client.provider, client.model_id):
            raise ConfigurationError(
                f"the ledger {self._path!r} holds a job of"
                f" {meta.get('provider')}/{meta.get('model')}, not of"
                f" {client.provider}/{client.model_id}",
                provider=client.provider,
                model=client.model_id,
            )
        self.name = meta.get("name", self.name)

    def _require(self) -> Ledger:
        if self._ledger is None:
            if self._closed:
                raise RuntimeError("the BatchJob is closed")
            raise RuntimeError("use the job inside 'async with BatchJob(client, ...) as job'")
        return self._ledger

    async def _db(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A ledger call, in a worker thread, one at a time (it completes even if the
        caller is cancelled meanwhile: the ledger never holds half a step)."""
        if kwargs:
            func = functools.partial(func, **kwargs)
        return await anyio.to_thread.run_sync(func, *args, limiter=self._db_slot)

    # ------------------------------------------------------------ submitting

    async def submit(
        self,
        requests: Iterable[ChatBuilder | ChatRequest] | Mapping[str, ChatBuilder | ChatRequest],
    ) -> tuple[BatchInfo, ...]:
        """Submit requests: builders (``client.chat().user(...)``) or ``ChatRequest``\\ s,
        or a mapping ``custom_id -> request`` to name them. Return the batches created.

        Every request is encoded and checked before any I/O, as a live call would send
        it. Unnamed requests get a ``custom_id`` derived from their body
        (``derive_custom_ids``: the same in every run). A request whose id the job has
        already is skipped if it is the same request (submitting the same list again
        after a restart submits nothing twice), and refused with ``ConfigurationError``
        if it is another. The rest are split into batches under the provider's limits,
        recorded in the ledger, then uploaded and created one by one.
        """
        ledger = self._require()
        ids, bodies = await self._encode(requests)
        assert self._busy is not None
        async with self._busy:
            known = await self._db(ledger.bodies_of, ids)
            fresh: list[tuple[str, bytes]] = []
            for cid, body in zip(ids, bodies, strict=True):
                previous = known.get(cid)
                if previous is None:
                    fresh.append((cid, body))
                elif previous != body:
                    raise ConfigurationError(
                        f"custom_id {cid!r} is in this job already, with another request",
                        **self._target.context(),
                    )
            if not fresh:
                return ()
            numbers = await self._plan(fresh)
            await self._create_planned()
            rows = await self._db(ledger.batches)
        wanted = set(numbers)
        return tuple(_info(row) for row in rows if row.number in wanted)

    async def _encode(
        self,
        requests: Iterable[ChatBuilder | ChatRequest] | Mapping[str, ChatBuilder | ChatRequest],
    ) -> tuple[list[str], list[bytes]]:
        named: list[tuple[str | None, object]]
        if isinstance(requests, Mapping):
            named = [(check_custom_id(cid), request) for cid, request in requests.items()]
        elif isinstance(requests, (str, bytes, ChatBuilder, ChatRequest)):
            raise ConfigurationError(
                "submit() takes an iterable of requests (or a mapping of custom_id to"
                f" request), got {type(requests).__name__}"
            )
        else:
            named = [(None, request) for request in requests]
        if not named:
            raise ConfigurationError("submit() needs at least one request")
        bodies: list[bytes] = []
        for index, (_, request) in enumerate(named):
            bodies.append(self._encode_one(request))
            if index % 1000 == 999:
                await anyio.lowlevel.checkpoint()  # a million requests: let others run
        derived = derive_custom_ids(bodies)
        ids = [cid if cid is not None else derived[i] for i, (cid, _) in enumerate(named)]
        seen: set[str] = set()
        for cid in ids:
            if cid in seen:
                raise ConfigurationError(f"custom_id {cid!r} names two requests")
            seen.add(cid)
        return ids, bodies

    def _encode_one(self, request: object) -> bytes:
        client = self._client
        if isinstance(request, ChatBuilder):
            request = request.build()
        if not isinstance(request, ChatRequest):
            raise ConfigurationError(
                f"a batch request is a ChatBuilder or a ChatRequest, got {type(request).__name__}"
            )
        if request.model != client.model_id:
            raise ConfigurationError(
                f"a request for model {request.model!r} in a batch job of {client.model_id!r}",
                **self._target.context(),
            )
        if request.stream:
            request = attrs.evolve(request, stream=False)
        return self._target.encode(request)

    async def _plan(
        self, items: Sequence[tuple[str, bytes]], *, resubmit: bool = False
    ) -> list[int]:
        """Split items into batches under the limits and record them planned: new items,
        or items the ledger has already (``resubmit``)."""
        ledger = self._require()
        wire = self._wire
        ids = [cid for cid, _ in items]
        envelopes = [wire.item(cid, body) for cid, body in items]
        plans = wire.plan(envelopes, ids, self.name)
        if resubmit:
            return await self._db(ledger.replan, [(ids[a:b], size) for a, b, size in plans])
        return await self._db(ledger.plan, [(items[a:b], size) for a, b, size in plans])

    async def _create_planned(self) -> None:
        """Upload and create every batch the ledger has planned and not created."""
        ledger = self._require()
        for row in await self._db(ledger.batches):
            if row.status == "planned":
                await self._create(row)

    async def _create(self, row: BatchRow) -> None:
        ledger = self._require()
        wire = self._wire
        spec = wire.spec
        items = [wire.item(cid, body) for cid, body in await self._db(ledger.items_of, row.number)]
        if spec.mode == "file":
            file_id = row.file_id
            if file_id is None:
                assert spec.upload is not None
                form, content_type = wire.upload_form(wire.document(items))
                answer = await self._call("POST", spec.upload.path, form, content_type=content_type)
                file_id = wire.file_id(answer)
                await self._db(ledger.set_file, row.number, file_id)
            body = wire.create_body(self.name, file_id=file_id)
        else:
            body = wire.create_body(self.name, items=items)
        answer = await self._call(spec.create.method, spec.create.path, body)
        remote_id = wire.batch_id(answer)
        try:
            state = wire.state(answer)
        except MalformedResponseError:  # a create answer need not say its status
            state = BatchState("validating", "")
        await self._db(
            ledger.set_status,
            row.number,
            state.status,
            state.raw or None,
            remote_id=remote_id,
            counts=state.counts,
        )

    async def _call(
        self,
        method: str,
        path: str,
        content: bytes | None,
        *,
        content_type: str | None = None,
        batch_id: str | None = None,
    ) -> Any:
        """One call of the batch API, with the client's retry policy, circuit breaker and
        rate limiter; the decoded JSON answer."""
        target = self._target
        url = target.base_url + target.expand_path(self._wire.path(path, batch_id=batch_id))
        errors: list[AiLibError] = []

        async def attempt() -> Any:
            _, answer = await target.request_json(
                url, content, None, method=method, content_type=content_type
            )
            return answer

        try:
            return await target.guard.call(attempt, errors)
        except AiLibError as exc:
            exc.attempts = tuple(errors)
            raise

    # ------------------------------------------------------------ waiting

    async def wait(
        self,
        *,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        on_progress: Callable[[BatchCounts], None] | None = None,
        on_poll: Callable[[BatchCounts, tuple[BatchInfo, ...]], None] | None = None,
    ) -> BatchCounts:
        """Poll until every batch has ended and its results are recorded; return the
        counts. Batches planned but not created (a process stopped while submitting) are
        created first. The wait between polls starts at ``poll_interval`` and doubles while
        nothing changes, up to ``max_poll_interval``; ``on_progress(counts)`` is called
        after each poll, and ``on_poll(counts, batches)`` too, with every batch as the
        ledger then records it (what a progress display shows).

        Cancellable at any await: the ledger keeps every step already taken and the
        batches go on at the provider (``cancel()`` cancels them); a new ``wait()``, in
        this process or another (``BatchJob.resume``), carries on from there.
        """
        first = self.poll_interval if poll_interval is None else poll_interval
        first = positive_seconds("poll_interval", first)
        cap = self.max_poll_interval if max_poll_interval is None else max_poll_interval
        cap = max(positive_seconds("max_poll_interval", cap), first)
        ledger = self._require()
        assert self._busy is not None
        async with self._busy:
            await self._create_planned()
        delay = first
        while True:
            changed = await self.poll()
            counts = await self.counts()
            if on_progress is not None:
                on_progress(counts)
            rows = await self._db(ledger.batches)
            if on_poll is not None:
                on_poll(counts, tuple(_info(row) for row in rows))
            if all(row.fetched for row in rows):
                return counts
            await anyio.sleep(delay)
            delay = first if changed else min(delay * 2, cap)

    async def poll(self) -> bool:
        """Ask the provider once about every batch not yet done, recording new statuses
        and fetching the results of those that ended; return whether anything changed."""
        ledger = self._require()
        assert self._busy is not None
        changed = False
        async with self._busy:
            for row in await self._db(ledger.batches):
                if row.fetched or row.remote_id is None:
                    continue
                answer = await self._call(
                    self._wire.spec.get.method,
                    self._wire.spec.get.path,
                    None,
                    batch_id=row.remote_id,
                )
                state = self._wire.state(answer)
                if (state.status, state.raw) != (row.status, row.raw_status):
                    changed = True
                    await self._db(
                        ledger.set_status,
                        row.number,
                        state.status,
                        state.raw,
                        counts=state.counts,
                        failure=state.failure,
                    )
                if state.terminal:
                    await self._fetch(row, state, answer)
                    changed = True
        return changed

    async def _fetch(self, row: BatchRow, state: BatchState, answer: Any) -> None:
        """Record an ended batch's results; its items without one get the outcome its
        final status implies."""
        ledger = self._require()
        wire = self._wire
        assert row.remote_id is not None
        records = wire.inline_records(answer)
        if records:
            rows: list[tuple[str, str, str]] = []
            for record in records:
                found = wire.outcome(record)
                if found is not None:
                    rows.append((*found, json.dumps(record, ensure_ascii=False)))
            await self._db(ledger.record, row.number, rows)
        for path in wire.result_paths(answer, row.remote_id):
            await self._download(row.number, path)
        failure = json.dumps({"failure": state.failure}) if state.failure else None
        await self._db(ledger.finish, row.number, _MISSING_OUTCOME[state.status], failure)

    async def _download(self, number: int, path: str) -> None:
        """Stream one JSONL results document into the ledger (retried whole, as the
        client's retry policy says: recording a result twice changes nothing)."""
        ledger = self._require()
        target = self._target
        url = target.base_url + target.expand_path(path)
        errors: list[AiLibError] = []

        async def attempt() -> None:
            decoder = NDJSONDecoder()
            pending: list[tuple[str, str, str]] = []
            async with target.open_download(url) as chunks:
                async for chunk in chunks:
                    for frame in decoder.feed(chunk):
                        self._read_line(frame.data, pending)
                    if len(pending) >= _RECORD_EVERY:
                        await self._db(ledger.record, number, pending)
                        pending = []
            for frame in decoder.flush():
                self._read_line(frame.data, pending)
            await self._db(ledger.record, number, pending)

        try:
            await target.guard.call(attempt, errors)
        except AiLibError as exc:
            exc.attempts = tuple(errors)
            raise

    def _read_line(self, line: str, out: list[tuple[str, str, str]]) -> None:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            return  # not a record: its request, if any, is reported missing
        found = self._wire.outcome(record)
        if found is not None:
            out.append((*found, line))

    # ------------------------------------------------------------ cancelling, resubmitting

    async def cancel(self) -> tuple[BatchInfo, ...]:
        """Ask the provider to cancel every batch that has not ended (those planned but
        not created are cancelled here). ``wait()`` then collects what they had done;
        the rest end with ``BatchCancelledError``. Return the batches."""
        ledger = self._require()
        call = self._wire.spec.cancel
        if call is None:
            raise ConfigurationError(
                f"provider {self._client.provider!r} has no batch cancel call in its manifest",
                **self._target.context(),
            )
        assert self._busy is not None
        async with self._busy:
            for row in await self._db(ledger.batches):
                if row.fetched or row.status in BATCH_TERMINAL:
                    continue
                if row.remote_id is None:
                    await self._db(ledger.set_status, row.number, "cancelled", None)
                    await self._db(ledger.finish, row.number, "cancelled", None)
                    continue
                answer = await self._call(call.method, call.path, None, batch_id=row.remote_id)
                try:
                    state = self._wire.state(answer)
                except MalformedResponseError:  # an answer without the status: polls tell
                    continue
                await self._db(
                    ledger.set_status, row.number, state.status, state.raw, counts=state.counts
                )
        return await self.batches()

    async def resubmit_failed(self, *, outcomes: Iterable[str] = FAILED_OUTCOMES) -> int:
        """Submit again, in new batches, only the requests whose outcome is one of
        ``outcomes`` (default: every one but ``succeeded``: ``errored``, ``expired``,
        ``cancelled``, ``failed``, ``missing``), under their own ids; return how many.
        Their earlier outcomes are forgotten; ``wait()`` then collects the new ones."""
        ledger = self._require()
        wanted = tuple(outcomes)
        unknown = [o for o in wanted if o not in (*FAILED_OUTCOMES, "succeeded")]
        if unknown or not wanted:
            raise ConfigurationError(
                f"outcomes must be some of {', '.join(FAILED_OUTCOMES)}, got {wanted!r}"
            )
        assert self._busy is not None
        async with self._busy:
            items = await self._db(ledger.with_outcomes, wanted)
            if not items:
                return 0
            await self._plan(items, resubmit=True)
            await self._create_planned()
        return len(items)

    # ------------------------------------------------------------ reading

    async def batches(self) -> tuple[BatchInfo, ...]:
        """Every batch of the job, in submission order, as last recorded."""
        return tuple(_info(row) for row in await self._db(self._require().batches))

    async def counts(self) -> BatchCounts:
        """How many requests have each outcome, as recorded."""
        found = await self._db(self._require().outcome_counts)
        total = sum(found.values())
        return BatchCounts(
            total=total,
            **{
                name: found.get(name, 0)
                for name in attrs.fields_dict(BatchCounts)
                if name != "total"
            },
        )

    def results(self) -> _Results:
        """``async for custom_id, reply in job.results():`` every request with an outcome,
        in submission order: its ``ChatResponse`` (decoded as a live call's, priced at
        the batch price), or its error: the provider's (a ``RemoteError`` subclass),
        ``BatchExpiredError``, ``BatchCancelledError``, ``BatchFailedError``, or a
        ``MalformedResponseError`` (a response that cannot be read, or none at all)."""
        return _Results(self)


class _Results:
    """The iterator of ``BatchJob.results()``: pages of the ledger, decoded one by one."""

    def __init__(self, job: BatchJob) -> None:
        self._job = job
        self._after = 0
        self._page: list[tuple[str, ChatResponse | AiLibError]] = []

    def __aiter__(self) -> _Results:
        return self

    async def __anext__(self) -> tuple[str, ChatResponse | AiLibError]:
        if not self._page:
            job = self._job
            rows = await job._db(job._require().page, self._after, _PAGE)
            if not rows:
                raise StopAsyncIteration
            self._after = rows[-1].seq
            wire = job._wire
            decoded = []
            for row in rows:
                record = json.loads(row.result) if row.result else None
                assert row.outcome is not None
                outcome = wire.result(
                    row.outcome, record, batch_id=row.batch_remote_id, pricing=job.pricing
                )
                decoded.append((row.custom_id, outcome))
            decoded.reverse()
            self._page = decoded
        return self._page.pop()
