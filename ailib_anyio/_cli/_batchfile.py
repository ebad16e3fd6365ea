"""``ailib batch MODEL in.jsonl out.jsonl``: many chat requests from a JSON Lines file.

Input, one JSON object a line (blank lines are skipped, other keys are ignored):

.. code-block:: json

    {"id": "q1", "prompt": "What is 2+2?"}
    {"id": "q2", "prompt": "Name a colour.", "system": "One word.", "temperature": 0}
    {"id": 3, "messages": [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "Capital of France?"}]}

- ``id``: a string or an integer, unique in the file;
- ``prompt`` (a string) or ``messages`` (a non-empty list of ``{"role", "content"}``,
  the role ``system``, ``user`` or ``assistant``, the content a string), not both;
- optional ``system``, ``temperature``, ``max_tokens``: over the command's options.

The whole file is checked before any request: every problem is reported as
``in.jsonl:LINE: message`` and nothing is sent (exit 2).

Output, one JSON object a line, written as each item finishes (so in finishing order):

.. code-block:: json

    {"id": "q1", "response": {"content": "4", "finish_reason": {...}, "usage": {...},
                              "cost": {...}, ...}}
    {"id": "q2", "error": {"type": "RateLimitedError", "message": "...", "kind":
                           "rate_limited", "status_code": 429, "retryable": true, ...}}

Resuming: the items whose id already has a line in ``out.jsonl`` are skipped, so running
the same command again after an interruption finishes the job. ``--retry-errors`` runs
again the items whose line is an error (their error lines are removed first). A last line
cut short by a kill is dropped.

Items run ``concurrency`` at a time (an ``anyio.CapacityLimiter``) in one task group;
a task exists only while it holds a slot, and the input is read as it goes. Lines are
written whole and flushed one by one, by the event loop's thread, so they never
interleave.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import anyio
import attrs

from .._client._chat import ChatBuilder
from .._client._client import Client
from .._core._errors import ConfigurationError
from .._core._types import ChatResponse, Message
from ._render import error_dict, response_dict

__all__ = [
    "BatchInputError",
    "BatchItem",
    "BatchStats",
    "DoneItems",
    "Progress",
    "chat_request",
    "check_input",
    "read_done",
    "read_items",
    "run_batch",
    "write_result",
]

_ROLES = ("system", "user", "assistant")
#: how many input problems are listed before "... and N more"
MAX_PROBLEMS = 20


class BatchInputError(ConfigurationError):
    """The input or output file of a batch cannot be used (every problem, located)."""


class _BadLine(Exception):
    """One input line is not an item (the message says why)."""


@attrs.frozen
class BatchItem:
    """One input line, checked: its id, the messages to send and its own options."""

    line: int
    id: str | int
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None

    @property
    def key(self) -> str:
        """The id as JSON, so ``1`` and ``"1"`` stay two ids."""
        return json.dumps(self.id)


def _item(line: int, data: Any) -> BatchItem:
    """The item of one parsed line; ``_BadLine`` (its message) when it is not one."""
    if not isinstance(data, dict):
        raise _BadLine(f"expected a JSON object, got {type(data).__name__}")
    if "id" not in data:
        raise _BadLine("missing 'id'")
    item_id = data["id"]
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
        raise _BadLine(f"'id' must be a string or an integer, got {json.dumps(item_id)}")
    prompt, messages, system = data.get("prompt"), data.get("messages"), data.get("system")
    if (prompt is None) == (messages is None):
        raise _BadLine("needs 'prompt' or 'messages' (one of them)")
    if system is not None and not isinstance(system, str):
        raise _BadLine("'system' must be a string")
    built: list[Message] = [Message.system(system)] if system is not None else []
    if prompt is not None:
        if not isinstance(prompt, str):
            raise _BadLine("'prompt' must be a string")
        built.append(Message.user(prompt))
    else:
        if not isinstance(messages, list) or not messages:
            raise _BadLine("'messages' must be a non-empty list")
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise _BadLine(f"messages[{index}] must be an object with role and content")
            role, content = message.get("role"), message.get("content")
            if role not in _ROLES:
                raise _BadLine(
                    f"messages[{index}].role must be one of {', '.join(_ROLES)},"
                    f" got {json.dumps(role)}"
                )
            if not isinstance(content, str):
                raise _BadLine(f"messages[{index}].content must be a string")
            built.append(Message(role=role, content=content))
    temperature = data.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
    ):
        raise _BadLine("'temperature' must be a number")
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise _BadLine("'max_tokens' must be a positive integer")
    return BatchItem(
        line=line,
        id=item_id,
        messages=tuple(built),
        temperature=None if temperature is None else float(temperature),
        max_tokens=max_tokens,
    )


def read_items(path: Path) -> Iterator[BatchItem | tuple[int, str]]:
    """Each non-blank line of ``path``: its ``BatchItem``, or ``(line, problem)``."""
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except ValueError as exc:
                yield number, f"not JSON: {exc}"
                continue
            try:
                yield _item(number, data)
            except _BadLine as exc:
                yield number, str(exc)


def check_input(path: Path) -> tuple[int, set[str]]:
    """Check every line of ``path`` before anything is sent; return the number of items
    and their keys. ``BatchInputError`` lists every problem (the first
    ``MAX_PROBLEMS``), each as ``path:line: message``."""
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for found in read_items(path):
        if isinstance(found, tuple):
            problems.append(f"{path}:{found[0]}: {found[1]}")
            continue
        seen = first_line.setdefault(found.key, found.line)
        if seen != found.line:
            problems.append(f"{path}:{found.line}: duplicate id {found.key} (first on line {seen})")
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
        raise BatchInputError(f"{len(problems)} problem(s) in the input:\n" + "\n".join(shown))
    return len(first_line), set(first_line)


@attrs.frozen
class DoneItems:
    """What an earlier run's output holds: the keys of the items that succeeded and of
    those whose line is an error, and the lines to keep when the file must be rewritten
    (a last line cut short, or error lines to run again), else None."""

    succeeded: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()
    keep: tuple[bytes, ...] | None = None

    def tidy(self, path: Path) -> None:
        """Rewrite ``path`` with the lines to keep, if any line must go."""
        if self.keep is not None:
            _rewrite(path, self.keep)


def read_done(path: Path, *, retry_errors: bool = False) -> DoneItems:
    """The items ``path`` (an earlier run's output) already holds. A last line cut short
    (no newline) is to be dropped; with ``retry_errors`` the error lines are too, and
    ``failed`` is empty. Any other line that is not a result raises ``BatchInputError``.
    Nothing is written here: ``DoneItems.tidy`` does, once the run starts."""
    if not path.exists():
        return DoneItems()
    lines = path.read_bytes().split(b"\n")
    cut = lines.pop()  # b"" when the file ends with a newline
    succeeded: set[str] = set()
    failed: set[str] = set()
    kept: list[bytes] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            result = json.loads(raw)
        except ValueError:
            result = None
        is_result = isinstance(result, dict) and "id" in result
        if not (is_result and ("response" in result or "error" in result)):
            raise BatchInputError(
                f"{path}:{number}: not a result line of 'ailib batch'; refusing to append to"
                " this file (give another output file)"
            )
        key = json.dumps(result["id"])
        if "response" in result:
            succeeded.add(key)
        elif retry_errors:
            continue  # dropped: the item runs again
        else:
            failed.add(key)
        kept.append(raw)
    dropped = cut or len(kept) != sum(1 for raw in lines if raw.strip())
    return DoneItems(
        frozenset(succeeded), frozenset(failed - succeeded), tuple(kept) if dropped else None
    )


def _rewrite(path: Path, lines: Sequence[bytes]) -> None:
    """Replace ``path`` with ``lines`` (atomically: a temporary file, then a rename)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(b"".join(line + b"\n" for line in lines))
    os.replace(temporary, path)


@attrs.define
class BatchStats:
    """What one run did: items in the input; skipped (already in the output), of which
    errors; run, of which failed; whether the client opened (the run started)."""

    total: int = 0
    skipped: int = 0
    skipped_failed: int = 0
    done: int = 0
    failed: int = 0
    started: bool = False


#: ``progress(stats)``: called after each item is written
Progress = Callable[[BatchStats], None]


def chat_request(
    client: Client,
    item: BatchItem,
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> ChatBuilder:
    """The request of one item: its messages and options over the command's (``system``
    only for an item without a system message of its own)."""
    builder = client.chat()
    if system is not None and item.messages[0].role != "system":
        builder.system(system)
    builder.messages(item.messages)
    chosen = item.temperature if item.temperature is not None else temperature
    if chosen is not None:
        builder.temperature(chosen)
    tokens = item.max_tokens if item.max_tokens is not None else max_tokens
    if tokens is not None:
        builder.max_tokens(tokens)
    return builder


def write_result(
    output: IO[str], item_id: str | int, outcome: ChatResponse | BaseException, stats: BatchStats
) -> None:
    """Write (and flush) the result line of one item, counted in ``stats``: its
    ``response``, or its ``error``."""
    line: dict[str, Any] = {"id": item_id}
    if isinstance(outcome, BaseException):
        line["error"] = error_dict(outcome)
        stats.failed += 1
    else:
        line["response"] = response_dict(outcome)
    output.write(json.dumps(line, ensure_ascii=False) + "\n")
    output.flush()
    stats.done += 1


async def run_batch(
    client: Client,
    input_path: Path,
    output: IO[str],
    *,
    done: set[str],
    concurrency: int,
    stats: BatchStats,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Run every item of ``input_path`` whose key is not in ``done``, at most
    ``concurrency`` at a time, writing one line to ``output`` as each finishes.

    An ``Exception`` an item raises is written as its error line; cancellation (and
    ``KeyboardInterrupt``) stops the batch, leaving every finished line written."""
    limiter = anyio.CapacityLimiter(concurrency)

    def write(item: BatchItem, outcome: ChatResponse | Exception) -> None:
        write_result(output, item.id, outcome, stats)
        if progress is not None:
            progress(stats)

    async def run(item: BatchItem, slot: object) -> None:
        try:
            builder = chat_request(
                client, item, system=system, temperature=temperature, max_tokens=max_tokens
            )
            outcome: ChatResponse | Exception = await builder.execute()
        except Exception as exc:  # noqa: BLE001 - written as the item's error line
            outcome = exc
        finally:
            limiter.release_on_behalf_of(slot)
        write(item, outcome)

    async with anyio.create_task_group() as task_group:
        for item in read_items(input_path):
            if isinstance(item, tuple) or item.key in done:
                continue  # checked before the run; done in an earlier one
            slot = object()  # a task exists only while it holds a slot
            await limiter.acquire_on_behalf_of(slot)
            task_group.start_soon(run, item, slot)
