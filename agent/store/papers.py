"""Papers in the library: one row per paper, known by its key (agent.store.keys), merged across
sources, and read back by day, by run or since a time as streams."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agent.models import Paper
from agent.store.db import Database, chunks, day_range, marks, now, stamp, to_json
from agent.store.keys import arxiv_key, bare_arxiv, key, title_key

DayField = Literal["first_seen", "published"]
# A paper asked about: what to answer with (its id...), its key, title key, has an arXiv id.
Wanted = tuple[str, str, str | None, bool]

# The columns LibraryPaper.from_row reads, in its order.
COLUMNS = (
    "p.key, p.paper_id, p.arxiv_id, p.title, p.abstract, p.authors, p.url, p.categories,"
    " p.published, p.sources, p.metadata, p.first_seen, p.updated, p.seen"
)
# What a later source may change in a stored paper (``published`` keeps its first value).
_MERGED = ("title", "abstract", "authors", "url", "categories", "published", "sources", "metadata")
_EMPTY = ("", "[]", "{}", None)


@dataclass(frozen=True)
class LibraryPaper:
    """One paper as the library holds it, merged from every source that gave it."""

    key: str
    id: str  # the id its first source gave
    arxiv_id: str | None
    title: str
    abstract: str
    authors: list[str]
    url: str | None
    categories: list[str]
    published: str | None
    sources: list[str]
    metadata: dict[str, str]
    first_seen: dt.datetime
    updated: dt.datetime
    seen: dt.datetime | None  # when a run's result for it was written

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LibraryPaper:
        """A paper from the ``COLUMNS`` of one row."""
        (key_, pid, arxiv, title, abstract, authors, url, cats, published, sources, meta) = row[:11]
        first_seen, updated, seen = row[11:14]
        return cls(
            key_,
            pid,
            arxiv,
            title,
            abstract,
            json.loads(authors),
            url,
            json.loads(cats),
            published,
            json.loads(sources),
            json.loads(meta),
            dt.datetime.fromisoformat(first_seen),
            dt.datetime.fromisoformat(updated),
            dt.datetime.fromisoformat(seen) if seen else None,
        )

    def to_paper(self) -> Paper:
        """The paper as a source would give it (its first source named)."""
        return Paper(
            id=self.id,
            title=self.title,
            abstract=self.abstract,
            authors=self.authors,
            url=self.url,
            published=self.published,
            categories=self.categories,
            source=self.sources[0] if self.sources else "",
            metadata=self.metadata,
        )


class Papers:
    """The papers table: add (merging), look up, and stream by day, run or time."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, papers: Iterable[Paper]) -> list[str]:
        """Store or merge the papers in one transaction; returns their keys, in order."""
        batch = list(papers)
        when = now()

        def write(conn: sqlite3.Connection) -> list[str]:
            return [row_key(conn, upsert(conn, p, when)) for p in batch]

        return self._db.write(write) if batch else []

    def get(self, paper_key: str) -> LibraryPaper | None:
        """The paper with this key, or None."""
        sql = f"SELECT {COLUMNS} FROM papers p WHERE p.key = ?"
        row = self._db.read(lambda conn: conn.execute(sql, (paper_key,)).fetchone())
        return LibraryPaper.from_row(row) if row else None

    def find(self, ident: str) -> LibraryPaper | None:
        """The paper an id names: its key, an arXiv id with or without version, or the id
        its source gave."""
        ident = ident.strip()
        bare = bare_arxiv(ident) or ident
        sql = (
            f"SELECT {COLUMNS} FROM papers p WHERE p.key = ? OR p.key = ? OR p.paper_id = ?"
            " ORDER BY p.id LIMIT 1"
        )
        row = self._db.read(lambda conn: conn.execute(sql, (ident, bare, ident)).fetchone())
        return LibraryPaper.from_row(row) if row else None

    def on_day(self, day: dt.date, by: DayField = "first_seen") -> Iterator[LibraryPaper]:
        """The papers first seen (or published) on a UTC day, oldest first."""
        start, end = day_range(day)
        sql = (
            f"SELECT {COLUMNS} FROM papers p WHERE p.{by} >= ? AND p.{by} < ? ORDER BY p.{by}, p.id"
        )
        return map(LibraryPaper.from_row, self._db.stream(sql, (start, end)))

    def since(self, when: dt.datetime) -> Iterator[LibraryPaper]:
        """The papers first seen at or after ``when``, oldest first."""
        sql = f"SELECT {COLUMNS} FROM papers p WHERE p.first_seen >= ? ORDER BY p.first_seen, p.id"
        return map(LibraryPaper.from_row, self._db.stream(sql, (stamp(when),)))

    def of_run(self, run: int) -> Iterator[LibraryPaper]:
        """The papers of one run, in its input order."""
        sql = (
            f"SELECT {COLUMNS} FROM run_papers r JOIN papers p ON p.id = r.paper"
            " WHERE r.run = ? ORDER BY r.position"
        )
        return map(LibraryPaper.from_row, self._db.stream(sql, (run,)))

    def changed_since(self, when: dt.datetime) -> Iterator[str]:
        """Keys of the papers whose row, annotations or scores changed at or after ``when``
        (each once, in no set order): what an incremental export must redo."""
        sql = (
            "SELECT key FROM papers WHERE updated >= ?1"
            " UNION SELECT p.key FROM annotations a JOIN papers p ON p.id = a.paper"
            " WHERE a.created >= ?1"
            " UNION SELECT p.key FROM scores s JOIN papers p ON p.id = s.paper"
            " WHERE s.updated >= ?1"
        )
        return (row[0] for row in self._db.stream(sql, (stamp(when),)))

    def __len__(self) -> int:
        return int(self._db.read(lambda c: c.execute("SELECT count(*) FROM papers").fetchone()[0]))


def upsert(conn: sqlite3.Connection, paper: Paper, when: str) -> int:
    """The row id of ``paper``, stored now or merged into the row that is the same paper:
    its key, else (with an arXiv id) a row stored by its title alone, which gains the id,
    else (without one) the oldest row with its title."""
    paper_key, title, arxiv = key(paper), title_key(paper.title), arxiv_key(paper)
    row = _row(conn, "key = ?", paper_key)
    if row is None and title is not None:
        if arxiv is not None:
            row = _row(conn, "key = ? AND arxiv_id IS NULL", title)
            if row is not None:
                conn.execute(
                    "UPDATE papers SET key = ?, arxiv_id = ?, updated = ? WHERE id = ?",
                    (paper_key, arxiv, when, row[0]),
                )
        else:
            row = _row(conn, "title_key = ? ORDER BY id LIMIT 1", title)
    if row is None:
        return _insert(conn, paper, paper_key, title, arxiv, when)
    changes = _changes(dict(zip(_MERGED, row[1:], strict=True)), paper)
    if changes:
        sets = ", ".join(f"{column} = ?" for column in changes)
        conn.execute(
            f"UPDATE papers SET {sets}, updated = ? WHERE id = ?",
            (*changes.values(), when, row[0]),
        )
    return int(row[0])


def row_key(conn: sqlite3.Connection, row_id: int) -> str:
    """The key of the paper with this row id."""
    return str(conn.execute("SELECT key FROM papers WHERE id = ?", (row_id,)).fetchone()[0])


def row_ids(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, int]:
    """The row ids of the keys that name a stored paper (the others are left out)."""
    found: dict[str, int] = {}
    for part in chunks(keys):
        sql = f"SELECT key, id FROM papers WHERE key IN ({marks(len(part))})"
        found.update(conn.execute(sql, tuple(part)).fetchall())
    return found


def wanted(papers: Iterable[Paper], label: Callable[[Paper], str]) -> list[Wanted]:
    """The papers as ``matching`` asks about them, each answered by ``label(paper)``."""
    return [(label(p), key(p), title_key(p.title), arxiv_key(p) is not None) for p in papers]


def matching(
    conn: sqlite3.Connection, asked: Sequence[Wanted], where: str, params: Sequence[Any] = ()
) -> set[str]:
    """The labels of the ``asked`` papers that are a stored paper ``p`` meeting ``where``:
    the same key, else the same title, as the seen-store always matched. One query a chunk."""
    found: set[str] = set()
    for part in chunks(asked):
        keys = [k for _, k, _, _ in part]
        titles = [t for _, _, t, _ in part if t is not None]
        sql = (
            "SELECT p.key, p.title_key, p.arxiv_id IS NOT NULL FROM papers p"
            f" WHERE (p.key IN ({marks(len(keys))}) OR p.title_key IN ({marks(len(titles))}))"
            f" AND {where}"
        )
        found_keys: set[str] = set()
        any_titles: set[str] = set()
        plain_titles: set[str] = set()  # titles of papers stored without an arXiv id
        for stored, stored_title, has_arxiv in conn.execute(sql, [*keys, *titles, *params]):
            found_keys.add(stored)
            if stored_title is not None:
                any_titles.add(stored_title)
                if not has_arxiv:
                    plain_titles.add(stored_title)
        # Two arXiv ids are two papers, even with one title ("A Survey of ..."): a paper with
        # an id matches by title only a paper stored without one.
        found |= {
            label
            for label, k, title, has_arxiv in part
            if k in found_keys
            or (title is not None and title in (plain_titles if has_arxiv else any_titles))
        }
    return found


def _row(conn: sqlite3.Connection, where: str, value: str) -> tuple[Any, ...] | None:
    sql = f"SELECT id, {', '.join(_MERGED)} FROM papers WHERE {where}"
    row: tuple[Any, ...] | None = conn.execute(sql, (value,)).fetchone()
    return row


def _insert(
    conn: sqlite3.Connection,
    paper: Paper,
    paper_key: str,
    title: str | None,
    arxiv: str | None,
    when: str,
) -> int:
    """A new row for ``paper``; returns its id."""
    cursor = conn.execute(
        "INSERT INTO papers (key, title_key, arxiv_id, paper_id, title, abstract, authors, url,"
        " categories, published, sources, metadata, first_seen, updated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            paper_key,
            title,
            arxiv,
            paper.id,
            paper.title,
            paper.abstract,
            to_json(paper.authors),
            paper.url,
            to_json(paper.categories),
            paper.published,
            to_json([paper.source] if paper.source else []),
            to_json(paper.metadata),
            when,
            when,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _changes(old: dict[str, Any], paper: Paper) -> dict[str, Any]:
    """The columns ``paper`` changes in its stored row: what it gives replaces what was there
    (what it lacks keeps the old value), its source joins the list, its metadata merges."""
    sources = json.loads(old["sources"])
    if paper.source and paper.source not in sources:
        sources.append(paper.source)
    new = {
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": to_json(paper.authors),
        "url": paper.url,
        "categories": to_json(paper.categories),
        "published": old["published"] or paper.published,
        "sources": to_json(sources),
        "metadata": to_json({**json.loads(old["metadata"]), **paper.metadata}),
    }
    merged = {k: old[k] if v in _EMPTY else v for k, v in new.items()}
    return {k: v for k, v in merged.items() if v != old[k]}
