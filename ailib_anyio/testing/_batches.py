"""The batch APIs the mock provider speaks, under the test's control (``mock.batches``).

Three dialects, chosen from the request path as the chat ones are, never from a
provider name:

- files and batches (``POST .../files`` multipart, ``POST .../batches`` from a file,
  ``GET .../batches/{id}``, ``POST .../batches/{id}/cancel``,
  ``GET .../files/{id}/content``): OpenAI's Batch API, the results in an output file
  and an error file;
- message batches (``POST .../messages/batches`` with the requests inline,
  ``GET .../messages/batches/{id}``, ``.../cancel``, ``.../results``): Anthropic's;
- ``POST .../models/{model}:batchGenerateContent`` with inline requests, then
  ``GET .../batches/{id}`` and ``POST .../batches/{id}:cancel`` on the operation it
  returns: Gemini's batch mode, the results inline in the finished operation.

A batch moves through its dialect's running statuses as it is polled (one a poll) and
ends on its ``complete_after_polls``-th poll (``None``: only when the test says, with
``advance``, ``complete``, ``expire`` or ``fail``). Each request is answered like a live one (a
``ScriptedReply`` rendered in the dialect; by default ``"Mock reply to: <text>"``), or as
``on_item(custom_id, request, attempt)`` says: a ``ScriptedReply``, a
``ScriptedBatchError``, ``"expired"`` or ``"cancelled"`` (where the dialect has no record
for such a request, Gemini's, it is left out of the results, as a request of a batch that
expired or was cancelled is). The results come in scrambled order (``scramble``,
``seed``), as the providers keep none.
"""

from __future__ import annotations

import collections
import json as _json
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from . import _dialects
from ._script import ScriptedReply

__all__ = ["BatchItemOutcome", "MockBatch", "MockBatches", "ScriptedBatchError"]


@attrs.frozen
class ScriptedBatchError:
    """One request of a batch failing as the provider reports it: ``status`` (HTTP),
    ``message``, and the provider's error ``type`` (default: by status, in the
    dialect's words)."""

    status: int = 500
    message: str = "mock batch item error"
    type: str | None = None


#: what one request of a mock batch comes to
BatchItemOutcome: TypeAlias = ScriptedReply | ScriptedBatchError | Literal["expired", "cancelled"]

#: the statuses a batch shows while it runs, and how it ends, per dialect
_RUNNING: Mapping[str, tuple[str, ...]] = {
    "chat_completions": ("validating", "in_progress", "finalizing"),
    "messages": ("in_progress",),
    "generate_content": ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"),
}
_FINAL: Mapping[str, Mapping[str, str]] = {
    "chat_completions": {
        "completed": "completed",
        "expired": "expired",
        "cancelled": "cancelled",
        "failed": "failed",
    },
    "messages": {"completed": "ended", "expired": "ended", "cancelled": "ended", "failed": "ended"},
    "generate_content": {
        "completed": "BATCH_STATE_SUCCEEDED",
        "expired": "BATCH_STATE_EXPIRED",
        "cancelled": "BATCH_STATE_CANCELLED",
        "failed": "BATCH_STATE_FAILED",
    },
}
_CANCELLING: Mapping[str, str | None] = {
    "chat_completions": "cancelling",
    "messages": "canceling",
    "generate_content": None,
}
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_ID_PREFIX: Mapping[str, str] = {
    "chat_completions": "batch_mock_",
    "messages": "msgbatch_mock_",
    "generate_content": "gmock_",
}
_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}

_FILES = re.compile(r"/files$")
_FILE_CONTENT = re.compile(r"/files/([^/]+)/content$")
_MESSAGE_BATCHES = re.compile(r"/messages/batches$")
_MESSAGE_BATCH = re.compile(r"/messages/batches/([^/]+?)(/cancel|/results)?$")
_BATCH_GENERATE = re.compile(r"/models/([^/:]+):batchGenerateContent$")
_BATCHES = re.compile(r"/batches$")
_BATCH = re.compile(r"/batches/([^/:]+?)(/cancel|:cancel)?$")

Answer: TypeAlias = tuple[int, Any, Mapping[str, str]]  # status, JSON body or bytes, headers


@attrs.define(eq=False)
class MockBatch:
    """One batch the mock received: its ``id``, ``dialect``, ``model`` (where the
    dialect names it), its ``requests`` as ``(custom_id, request body)`` in input order,
    the bytes it came in (``input_bytes``), and where it is: ``polls``, ``status`` (the
    dialect's name), ``ended``."""

    id: str
    number: int
    dialect: _dialects.Dialect
    requests: list[tuple[str, Any]]
    input_bytes: int
    model: str | None = None
    input_file_id: str | None = None
    created_at: int = attrs.field(factory=lambda: int(time.time()))
    step: int = 0
    polls: int = 0
    cancel_requested: bool = False
    cancelling_shown: bool = False
    final: str | None = None  # completed | expired | cancelled | failed
    answered: int | None = None  # how many requests ran before an expiry or cancel
    failure: str | None = None
    records: list[Any] = attrs.field(factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def custom_ids(self) -> list[str]:
        return [cid for cid, _ in self.requests]

    @property
    def ended(self) -> bool:
        return self.final is not None

    @property
    def status(self) -> str:
        if self.final is not None:
            return _FINAL[self.dialect][self.final]
        if self.cancel_requested and _CANCELLING[self.dialect] is not None:
            return str(_CANCELLING[self.dialect])
        running = _RUNNING[self.dialect]
        return running[min(self.step, len(running) - 1)]


class MockBatches:
    """The batch APIs of one ``MockProvider`` (its ``batches``); see the module docstring.

    Settings a test changes: ``complete_after_polls`` (default 2; ``None``: batches end
    only when told), ``on_item``, ``scramble`` and ``seed``, ``max_requests`` and
    ``max_bytes`` (a batch over either is refused with a 400, as a provider would).
    What it records: ``created`` (every ``MockBatch``, in order), ``polls`` (status
    requests), ``files`` (uploaded and result files by id).
    """

    def __init__(self, base_url: Callable[[], str], next_id: Callable[[str], str]) -> None:
        self._base_url = base_url
        self._next_id = next_id
        self.complete_after_polls: int | None = 2
        self.on_item: Callable[[str, Any, int], BatchItemOutcome | None] | None = None
        self.scramble = True
        self.seed = 0
        self.max_requests: int | None = None
        self.max_bytes: int | None = None
        self.created: list[MockBatch] = []
        self.polls = 0
        self.files: dict[str, bytes] = {}
        self._by_id: dict[str, MockBatch] = {}
        self._attempts: collections.Counter[str] = collections.Counter()
        self._numbers = 0

    # ------------------------------------------------------------ test control

    def get(self, batch_id: str) -> MockBatch:
        """The batch with this id (a Gemini ``batches/<id>`` name works too)."""
        return self._by_id[batch_id.rsplit("/", 1)[-1]]

    def _chosen(self, batch_id: str | None) -> list[MockBatch]:
        if batch_id is not None:
            return [self.get(batch_id)]
        return [batch for batch in self.created if not batch.ended]

    def advance(self, batch_id: str | None = None, steps: int = 1) -> None:
        """Move the batch (every running one when ``batch_id`` is None) ``steps`` statuses
        on; past its last running status it completes."""
        for batch in self._chosen(batch_id):
            batch.step += steps
            if batch.step >= len(_RUNNING[batch.dialect]):
                self._end(batch, "completed")

    def complete(self, batch_id: str | None = None) -> None:
        """End the batch (every running one) with all its requests answered."""
        for batch in self._chosen(batch_id):
            self._end(batch, "cancelled" if batch.cancel_requested else "completed")

    def expire(self, batch_id: str | None = None, *, answered: int = 0) -> None:
        """End the batch (every running one) as expired: its first ``answered`` requests
        ran, the others expired."""
        for batch in self._chosen(batch_id):
            self._end(batch, "expired", answered)

    def fail(self, batch_id: str | None = None, message: str = "mock batch failure") -> None:
        """End the batch (every running one) as failed: none of its requests ran."""
        for batch in self._chosen(batch_id):
            batch.failure = message
            self._end(batch, "failed", 0)

    # ------------------------------------------------------------ routes

    def answer(
        self, method: str, target: str, body: bytes, headers: Mapping[str, str]
    ) -> Answer | None:
        """The answer to a batch route, or None when ``target`` is none of them."""
        route = urllib.parse.unquote(target.split("?", 1)[0])
        if method == "POST" and _FILES.search(route):
            return self._upload(body, headers.get("content-type", ""))
        if method == "GET" and (m := _FILE_CONTENT.search(route)):
            content = self.files.get(m.group(1))
            if content is None:
                return _openai_error(404, f"No such File object: {m.group(1)}")
            return 200, content, {"content-type": "application/octet-stream"}
        if method == "POST" and _MESSAGE_BATCHES.search(route):
            return self._create_inline("messages", body, None)
        if m := _MESSAGE_BATCH.search(route):
            return self._existing(method, m.group(1), m.group(2) or "", "messages")
        if method == "POST" and (m := _BATCH_GENERATE.search(route)):
            return self._create_inline("generate_content", body, m.group(1))
        if method == "POST" and _BATCHES.search(route):
            return self._create_from_file(body)
        if m := _BATCH.search(route):
            batch = self._by_id.get(m.group(1))
            dialect = batch.dialect if batch is not None else "chat_completions"
            return self._existing(method, m.group(1), m.group(2) or "", dialect)
        return None

    def _existing(self, method: str, batch_id: str, action: str, dialect: str) -> Answer:
        batch = self._by_id.get(batch_id)
        if batch is None or batch.dialect != dialect:
            return _error(dialect, 404, f"no batch {batch_id!r}")
        if action in ("/cancel", ":cancel") and method == "POST":
            if not batch.ended:
                batch.cancel_requested = True
                if _CANCELLING[batch.dialect] is None:
                    self._end(batch, "cancelled")
            if batch.dialect == "generate_content":
                return 200, {}, {}
            return 200, self._status(batch), {}
        if action == "/results" and method == "GET":
            if not batch.ended:
                return _error(dialect, 400, f"batch {batch_id} has not ended")
            lines = "".join(_dialects.dumps(record) + "\n" for record in batch.records)
            return 200, lines.encode(), {"content-type": "application/binary"}
        if action == "" and method == "GET":
            self.polls += 1
            batch.polls += 1
            self._progress(batch)
            return 200, self._status(batch), {}
        return _error(dialect, 405, f"{method} is not allowed here")

    def _progress(self, batch: MockBatch) -> None:
        if batch.ended:
            return
        if batch.cancel_requested:
            if batch.cancelling_shown:
                self._end(batch, "cancelled")
            batch.cancelling_shown = True
            return
        limit = self.complete_after_polls
        if limit is not None and batch.polls >= limit:
            self._end(batch, "completed")
        else:  # through the running statuses, the last one kept until it ends
            batch.step = max(batch.step, min(batch.polls, len(_RUNNING[batch.dialect]) - 1))

    # ------------------------------------------------------------ creating

    def _upload(self, body: bytes, content_type: str) -> Answer:
        fields, file = _multipart(body, content_type)
        if file is None or fields.get("purpose") != "batch":
            return _openai_error(400, "expected a multipart form with purpose=batch and a file")
        file_id = f"file-mock-{len(self.files) + 1}"
        self.files[file_id] = file
        answer = {
            "id": file_id,
            "object": "file",
            "bytes": len(file),
            "created_at": int(time.time()),
            "filename": "batch.jsonl",
            "purpose": "batch",
        }
        return 200, answer, {}

    def _create_from_file(self, body: bytes) -> Answer:
        request = _loads(body)
        file_id = request.get("input_file_id") if isinstance(request, dict) else None
        content = self.files.get(file_id) if isinstance(file_id, str) else None
        if content is None:
            return _openai_error(400, f"no input file {file_id!r}")
        requests = []
        for number, line in enumerate(content.splitlines(), 1):
            item = _loads(line)
            if not (isinstance(item, dict) and isinstance(item.get("custom_id"), str)):
                return _openai_error(400, f"line {number} of the input file is not a request")
            if item.get("method") != "POST" or not str(item.get("url", "")).endswith(
                "/chat/completions"
            ):
                return _openai_error(400, f"line {number}: only POST /v1/chat/completions")
            requests.append((item["custom_id"], item.get("body")))
        models = {req.get("model") for _, req in requests if isinstance(req, dict)}
        if len(models) > 1:
            return _openai_error(400, "a batch's requests must all use one model")
        return self._new("chat_completions", requests, len(content), None, file_id)

    def _create_inline(self, dialect: _dialects.Dialect, body: bytes, model: str | None) -> Answer:
        request = _loads(body)
        requests = []
        if dialect == "messages":
            listed = request.get("requests") if isinstance(request, dict) else None
            for item in listed if isinstance(listed, list) else []:
                if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
                    requests.append((item["custom_id"], item.get("params")))
        else:
            inner = request.get("batch") if isinstance(request, dict) else None
            config = inner.get("inputConfig") if isinstance(inner, dict) else None
            wrapped = config.get("requests") if isinstance(config, dict) else None
            listed = wrapped.get("requests") if isinstance(wrapped, dict) else None
            for item in listed if isinstance(listed, list) else []:
                meta = item.get("metadata") if isinstance(item, dict) else None
                key = meta.get("key") if isinstance(meta, dict) else None
                if isinstance(key, str):
                    requests.append((key, item.get("request")))
        if not requests:
            return _error(dialect, 400, "the batch has no requests")
        return self._new(dialect, requests, len(body), model, None)

    def _new(
        self,
        dialect: _dialects.Dialect,
        requests: list[tuple[str, Any]],
        size: int,
        model: str | None,
        file_id: str | None,
    ) -> Answer:
        ids = [cid for cid, _ in requests]
        if len(set(ids)) != len(ids):
            return _error(dialect, 400, "custom_id values must be unique within a batch")
        if self.max_requests is not None and len(requests) > self.max_requests:
            return _error(dialect, 400, f"{len(requests)} requests: more than {self.max_requests}")
        if self.max_bytes is not None and size > self.max_bytes:
            return _error(dialect, 400, f"{size} bytes: more than {self.max_bytes}")
        self._numbers += 1
        short = f"{_ID_PREFIX[dialect]}{self._numbers}"
        batch = MockBatch(short, self._numbers, dialect, requests, size, model, file_id)
        self._attempts.update(ids)
        self.created.append(batch)
        self._by_id[short] = batch
        return 200, self._status(batch), {}

    # ------------------------------------------------------------ ending

    def _end(self, batch: MockBatch, final: str, answered: int | None = None) -> None:
        if batch.ended:
            return
        batch.final = final
        batch.answered = (
            answered
            if answered is not None
            else (0 if final == "cancelled" else len(batch.requests))
        )
        records: list[tuple[str, Any]] = []  # (kind, record): kind "ok" | "error"
        if final != "failed":
            for index, (cid, request) in enumerate(batch.requests):
                if index >= batch.answered:
                    outcome: BatchItemOutcome = "expired" if final == "expired" else "cancelled"
                else:
                    outcome = self._outcome(batch, cid, request)
                record = self._record(batch, cid, request, outcome)
                if record is not None:
                    records.append(record)
        elif batch.dialect == "messages":  # a failed message batch: every request errored
            for cid, request in batch.requests:
                error = ScriptedBatchError(500, batch.failure or "batch failed")
                record = self._record(batch, cid, request, error)
                assert record is not None
                records.append(record)
        if self.scramble:
            random.Random(self.seed * 1_000_003 + batch.number).shuffle(records)
        batch.records = [record for _, record in records]
        if batch.dialect == "chat_completions":
            ok = [r for kind, r in records if kind == "ok"]
            bad = [r for kind, r in records if kind == "error"]
            for name, lines in (("output_file_id", ok), ("error_file_id", bad)):
                if lines:
                    file_id = f"file-mock-{len(self.files) + 1}"
                    self.files[file_id] = "".join(_dialects.dumps(r) + "\n" for r in lines).encode()
                    setattr(batch, name, file_id)

    def _outcome(self, batch: MockBatch, cid: str, request: Any) -> BatchItemOutcome:
        if self.on_item is not None:
            chosen = self.on_item(cid, request, self._attempts[cid])
            if chosen is not None:
                return chosen
        text = _dialects.last_user_text(batch.dialect, request)
        return ScriptedReply(content=f"Mock reply to: {text}")

    def _record(
        self, batch: MockBatch, cid: str, request: Any, outcome: BatchItemOutcome
    ) -> tuple[str, Any] | None:
        dialect = batch.dialect
        if isinstance(outcome, ScriptedReply):
            endpoint = _dialects.Endpoint(
                dialect, stream=False, model=batch.model if dialect == "generate_content" else None
            )
            rendered = _dialects.render(outcome, request, endpoint, batch.number, self._next_id)
            body = _json.loads(b"".join(rendered.pieces))
            if dialect == "messages":
                return "ok", {"custom_id": cid, "result": {"type": "succeeded", "message": body}}
            if dialect == "generate_content":
                return "ok", {"response": body, "metadata": {"key": cid}}
            response = {"status_code": 200, "request_id": f"req_mock_b{batch.number}", "body": body}
            return "ok", {
                "id": f"batch_req_{cid}",
                "custom_id": cid,
                "response": response,
                "error": None,
            }
        if isinstance(outcome, ScriptedBatchError):
            status = outcome.status
            if dialect == "messages":
                kind = outcome.type or _ERROR_TYPES.get(status, "api_error")
                error = {"type": "error", "error": {"type": kind, "message": outcome.message}}
                return "error", {"custom_id": cid, "result": {"type": "errored", "error": error}}
            if dialect == "generate_content":
                grpc = outcome.type or _GRPC_STATUS.get(status, "INTERNAL")
                status_body = {"code": status, "message": outcome.message, "status": grpc}
                return "error", {"error": status_body, "metadata": {"key": cid}}
            kind = outcome.type or _ERROR_TYPES.get(status, "server_error")
            error_body = {
                "error": {"message": outcome.message, "type": kind, "param": None, "code": None}
            }
            response = {
                "status_code": status,
                "request_id": f"req_mock_b{batch.number}",
                "body": error_body,
            }
            return "error", {
                "id": f"batch_req_{cid}",
                "custom_id": cid,
                "response": response,
                "error": None,
            }
        if dialect == "messages":
            kind = "expired" if outcome == "expired" else "canceled"
            return "error", {"custom_id": cid, "result": {"type": kind}}
        if dialect == "chat_completions" and outcome == "expired":
            error = {
                "code": "batch_expired",
                "message": "This request could not be executed before the completion window"
                " expired.",
            }
            return "error", {
                "id": f"batch_req_{cid}",
                "custom_id": cid,
                "response": None,
                "error": error,
            }
        return None  # a cancelled request of a file batch, any of an inline one: no record

    # ------------------------------------------------------------ status documents

    def _status(self, batch: MockBatch) -> dict[str, Any]:
        total = len(batch.requests)
        kinds = collections.Counter(_kind_of(batch.dialect, r) for r in batch.records)
        if batch.dialect == "messages":
            return {
                "id": batch.id,
                "type": "message_batch",
                "processing_status": batch.status,
                "request_counts": {
                    "processing": 0 if batch.ended else total,
                    "succeeded": kinds["succeeded"],
                    "errored": kinds["errored"],
                    "canceled": kinds["canceled"],
                    "expired": kinds["expired"],
                },
                "created_at": _iso(batch.created_at),
                "ended_at": _iso(batch.created_at) if batch.ended else None,
                "expires_at": _iso(batch.created_at + 86_400),
                "cancel_initiated_at": _iso(batch.created_at) if batch.cancel_requested else None,
                "results_url": (
                    f"{self._base_url()}/v1/messages/batches/{batch.id}/results"
                    if batch.ended
                    else None
                ),
            }
        if batch.dialect == "generate_content":
            metadata: dict[str, Any] = {
                "@type": _TYPE + "GenerateContentBatch",
                "model": f"models/{batch.model}",
                "displayName": "mock",
                "state": batch.status,
                "createTime": _iso(batch.created_at),
                "batchStats": {
                    "requestCount": str(total),
                    "successfulRequestCount": str(kinds["succeeded"]),
                    "failedRequestCount": str(kinds["errored"]),
                    "pendingRequestCount": str(0 if batch.ended else total),
                },
            }
            operation: dict[str, Any] = {
                "name": f"batches/{batch.id}",
                "metadata": metadata,
                "done": batch.ended,
            }
            if batch.final in ("completed", "expired") and batch.records:
                operation["response"] = {
                    "@type": _TYPE + "GenerateContentBatchOutput",
                    "inlinedResponses": {"inlinedResponses": batch.records},
                }
            elif batch.final == "failed":
                operation["error"] = {"code": 13, "message": batch.failure or "batch failed"}
            elif batch.final == "cancelled":
                operation["error"] = {"code": 1, "message": "CANCELLED"}
            return operation
        errors = None
        if batch.final == "failed":
            errors = {
                "object": "list",
                "data": [{"code": "failed", "message": batch.failure, "param": None, "line": None}],
            }
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": errors,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": batch.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": batch.created_at,
            "request_counts": {
                "total": total,
                "completed": kinds["succeeded"] if batch.ended else 0,
                "failed": kinds["errored"] if batch.ended else 0,
            },
            "metadata": None,
        }


def _kind_of(dialect: str, record: Any) -> str:
    if dialect == "messages":
        return str(record["result"]["type"])
    if "response" in record and record["response"] is not None:
        status = (
            record["response"].get("status_code", 200) if dialect != "generate_content" else 200
        )
        return "succeeded" if status == 200 else "errored"
    return "errored" if dialect == "generate_content" else "expired"


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _loads(body: bytes) -> Any:
    try:
        return _json.loads(body)
    except (ValueError, RecursionError):
        return None


def _openai_error(status: int, message: str) -> Answer:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }
    return status, body, {}


def _error(dialect: str, status: int, message: str) -> Answer:
    if dialect == "messages":
        kind = _ERROR_TYPES.get(status, "api_error")
        return status, {"type": "error", "error": {"type": kind, "message": message}}, {}
    if dialect == "generate_content":
        grpc = _GRPC_STATUS.get(status, "INTERNAL")
        return status, {"error": {"code": status, "message": message, "status": grpc}}, {}
    return _openai_error(status, message)


def _multipart(body: bytes, content_type: str) -> tuple[dict[str, str], bytes | None]:
    """The text fields and the file of a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None or not content_type.startswith("multipart/form-data"):
        return {}, None
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    file: bytes | None = None
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        disposition = head.decode("latin-1")
        name = re.search(r'name="([^"]*)"', disposition)
        if name is None:
            continue
        if "filename=" in disposition:
            file = content
        else:
            fields[name.group(1)] = content.decode("utf-8", "replace")
    return fields, file
