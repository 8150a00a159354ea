"""Feedback in the library: a like (+1) or dislike (-1) of a paper for a profile, where it came
from (the CLI, a Zotero or BibTeX library) and when; the latest vote for a paper stands."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from agent.store.db import Database, now

LIKE, DISLIKE = 1, -1


@dataclass(frozen=True)
class Vote:
    """One paper's vote for one profile."""

    key: str
    title: str
    profile: str
    vote: int  # LIKE or DISLIKE
    origin: str
    at: dt.datetime


class Feedback:
    """Likes and dislikes per profile."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, paper_key: str, vote: int, profile: str = "", origin: str = "cli") -> bool:
        """Record a vote for a stored paper (replacing its earlier vote for the profile);
        returns False when that vote was already there, from the same origin."""
        if vote not in (LIKE, DISLIKE):
            raise ValueError(f"a vote is +1 or -1, not {vote!r}")
        when = now()

        def write(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT id FROM papers WHERE key = ?", (paper_key,)).fetchone()
            if row is None:
                raise KeyError(f"no paper {paper_key!r} in the library")
            return bool(
                conn.execute(
                    "INSERT INTO feedback (paper, profile, vote, origin, at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (paper, profile) DO UPDATE"
                    " SET vote = excluded.vote, origin = excluded.origin, at = excluded.at"
                    " WHERE vote != excluded.vote OR origin != excluded.origin",
                    (row[0], profile, vote, origin, when),
                ).rowcount
            )

        return self._db.write(write)

    def remove(self, paper_key: str, profile: str = "") -> bool:
        """Withdraw the paper's vote for the profile; False when it had none."""
        sql = (
            "DELETE FROM feedback WHERE profile = ?"
            " AND paper = (SELECT id FROM papers WHERE key = ?)"
        )
        return bool(self._db.write(lambda conn: conn.execute(sql, (profile, paper_key)).rowcount))

    def list(self, profile: str | None = None) -> Iterator[Vote]:
        """The votes (of one profile, or all), oldest first, streamed."""
        where, params = ("WHERE f.profile = ?", (profile,)) if profile is not None else ("", ())
        sql = (
            "SELECT p.key, p.title, f.profile, f.vote, f.origin, f.at FROM feedback f"
            f" JOIN papers p ON p.id = f.paper {where} ORDER BY f.at, f.id"
        )
        return (
            Vote(key, title, prof, vote, origin, dt.datetime.fromisoformat(at))
            for key, title, prof, vote, origin, at in self._db.stream(sql, params)
        )

    def get(self, paper_key: str, profile: str = "") -> int | None:
        """The paper's vote for the profile, or None."""
        sql = (
            "SELECT f.vote FROM feedback f JOIN papers p ON p.id = f.paper"
            " WHERE p.key = ? AND f.profile = ?"
        )
        row = self._db.read(lambda conn: conn.execute(sql, (paper_key, profile)).fetchone())
        return int(row[0]) if row else None
