"""The ``ailib`` command line (the ``cli`` extra: click for the arguments, rich for the
tables and the progress bar).

Each command parses its arguments with click, then runs one coroutine with
``anyio.run(..., backend=...)``, so every command that talks to a provider runs under
asyncio or trio (``--backend``). Nothing here starts a thread: the progress bar is
refreshed by a task of the batch's own task group.

Exit codes: 0 ok; 1 a provider or runtime error (or a batch with failed items); 2 a usage
or configuration error (bad arguments or input, a missing API key, a bad manifest); 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import IO, Any, NoReturn

import anyio
import click
from rich.console import Console, JustifyMethod
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .._client._client import open_client
from .._core._errors import AiLibError
from .._core._types import ChatResponse, ContentDelta, ReasoningDelta
from .._protocol._registry import ProtocolRegistry
from .._services._routing import ModelManager
from ._batchfile import BatchStats, DoneItems, check_input, read_done, run_batch
from ._providerbatch import JobView, ProviderBatchRun, default_ledger, status_summary
from ._render import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    count,
    exit_code_for,
    model_dict,
    money,
    response_dict,
)

__all__ = ["cli", "run"]

BACKENDS = ("asyncio", "trio")

EPILOG = (
    "Exit codes: 0 ok; 1 provider or runtime error (a batch with failed items); 2 usage or"
    " configuration error (bad arguments or input, a missing API key, a bad manifest);"
    " 130 interrupted. API keys come from the environment (OPENAI_API_KEY,"
    " ANTHROPIC_API_KEY, GEMINI_API_KEY, ...; see docs/environment.md)."
)


class UsageProblem(click.UsageError):
    """A usage error found after parsing (exit 2, with the command's usage line)."""


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        # piped or redirected: a table is as wide as its content, never wrapped at 80
        console = Console(stderr=stderr, highlight=False, width=max(console.width, 200))
    return console


def _run_async(backend: str, fn: Callable[..., Any], *args: Any) -> Any:
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        raise UsageProblem("the trio backend needs trio: pip install 'ailib-anyio[trio]'")
    return anyio.run(fn, *args, backend=backend)


backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="asyncio",
    show_default=True,
    help="the async library to run on",
)
base_url_option = click.option(
    "--base-url",
    metavar="URL",
    default=None,
    help="send requests here instead of the manifest's URL (or <PROVIDER>_BASE_URL)",
)
system_option = click.option("--system", metavar="TEXT", default=None, help="a system prompt")
temperature_option = click.option(
    "--temperature", type=float, default=None, metavar="T", help="sampling temperature"
)
max_tokens_option = click.option(
    "--max-tokens", type=click.IntRange(min=1), default=None, metavar="N", help="output limit"
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EPILOG,
)
@click.version_option(package_name="ailib-anyio", prog_name="ailib")
def cli() -> None:
    """ailib: talk to LLM providers from the command line (ailib_anyio)."""


# ------------------------------------------------------------------------------ chat


@cli.command(epilog=EPILOG)
@click.argument("model")
@click.argument("prompt")
@system_option
@temperature_option
@max_tokens_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print the whole response as JSON (content, finish reason, usage, cost)",
)
@backend_option
@base_url_option
def chat(
    model: str,
    prompt: str,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    as_json: bool,
    backend: str,
    base_url: str | None,
) -> int:
    """Send PROMPT to MODEL ("provider/model-id") and stream the reply as it arrives.

    PROMPT "-" reads the prompt from standard input. The reply goes to standard output;
    reasoning text and a closing summary (finish reason, tokens, cost) go to standard error.
    """
    if prompt == "-":
        prompt = sys.stdin.read()
    return int(
        _run_async(
            backend, _chat, model, prompt, system, temperature, max_tokens, as_json, base_url
        )
    )


async def _chat(
    model: str,
    prompt: str,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    as_json: bool,
    base_url: str | None,
) -> int:
    out, err = sys.stdout, sys.stderr
    async with open_client(model, base_url=base_url) as client:
        builder = client.chat()
        if system is not None:
            builder.system(system)
        builder.user(prompt)
        if temperature is not None:
            builder.temperature(temperature)
        if max_tokens is not None:
            builder.max_tokens(max_tokens)
        if as_json:
            reply = await builder.execute()
            out.write(json.dumps(response_dict(reply), indent=2, ensure_ascii=False) + "\n")
            return EXIT_OK
        reasoning = False
        async with builder.stream() as stream:
            async for event in stream:
                if isinstance(event, ContentDelta):
                    out.write(event.text)
                    out.flush()
                elif isinstance(event, ReasoningDelta) and event.text:
                    reasoning = True
                    err.write(event.text)
                    err.flush()
        response = stream.response
    if reasoning:
        err.write("\n")
    out.write("\n")
    out.flush()
    err.write(_summary(response) + "\n")
    return EXIT_OK


def _summary(response: ChatResponse) -> str:
    parts = [f"finish: {response.finish_reason or 'unknown'}"]
    usage = response.usage
    if usage is not None:
        parts.append(f"tokens: {usage.input_tokens} in / {usage.output_tokens} out")
    cost = response.cost
    if cost is not None:
        parts.append(f"cost: {money(cost.total_cost, cost.currency)}")
    return "[" + " · ".join(parts) + "]"


# ---------------------------------------------------------------------------- models


@cli.command(epilog=EPILOG)
@click.option("--provider", metavar="P", default=None, help="only this provider's models")
@click.option("--json", "as_json", is_flag=True, help="print the catalogue as JSON")
def models(provider: str | None, as_json: bool) -> int:
    """The models the manifests declare: context window, output limit, prices per 1M
    tokens and capabilities."""
    if provider is None:
        catalogue = ModelManager.from_manifests()
    else:
        catalogue = ModelManager.for_provider(provider)
    found = catalogue.list_models()
    if as_json:
        click.echo(json.dumps([model_dict(m) for m in found], indent=2))
        return EXIT_OK
    if not found:
        click.echo("no models declared in the manifests" + (f" of {provider}" if provider else ""))
        return EXIT_OK
    table = Table(title=None, show_lines=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("model", "left"),
        ("context", "right"),
        ("max output", "right"),
        ("input /1M", "right"),
        ("cached input /1M", "right"),
        ("output /1M", "right"),
        ("capabilities", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name != "capabilities")
    for model in found:
        pricing = model.pricing
        currency = pricing.currency if pricing is not None else "USD"
        table.add_row(
            model.full_id,
            count(model.context_window),
            count(model.max_output_tokens),
            money(pricing.input_per_1m if pricing else None, currency),
            money(pricing.cached_input_per_1m if pricing else None, currency),
            money(pricing.output_per_1m if pricing else None, currency),
            ", ".join(sorted(model.capabilities - {"chat"})),
        )
    _console().print(table)
    return EXIT_OK


# ------------------------------------------------------------------------- providers


@cli.command()
@click.option("--markdown", is_flag=True, help="a Markdown table of what works for each")
def providers(markdown: bool) -> int:
    """The provider manifests found (id, API family, base URL)."""
    from ._main import providers_table

    registry = ProtocolRegistry()
    if markdown:
        click.echo(providers_table(registry))
        return EXIT_OK
    for name in registry.providers():
        manifest = registry.get(name)
        click.echo(f"{name:20} {manifest.api_family:18} {manifest.endpoint.base_url}")
    return EXIT_OK


# ------------------------------------------------------------------------- protocols


@cli.group()
def protocols() -> None:
    """Work with provider manifests."""


@protocols.command("list")
def protocols_list() -> int:
    """Every manifest file in the search path, in search order (AI_PROTOCOL_PATH, then the
    built-in manifests): the first that declares a provider id or alias wins."""
    from .._core._errors import ProtocolError
    from .._protocol._loader import load_manifest
    from .._protocol._registry import builtin_protocol_dir

    registry = ProtocolRegistry()
    builtin = builtin_protocol_dir()
    table = Table()
    for name in ("provider", "aliases", "API family", "models", "file"):
        table.add_column(name, no_wrap=True)
    seen: set[str] = set()
    for path in _manifest_files(registry.dirs):
        shown = f"built-in {path.name}" if path.parent == builtin else str(path)
        try:
            manifest = load_manifest(path)
        except ProtocolError as exc:
            failed = f"does not load ({len(exc.issues)} problem(s))"
            table.add_row(failed, "", "", "", shown)
            continue
        names = (manifest.id, *manifest.aliases)
        shadowed = " (shadowed)" if any(n in seen for n in names) else ""
        seen.update(names)
        models = manifest.metadata.models if manifest.metadata is not None else {}
        aliases = ", ".join(manifest.aliases)
        table.add_row(manifest.id + shadowed, aliases, manifest.api_family, str(len(models)), shown)
    _console().print(table)
    return EXIT_OK


def _manifest_files(directories: Sequence[Path]) -> Iterator[Path]:
    for directory in directories:
        if directory.is_file():
            yield directory
        elif directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
                    yield path


@protocols.command("check")
@click.argument("manifests", nargs=-1, required=True, metavar="FILE...")
@click.option("--strict", is_flag=True, help="unknown keys and fields are errors")
@click.option(
    "--examples",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    metavar="N",
    help="examples per check (a few seconds per manifest)",
)
@click.option("--seed", type=int, default=None, help="make the run reproducible")
def protocols_check(manifests: Sequence[str], strict: bool, examples: int, seed: int | None) -> int:
    """Load each manifest (every problem reported as file:line:col), then fuzz its
    streaming, response and error rules with hypothesis. Exit 1 if anything failed."""
    from ._main import check_manifests

    return check_manifests(list(manifests), strict, examples, seed)


# -------------------------------------------------------------------- demo and mock


@cli.command()
@backend_option
@click.option("--model", default="openai/gpt-4o", show_default=True, help="whose manifest to use")
def demo(backend: str, model: str) -> int:
    """Chat, stream and a tool call against the built-in mock provider (no key, no
    network)."""
    from ._main import run_demo

    _run_async(backend, run_demo, model, backend)
    return EXIT_OK


@cli.command("mock-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any"
)
@backend_option
def mock_server(host: str, port: int, backend: str) -> int:
    """Run the loopback mock provider until interrupted (Ctrl-C ends it with exit 0).

    Point a client at http://HOST:PORT/v1 (OpenAI), http://HOST:PORT (Anthropic) or
    http://HOST:PORT/v1beta (Gemini); it answers "Mock reply to: <prompt>"."""
    from ..testing import serve_forever

    def ready(mock: Any) -> None:
        print(f"mock provider listening on http://{host}:{mock.port}", flush=True)

    try:
        _run_async(backend, lambda: serve_forever(host, port, ready=ready))
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# ----------------------------------------------------------------------------- batch


@cli.command(epilog=EPILOG)
@click.argument("model")
@click.argument("input_file", metavar="IN.jsonl", type=click.Path(dir_okay=False, exists=True))
@click.argument("output_file", metavar="OUT.jsonl", type=click.Path(dir_okay=False))
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    metavar="N",
    help="requests in flight at once",
)
@click.option(
    "--system", metavar="TEXT", default=None, help="a system prompt, for items without one"
)
@click.option(
    "--temperature", type=float, default=None, metavar="T", help="for items without their own"
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="for items without their own",
)
@click.option(
    "--retry-errors", is_flag=True, help="run again the items whose output line is an error"
)
@click.option("--no-progress", is_flag=True, help="no progress bar on standard error")
@click.option(
    "--provider-batch",
    is_flag=True,
    help="submit the items through the provider's own batch API (at the batch price),"
    " poll until it has ended, then write the results; resumable from its ledger",
)
@click.option(
    "--ledger",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    default=None,
    help="with --provider-batch: the job's SQLite ledger  [default: OUT.jsonl.ledger]",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="with --provider-batch: the first wait between status polls (doubled while"
    " nothing changes)",
)
@click.option(
    "--max-poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="with --provider-batch: the longest wait between status polls",
)
@backend_option
@base_url_option
@click.pass_context
def batch(
    ctx: click.Context,
    model: str,
    input_file: str,
    output_file: str,
    concurrency: int,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    retry_errors: bool,
    no_progress: bool,
    provider_batch: bool,
    ledger: str | None,
    poll_interval: float,
    max_poll_interval: float,
    backend: str,
    base_url: str | None,
) -> int:
    """Send each line of IN.jsonl to MODEL, CONCURRENCY at a time, writing one result line
    to OUT.jsonl as each finishes. Resumable: items whose id is already in OUT.jsonl are
    skipped, so the same command finishes an interrupted job.

    \b
    IN.jsonl, one JSON object a line:
      {"id": "q1", "prompt": "What is 2+2?"}
      {"id": 2, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0}
    (optional per item: system, temperature, max_tokens; other keys are ignored)
    OUT.jsonl, one line per item:
      {"id": "q1", "response": {"content": ..., "finish_reason": ..., "usage": ..., "cost": ...}}
      {"id": 2, "error": {"type": "RateLimitedError", "message": ..., "status_code": 429, ...}}

    With --provider-batch the items go through the provider's batch API instead (the
    model's manifest must have one): submitted as one job, polled, and their lines
    written once every batch has ended. Interrupted (Ctrl-C, a kill), the same command
    re-attaches to the batches its ledger records: nothing is submitted twice.

    Exit 1 when OUT.jsonl holds an error line for any item.
    """
    source, target = Path(input_file), Path(output_file)
    if source.resolve() == target.resolve():
        raise UsageProblem("IN.jsonl and OUT.jsonl must be two files")
    given = {
        name
        for name in ("concurrency", "ledger", "poll_interval", "max_poll_interval")
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    }
    if provider_batch and "concurrency" in given:
        raise UsageProblem(
            "--concurrency does not apply to --provider-batch: the provider runs the requests"
        )
    if not provider_batch and given - {"concurrency"}:
        flags = ", ".join("--" + name.replace("_", "-") for name in sorted(given - {"concurrency"}))
        raise UsageProblem(f"{flags}: only with --provider-batch")
    ledger_path = Path(ledger) if ledger is not None else default_ledger(target)
    if provider_batch and ledger_path.resolve() in (source.resolve(), target.resolve()):
        raise UsageProblem("the ledger must be another file than IN.jsonl and OUT.jsonl")
    total, keys = check_input(source)
    previous = read_done(target, retry_errors=retry_errors)
    done = (previous.succeeded | previous.failed) & keys
    stats = BatchStats(total=total, skipped=len(done), skipped_failed=len(previous.failed & keys))
    err = sys.stderr
    if done:
        err.write(
            f"resuming: {len(done)} of {total} items already in {target}"
            f" ({stats.skipped_failed} of them errors), {total - len(done)} to run\n"
        )
    if len(done) == total:
        err.write(f"nothing to run: every item is in {target}\n")
        return EXIT_FAILURE if stats.skipped_failed else EXIT_OK
    if provider_batch:
        return _provider_batch(
            backend,
            target,
            ledger_path,
            stats,
            model=model,
            source=source,
            previous=previous,
            done=done,
            options=(system, temperature, max_tokens),
            polls=(poll_interval, max_poll_interval),
            retry_errors=retry_errors,
            base_url=base_url,
            show_progress=not no_progress,
        )
    try:
        _run_async(
            backend,
            _batch,
            model,
            source,
            target,
            previous,
            done,
            concurrency,
            stats,
            (system, temperature, max_tokens),
            base_url,
            not no_progress,
        )
    finally:
        if stats.started:
            err.write(
                f"{stats.done} of {total - stats.skipped} run ({stats.failed} failed),"
                f" {stats.skipped} skipped; results in {target}\n"
            )
    return EXIT_FAILURE if stats.failed or stats.skipped_failed else EXIT_OK


async def _batch(
    model: str,
    source: Path,
    target: Path,
    previous: DoneItems,
    done: set[str],
    concurrency: int,
    stats: BatchStats,
    options: tuple[str | None, float | None, int | None],
    base_url: str | None,
    show_progress: bool,
) -> None:
    system, temperature, max_tokens = options
    pending = stats.total - stats.skipped
    async with open_client(model, base_url=base_url) as client:
        stats.started = True
        previous.tidy(target)  # only now: a missing key or a bad model changes nothing
        with _open_append(target) as output, _progress(show_progress, model, pending) as tick:
            async with anyio.create_task_group() as ticker:
                if tick is not None:
                    ticker.start_soon(_refresh, tick)
                await run_batch(
                    client,
                    source,
                    output,
                    done=done,
                    concurrency=concurrency,
                    stats=stats,
                    system=system,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    progress=tick,
                )
                ticker.cancel_scope.cancel()


def _provider_batch(backend: str, target: Path, ledger: Path, stats: BatchStats, **job: Any) -> int:
    """``batch --provider-batch`` (``_providerbatch``): the same checks and output as the
    live command, the requests through the provider's batch API. ``job``: the keyword
    arguments of ``_provider_batch_async``."""
    err = sys.stderr
    runs: list[ProviderBatchRun] = []
    try:
        _run_async(
            backend,
            functools.partial(
                _provider_batch_async, target=target, ledger=ledger, stats=stats, runs=runs, **job
            ),
        )
    except BaseException as exc:
        # interrupted, or a provider or network error: the job is in the ledger (a
        # configuration error is for the user to fix first)
        usage = all(exit_code_for(leaf) == EXIT_USAGE for leaf in _leaves(exc))
        if runs and runs[0].entered and not usage:
            err.write(
                "the provider's batches go on: run the same command again to collect their"
                f" results; it re-attaches to the job in {ledger}, submitting nothing twice\n"
            )
        raise
    if runs and runs[0].finished:
        err.write(
            f"{stats.done} of {stats.total - stats.skipped} written ({stats.failed}"
            f" failed), {stats.skipped} skipped; results in {target}\n"
        )
    return EXIT_FAILURE if stats.failed or stats.skipped_failed else EXIT_OK


async def _provider_batch_async(
    *,
    model: str,
    source: Path,
    target: Path,
    ledger: Path,
    previous: DoneItems,
    done: AbstractSet[str],
    stats: BatchStats,
    options: tuple[str | None, float | None, int | None],
    polls: tuple[float, float],
    retry_errors: bool,
    base_url: str | None,
    show_progress: bool,
    runs: list[ProviderBatchRun],
) -> None:
    system, temperature, max_tokens = options
    async with open_client(model, base_url=base_url) as client:
        run = ProviderBatchRun(
            client,
            source,
            ledger,
            done,
            stats,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            retry_errors=retry_errors,
            poll_interval=polls[0],
            max_poll_interval=polls[1],
        )
        runs.append(run)
        run.check()  # no batch API: refused before anything is written
        stats.started = True
        previous.tidy(target)
        with _job_progress(show_progress, model) as (say, watch, refresh):
            run.say, run.watch = say, watch
            async with anyio.create_task_group() as ticker:
                if refresh is not None:
                    ticker.start_soon(_refresh, refresh)
                await run.run(lambda: _open_append(target))
                ticker.cancel_scope.cancel()


@contextlib.contextmanager
def _job_progress(
    show: bool, model: str
) -> Iterator[tuple[Callable[[str], None], Callable[[JobView], None] | None, _Ticker | None]]:
    """How a provider batch talks: ``say(line)`` for its messages, and its progress after
    each poll: a rich progress bar on a terminal, else a plain line on standard error
    each time it changes."""
    console = _console(stderr=True)

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    if not show:
        yield say, None, None
        return
    if not console.is_terminal:
        last = [""]

        def line(view: JobView) -> None:
            counts = view.counts
            text = (
                f"provider batch {model}: {status_summary(view.batches)}; {counts.done} of"
                f" {counts.total} done, {counts.unsuccessful} failed"
            )
            if text != last[0]:
                last[0] = text
                say(text)

        yield say, line, None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = progress.add_task(f"batch {model}", total=None, failed=0, status="submitting")

    def bar(view: JobView) -> None:
        counts = view.counts
        progress.update(
            task,
            total=counts.total,
            completed=counts.done,
            failed=counts.unsuccessful,
            status=status_summary(view.batches),
        )

    progress.start()
    try:
        yield say, bar, _Ticker(progress, task)
    finally:
        progress.stop()


def _open_append(path: Path) -> IO[str]:
    return path.open("a", encoding="utf-8", newline="\n")


class _Ticker:
    """The progress bar: called after each item; ``refresh()`` redraws it (from a task
    of the batch: rich's own refresh thread is off)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task

    def __call__(self, stats: BatchStats) -> None:
        self._progress.update(self._task, completed=stats.done, failed=stats.failed)

    def refresh(self) -> None:
        self._progress.refresh()


@contextlib.contextmanager
def _progress(show: bool, model: str, total: int) -> Iterator[_Ticker | None]:
    if not show:
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = progress.add_task(f"batch {model}", total=total, failed=0)
    progress.start()
    try:
        yield _Ticker(progress, task)
    finally:
        progress.stop()


async def _refresh(tick: _Ticker) -> NoReturn:
    while True:
        tick.refresh()
        await anyio.sleep(0.1)


# ------------------------------------------------------------------------------ run


def _leaves(error: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, or ``error`` itself."""
    inner = getattr(error, "exceptions", None)
    if isinstance(error, BaseException) and isinstance(inner, tuple) and inner:
        for sub in inner:
            yield from _leaves(sub)
    else:
        yield error


def run(argv: Sequence[str]) -> int:
    """Run ``ailib`` on ``argv``; return the exit code (see the module docstring)."""
    try:
        result = cli.main(args=list(argv), prog_name="ailib", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except BaseException as exc:
        leaves = list(_leaves(exc))
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            click.echo("interrupted", err=True)
            return EXIT_INTERRUPTED
        if not all(isinstance(leaf, AiLibError) for leaf in leaves):
            raise  # a bug: the traceback says where
        for leaf in leaves:
            click.echo(f"ailib: {type(leaf).__name__}: {leaf}", err=True)
        return max(exit_code_for(leaf) for leaf in leaves)
    return result if isinstance(result, int) else EXIT_OK
