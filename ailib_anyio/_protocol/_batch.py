"""Provider batch APIs, sans-IO: a manifest's ``batch`` section executed on plain data.

``BatchWire`` does everything ``BatchJob`` (``_services/_batchjob.py``) needs that is not
I/O: each request's envelope (``item``), the split of a job into batches under the
provider's limits (``plan_batches``), the input document or create body, the multipart
upload, the URL paths, the status read from an answer and mapped onto
``BATCH_STATUSES``, where the results are, and each result record turned into its
outcome and then into a ``ChatResponse`` (by the same response decoder as a live call,
priced at the batch price) or a typed error. Nothing here knows a provider by name.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from .._core._classify import classify_error, error_from_info
from .._core._cost import ModelPricing
from .._core._errors import (
    AiLibError,
    BatchCancelledError,
    BatchExpiredError,
    BatchFailedError,
    ConfigurationError,
    InvalidRequestError,
    MalformedResponseError,
)
from .._core._mapping import ResponseDecoder
from .._core._types import ChatResponse
from ._decoding import response_decoder
from ._models import BATCH_TERMINAL, BatchOutcomeRule, BatchSpec, ProviderManifest

__all__ = [
    "CUSTOM_ID_PATTERN",
    "BatchState",
    "BatchWire",
    "batch_pricing",
    "check_custom_id",
    "derive_custom_ids",
    "plan_batches",
]

#: what a custom id may be: 1-64 letters, digits, ``_`` and ``-`` (the strictest of the
#: providers' rules, so that an id is good for any of them)
CUSTOM_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: what a provider-given id may be before it goes into a URL path: path segments of
#: unreserved characters (``batches/abc-1``), never ``..``
_REMOTE_ID = re.compile(r"[A-Za-z0-9_~.-]+(/[A-Za-z0-9_~.-]+)*")


def check_custom_id(custom_id: object) -> str:
    """``custom_id`` if it is one (``CUSTOM_ID_PATTERN``), else ``ConfigurationError``."""
    if not isinstance(custom_id, str) or CUSTOM_ID_PATTERN.fullmatch(custom_id) is None:
        raise ConfigurationError(
            f"a batch custom_id must be 1-64 letters, digits, '_' or '-', got {custom_id!r}"
        )
    return custom_id


def derive_custom_ids(bodies: Iterable[bytes]) -> list[str]:
    """A stable id per request body: ``r`` and 31 hex digits of its SHA-256, the same for
    the same body in every run; the second and later copies of one body in the list get
    ``-2``, ``-3``..."""
    seen: dict[str, int] = {}
    ids = []
    for body in bodies:
        digest = "r" + hashlib.sha256(body).hexdigest()[:31]
        count = seen[digest] = seen.get(digest, 0) + 1
        ids.append(digest if count == 1 else f"{digest}-{count}")
    return ids


def plan_batches(
    sizes: Sequence[int],
    *,
    max_requests: int | None,
    max_bytes: int | None,
    overhead: int = 0,
) -> list[tuple[int, int, int]]:
    """Split items of these sizes, in order, into as few consecutive batches as the limits
    allow: ``(start, stop, bytes)`` each, ``bytes`` counting ``overhead`` once. An item
    that cannot fit in a batch alone raises ``ValueError`` naming its index."""
    plans: list[tuple[int, int, int]] = []
    start, used = 0, overhead
    room = None if max_bytes is None else max_bytes - overhead
    for index, size in enumerate(sizes):
        if room is not None and size > room:
            raise ValueError(index)
        full = (max_requests is not None and index - start >= max_requests) or (
            max_bytes is not None and used + size > max_bytes
        )
        if full:
            plans.append((start, index, used))
            start, used = index, overhead
        used += size
    if start < len(sizes):
        plans.append((start, len(sizes), used))
    return plans


def batch_pricing(pricing: ModelPricing | None, factor: float) -> ModelPricing | None:
    """The model's prices times the batch ``factor`` (None stays None)."""
    if pricing is None or factor == 1:
        return pricing
    scale = Decimal(repr(factor))

    def times(price: Decimal | None) -> Decimal | None:
        return None if price is None else price * scale

    return attrs.evolve(
        pricing,
        input_per_1m=pricing.input_per_1m * scale,
        output_per_1m=pricing.output_per_1m * scale,
        cached_input_per_1m=times(pricing.cached_input_per_1m),
        reasoning_per_1m=times(pricing.reasoning_per_1m),
    )


@attrs.frozen
class BatchState:
    """A batch's status read from an answer: ``status`` (one of ``BATCH_STATUSES``),
    the provider's ``raw`` name, its request ``counts`` and, for a failed batch, the
    ``failure`` it gave."""

    status: str
    raw: str
    counts: Mapping[str, int] = attrs.field(factory=dict)
    failure: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in BATCH_TERMINAL


class BatchWire:
    """A manifest's batch API for one model (see the module docstring). ``ConfigurationError``
    if the manifest has no ``batch`` section."""

    def __init__(self, manifest: ProviderManifest, *, provider: str, model: str) -> None:
        spec = manifest.batch
        if spec is None:
            raise ConfigurationError(
                f"provider {provider!r} has no batch API in its manifest (no 'batch' section)",
                provider=provider,
                model=model,
            )
        self.spec: BatchSpec = spec
        self.manifest = manifest
        self.provider = provider
        self.model = model
        self._decoder: ResponseDecoder | None = None

    def context(self, **extra: Any) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, **extra}

    # ------------------------------------------------------------ building a batch

    def item(self, custom_id: str, body: bytes) -> bytes:
        """One request's envelope (a JSONL line, or one element of the inline list)."""
        return self.spec.item.render({"custom_id": custom_id, "body": body})

    def overhead(self, job: str) -> int:
        """The bytes of a batch beyond its items: the create body around an empty list
        (inline), nothing for a file (its size is its lines)."""
        if self.spec.mode == "file":
            return 0
        assert self.spec.create.body is not None
        return len(self._create(b"[]", None, job))

    def plan(
        self, items: Sequence[bytes], ids: Sequence[str], job: str
    ) -> list[tuple[int, int, int]]:
        """``plan_batches`` for these items under the manifest's limits (an item counts
        its bytes and one separator); an item too large for any batch is an
        ``InvalidRequestError`` naming it."""
        spec = self.spec
        try:
            return plan_batches(
                [len(item) + 1 for item in items],
                max_requests=spec.max_requests,
                max_bytes=spec.max_bytes,
                overhead=self.overhead(job),
            )
        except ValueError as exc:
            index = exc.args[0]
            raise InvalidRequestError(
                f"request {ids[index]!r} is {len(items[index])} bytes in a batch: more than"
                f" one batch of {self.provider} may hold ({spec.max_bytes} bytes)",
                **self.context(),
            ) from None

    def document(self, items: Sequence[bytes]) -> bytes:
        """The JSONL input file of these items (``mode: file``)."""
        return b"".join(item + b"\n" for item in items)

    def create_body(
        self, job: str, *, items: Sequence[bytes] = (), file_id: str | None = None
    ) -> bytes:
        """The create call's body: the items inline, or the uploaded file's id."""
        listed = b"[" + b",".join(items) + b"]" if self.spec.mode == "inline" else b"[]"
        return self._create(listed, file_id, job)

    def _create(self, items: bytes, file_id: str | None, job: str) -> bytes:
        body = self.spec.create.body
        assert body is not None
        return body.render(
            {"items": items, "file_id": file_id or "", "job": job, "model": self.model}
        )

    def upload_form(self, document: bytes) -> tuple[bytes, str]:
        """The multipart form uploading ``document``: (body, content type)."""
        upload = self.spec.upload
        assert upload is not None
        boundary = "ailib-" + secrets.token_hex(16)
        parts: list[bytes] = []
        for name, value in upload.fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{upload.file_field}";'
            f' filename="{upload.filename}"\r\nContent-Type: {upload.content_type}\r\n\r\n'.encode()
        )
        parts.append(document)
        parts.append(f"\r\n--{boundary}--\r\n".encode())
        return b"".join(parts), f"multipart/form-data; boundary={boundary}"

    # ------------------------------------------------------------ reading answers

    def path(
        self, template: str, *, batch_id: str | None = None, file_id: str | None = None
    ) -> str:
        """``template`` with ``{batch_id}`` and ``{file_id}`` filled in (``{model}`` is
        left for the target, which encodes it)."""
        for name, value in (("batch_id", batch_id), ("file_id", file_id)):
            if "{" + name + "}" in template:
                assert value is not None
                template = template.replace("{" + name + "}", value)
        return template

    def remote_id(self, answer: Any, field: Any, what: str) -> str:
        """The id an answer gives (``field``: where), checked before it goes into a URL."""
        value = field.first(answer) if field is not None else None
        if not isinstance(value, str) or not _REMOTE_ID.fullmatch(value) or ".." in value:
            text = json.dumps(answer, ensure_ascii=False)[:200]
            raise MalformedResponseError(
                f"the provider's answer has no usable {what} id: {text}", **self.context()
            )
        return value

    def batch_id(self, answer: Any) -> str:
        return self.remote_id(answer, self.spec.create.id, "batch")

    def file_id(self, answer: Any) -> str:
        assert self.spec.upload is not None
        return self.remote_id(answer, self.spec.upload.id, "file")

    def state(self, answer: Any) -> BatchState:
        """The status of a batch from an answer about it (create, get or cancel)."""
        spec = self.spec
        raw = spec.status.first(answer)
        status = spec.statuses.get(raw) if isinstance(raw, str) else None
        if status is None:
            text = json.dumps(answer, ensure_ascii=False)[:200]
            known = ", ".join(spec.statuses)
            raise MalformedResponseError(
                f"the provider's batch status {raw!r} is not one the manifest maps"
                f" (known: {known}): {text}",
                **self.context(),
            )
        counts: dict[str, int] = {}
        for name, field in spec.counts.items():
            value = field.first(answer)
            if isinstance(value, str) and value.isdigit():  # proto3 JSON: int64 as a string
                value = int(value)
            if type(value) is int:
                counts[name] = value
        failure = None
        if status == "failed" and spec.failure is not None:
            found = [
                str(v) for sel in spec.failure.selectors for v in sel.all(answer) if v is not None
            ]
            failure = "; ".join(found) or None
        return BatchState(status, raw, counts, failure)

    def result_paths(self, answer: Any, batch_id: str) -> list[str]:
        """The result documents of an ended batch (those its status names)."""
        paths = []
        for source in self.spec.result_files:
            if source.id is None:
                paths.append(self.path(source.path, batch_id=batch_id))
                continue
            file_id = source.id.first(answer)
            if file_id is None or file_id == "":
                continue
            checked = self.remote_id(answer, source.id, "result file")
            paths.append(self.path(source.path, batch_id=batch_id, file_id=checked))
        return paths

    def inline_records(self, answer: Any) -> list[Any]:
        """The result records an ended batch's status holds itself (``results.inline``)."""
        field = self.spec.inline_results
        if field is None:
            return []
        for selector in field.selectors:
            found = selector.all(answer)
            if found:
                return found
        return []

    # ------------------------------------------------------------ results

    def rule_for(self, record: Any) -> BatchOutcomeRule | None:
        for rule in self.spec.outcomes:
            if rule.match is None or rule.match.predicate(record):
                return rule
        return None

    def outcome(self, record: Any) -> tuple[str, str] | None:
        """``(custom_id, outcome)`` of a result record; None for a record that names no
        request (it cannot be joined to one)."""
        custom_id = self.spec.custom_id.first(record)
        if not isinstance(custom_id, str):
            return None
        rule = self.rule_for(record)
        return custom_id, ("errored" if rule is None else rule.outcome)

    def response_decoder(self) -> ResponseDecoder:
        if self._decoder is None:
            self._decoder = response_decoder(
                self.manifest, provider=self.provider, model=self.model
            )
        return self._decoder

    def result(
        self,
        outcome: str,
        record: Any,
        *,
        batch_id: str | None,
        pricing: ModelPricing | None,
    ) -> ChatResponse | AiLibError:
        """What one request's result record says: the ``ChatResponse`` (decoded as a live
        call's body is, with ``pricing``), or the typed error. ``outcome`` is the one the
        record was given when fetched, or one a whole batch gave its missing records:
        ``failed`` (``record`` is ``{"failure": reason}``), ``expired``, ``cancelled``, or
        ``missing`` (an ended batch without a record of the request)."""
        where = f" (batch {batch_id})" if batch_id else ""
        if outcome == "expired":
            return BatchExpiredError(
                "the batch's completion window ran out before this request ran" + where,
                **self.context(),
            )
        if outcome == "cancelled":
            return BatchCancelledError(
                "the batch was cancelled before this request ran" + where, **self.context()
            )
        if outcome == "failed":
            reason = record.get("failure") if isinstance(record, dict) else None
            return BatchFailedError(
                f"the batch failed{where}" + (f": {reason}" if reason else ""),
                **self.context(),
            )
        if outcome == "missing":
            return MalformedResponseError(
                f"the provider's results{where} have no record of this request",
                **self.context(),
            )
        rule = self.rule_for(record)
        body = rule.body.first(record) if rule is not None and rule.body is not None else record
        request_id = rule.request_id.first(record) if rule is not None and rule.request_id else None
        request_id = request_id if isinstance(request_id, str) else None
        if outcome == "succeeded":
            try:
                return self.response_decoder().decode(
                    body,
                    request_id=request_id,
                    provider=self.provider,
                    model=self.model,
                    pricing=pricing,
                )
            except AiLibError as exc:
                return exc
        status = rule.status.first(record) if rule is not None and rule.status else None
        status = status if type(status) is int else 0
        info = classify_error(self.manifest.error_classification, status, {}, body)
        if not info.status:  # neither the record nor its body says: no status, not 0
            info = attrs.evolve(info, status=None)
        return error_from_info(info, body=body, request_id=request_id, **self.context())
