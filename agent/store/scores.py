"""Scores in the library: how relevant a paper is to a profile, by which scorer, and why.

Ranking is a stage of its own (DESIGN 16): a score is kept per paper, profile and scorer
(``lexical``, ``learned``, ``llm``, ``fused``...), so changing a profile re-scores without
touching annotations, and an incremental export finds what moved by ``updated``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.store.db import Database, chunks, marks, now
from agent.store.papers import row_ids


@dataclass(frozen=True)
class Score:
    """One paper's relevance (0-10) to a profile, by one scorer."""

    key: str
    profile: str
    scorer: str
    relevance: float
    why: str | None
    updated: dt.datetime


class Scores:
    """Relevance per paper, profile and scorer."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self, profile: str, scorer: str, scores: Iterable[tuple[str, float, str | None]]
    ) -> int:
        """Store ``(paper key, relevance, why)`` for each stored paper in one transaction;
        returns how many rows changed (a score given again unchanged is left as it was)."""
        batch = list(scores)
        for paper_key, relevance, _ in batch:
            if not 0 <= relevance <= 10:  # NaN fails too
                raise ValueError(f"relevance of {paper_key!r} is {relevance}, not 0 to 10")
        when = now()

        def write(conn: sqlite3.Connection) -> int:
            ids = row_ids(conn, [k for k, _, _ in batch])
            missing = [k for k, _, _ in batch if k not in ids]
            if missing:
                raise KeyError(f"no paper {missing[0]!r} in the library")
            changed = 0
            for paper_key, relevance, why in batch:
                changed += conn.execute(
                    "INSERT INTO scores (paper, profile, scorer, relevance, why, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (paper, profile, scorer) DO UPDATE"
                    " SET relevance = excluded.relevance, why = excluded.why,"
                    " updated = excluded.updated"
                    " WHERE relevance IS NOT excluded.relevance OR why IS NOT excluded.why",
                    (ids[paper_key], profile, scorer, float(relevance), why, when),
                ).rowcount
            return changed

        return self._db.write(write) if batch else 0

    def get(self, profile: str, keys: Sequence[str], scorer: str | None = None) -> dict[str, Score]:
        """The scores of these papers for ``profile``: by ``scorer``, or the latest of any."""
        by = "" if scorer is None else " AND s.scorer = ?"

        def query(conn: sqlite3.Connection) -> dict[str, Score]:
            found: dict[str, Score] = {}
            for part in chunks(keys):
                sql = (
                    "SELECT p.key, s.scorer, s.relevance, s.why, s.updated FROM scores s"
                    f" JOIN papers p ON p.id = s.paper WHERE p.key IN ({marks(len(part))})"
                    f" AND s.profile = ?{by} ORDER BY s.updated, s.id"
                )
                params = (*part, profile, *([scorer] if scorer else []))
                for paper_key, by_scorer, relevance, why, updated in conn.execute(sql, params):
                    found[paper_key] = Score(  # the latest comes last and stays
                        paper_key,
                        profile,
                        by_scorer,
                        relevance,
                        why,
                        dt.datetime.fromisoformat(updated),
                    )
            return found

        return self._db.read(query) if keys else {}

    def profiles(self) -> list[str]:
        """Every profile with a score, by name."""
        sql = "SELECT DISTINCT profile FROM scores ORDER BY profile"
        return [row[0] for row in self._db.read(lambda conn: conn.execute(sql).fetchall())]
