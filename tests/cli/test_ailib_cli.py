"""The ``ailib`` command line, run as its console script runs it: a separate Python
process calling ``sys.exit(main())`` (what the installed ``ailib`` wrapper does), talking
to the loopback mock provider of the test's own event loop (on asyncio and on trio, and
``--backend`` the same). The installed ``ailib`` itself is run where it is on the PATH."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from ailib_anyio._cli._entry import main as entry_main
from ailib_anyio._services._routing import ModelManager
from ailib_anyio.testing import MockProvider, Reply, ScriptedBatchError, ScriptedReply

pytest.importorskip("click")
pytest.importorskip("rich")

REPO = Path(__file__).resolve().parents[2]
ENTRY = "import sys; from ailib_anyio._cli._entry import main; sys.exit(main())"
CLI = (sys.executable, "-c", ENTRY)
#: the same, taking Ctrl-C even when this test run was started with SIGINT ignored (a
#: background job of a non-interactive shell), which its children would inherit
INTERRUPTIBLE = (
    sys.executable,
    "-c",
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); " + ENTRY,
)
#: variables that would change what the CLI does, removed from the child's environment
_UNSET = re.compile(r"^(AI_|.*_API_KEY$|.*_BASE_URL$|OTEL_)")


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _UNSET.match(k)}
    env["OPENAI_API_KEY"] = "mock-key"
    env.update(extra)
    return env


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else cli_env(),
    )


async def arun_cli(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a child process, awaited, so the mock provider of this event loop
    keeps answering it."""
    with anyio.fail_after(60):
        return await anyio.run_process(
            [*CLI, *args], check=False, env=dict(env) if env is not None else cli_env()
        )


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition``: what another process does to a file cannot be awaited."""
    with anyio.fail_after(30):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.05)


def text(data: bytes) -> str:
    return data.decode("utf-8")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------------ chat


@pytest.mark.anyio
async def test_chat_streams_the_reply_as_it_arrives(anyio_backend: str) -> None:
    async with MockProvider() as mock:
        # each event of the stream half a second apart: the first words are printed
        # while the rest are still on their way
        mock.enqueue(ScriptedReply(content="Hello world", chunk_size=6, delay_between_chunks=0.5))
        args = ("chat", "openai/gpt-4o", "Hi", "--base-url", mock.openai_base_url)
        async with await anyio.open_process(
            [*CLI, *args, "--backend", anyio_backend], env=cli_env()
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            received = b""
            with anyio.fail_after(30):
                while b"Hello" not in received:
                    received += await process.stdout.receive()
            assert process.returncode is None  # still streaming
            with anyio.fail_after(30):
                async for chunk in process.stdout:
                    received += chunk
                errors = b"".join([chunk async for chunk in process.stderr])
                code = await process.wait()
    assert code == 0, text(errors)
    assert text(received) == "Hello world\n"
    assert "[finish: stop · tokens: " in text(errors)
    assert mock.requests[0].json["stream"] is True


@pytest.mark.anyio
async def test_chat_json_prints_the_whole_response(anyio_backend: str) -> None:
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="Four.", usage=(1000, 2000)))
        done = await arun_cli(
            "chat",
            "openai/gpt-4o",
            "2+2?",
            "--json",
            "--system",
            "Be brief.",
            "--temperature",
            "0.5",
            "--max-tokens",
            "20",
            "--base-url",
            mock.openai_base_url,
            "--backend",
            anyio_backend,
        )
    assert done.returncode == 0, text(done.stderr)
    reply = json.loads(done.stdout)
    assert reply["content"] == "Four."
    assert reply["finish_reason"] == {"normalized": "stop", "raw": "stop"}
    assert reply["usage"]["input_tokens"] == 1000
    assert reply["usage"]["output_tokens"] == 2000
    pricing = ModelManager.for_provider("openai").get("openai/gpt-4o").pricing
    assert pricing is not None
    expected = (pricing.input_per_1m * 1000 + pricing.output_per_1m * 2000) / 1_000_000
    assert reply["cost"]["total"] == format(expected.normalize(), "f")
    assert reply["cost"]["currency"] == "USD"
    assert reply["request_id"] == "req_mock_1"
    sent = mock.requests[0].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
    ]
    assert sent["temperature"] == 0.5
    assert 20 in (sent.get("max_tokens"), sent.get("max_completion_tokens"))
    assert not sent.get("stream")


def test_missing_key_names_the_variable() -> None:
    env = cli_env()
    del env["OPENAI_API_KEY"]
    done = run_cli("chat", "openai/gpt-4o", "Hi", env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "ailib: ConfigurationError: no API key for provider 'openai': pass api_key= or set"
        " OPENAI_API_KEY (openai)\n"
    )


def test_usage_errors_exit_2() -> None:
    unknown = run_cli("chat", "nope/model", "Hi")
    assert unknown.returncode == 2
    assert "ailib: ConfigurationError: unknown provider 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    no_prompt = run_cli("chat", "openai/gpt-4o")
    assert no_prompt.returncode == 2
    assert "Missing argument 'PROMPT'" in no_prompt.stderr
    backend = run_cli("chat", "openai/gpt-4o", "Hi", "--backend", "curio")
    assert backend.returncode == 2
    # refused by the library before any request: outside the manifest's range
    hot = run_cli("chat", "openai/gpt-4o", "Hi", "--temperature", "9")
    assert hot.returncode == 2
    assert "temperature=9.0 is outside the range [0, 2]" in hot.stderr


@pytest.mark.anyio
async def test_a_provider_error_exits_1(anyio_backend: str) -> None:
    async with MockProvider() as mock:
        mock.enqueue(Reply.error(400, "This prompt is not allowed"))
        done = await arun_cli("chat", "openai/gpt-4o", "Hi", "--base-url", mock.openai_base_url)
    assert done.returncode == 1
    assert text(done.stderr) == (
        "ailib: RemoteInvalidRequestError: invalid_request: This prompt is not allowed"
        " (status=400, openai/gpt-4o, request_id=req_mock_1)\n"
    )
    assert "Traceback" not in text(done.stderr)


# ---------------------------------------------------------------- models, protocols


def test_models_table_reads_the_manifests() -> None:
    done = run_cli("models", "--provider", "openai")
    assert done.returncode == 0, done.stderr
    catalogue = ModelManager.for_provider("openai").list_models()
    assert catalogue
    header = done.stdout.splitlines()[1]
    for title in ("model", "context", "max output", "input /1M", "cached input /1M", "output /1M"):
        assert title in header
    rows = [line for line in done.stdout.splitlines() if "openai/" in line]
    assert len(rows) == len(catalogue)
    for model, row in zip(catalogue, rows, strict=True):
        cells = [cell.strip() for cell in row.strip("│ ").split("│")]
        assert cells[0] == model.full_id
        assert cells[1] == f"{model.context_window:,}"
        # an embedding model declares no output limit
        assert cells[2] == (
            "—" if model.max_output_tokens is None else f"{model.max_output_tokens:,}"
        )
        assert model.pricing is not None
        assert dollars(cells[3]) == model.pricing.input_per_1m
        assert dollars(cells[5]) == model.pricing.output_per_1m
        assert cells[3].startswith("$") and re.search(r"\.\d\d", cells[3])


def dollars(cell: str) -> Decimal:
    return Decimal(cell.removeprefix("$"))


def test_models_json_is_every_model_of_every_manifest() -> None:
    done = run_cli("models", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    catalogue = ModelManager.from_manifests().list_models()
    assert [m["model"] for m in found] == [m.full_id for m in catalogue]
    first = next(m for m in catalogue if m.pricing is not None)
    entry = next(m for m in found if m["model"] == first.full_id)
    assert first.pricing is not None
    assert entry["context_window"] == first.context_window
    assert entry["input_per_1m"] == format(first.pricing.input_per_1m.normalize(), "f")


def test_models_of_an_unknown_provider() -> None:
    done = run_cli("models", "--provider", "nope")
    assert done.returncode == 2
    assert "unknown provider 'nope'" in done.stderr


def test_protocols_list_and_check(tmp_path: Path) -> None:
    listed = run_cli("protocols", "list")
    assert listed.returncode == 0, listed.stderr
    for provider in ("openai", "anthropic", "gemini"):
        assert f"built-in {provider}.yaml" in listed.stdout
    assert "vllm, ollama" in listed.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text('id: bad\nprotocol_version: "2.0"\nendpoint: {base_url: ftp://x}\n')
    with_bad = run_cli("protocols", "list", env=cli_env(AI_PROTOCOL_PATH=str(tmp_path)))
    assert "does not load (1 problem(s))" in with_bad.stdout
    checked = run_cli(
        "protocols", "check", "--examples", "5", "--seed", "1", str(REPO / "protocols/openai.yaml")
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 of 1 manifest(s) passed" in checked.stdout
    failed = run_cli("protocols", "check", str(bad))
    assert failed.returncode == 1
    assert f"{bad}:3:22: $.endpoint.base_url: must start with http:// or https://" in (
        failed.stdout
    )


def test_providers_markdown_is_the_readme_table() -> None:
    from ailib_anyio._cli._main import providers_table
    from ailib_anyio._protocol._registry import ProtocolRegistry

    done = run_cli("providers", "--markdown")
    assert done.returncode == 0
    assert done.stdout == providers_table(ProtocolRegistry()) + "\n"


def test_mock_server_serves_chat_until_interrupted() -> None:
    with subprocess.Popen(
        [*INTERRUPTIBLE, "mock-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    ) as server:
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            match = re.fullmatch(r"mock provider listening on (http://127\.0\.0\.1:\d+)\n", first)
            assert match, first
            done = run_cli("chat", "openai/gpt-4o", "ping", "--base-url", match[1] + "/v1")
            assert done.returncode == 0, done.stderr
            assert done.stdout == "Mock reply to: ping\n"
        finally:
            server.send_signal(signal.SIGINT)
            code = server.wait(timeout=30)
    assert code == 0


def test_version_and_help() -> None:
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("ailib, version ")
    helped = run_cli("--help")
    assert helped.returncode == 0
    for command in ("chat", "models", "protocols", "mock-server", "demo", "batch"):
        assert command in helped.stdout
    assert "130 interrupted" in " ".join(helped.stdout.split())


# ----------------------------------------------------------------------------- batch


def write_input(path: Path, items: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


ITEMS = (
    {"id": "a", "prompt": "one"},
    {"id": 2, "messages": [{"role": "user", "content": "two"}], "temperature": 0},
    {"id": "c", "prompt": "three", "system": "Be brief."},
)


@pytest.mark.anyio
async def test_batch_writes_one_line_per_item_with_a_progress_bar(
    anyio_backend: str, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.jsonl", ITEMS)
    target = tmp_path / "out.jsonl"
    async with MockProvider() as mock:
        done = await arun_cli(
            "batch",
            "openai/gpt-4o",
            str(source),
            str(target),
            "--concurrency",
            "2",
            "--base-url",
            mock.openai_base_url,
            "--backend",
            anyio_backend,
        )
    assert done.returncode == 0, text(done.stderr)
    results = {json.dumps(line["id"]): line for line in lines(target)}
    assert set(results) == {'"a"', "2", '"c"'}
    assert results['"a"']["response"]["content"] == "Mock reply to: one"
    assert results["2"]["response"]["finish_reason"]["normalized"] == "stop"
    assert results['"c"']["response"]["usage"]["input_tokens"] >= 1
    sent = {r.json["messages"][-1]["content"]: r.json for r in mock.requests}
    assert sent["two"]["temperature"] == 0
    assert sent["three"]["messages"][0] == {"role": "system", "content": "Be brief."}
    errors = text(done.stderr)
    assert re.search(r"batch openai/gpt-4o .* 3/3 0 failed", errors), errors
    assert errors.endswith("3 of 3 run (0 failed), 0 skipped; results in " + str(target) + "\n")


@pytest.mark.anyio
async def test_batch_writes_each_items_error(anyio_backend: str, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ITEMS)
    target = tmp_path / "out.jsonl"
    async with MockProvider() as mock:
        # one at a time, so the replies go to the items in order
        mock.enqueue(
            ScriptedReply(content="first"),
            Reply.error(400, "Item two is not allowed", code="bad_item"),
        )
        done = await arun_cli(
            "batch",
            "openai/gpt-4o",
            str(source),
            str(target),
            "--concurrency",
            "1",
            "--base-url",
            mock.openai_base_url,
            "--backend",
            anyio_backend,
        )
    assert done.returncode == 1  # an item failed
    first, second, third = lines(target)
    assert first == {"id": "a", "response": first["response"]}
    assert first["response"]["content"] == "first"
    assert second == {
        "id": 2,
        "error": {
            "type": "RemoteInvalidRequestError",
            "message": "invalid_request: Item two is not allowed",
            "kind": "invalid_request",
            "code": "bad_item",
            "status_code": 400,
            "retryable": False,
            "request_id": "req_mock_2",
        },
    }
    assert third["response"]["content"] == "Mock reply to: three"
    assert "3 of 3 run (1 failed)" in text(done.stderr)


@pytest.mark.anyio
async def test_batch_resumes_from_the_output_file(anyio_backend: str, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ITEMS)
    target = tmp_path / "out.jsonl"
    earlier = {"id": "a", "response": {"content": "from an earlier run"}}
    # a finished line, then one cut short by a kill (no newline): dropped, run again
    target.write_text(json.dumps(earlier) + '\n{"id": 2, "respo', encoding="utf-8")
    async with MockProvider() as mock:
        done = await arun_cli(
            "batch",
            "openai/gpt-4o",
            str(source),
            str(target),
            "--base-url",
            mock.openai_base_url,
            "--backend",
            anyio_backend,
        )
    assert done.returncode == 0, text(done.stderr)
    assert sorted(r.json["messages"][-1]["content"] for r in mock.requests) == ["three", "two"]
    found = lines(target)
    assert found[0] == earlier
    assert sorted(json.dumps(line["id"]) for line in found[1:]) == ['"c"', "2"]
    errors = text(done.stderr)
    assert "resuming: 1 of 3 items already in" in errors
    assert "2 of 2 run (0 failed), 1 skipped" in errors

    again = run_cli("batch", "openai/gpt-4o", str(source), str(target))
    assert again.returncode == 0
    assert "nothing to run: every item is in" in again.stderr


@pytest.mark.anyio
async def test_batch_retry_errors_runs_failed_items_again(
    anyio_backend: str, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.jsonl", ITEMS[:2])
    target = tmp_path / "out.jsonl"
    failed = {"id": 2, "error": {"type": "RateLimitedError", "message": "slow down"}}
    target.write_text(
        json.dumps({"id": "a", "response": {"content": "ok"}}) + "\n" + json.dumps(failed) + "\n"
    )
    # without --retry-errors, the failed item counts as done, and the exit code says so
    skipped = run_cli("batch", "openai/gpt-4o", str(source), str(target))
    assert skipped.returncode == 1
    assert "(1 of them errors)" in skipped.stderr
    async with MockProvider() as mock:
        done = await arun_cli(
            "batch",
            "openai/gpt-4o",
            str(source),
            str(target),
            "--retry-errors",
            "--base-url",
            mock.openai_base_url,
            "--backend",
            anyio_backend,
        )
    assert done.returncode == 0, text(done.stderr)
    assert len(mock.requests) == 1
    found = lines(target)
    assert [line["id"] for line in found] == ["a", 2]
    assert found[1]["response"]["content"] == "Mock reply to: two"


@pytest.mark.anyio
async def test_batch_interrupted_then_resumed(anyio_backend: str, tmp_path: Path) -> None:
    items = [{"id": f"item-{n}", "prompt": f"question {n}"} for n in range(4)]
    source = write_input(tmp_path / "in.jsonl", items)
    target = tmp_path / "out.jsonl"
    args = [
        "batch",
        "openai/gpt-4o",
        str(source),
        str(target),
        "--concurrency",
        "1",
        "--backend",
        anyio_backend,
    ]
    async with MockProvider() as mock:
        # two quick answers, then one that takes far longer than the test waits
        mock.enqueue(ScriptedReply(content="0"), ScriptedReply(content="1"))
        mock.enqueue(ScriptedReply(content="late", delay_before_headers=600))
        base = ["--base-url", mock.openai_base_url]
        command = [*INTERRUPTIBLE, *args, *base]
        async with await anyio.open_process(command, env=cli_env()) as process:
            await wait_until(
                lambda: (
                    len(mock.requests) == 3
                    and target.exists()
                    and len(target.read_text().splitlines()) == 2
                )
            )
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(30):
                code = await process.wait()
            assert process.stderr is not None
            errors = text(b"".join([chunk async for chunk in process.stderr]))
        assert code == 130, errors
        assert "interrupted" in errors
        assert [line["id"] for line in lines(target)] == ["item-0", "item-1"]
        assert target.read_text().endswith("\n")

        resumed = await arun_cli(*args, *base)
    assert resumed.returncode == 0, text(resumed.stderr)
    assert [line["id"] for line in lines(target)] == [f"item-{n}" for n in range(4)]
    assert "2 of 2 run (0 failed), 2 skipped" in text(resumed.stderr)


def test_batch_checks_the_whole_input_first(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                '{"id": "a", "prompt": "one"}',
                "not json",
                '{"prompt": "no id"}',
                '{"id": "a", "prompt": "again"}',
                '{"id": "b", "prompt": "x", "messages": []}',
                '{"id": "c", "messages": [{"role": "robot", "content": "x"}]}',
                '{"id": "d", "prompt": "x", "max_tokens": 0}',
            ]
        )
        + "\n"
    )
    target = tmp_path / "out.jsonl"
    done = run_cli("batch", "openai/gpt-4o", str(source), str(target))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ailib: BatchInputError: 6 problem(s) in the input:",
        f"{source}:2: not JSON: Expecting value: line 1 column 1 (char 0)",
        f"{source}:3: missing 'id'",
        f'{source}:4: duplicate id "a" (first on line 1)',
        f"{source}:5: needs 'prompt' or 'messages' (one of them)",
        f'{source}:6: messages[0].role must be one of system, user, assistant, got "robot"',
        f"{source}:7: 'max_tokens' must be a positive integer",
    ]
    assert not target.exists()


def test_batch_refuses_an_output_that_is_not_its_own(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ITEMS)
    target = tmp_path / "out.jsonl"
    target.write_text('{"something": "else"}\n')
    done = run_cli("batch", "openai/gpt-4o", str(source), str(target))
    assert done.returncode == 2
    assert f"{target}:1: not a result line of 'ailib batch'" in done.stderr
    assert target.read_text() == '{"something": "else"}\n'
    same = run_cli("batch", "openai/gpt-4o", str(source), str(source))
    assert same.returncode == 2
    assert "IN.jsonl and OUT.jsonl must be two files" in same.stderr


def test_batch_missing_key_exits_2_before_writing(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ITEMS)
    target = tmp_path / "out.jsonl"
    env = cli_env()
    del env["OPENAI_API_KEY"]
    done = run_cli("batch", "openai/gpt-4o", str(source), str(target), env=env)
    assert done.returncode == 2
    assert "set OPENAI_API_KEY" in done.stderr
    assert not target.exists()
    # an earlier run's output is left as it was, even the lines a run would drop
    target.write_text('{"id": 2, "error": {"type": "ServerError"}}\n{"id": "a", "resp')
    retried = run_cli("batch", "openai/gpt-4o", str(source), str(target), "--retry-errors", env=env)
    assert retried.returncode == 2
    assert target.read_text() == '{"id": 2, "error": {"type": "ServerError"}}\n{"id": "a", "resp'


# ------------------------------------------------------------ batch --provider-batch


def provider_batch_args(
    model: str, source: Path, target: Path, base_url: str, backend: str
) -> list[str]:
    """``batch --provider-batch`` polling fast, against the mock's batch API."""
    return [
        "batch",
        model,
        str(source),
        str(target),
        "--provider-batch",
        "--poll-interval",
        "0.01",
        "--max-poll-interval",
        "0.05",
        "--base-url",
        base_url,
        "--backend",
        backend,
    ]


def batch_price(line: Mapping[str, Any], provider: str, model: str) -> str:
    """The cost of a result line's usage at the manifest's batch price."""
    from ailib_anyio._protocol._registry import ProtocolRegistry

    spec = ProtocolRegistry().get(provider).batch
    assert spec is not None and spec.price_factor < 1
    pricing = ModelManager.for_provider(provider).get(model).pricing
    assert pricing is not None
    usage = line["response"]["usage"]
    live = (
        pricing.input_per_1m * usage["input_tokens"]
        + pricing.output_per_1m * usage["output_tokens"]
    ) / 1_000_000
    return format((live * Decimal(repr(spec.price_factor))).normalize(), "f")


@pytest.mark.anyio
async def test_provider_batch_end_to_end(anyio_backend: str, tmp_path: Path) -> None:
    """One job through the mock's Message Batches API: a result line per item, the
    items' own errors written (not fatal), then ``--retry-errors`` sends only those
    again, in a new batch of the same job."""
    source = write_input(tmp_path / "in.jsonl", ITEMS)
    target = tmp_path / "out.jsonl"
    env = cli_env(ANTHROPIC_API_KEY="mock-key")
    model = "anthropic/claude-sonnet-4-6"

    def outcome(custom_id: str, request: Any, attempt: int) -> Any:
        asked = json.dumps(request)
        if '"two"' in asked:
            return ScriptedBatchError(400, "Item two is not allowed")
        return "expired" if '"three"' in asked else None

    async with MockProvider() as mock:
        mock.batches.on_item = outcome
        args = provider_batch_args(model, source, target, mock.anthropic_base_url, anyio_backend)
        done = await arun_cli(*args, env=env)
        assert done.returncode == 1, text(done.stderr)  # items failed
        (batch,) = mock.batches.created  # one batch, and no live request
        assert not [r for r in mock.requests if r.path.endswith("/messages")]
        sent = {body["messages"][-1]["content"]: body for _, body in batch.requests}
        assert sent["two"]["temperature"] == 0
        assert sent["three"]["system"] == "Be brief."
        first, second, third = lines(target)  # in input order, one line per item
        assert set(first) == {"id", "response"}
        assert first["id"] == "a"
        assert first["response"]["content"] == "Mock reply to: one"
        assert first["response"]["model"] == "claude-sonnet-4-6"
        assert first["response"]["finish_reason"] == {"normalized": "stop", "raw": "end_turn"}
        assert first["response"]["usage"]["input_tokens"] >= 1
        assert first["response"]["cost"]["total"] == batch_price(first, "anthropic", model)
        assert second == {
            "id": 2,
            "error": {
                "type": "RemoteInvalidRequestError",
                "message": "invalid_request: Item two is not allowed",
                "kind": "invalid_request",
                "code": None,
                "status_code": None,  # a batch result gives the error's type, no status
                "retryable": False,
                "request_id": None,
            },
        }
        assert third["id"] == "c"
        assert third["error"]["type"] == "BatchExpiredError"
        assert third["error"]["retryable"] is True
        ledger = Path(str(target) + ".ledger")
        assert ledger.is_file()  # noqa: ASYNC240 - the command has ended
        assert text(done.stderr).splitlines() == [
            f"submitted 3 item(s) in 1 batch(es) to anthropic ({batch.id}); ledger: {ledger}",
            f"provider batch {model}: batches: 1 in_progress; 0 of 3 done, 0 failed",
            f"provider batch {model}: batches: 1 ended; 3 of 3 done, 2 failed",
            f"3 of 3 written (2 failed), 0 skipped; results in {target}",
        ]

        mock.batches.on_item = None
        again = await arun_cli(*args, "--retry-errors", "--no-progress", env=env)
    assert again.returncode == 0, text(again.stderr)
    assert [len(batch.requests) for batch in mock.batches.created] == [3, 2]
    found = lines(target)
    assert found[0] == first
    assert [(line["id"], line["response"]["content"]) for line in found[1:]] == [
        (2, "Mock reply to: two"),
        ("c", "Mock reply to: three"),
    ]
    for line in found:
        assert line["response"]["cost"]["total"] == batch_price(line, "anthropic", model)
    assert text(again.stderr).splitlines()[-2:] == [
        "resubmitting 2 failed item(s) in a new batch",
        f"2 of 2 written (0 failed), 1 skipped; results in {target}",
    ]


@pytest.mark.anyio
async def test_provider_batch_resumes_from_its_ledger(anyio_backend: str, tmp_path: Path) -> None:
    """Interrupted while it polls (Ctrl-C on asyncio, killed on trio), the same command
    re-attaches to the batch its ledger records: the provider receives one batch."""
    items = [{"id": f"item-{n}", "prompt": f"question {n}"} for n in range(4)]
    source = write_input(tmp_path / "in.jsonl", items)
    target = tmp_path / "out.jsonl"
    ledger = tmp_path / "job.db"
    stop = signal.SIGINT if anyio_backend == "asyncio" else signal.SIGKILL
    async with MockProvider() as mock:
        mock.batches.complete_after_polls = None  # it ends when the test says
        args = provider_batch_args(
            "openai/gpt-4o", source, target, mock.openai_base_url, anyio_backend
        )
        args += ["--ledger", str(ledger)]
        async with await anyio.open_process([*INTERRUPTIBLE, *args], env=cli_env()) as process:
            await wait_until(lambda: mock.batches.polls >= 2)
            process.send_signal(stop)
            with anyio.fail_after(30):
                code = await process.wait()
            assert process.stderr is not None
            errors = text(b"".join([chunk async for chunk in process.stderr]))
        (batch,) = mock.batches.created
        assert not target.exists()
        if stop == signal.SIGINT:
            assert code == 130, errors
            assert (
                "the provider's batches go on: run the same command again to collect"
                f" their results; it re-attaches to the job in {ledger}, submitting nothing"
                " twice\n"
            ) in errors
            assert errors.endswith("interrupted\n")
        else:
            assert code == -signal.SIGKILL

        polls = mock.batches.polls
        mock.batches.complete_after_polls = polls + 2  # ends while the next run polls it
        resumed = await arun_cli(*args)
    assert resumed.returncode == 0, text(resumed.stderr)
    assert mock.batches.created == [batch]
    assert mock.batches.polls == polls + 2
    assert [line["id"] for line in lines(target)] == [f"item-{n}" for n in range(4)]
    assert lines(target)[3]["response"]["content"] == "Mock reply to: question 3"
    said = text(resumed.stderr).splitlines()
    assert said[0] == f"re-attaching to the job in {ledger}: 1 batch(es) ({batch.id})"
    running = r"batches: 1 (validating|in_progress|finalizing); 0 of 4 done, 0 failed"
    assert re.fullmatch("provider batch openai/gpt-4o: " + running, said[1]), said
    assert said[2:] == [
        "provider batch openai/gpt-4o: batches: 1 ended; 4 of 4 done, 0 failed",
        f"4 of 4 written (0 failed), 0 skipped; results in {target}",
    ]


@pytest.mark.anyio
async def test_provider_batch_refuses_an_item_changed_since_it_was_submitted(
    anyio_backend: str, tmp_path: Path
) -> None:
    """Killed while it polls, then run again with an item's prompt changed: the job in the
    ledger holds another request under that id, so the command exits 2 naming the item,
    the input and the ledger, submits nothing and writes no output."""
    items = [{"id": "item-0", "prompt": "question 0"}, {"id": 1, "prompt": "question 1"}]
    source = write_input(tmp_path / "in.jsonl", items)
    target = tmp_path / "out.jsonl"
    ledger = tmp_path / "job.db"
    async with MockProvider() as mock:
        mock.batches.complete_after_polls = None  # never ends
        args = provider_batch_args(
            "openai/gpt-4o", source, target, mock.openai_base_url, anyio_backend
        )
        args += ["--ledger", str(ledger)]
        async with await anyio.open_process([*INTERRUPTIBLE, *args], env=cli_env()) as process:
            await wait_until(lambda: mock.batches.polls >= 1)
            process.send_signal(signal.SIGKILL)
            with anyio.fail_after(30):
                await process.wait()
        (batch,) = mock.batches.created
        write_input(source, [items[0], {"id": 1, "prompt": "another question"}])
        changed = await arun_cli(*args)
        assert mock.batches.created == [batch]  # nothing submitted again
    assert changed.returncode == 2, text(changed.stderr)
    assert text(changed.stderr).splitlines() == [
        f"re-attaching to the job in {ledger}: 1 batch(es) ({batch.id})",
        f"ailib: BatchInputError: item 1 of {source} is in the job of {ledger} with another"
        " request (the input or the options changed since it was submitted): give the"
        " options of that run, or another --ledger",
    ]
    assert not target.exists()


def test_provider_batch_needs_a_batch_api(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ITEMS)
    target = tmp_path / "out.jsonl"
    env = cli_env(DEEPSEEK_API_KEY="mock-key")
    done = run_cli(
        "batch", "deepseek/deepseek-chat", str(source), str(target), "--provider-batch", env=env
    )
    assert done.returncode == 2
    assert done.stderr == (
        "ailib: ConfigurationError: provider 'deepseek' has no batch API in its manifest"
        " (no 'batch' section) (deepseek/deepseek-chat)\n"
    )
    assert list(tmp_path.iterdir()) == [source]  # no output, no ledger
    # the key comes from the provider's usual variable
    no_key = run_cli(
        "batch", "anthropic/claude-sonnet-4-6", str(source), str(target), "--provider-batch"
    )
    assert no_key.returncode == 2
    assert "set ANTHROPIC_API_KEY (anthropic)" in no_key.stderr
    assert list(tmp_path.iterdir()) == [source]
    # an option of the provider batch is refused without it
    mixed = run_cli(
        "batch", "openai/gpt-4o", str(source), str(target), "--concurrency", "2", "--ledger", "x"
    )
    assert mixed.returncode == 2
    assert "Error: --ledger: only with --provider-batch" in mixed.stderr


# ------------------------------------------------------------------ the console script


def test_pyproject_declares_the_scripts() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'ailib = "ailib_anyio._cli._entry:main"' in text
    assert 'ailib-anyio = "ailib_anyio._cli._entry:main"' in text


def test_installed_entry_point_resolves_to_main() -> None:
    scripts = {
        ep.name: ep
        for ep in importlib.metadata.entry_points(group="console_scripts")
        if ep.dist is not None and ep.dist.name.lower().replace("_", "-") == "ailib-anyio"
    }
    if not scripts:
        pytest.skip("ailib-anyio is not installed (only imported from the source tree)")
    if "ailib" not in scripts:
        pytest.skip(
            "the installed ailib-anyio's metadata predates the ailib script: reinstall it"
            " (pip install -e .) to refresh its entry points"
        )
    assert scripts["ailib"].load() is entry_main
    assert scripts["ailib-anyio"].load() is entry_main


def test_the_installed_ailib_script_runs() -> None:
    script = shutil.which("ailib")
    if script is None:
        pytest.skip("no ailib on the PATH: the package is not installed with its scripts here")
    done = subprocess.run(
        [script, "models", "--provider", "anthropic"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "anthropic/" in done.stdout


def test_without_the_cli_extra_the_plain_commands_still_run() -> None:
    hide = "import sys; sys.modules['click'] = None; sys.modules['rich'] = None; "
    code = hide + ENTRY
    chat = subprocess.run(
        [sys.executable, "-c", code, "chat", "openai/gpt-4o", "Hi"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert chat.returncode == 2
    assert chat.stderr == (
        "ailib chat: this command needs the cli extra (click and rich):"
        " pip install 'ailib-anyio[cli]'\n"
    )
    providers = subprocess.run(
        [sys.executable, "-c", code, "providers"], capture_output=True, text=True, env=cli_env()
    )
    assert providers.returncode == 0, providers.stderr
    assert providers.stdout.startswith("anthropic ")
