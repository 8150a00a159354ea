"""Annotations in the library: the tags and summary a backend gave a paper, one per paper and
settings key (the hash of what shapes the answer), with the usage it cost."""

from __future__ import annotations

import builtins
import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.models import Annotation, Usage
from agent.store.db import Database, now, to_json

_COLUMNS = "p.key, a.settings, a.tags, a.summary, a.backend, a.model, a.usage, a.created"


@dataclass(frozen=True)
class StoredAnnotation:
    """One paper's tags and summary under one settings key."""

    key: str
    settings: str
    tags: list[str]
    summary: str
    backend: str
    model: str | None
    usage: Usage
    created: dt.datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> StoredAnnotation:
        """An annotation from the columns of one row."""
        paper_key, settings, tags, summary, backend, model, usage, created = row
        return cls(
            paper_key,
            settings,
            json.loads(tags),
            summary,
            backend,
            model,
            Usage.model_validate_json(usage),
            dt.datetime.fromisoformat(created),
        )


class Annotations:
    """What backends said about papers, by settings key."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        paper_key: str,
        settings: str,
        annotation: Annotation,
        backend: str,
        model: str | None,
    ) -> int:
        """Store the annotation of a stored paper under ``settings``; returns its id."""

        def write(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT id FROM papers WHERE key = ?", (paper_key,)).fetchone()
            if row is None:
                raise KeyError(f"no paper {paper_key!r} in the library")
            return put(conn, row[0], settings, annotation, backend, model, now())

        return self._db.write(write)

    def of_paper(self, paper_key: str) -> builtins.list[StoredAnnotation]:
        """Every annotation of a paper, newest first."""
        sql = (
            f"SELECT {_COLUMNS} FROM annotations a JOIN papers p ON p.id = a.paper"
            " WHERE p.key = ? ORDER BY a.created DESC, a.id DESC"
        )
        rows = self._db.read(lambda conn: conn.execute(sql, (paper_key,)).fetchall())
        return [StoredAnnotation.from_row(row) for row in rows]

    def get(self, paper_key: str, settings: str) -> StoredAnnotation | None:
        """The paper's annotation under ``settings``, or None."""
        sql = (
            f"SELECT {_COLUMNS} FROM annotations a JOIN papers p ON p.id = a.paper"
            " WHERE p.key = ? AND a.settings = ?"
        )
        row = self._db.read(lambda conn: conn.execute(sql, (paper_key, settings)).fetchone())
        return StoredAnnotation.from_row(row) if row else None


def put(
    conn: sqlite3.Connection,
    paper: int,
    settings: str,
    annotation: Annotation,
    backend: str,
    model: str | None,
    when: str,
) -> int:
    """Store an annotation of paper row ``paper``; returns its id. An answer that came from
    the cache leaves a stored one as it is (its usage is what making it cost); a new answer
    replaces it, and ``created`` moves only when what it says changed."""
    found = conn.execute(
        "SELECT id, tags, summary, backend, model FROM annotations"
        " WHERE paper = ? AND settings = ?",
        (paper, settings),
    ).fetchone()
    tags, usage = to_json(annotation.tags), annotation.usage.model_dump_json()
    said = (tags, annotation.summary, backend, model)
    if found is None:
        cursor = conn.execute(
            "INSERT INTO annotations (paper, settings, tags, summary, backend, model, usage,"
            " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (paper, settings, *said, usage, when),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid
    if annotation.cached and tuple(found[1:]) == said:
        return int(found[0])
    if tuple(found[1:]) == said:
        conn.execute("UPDATE annotations SET usage = ? WHERE id = ?", (usage, found[0]))
    else:
        conn.execute(
            "UPDATE annotations SET tags = ?, summary = ?, backend = ?, model = ?, usage = ?,"
            " created = ? WHERE id = ?",
            (*said, usage, when, found[0]),
        )
    return int(found[0])
