"""The seen query on the library (DESIGN 11): a paper is seen once a run wrote its
result; matched by arXiv id without version, else normalized title, exactly as before."""

from __future__ import annotations

import builtins
import datetime as dt
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from agent.models import Paper
from agent.store.db import Database, now
from agent.store.keys import bare_arxiv
from agent.store.papers import matching, upsert, wanted


@dataclass(frozen=True)
class SeenEntry:
    """One seen paper, as ``paper-agent seen list`` shows it."""

    first_seen: dt.datetime  # when a run first marked it seen
    id: str
    key: str
    title: str
    source: str


class Seen:
    """Which papers earlier runs annotated: ask, mark, list, forget."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def seen(self, papers: Iterable[Paper]) -> set[str]:
        """The ids (``Paper.id``) of the papers already seen, one query per chunk."""
        asked = wanted(papers, lambda p: p.id)

        def query(conn: sqlite3.Connection) -> set[str]:
            return matching(conn, asked, "p.seen IS NOT NULL")

        return self._db.read(query) if asked else set()

    def mark(self, papers: Iterable[Paper], source: str) -> int:
        """Record the papers as seen now by ``source`` (stored first if new), in one
        transaction; returns how many were not seen before."""
        batch = list(papers)
        when = now()

        def write(conn: sqlite3.Connection) -> int:
            added = 0
            for paper in batch:
                row = upsert(conn, paper, when)
                added += conn.execute(
                    "UPDATE papers SET seen = ?, seen_source = ? WHERE id = ? AND seen IS NULL",
                    (when, source, row),
                ).rowcount
            return added

        return self._db.write(write) if batch else 0

    def list(self, limit: int | None = None) -> builtins.list[SeenEntry]:
        """The seen papers, newest first (the ``limit`` newest when given)."""
        sql = (
            "SELECT seen, paper_id, key, title, coalesce(seen_source, '') FROM papers"
            " WHERE seen IS NOT NULL ORDER BY seen DESC, id DESC"
        )
        params: tuple[int, ...] = ()
        if limit is not None:
            sql, params = sql + " LIMIT ?", (max(limit, 0),)

        def query(conn: sqlite3.Connection) -> builtins.list[SeenEntry]:
            return [
                SeenEntry(dt.datetime.fromisoformat(when), *rest)
                for when, *rest in conn.execute(sql, params)
            ]

        return self._db.read(query)

    def forget(self, ident: str) -> int:
        """Forget a paper by arXiv id (with or without version), paper id or key, so the next
        run annotates it again (the paper and its history stay); returns how many went."""
        ident = ident.strip()
        bare = bare_arxiv(ident) or ident
        sql = (
            "UPDATE papers SET seen = NULL, seen_source = NULL"
            " WHERE (paper_id = ? OR key = ? OR key = ?) AND seen IS NOT NULL"
        )
        return self._db.write(lambda conn: conn.execute(sql, (ident, ident, bare)).rowcount)

    def clear(self) -> int:
        """Forget every seen paper (the papers and their history stay); returns how many."""
        sql = "UPDATE papers SET seen = NULL, seen_source = NULL WHERE seen IS NOT NULL"
        return self._db.write(lambda conn: conn.execute(sql).rowcount)

    def __len__(self) -> int:
        sql = "SELECT count(*) FROM papers WHERE seen IS NOT NULL"
        return int(self._db.read(lambda conn: conn.execute(sql).fetchone()[0]))
