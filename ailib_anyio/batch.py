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

from . import BatchCollector as BatchCollector
from . import BatchExecutor as BatchExecutor
from . import BatchResult as BatchResult
from ._core._errors import BatchCancelledError as BatchCancelledError
from ._core._errors import BatchExpiredError as BatchExpiredError
from ._core._errors import BatchFailedError as BatchFailedError
from ._core._publish import publish
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

publish(__name__, globals(), __all__)
