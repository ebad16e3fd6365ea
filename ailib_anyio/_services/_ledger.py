"""The batch job ledger: a job's state in one SQLite file, so a restarted process resumes.

What is recorded, each step committed before the next starts:

- ``meta``: the job's provider, model and name (a ledger belongs to one of each);
- ``items``: every request (its ``custom_id``, the encoded body, the batch it is in, how
  many times it was submitted) and, once known, its outcome and result record;
- ``batches``: each batch in submission order: planned (written before any I/O), then
  its uploaded file id, its remote id once created, its last status, and whether its
  results have been fetched.

A process that stops anywhere — cancelled, crashed, killed — leaves a ledger from which
``BatchJob`` resumes: planned batches are created, created ones are polled, ended ones
fetched. Nothing is submitted twice, except in the moment between a provider accepting a
batch and the ledger recording its id (that one batch would be created again).

The class here is synchronous (the standard library's ``sqlite3``); ``BatchJob`` runs
every call in a worker thread, one at a time (``anyio.to_thread``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from .._core._errors import ConfigurationError

__all__ = ["BatchRow", "Ledger", "LedgerItem"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    number INTEGER PRIMARY KEY,
    remote_id TEXT,
    file_id TEXT,
    status TEXT NOT NULL,
    raw_status TEXT,
    requests INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    counts TEXT,
    failure TEXT,
    fetched INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    custom_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    batch INTEGER NOT NULL REFERENCES batches(number),
    submissions INTEGER NOT NULL DEFAULT 1,
    outcome TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS items_by_batch ON items(batch, outcome);
"""

#: rows per ``IN (...)`` query: under SQLite's oldest limit on bound parameters (999)
_CHUNK = 900


@attrs.frozen
class BatchRow:
    """One batch as the ledger records it."""

    number: int
    remote_id: str | None
    file_id: str | None
    status: str
    raw_status: str | None
    requests: int
    bytes: int
    counts: Mapping[str, int]
    failure: str | None
    fetched: bool


@attrs.frozen
class LedgerItem:
    """One request with its outcome (None while pending)."""

    seq: int
    custom_id: str
    outcome: str | None
    result: str | None
    batch_remote_id: str | None


def _batch_row(row: Sequence[Any]) -> BatchRow:
    counts = json.loads(row[7]) if row[7] else {}
    return BatchRow(
        number=row[0],
        remote_id=row[1],
        file_id=row[2],
        status=row[3],
        raw_status=row[4],
        requests=row[5],
        bytes=row[6],
        counts=counts,
        failure=row[8],
        fetched=bool(row[9]),
    )


_BATCH_COLUMNS = (
    "number, remote_id, file_id, status, raw_status, requests, bytes, counts, failure, fetched"
)


class Ledger:
    """A job's state in a SQLite file (``":memory:"``: in memory, for a job that need not
    survive its process). Synchronous; not for concurrent use."""

    def __init__(self, path: str) -> None:
        """Open (or create) the ledger at ``path``; ``ConfigurationError`` if it cannot
        be one (not an SQLite file, a directory that does not exist...)."""
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the batch job ledger {path!r}: {exc}") from exc
        try:
            if path != ":memory:":
                # WAL: a commit is one append, and a killed process loses nothing committed
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise ConfigurationError(f"{path!r} is not a batch job ledger: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ------------------------------------------------------------ the job

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def start(self, values: Mapping[str, str]) -> dict[str, str]:
        """Record the job's ``values`` unless the ledger has a job already; return the
        ledger's (the stored ones win)."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                [("schema", str(SCHEMA_VERSION)), *values.items()],
            )
        return self.meta()

    # ------------------------------------------------------------ items and batches

    def bodies_of(self, custom_ids: Sequence[str]) -> dict[str, bytes]:
        """The recorded body of each of these ids the ledger has."""
        found: dict[str, bytes] = {}
        for start in range(0, len(custom_ids), _CHUNK):
            chunk = custom_ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT custom_id, body FROM items WHERE custom_id IN ({marks})", chunk
            )
            found.update((cid, bytes(body)) for cid, body in rows)
        return found

    def plan(self, groups: Sequence[tuple[Sequence[tuple[str, bytes]], int]]) -> list[int]:
        """Record new batches, each ``(items, bytes)`` with ``items`` new ``(custom_id,
        body)`` pairs, planned (not yet created); return their numbers."""
        now = time.time()
        numbers = []
        with self._transaction() as db:
            for items, size in groups:
                cursor = db.execute(
                    "INSERT INTO batches(status, requests, bytes, created, updated)"
                    " VALUES ('planned', ?, ?, ?, ?)",
                    (len(items), size, now, now),
                )
                number = cursor.lastrowid
                assert number is not None
                numbers.append(number)
                db.executemany(
                    "INSERT INTO items(custom_id, body, batch) VALUES (?, ?, ?)",
                    [(cid, body, number) for cid, body in items],
                )
        return numbers

    def replan(self, groups: Sequence[tuple[Sequence[str], int]]) -> list[int]:
        """Move recorded items into new planned batches (a resubmission): each group is
        ``(custom_ids, bytes)``; their outcomes are cleared and submissions counted."""
        now = time.time()
        numbers = []
        with self._transaction() as db:
            for custom_ids, size in groups:
                cursor = db.execute(
                    "INSERT INTO batches(status, requests, bytes, created, updated)"
                    " VALUES ('planned', ?, ?, ?, ?)",
                    (len(custom_ids), size, now, now),
                )
                number = cursor.lastrowid
                assert number is not None
                numbers.append(number)
                db.executemany(
                    "UPDATE items SET batch = ?, submissions = submissions + 1,"
                    " outcome = NULL, result = NULL WHERE custom_id = ?",
                    [(number, cid) for cid in custom_ids],
                )
        return numbers

    def items_of(self, number: int) -> list[tuple[str, bytes]]:
        """``(custom_id, body)`` of a batch's items, in submission order."""
        rows = self._db.execute(
            "SELECT custom_id, body FROM items WHERE batch = ? ORDER BY seq", (number,)
        )
        return [(cid, bytes(body)) for cid, body in rows]

    def with_outcomes(self, outcomes: Sequence[str]) -> list[tuple[str, bytes]]:
        """``(custom_id, body)`` of every item whose outcome is one of ``outcomes``."""
        marks = ",".join("?" * len(outcomes))
        rows = self._db.execute(
            f"SELECT custom_id, body FROM items WHERE outcome IN ({marks}) ORDER BY seq",
            tuple(outcomes),
        )
        return [(cid, bytes(body)) for cid, body in rows]

    def batches(self) -> list[BatchRow]:
        rows = self._db.execute(f"SELECT {_BATCH_COLUMNS} FROM batches ORDER BY number")
        return [_batch_row(row) for row in rows]

    def batch(self, number: int) -> BatchRow:
        row = self._db.execute(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE number = ?", (number,)
        ).fetchone()
        return _batch_row(row)

    def set_file(self, number: int, file_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET file_id = ?, updated = ? WHERE number = ?",
                (file_id, time.time(), number),
            )

    def set_status(
        self,
        number: int,
        status: str,
        raw_status: str | None,
        *,
        remote_id: str | None = None,
        counts: Mapping[str, int] | None = None,
        failure: str | None = None,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET status = ?, raw_status = ?,"
                " remote_id = coalesce(?, remote_id), counts = coalesce(?, counts),"
                " failure = coalesce(?, failure), updated = ? WHERE number = ?",
                (
                    status,
                    raw_status,
                    remote_id,
                    json.dumps(dict(counts)) if counts else None,
                    failure,
                    time.time(),
                    number,
                ),
            )

    def record(self, number: int, results: Sequence[tuple[str, str, str]]) -> int:
        """Record ``(custom_id, outcome, record)`` results of a batch (a record for an
        item not in that batch is ignored); return how many were items of it."""
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "UPDATE items SET outcome = ?, result = ? WHERE custom_id = ? AND batch = ?",
                [(outcome, record, cid, number) for cid, outcome, record in results],
            )
            return db.total_changes - before

    def finish(self, number: int, missing: str, record: str | None) -> None:
        """Mark a batch's results fetched; its items without a result get ``missing``."""
        with self._transaction() as db:
            db.execute(
                "UPDATE items SET outcome = ?, result = ? WHERE batch = ? AND outcome IS NULL",
                (missing, record, number),
            )
            db.execute(
                "UPDATE batches SET fetched = 1, updated = ? WHERE number = ?",
                (time.time(), number),
            )

    # ------------------------------------------------------------ reading results

    def outcome_counts(self) -> dict[str | None, int]:
        rows = self._db.execute("SELECT outcome, count(*) FROM items GROUP BY outcome")
        return dict(rows.fetchall())

    def page(self, after: int, limit: int) -> list[LedgerItem]:
        """The next items with an outcome after sequence number ``after``, in order."""
        rows = self._db.execute(
            "SELECT i.seq, i.custom_id, i.outcome, i.result, b.remote_id FROM items i"
            " JOIN batches b ON b.number = i.batch"
            " WHERE i.seq > ? AND i.outcome IS NOT NULL ORDER BY i.seq LIMIT ?",
            (after, limit),
        )
        return [LedgerItem(*row) for row in rows]
