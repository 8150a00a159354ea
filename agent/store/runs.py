"""Runs in the library: when each ran, with what, how it ended, and every paper's outcome in
input order (its annotation, or its error), so a run's results can be read back later."""

from __future__ import annotations

import builtins
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agent.models import Annotation, Paper, PaperResult
from agent.store.annotations import put as put_annotation
from agent.store.db import Database, now, to_json
from agent.store.papers import upsert

PaperStatus = Literal["ok", "error", "skipped"]
# A results line's fields kept as they were written (the papers table keeps its own merge).
FIELDS = ("published", "categories", "relevance", "why", "relevance_by")
RUNNING = "running"

_COLUMNS = (
    "r.id, r.started, r.finished, r.status, r.command, r.settings, r.pid, r.exit_code, r.note,"
    " (SELECT count(*) FROM run_papers x WHERE x.run = r.id AND x.status = 'ok'),"
    " (SELECT count(*) FROM run_papers x WHERE x.run = r.id AND x.status = 'error'),"
    " (SELECT count(*) FROM run_papers x WHERE x.run = r.id AND x.status = 'skipped')"
)


@dataclass(frozen=True)
class RunInfo:
    """One run as ``paper-agent runs`` lists it."""

    id: int
    started: dt.datetime
    finished: dt.datetime | None
    status: str  # "running" until finish() says how it ended
    command: str
    settings: dict[str, Any]
    pid: int | None
    exit_code: int | None
    note: str | None
    ok: int
    failed: int
    skipped: int

    @property
    def total(self) -> int:
        """Papers with an outcome recorded."""
        return self.ok + self.failed + self.skipped

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> RunInfo:
        """A run from the columns of one row."""
        run, started, finished, status, command, settings, *rest = row
        return cls(
            run,
            dt.datetime.fromisoformat(started),
            dt.datetime.fromisoformat(finished) if finished else None,
            status,
            command,
            json.loads(settings),
            *rest,
        )


def status_of(result: PaperResult) -> PaperStatus:
    """A result's outcome, counted as the run's summary counts it."""
    if result.error is None:
        return "ok"
    return "skipped" if result.error.type == "skipped" else "error"


class Runs:
    """Start, record and finish runs; list them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(self, command: str, settings: Mapping[str, Any] | None = None) -> int:
        """A new run, ``running`` from now; returns its id. ``settings`` must hold no secret."""
        row = (now(), RUNNING, command, to_json(dict(settings or {})), os.getpid())
        sql = "INSERT INTO runs (started, status, command, settings, pid) VALUES (?, ?, ?, ?, ?)"

        def write(conn: sqlite3.Connection) -> int:
            run = conn.execute(sql, row).lastrowid
            assert run is not None
            return run

        return self._db.write(write)

    def record(
        self,
        run: int,
        results: Iterable[tuple[int, Paper, PaperResult]],
        settings: str,
    ) -> None:
        """Record ``(position, paper, result)`` outcomes of a run in one transaction: the
        paper stored or merged, its annotation under ``settings`` when it has one."""
        batch = list(results)
        when = now()

        def write(conn: sqlite3.Connection) -> None:
            for position, paper, result in batch:
                _record_one(conn, run, position, paper, result, settings, when)

        if batch:
            self._db.write(write)

    def finish(
        self, run: int, status: str, exit_code: int | None = None, note: str | None = None
    ) -> None:
        """Say how the run ended (``ok``, ``failed``, ``interrupted``...)."""
        sql = "UPDATE runs SET finished = ?, status = ?, exit_code = ?, note = ? WHERE id = ?"
        params = (now(), status, exit_code, note, run)
        changed = self._db.write(lambda conn: conn.execute(sql, params).rowcount)
        if not changed:
            raise KeyError(f"no run {run} in the library")

    def get(self, run: int) -> RunInfo | None:
        """One run, or None."""
        sql = f"SELECT {_COLUMNS} FROM runs r WHERE r.id = ?"
        row = self._db.read(lambda conn: conn.execute(sql, (run,)).fetchone())
        return RunInfo.from_row(row) if row else None

    def list(self, limit: int | None = None) -> builtins.list[RunInfo]:
        """The runs, newest first (the ``limit`` newest when given)."""
        sql = f"SELECT {_COLUMNS} FROM runs r ORDER BY r.id DESC"
        params: tuple[int, ...] = ()
        if limit is not None:
            sql, params = sql + " LIMIT ?", (max(limit, 0),)
        rows = self._db.read(lambda conn: conn.execute(sql, params).fetchall())
        return [RunInfo.from_row(row) for row in rows]


def _record_one(
    conn: sqlite3.Connection,
    run: int,
    position: int,
    paper: Paper,
    result: PaperResult,
    settings: str,
    when: str,
) -> None:
    """Store one paper's outcome in a run (recorded again, it replaces the first)."""
    row = upsert(conn, paper, when)
    annotation = None
    if result.error is None and result.summary is not None:
        said = Annotation(
            tags=result.tags, summary=result.summary, usage=result.usage, cached=result.cached
        )
        annotation = put_annotation(conn, row, settings, said, result.backend, result.model, when)
    error = result.error
    conn.execute(
        "INSERT OR REPLACE INTO run_papers (run, position, paper, paper_id, source, status,"
        " annotation, backend, model, cached, usage, error_type, error_message, updated, fields)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run,
            position,
            row,
            result.id,
            result.source,
            status_of(result),
            annotation,
            result.backend,
            result.model,
            result.cached,
            result.usage.model_dump_json(),
            error.type if error else None,
            error.message if error else None,
            when,
            result_fields(result),
        ),
    )


def result_fields(result: PaperResult) -> str | None:
    """The fields of the result's line no other column holds, as JSON; None without any."""
    fields = {name: getattr(result, name) for name in FIELDS}
    given = {k: v for k, v in fields.items() if v not in (None, {}, [], "")}
    return to_json(given) if given else None
