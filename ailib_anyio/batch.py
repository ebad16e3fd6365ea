"""Provider batch jobs (``BatchJob``) beside the live batch runner (``BatchExecutor``).

``BatchJob`` sends many chat requests through the provider's own batch API (OpenAI Batch,
Anthropic Message Batches, Gemini batch mode: whatever the manifest's ``batch`` section
describes), at the batch price, resumable from a SQLite ledger::

    from ailib_anyio.batch import BatchJob

    questions = {"sky": "Why is the sky blue?", "sea": "Why is the sea salty?"}
    async with open_client("openai/gpt-4o-mini") as client:
        async with BatchJob(client, ledger="job.db", poll_interval=0.05) as job:
            await job.submit({key: client.chat().user(q) for key, q in questions.items()})
            await job.wait()  # cancelled, or the process killed: BatchJob.resume(client, "job.db")
            async for custom_id, reply in job.results():
                print(custom_id, reply.content if isinstance(reply, ChatResponse) else reply)

``BatchExecutor`` (and ``client.batch(...)``) runs live calls concurrently instead, for
jobs that must use the live API.
"""

import attrs as _attrs

from . import BatchCollector as BatchCollector
from . import BatchExecutor as BatchExecutor
from . import BatchResult as BatchResult
from ._core._errors import BatchCancelledError as BatchCancelledError
from ._core._errors import BatchExpiredError as BatchExpiredError
from ._core._errors import BatchFailedError as BatchFailedError
from ._protocol._batch import derive_custom_ids as derive_custom_ids
from ._services._batchjob import BatchCounts as BatchCounts
from ._services._batchjob import BatchInfo as BatchInfo
from ._services._batchjob import BatchJob as BatchJob

__all__ = [
    "BatchCancelledError",
    "BatchCollector",
    "BatchCounts",
    "BatchExecutor",
    "BatchExpiredError",
    "BatchFailedError",
    "BatchInfo",
    "BatchJob",
    "BatchResult",
    "derive_custom_ids",
]

for _name in __all__:
    # tracebacks and reprs say ailib_anyio.batch.BatchJob; what the package itself exports
    # (BatchExecutor...) keeps its ailib_anyio.<name>
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("ailib_anyio._"):
        if _attrs.has(_obj):
            _attrs.resolve_types(_obj)
        _obj.__module__ = __name__
del _name, _obj
