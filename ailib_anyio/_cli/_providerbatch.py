"""``ailib batch MODEL in.jsonl out.jsonl --provider-batch``: the same input and output as
the live ``batch`` command, through the provider's own batch API (``BatchJob``).

The items not yet in ``out.jsonl`` are submitted as one job (split into batches under the
provider's limits, as its manifest's ``batch`` section says), polled until every batch has
ended, and their results written to ``out.jsonl`` in the live command's line format, in
submission order: a ``response``, or an ``error`` (the provider's, or ``BatchExpiredError``,
``BatchCancelledError``, ``BatchFailedError`` for a request that did not run).

Each item's ``custom_id`` is derived from its id (``custom_id_for``), so the same input
gives the same ids in every run. The job lives in a SQLite ledger (by default
``out.jsonl.ledger``): running the same command again after an interruption re-attaches
to the batches it records instead of submitting (and paying) twice, since ``submit``
skips every request the ledger has already; items added to the input since go in a new
batch of the same job.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import IO

import attrs

from .._client._chat import ChatBuilder
from .._client._client import Client
from .._core._errors import ConfigurationError
from .._services._batchjob import BatchCounts, BatchInfo, BatchJob
from ._batchfile import BatchInputError, BatchStats, chat_request, read_items, write_result

__all__ = ["JobView", "ProviderBatchRun", "custom_id_for", "default_ledger", "status_summary"]

_IN_JOB = re.compile(r"custom_id '([^']+)' is in this job already")


def custom_id_for(key: str) -> str:
    """The ``custom_id`` of the item whose id is ``key`` (its JSON): ``i`` and 40 hex
    digits of its SHA-256, good for every provider's id rules, the same in every run."""
    return "i" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def default_ledger(output: Path) -> Path:
    """Where the job's ledger goes when ``--ledger`` is not given: beside ``out.jsonl``."""
    return output.with_name(output.name + ".ledger")


@attrs.frozen
class JobView:
    """What the job looks like after a poll: its request ``counts`` (as recorded in the
    ledger: an item counts once its batch's results are fetched) and its ``batches``."""

    counts: BatchCounts
    batches: tuple[BatchInfo, ...]


def status_summary(batches: tuple[BatchInfo, ...]) -> str:
    """``"batches: 1 in_progress, 2 ended"`` (statuses in the order first seen)."""
    found = collections.Counter(info.status for info in batches)
    return "batches: " + ", ".join(f"{n} {status}" for status, n in found.items())


@attrs.define
class ProviderBatchRun:
    """One run of ``batch --provider-batch``: what it was told, and what it did
    (``entered``: the job's ledger is open, so batches may be at the provider;
    ``finished``: every result written)."""

    client: Client
    input_path: Path
    ledger: Path
    done: AbstractSet[str]
    stats: BatchStats
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    retry_errors: bool = False
    poll_interval: float = 10.0
    max_poll_interval: float = 300.0
    #: ``say(text)``: a line for the user (standard error)
    say: Callable[[str], None] = print
    #: ``watch(view)``: called after each poll
    watch: Callable[[JobView], None] | None = None
    entered: bool = False
    finished: bool = False
    _job: BatchJob | None = attrs.field(default=None, init=False, repr=False)

    def _requests(self) -> tuple[dict[str, ChatBuilder], dict[str, str | int]]:
        """The requests of the items to run, by custom id, and each custom id's item id."""
        requests: dict[str, ChatBuilder] = {}
        ids: dict[str, str | int] = {}
        for item in read_items(self.input_path):
            if isinstance(item, tuple):
                continue  # checked before the run
            cid = custom_id_for(item.key)
            ids[cid] = item.id
            if item.key not in self.done:
                requests[cid] = chat_request(
                    self.client,
                    item,
                    system=self.system,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                )
        return requests, ids

    def check(self) -> BatchJob:
        """The job (not yet entered: nothing opened, nothing sent); ``ConfigurationError``
        naming the provider when its manifest has no batch API."""
        if self._job is None:
            self._job = BatchJob(
                self.client,
                ledger=self.ledger,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
            )
        return self._job

    async def run(self, open_output: Callable[[], IO[str]]) -> None:
        """Submit (or re-attach), wait, then write the results with ``open_output()``."""
        job = self.check()
        requests, ids = self._requests()
        async with job:
            self.entered = True
            await self._submit(job, requests, ids)
            await self._wait(job)
            with open_output() as output:
                async for cid, outcome in job.results():
                    if cid in requests:  # not those out.jsonl has, nor others of the job
                        write_result(output, ids[cid], outcome, self.stats)
        self.finished = True

    async def _submit(
        self, job: BatchJob, requests: dict[str, ChatBuilder], ids: dict[str, str | int]
    ) -> None:
        earlier = await job.batches()
        if earlier:
            remote = ", ".join(info.remote_id or "not yet created" for info in earlier)
            self.say(
                f"re-attaching to the job in {self.ledger}: {len(earlier)} batch(es) ({remote})"
            )
        if self.retry_errors:
            again = await job.resubmit_failed()
            if again:
                self.say(f"resubmitting {again} failed item(s) in a new batch")
        try:
            created = await job.submit(requests) if requests else ()
        except ConfigurationError as exc:
            found = _IN_JOB.search(exc.message)
            if found is None or found[1] not in ids:
                raise
            raise BatchInputError(
                f"item {json.dumps(ids[found[1]])} of {self.input_path} is in the job of"
                f" {self.ledger} with another request (the input or the options changed"
                " since it was submitted): give the options of that run, or another --ledger"
            ) from exc
        if created:
            items = sum(info.requests for info in created)
            remote = ", ".join(info.remote_id or "?" for info in created)
            self.say(
                f"submitted {items} item(s) in {len(created)} batch(es) to"
                f" {self.client.provider} ({remote}); ledger: {self.ledger}"
            )

    async def _wait(self, job: BatchJob) -> None:
        watch = self.watch

        def on_poll(counts: BatchCounts, batches: tuple[BatchInfo, ...]) -> None:
            if watch is not None:
                watch(JobView(counts, batches))

        await job.wait(on_poll=on_poll)
