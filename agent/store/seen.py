"""The seen query on the library (DESIGN 11): a paper is seen once a run wrote its
result; matched by arXiv id without version, else normalized title, exactly as before."""

from __future__ import annotations

import builtins
import datetime as dt
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.models import Paper
from agent.store.db import Database, chunks, marks, now
from agent.store.keys import arxiv_key, bare_arxiv, key, title_key
from agent.store.papers import upsert

Wanted = tuple[str, str, str | None, bool]  # paper id, key, title key, has an arXiv id


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
        wanted = [(p.id, key(p), title_key(p.title), arxiv_key(p) is not None) for p in papers]

        def query(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for part in chunks(wanted):
                found |= _seen_chunk(conn, part)
            return found

        return self._db.read(query) if wanted else set()

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


def _seen_chunk(conn: sqlite3.Connection, chunk: Sequence[Wanted]) -> set[str]:
    """The ids in ``chunk`` that one query finds seen."""
    keys = [k for _, k, _, _ in chunk]
    titles = [t for _, _, t, _ in chunk if t is not None]
    sql = (
        "SELECT key, title_key, arxiv_id IS NOT NULL FROM papers"
        f" WHERE (key IN ({marks(len(keys))}) OR title_key IN ({marks(len(titles))}))"
        " AND seen IS NOT NULL"
    )
    found_keys: set[str] = set()
    any_titles: set[str] = set()
    plain_titles: set[str] = set()  # titles of papers stored without an arXiv id
    for found, found_title, has_arxiv in conn.execute(sql, [*keys, *titles]):
        found_keys.add(found)
        if found_title is not None:
            any_titles.add(found_title)
            if not has_arxiv:
                plain_titles.add(found_title)
    # Two arXiv ids are two papers, even with one title ("A Survey of ..."): a paper with an
    # id matches by title only a paper stored without one.
    return {
        pid
        for pid, k, title, has_arxiv in chunk
        if k in found_keys
        or (title is not None and title in (plain_titles if has_arxiv else any_titles))
    }
