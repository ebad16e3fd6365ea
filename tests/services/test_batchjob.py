"""Provider batch jobs (``ailib_anyio.batch.BatchJob``) against the mock provider's three
batch APIs, on asyncio and trio: splitting by the manifest's limits, results joined by
custom_id whatever the order, costs at the batch price, resuming from the ledger (after a
cancelled wait, a failed submit, and a process killed with SIGKILL) without submitting
twice, resubmitting only the failed requests, expiry, cancellation, failed batches, and
the typed refusals of bad input."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from ruamel.yaml import YAML

from ailib_anyio import (
    AiLibError,
    ChatResponse,
    Client,
    ConfigurationError,
    InvalidRequestError,
    MalformedResponseError,
    RemoteInvalidRequestError,
    ServerError,
    open_client,
)
from ailib_anyio._protocol._batch import BatchWire
from ailib_anyio.batch import (
    BatchCancelledError,
    BatchCounts,
    BatchExpiredError,
    BatchFailedError,
    BatchInfo,
    BatchJob,
    derive_custom_ids,
)
from ailib_anyio.testing import MockProvider, Reply, ScriptedBatchError

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]

#: (model, the mock's base-url attribute) of each batch dialect
PROVIDERS = {
    "openai": ("openai/gpt-4o", "openai_base_url"),
    "anthropic": ("anthropic/claude-sonnet-4-6", "anthropic_base_url"),
    "gemini": ("gemini/gemini-2.5-flash", "gemini_base_url"),
}
FAST = {"poll_interval": 0.001, "max_poll_interval": 0.01}


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    before = len(anyio.get_running_tasks())
    yield
    assert len(anyio.get_running_tasks()) == before


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def client_for(mock: MockProvider, provider: str, **settings: Any) -> Client:
    model, base = PROVIDERS[provider]
    settings.setdefault("max_retries", 0)
    return open_client(model, api_key="test-key", base_url=getattr(mock, base), **settings)


def questions(count: int, start: int = 0) -> dict[str, str]:
    return {f"q{i}": f"question number {i}" for i in range(start, start + count)}


def submitted(client: Client, texts: dict[str, str]) -> dict[str, Any]:
    return {cid: client.chat().user(text) for cid, text in texts.items()}


async def all_results(job: BatchJob) -> dict[str, ChatResponse | AiLibError]:
    found: dict[str, ChatResponse | AiLibError] = {}
    async for custom_id, reply in job.results():
        assert custom_id not in found
        found[custom_id] = reply
    return found


def manifests_with_limits(
    directory: Path, *, max_requests: int | None, max_bytes: int | None
) -> Path:
    """Copies of the shipped manifests whose batch limits are these (JSON is YAML)."""
    yaml = YAML(typ="safe")
    for name in PROVIDERS:
        data = yaml.load((REPO / "protocols" / f"{name}.yaml").read_text(encoding="utf-8"))
        data["batch"]["limits"] = {
            key: value
            for key, value in (("max_requests", max_requests), ("max_bytes", max_bytes))
            if value is not None
        }
        (directory / f"{name}.yaml").write_text(json.dumps(data), encoding="utf-8")
    return directory


def create_requests(mock: MockProvider) -> list[str]:
    creating = ("/batches", "/messages/batches", ":batchGenerateContent")
    return [r.path for r in mock.requests if r.method == "POST" and r.path.endswith(creating)]


# ------------------------------------------------------------------ splitting and joining


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_ten_thousand_requests_split_by_the_limits_and_joined_by_id(
    mock: MockProvider, provider: str, tmp_path: Path
) -> None:
    max_requests, max_bytes = 600, 120_000
    path = manifests_with_limits(tmp_path, max_requests=max_requests, max_bytes=max_bytes)
    mock.batches.max_requests, mock.batches.max_bytes = max_requests, max_bytes  # refuses more
    texts = questions(10_000)
    for cid in list(texts)[5_000:]:
        texts[cid] += " and some more words" * 10
    async with (
        client_for(mock, provider, protocol_path=path) as client,
        BatchJob(client, ledger=tmp_path / "job.db", **FAST) as job,
    ):
        infos = await job.submit(submitted(client, texts))
        counts = await job.wait()
        results = await all_results(job)
        wire = BatchWire(client.manifest, provider=provider, model=client.model_id)
        sizes = [  # what each request takes in a batch: its envelope and a separator
            len(wire.item(cid, client.primary.encode(client.chat().user(text).build()))) + 1
            for cid, text in texts.items()
        ]

    assert counts == BatchCounts(total=10_000, succeeded=10_000)
    # every batch within both limits, and each full: the next request would not fit
    assert len(infos) == len(mock.batches.created) > 1
    assert sum(info.requests for info in infos) == 10_000
    start = 0
    for info, _ in itertools.pairwise(infos):
        assert info.requests <= max_requests
        assert info.bytes <= max_bytes
        start += info.requests
        assert info.requests == max_requests or info.bytes + sizes[start] > max_bytes
    assert infos[-1].bytes <= max_bytes
    # short requests fill batches by count, long ones by bytes
    assert {info.requests == max_requests for info in infos[:-1]} == {True, False}
    for batch in mock.batches.created:
        assert len(batch.requests) <= max_requests
        assert batch.input_bytes <= max_bytes
    assert [cid for b in mock.batches.created for cid in b.custom_ids] == list(texts)
    # the provider answered in scrambled order; the job joined by custom_id
    records = mock.batches.created[0].records
    assert len(records) == infos[0].requests
    assert list(results) == list(texts)
    for cid, text in texts.items():
        reply = results[cid]
        assert isinstance(reply, ChatResponse)
        assert reply.content == f"Mock reply to: {text}"


async def test_results_come_scrambled_and_are_joined_by_id(mock: MockProvider) -> None:
    texts = questions(40)
    async with client_for(mock, "anthropic") as client, BatchJob(client, **FAST) as job:
        await job.submit(submitted(client, texts))
        await job.wait()
        results = await all_results(job)
    records = [r["custom_id"] for r in mock.batches.created[0].records]
    assert sorted(records) == sorted(texts)
    assert records != list(texts)  # the mock's results are not in input order
    assert list(results) == list(texts)  # the job's are, joined by id
    assert all(results[c].content == f"Mock reply to: {t}" for c, t in texts.items())  # type: ignore[union-attr]


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_costs_are_at_the_batch_price(mock: MockProvider, provider: str) -> None:
    async with client_for(mock, provider) as client:
        live = await client.chat().user("what does a batch cost").execute()
        async with BatchJob(client, **FAST) as job:
            await job.submit({"one": client.chat().user("what does a batch cost")})
            await job.wait()
            (custom_id, reply), *_ = [item async for item in job.results()]
    assert custom_id == "one"
    assert isinstance(reply, ChatResponse)
    assert reply.usage == live.usage
    assert live.cost is not None
    assert reply.cost is not None
    assert reply.cost.total_cost == live.cost.total_cost * Decimal("0.5") > 0
    assert reply.pricing is not None
    assert live.pricing is not None
    assert reply.pricing.input_per_1m == live.pricing.input_per_1m / 2
    assert job.pricing == reply.pricing


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_requests_are_encoded_as_live_calls_are(mock: MockProvider, provider: str) -> None:
    async with client_for(mock, provider) as client:
        builder = client.chat().system("Be brief.").user("2+2?").max_tokens(20).temperature(0)
        await builder.execute()
        live_body = mock.requests[-1].json
        async with BatchJob(client, **FAST) as job:
            await job.submit([builder])
    (cid, batch_body), *_ = mock.batches.created[0].requests
    assert batch_body == live_body
    assert cid == derive_custom_ids([client.primary.encode(builder.build())])[0]


# ------------------------------------------------------------------ the ledger


async def test_a_cancelled_wait_resumes_from_the_ledger_without_resubmitting(
    mock: MockProvider, tmp_path: Path
) -> None:
    mock.batches.complete_after_polls = None  # the batch runs until the test ends it
    ledger = tmp_path / "job.db"
    texts = questions(30)
    async with client_for(mock, "openai") as client, BatchJob(client, ledger=ledger, **FAST) as job:
        await job.submit(submitted(client, texts))
        with anyio.move_on_after(0.2):
            await job.wait()
        del job
    assert mock.batches.polls >= 2
    assert len(create_requests(mock)) == 1
    assert not any("/cancel" in r.path for r in mock.requests)  # the batch goes on
    assert not mock.batches.created[0].cancel_requested

    # a new process: a new client, the job read back from its ledger
    async with client_for(mock, "openai") as client, BatchJob.resume(client, ledger, **FAST) as job:
        assert await job.submit(submitted(client, texts)) == ()  # nothing new
        (info,) = await job.batches()
        assert info.remote_id == mock.batches.created[0].id
        assert info.status == "finalizing"  # validating, in_progress, finalizing...
        assert not info.fetched
        mock.batches.complete()
        counts = await job.wait()
        results = await all_results(job)
    assert counts.succeeded == 30
    assert len(create_requests(mock)) == 1
    assert len(mock.batches.files) == 2  # one input file, one output file: no new upload
    assert {c: r.content for c, r in results.items()} == {  # type: ignore[union-attr]
        c: f"Mock reply to: {t}" for c, t in texts.items()
    }


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_a_submit_cut_short_is_finished_by_the_next_wait(
    mock: MockProvider, provider: str, tmp_path: Path
) -> None:
    path = manifests_with_limits(tmp_path, max_requests=10, max_bytes=None)
    ledger = tmp_path / "job.db"
    calls = 0
    creating = {"openai": "/batches", "anthropic": "/messages/batches"}.get(
        provider, ":batchGenerateContent"
    )
    async with (
        client_for(mock, provider, protocol_path=path) as client,
        BatchJob(client, ledger=ledger, **FAST) as job,
    ):
        # the second create fails: the first batch exists, the second is planned
        original = mock.batches.answer

        def flaky(method: str, target: str, body: bytes, headers: Any) -> Any:
            nonlocal calls
            if method == "POST" and target.endswith(creating):
                calls += 1
                if calls == 2:
                    return 503, {"error": {"message": "try later"}}, {}
            return original(method, target, body, headers)

        mock.batches.answer = flaky  # type: ignore[method-assign]
        with pytest.raises(AiLibError):
            await job.submit(submitted(client, questions(20)))
        infos = await job.batches()
        assert [info.status for info in infos][1] == "planned"
        assert infos[0].remote_id is not None
    uploads = len(mock.batches.files)
    async with (
        client_for(mock, provider, protocol_path=path) as client,
        BatchJob.resume(client, ledger, **FAST) as job,
    ):
        counts = await job.wait()
    assert counts == BatchCounts(total=20, succeeded=20)
    assert len(mock.batches.created) == 2
    assert calls == 3
    if provider == "openai":  # the second file was uploaded before the create failed
        assert len(mock.batches.files) == uploads + 2  # only the two output files are new


async def test_a_killed_process_resumes_from_the_ledger(
    mock: MockProvider, tmp_path: Path, anyio_backend: str
) -> None:
    """A child process submits and waits; it is killed with SIGKILL mid-wait; this process
    resumes the job from the ledger: the batch is polled, never submitted again."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGKILL is POSIX")
    mock.batches.complete_after_polls = None
    ledger = tmp_path / "job.db"
    child = textwrap.dedent(
        f"""
        import anyio, sys
        from ailib_anyio import open_client
        from ailib_anyio.batch import BatchJob

        async def main():
            url = {mock.openai_base_url!r}
            async with open_client("openai/gpt-4o", api_key="k", base_url=url) as client:
                async with BatchJob(client, ledger={str(ledger)!r}, poll_interval=0.01,
                                    max_poll_interval=0.02) as job:
                    await job.submit({{f"q{{i}}": client.chat().user(f"question number {{i}}")
                                      for i in range(25)}})
                    print("submitted", flush=True)
                    await job.wait()
                    print("the wait ended", flush=True)

        anyio.run(main, backend=sys.argv[1])
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    async with await anyio.open_process(
        [sys.executable, "-c", child, anyio_backend], env=env
    ) as process:
        assert process.stdout is not None
        seen = b""
        with anyio.fail_after(30):
            while b"submitted" not in seen:
                seen += await process.stdout.receive()
            while mock.batches.polls < 3:  # noqa: ASYNC110 - it is polling: kill it mid-wait
                await anyio.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
    assert len(create_requests(mock)) == 1

    async with client_for(mock, "openai") as client, BatchJob.resume(client, ledger, **FAST) as job:
        (info,) = await job.batches()
        assert info.remote_id == mock.batches.created[0].id
        polls = mock.batches.polls
        mock.batches.complete()
        counts = await job.wait()
        results = await all_results(job)
    assert mock.batches.polls > polls
    assert counts == BatchCounts(total=25, succeeded=25)
    assert len(create_requests(mock)) == 1
    assert results["q7"].content == "Mock reply to: question number 7"  # type: ignore[union-attr]


async def test_a_ledger_belongs_to_one_model(mock: MockProvider, tmp_path: Path) -> None:
    ledger = tmp_path / "job.db"
    async with client_for(mock, "openai") as client, BatchJob(client, ledger=ledger, **FAST) as job:
        await job.submit({"a": client.chat().user("hi")})
    async with client_for(mock, "anthropic") as client:
        with pytest.raises(ConfigurationError) as caught:
            async with BatchJob(client, ledger=ledger):
                pass
    assert str(caught.value) == (
        f"the ledger {str(ledger)!r} holds a job of openai/gpt-4o, not of"
        " anthropic/claude-sonnet-4-6 (anthropic/claude-sonnet-4-6)"
    )
    with pytest.raises(ConfigurationError, match="no batch job ledger at"):
        BatchJob.resume(client, tmp_path / "missing.db")
    (tmp_path / "text.db").write_text("not a database " * 100)
    async with client_for(mock, "openai") as client:
        with pytest.raises(ConfigurationError, match=r"'.*text.db' is not a batch job ledger"):
            async with BatchJob(client, ledger=tmp_path / "text.db"):
                pass
        with pytest.raises(ConfigurationError, match="cannot open the batch job ledger"):
            async with BatchJob(client, ledger=tmp_path / "no" / "such" / "dir.db"):
                pass
    (tmp_path / "empty.db").touch()
    async with client_for(mock, "openai") as client:
        with pytest.raises(ConfigurationError, match="holds no batch job"):
            async with BatchJob.resume(client, tmp_path / "empty.db"):
                pass


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_failed_requests_are_resubmitted_alone(mock: MockProvider, provider: str) -> None:
    failing = {
        "q3": ScriptedBatchError(500, "overloaded, try again"),
        "q8": ScriptedBatchError(400, "bad"),
    }
    if provider != "gemini":  # Gemini has no per-request expiry: a whole batch expires
        failing["q5"] = "expired"  # type: ignore[assignment]

    def on_item(custom_id: str, request: Any, attempt: int) -> Any:
        return failing.get(custom_id) if attempt == 1 else None

    mock.batches.on_item = on_item
    texts = questions(12)
    async with client_for(mock, provider) as client, BatchJob(client, **FAST) as job:
        await job.submit(submitted(client, texts))
        first = await job.wait()
        before = await all_results(job)
        assert await job.resubmit_failed() == len(failing)
        second = await job.wait()
        after = await all_results(job)
        infos = await job.batches()

    assert first.succeeded == 12 - len(failing)
    assert first.errored == 2
    assert isinstance(before["q3"], ServerError)
    assert before["q3"].message == "server_error: overloaded, try again"
    assert before["q3"].retryable
    assert isinstance(before["q8"], RemoteInvalidRequestError)
    if provider != "gemini":
        assert isinstance(before["q5"], BatchExpiredError)
        assert first.expired == 1
    # the second batch holds the failed requests and nothing else
    assert sorted(mock.batches.created[1].custom_ids) == sorted(failing)
    assert [info.requests for info in infos] == [12, len(failing)]
    assert second == BatchCounts(total=12, succeeded=12)
    assert list(after) == list(texts)
    assert all(isinstance(reply, ChatResponse) for reply in after.values())


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_an_expired_batch(mock: MockProvider, provider: str) -> None:
    mock.batches.complete_after_polls = None
    mock.batches.scramble = False  # "the first two ran" is the first two of the input
    async with client_for(mock, provider) as client, BatchJob(client, **FAST) as job:
        await job.submit(submitted(client, questions(5)))
        await job.poll()
        mock.batches.expire(answered=2)
        counts = await job.wait()
        results = await all_results(job)
        (info,) = await job.batches()
    assert info.status == ("ended" if provider == "anthropic" else "expired")
    assert counts == BatchCounts(total=5, succeeded=2, expired=3)
    assert [type(r).__name__ for r in results.values()] == [
        "ChatResponse",
        "ChatResponse",
        "BatchExpiredError",
        "BatchExpiredError",
        "BatchExpiredError",
    ]
    error = results["q4"]
    assert isinstance(error, BatchExpiredError)
    assert error.retryable
    assert error.provider == provider


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_cancel_cancels_the_remote_batches(mock: MockProvider, provider: str) -> None:
    mock.batches.complete_after_polls = None
    async with client_for(mock, provider) as client, BatchJob(client, **FAST) as job:
        await job.submit(submitted(client, questions(4)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(job.wait)
            while mock.batches.polls < 2:  # noqa: ASYNC110 - a counter: no event to wait on
                await anyio.sleep(0.001)
            await job.cancel()
        counts = await job.wait()
        results = await all_results(job)
    assert mock.batches.created[0].cancel_requested
    assert counts == BatchCounts(total=4, cancelled=4)
    assert all(isinstance(r, BatchCancelledError) for r in results.values())
    assert str(results["q0"]).startswith("the batch was cancelled before this request ran")


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_a_failed_batch(mock: MockProvider, provider: str) -> None:
    mock.batches.complete_after_polls = None
    async with client_for(mock, provider) as client, BatchJob(client, **FAST) as job:
        await job.submit(submitted(client, questions(3)))
        mock.batches.fail(message="line 2: the model is unknown")
        counts = await job.wait()
        results = await all_results(job)
        (info,) = await job.batches()
    assert info.status == "failed"
    assert info.failure == "line 2: the model is unknown"
    assert counts == BatchCounts(total=3, failed=3)
    error = results["q1"]
    assert isinstance(error, BatchFailedError)
    assert error.message == (
        f"the batch failed (batch {info.remote_id}): line 2: the model is unknown"
    )


async def test_a_poll_error_is_retried_by_the_clients_policy(mock: MockProvider) -> None:
    async with client_for(mock, "openai", max_retries=2) as client, BatchJob(client, **FAST) as job:
        await job.submit(submitted(client, questions(2)))
        mock.enqueue(Reply.error(503, "busy", type="server_error"))  # the next poll
        counts = await job.wait()
    assert counts.succeeded == 2
    assert any(r.path.endswith("/batches/batch_mock_1") for r in mock.requests)


async def test_a_broken_results_line_is_reported_not_raised(mock: MockProvider) -> None:
    async with client_for(mock, "openai") as client, BatchJob(client, **FAST) as job:
        await job.submit(submitted(client, questions(3)))
        await job.poll()
        mock.batches.complete()
        batch = mock.batches.created[0]
        assert batch.output_file_id is not None
        lines = mock.batches.files[batch.output_file_id].splitlines()
        q1 = next(i for i, line in enumerate(lines) if b'"q1"' in line)
        lines[q1] = lines[q1][:40]  # cut: not JSON
        mock.batches.files[batch.output_file_id] = b"\n".join(lines)  # no final newline
        counts = await job.wait()
        results = await all_results(job)
    assert counts == BatchCounts(total=3, succeeded=2, missing=1)
    assert isinstance(results["q1"], MalformedResponseError)
    assert isinstance(results["q2"], ChatResponse)


# ------------------------------------------------------------------ refusals


async def test_bad_input_is_refused_before_any_io(mock: MockProvider, tmp_path: Path) -> None:
    async with client_for(mock, "openai") as client, BatchJob(client, **FAST) as job:
        with pytest.raises(ConfigurationError, match="custom_id must be 1-64"):
            await job.submit({"not ok!": client.chat().user("hi")})
        with pytest.raises(ConfigurationError, match="at least one request"):
            await job.submit([])
        with pytest.raises(ConfigurationError, match="takes an iterable of requests"):
            await job.submit(client.chat().user("hi"))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="ChatBuilder or a ChatRequest"):
            await job.submit(["hi"])  # type: ignore[list-item]
        other = client.chat().user("hi").build()
        with pytest.raises(ConfigurationError, match="for model 'gpt-5'"):
            await job.submit([attrs.evolve(other, model="gpt-5")])
        await job.submit({"a": client.chat().user("hi")})
        with pytest.raises(ConfigurationError, match="'a' is in this job already"):
            await job.submit({"a": client.chat().user("something else")})
        assert await job.submit({"a": client.chat().user("hi")}) == ()
        with pytest.raises(ConfigurationError, match="outcomes must be some of"):
            await job.resubmit_failed(outcomes=["nope"])
    assert len(mock.batches.created) == 1
    with pytest.raises(RuntimeError, match="closed"):
        await job.counts()

    path = manifests_with_limits(tmp_path, max_requests=None, max_bytes=400)
    async with (
        client_for(mock, "anthropic", protocol_path=path) as client,
        BatchJob(client, **FAST) as job,
    ):
        with pytest.raises(InvalidRequestError) as caught:
            await job.submit({"big": client.chat().user("word " * 100)})
    assert caught.value.message.startswith("request 'big' is ")
    assert caught.value.message.endswith(
        "bytes in a batch: more than one batch of anthropic may hold (400 bytes)"
    )
    assert len(mock.batches.created) == 1


async def test_a_provider_without_a_batch_api(mock: MockProvider) -> None:
    async with open_client(
        "deepseek/deepseek-chat", api_key="k", base_url=mock.openai_base_url
    ) as c:
        with pytest.raises(ConfigurationError) as caught:
            BatchJob(c)
    assert caught.value.message == (
        "provider 'deepseek' has no batch API in its manifest (no 'batch' section)"
    )


async def test_progress_and_batch_info(mock: MockProvider) -> None:
    seen: list[BatchCounts] = []
    polled: list[tuple[BatchCounts, tuple[BatchInfo, ...]]] = []
    async with client_for(mock, "gemini") as client, BatchJob(client, name="my-job", **FAST) as job:
        (info,) = await job.submit(submitted(client, questions(3)))
        await job.wait(on_progress=seen.append, on_poll=lambda *found: polled.append(found))
        (done,) = await job.batches()
    # on_poll: after each poll too, with the batches as recorded then
    assert [counts for counts, _ in polled] == seen
    assert [batch.status for _, (batch,) in polled] == ["in_progress", "ended"]
    assert polled[-1][1] == (done,)
    assert isinstance(info, BatchInfo)
    assert info.remote_id == "batches/gmock_1"
    assert info.status == "validating"
    assert not info.terminal
    assert done.fetched
    assert done.terminal
    assert done.counts == {"total": 3, "succeeded": 3, "errored": 0, "processing": 0}
    assert seen[-1] == BatchCounts(total=3, succeeded=3)
    assert seen[0].pending == 3
    body = mock.requests[0].json
    assert body["batch"]["displayName"] == "my-job"
    assert mock.requests[0].path.endswith("/models/gemini-2.5-flash:batchGenerateContent")
