"""Digests and their deliveries in the library: which message of which digest reached which
destination carrying which papers (so a digest stopped part-way resumes), and which papers each
destination has had (so no paper reaches the same destination twice). A destination is a
one-way fingerprint (``agent.delivery.journal.fingerprint``), never a webhook URL or an address.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from agent.models import Paper
from agent.store.db import Database, chunks, marks, now
from agent.store.papers import matching, upsert, wanted

UNKNOWN_CHANNEL = "unknown"  # a delivery imported from the old log, which did not say

# One delivered message, with its digest's hash.
_RECORD = (
    "SELECT d.id, g.hash, g.day, d.channel, d.destination, d.message, d.total, d.at"
    " FROM deliveries d JOIN digests g ON g.id = d.digest"
)


@dataclass(frozen=True)
class Delivered:
    """One message a destination accepted, and the keys of the papers it carried."""

    digest: str  # the digest's content hash
    day: str  # the digest's date ("" when not known)
    channel: str
    destination: str
    message: int  # 0-based index in the digest's messages
    total: int  # messages in that digest
    papers: tuple[str, ...]
    at: str  # when, as the library writes times


class Deliveries:
    """Digests, the messages delivered of each, and the papers each destination has had."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def digest(self, content_hash: str, day: str = "", profile: str = "") -> int:
        """The id of the digest with this content hash, day and profile (made if new)."""

        def write(conn: sqlite3.Connection) -> int:
            return digest_id(conn, content_hash, day, profile, now())

        return self._db.write(write)

    def record(
        self,
        digest: int,
        channel: str,
        destination: str,
        index: int,
        total: int,
        papers: Sequence[Paper] = (),
        *,
        at: str | None = None,
    ) -> None:
        """Note that message ``index`` (0-based) of ``total`` of a digest reached
        ``destination`` through ``channel`` (``at`` a time, default now), carrying ``papers``
        (stored first if new). Recorded again, the message keeps its first time and gains
        the papers it lacked."""
        when = now()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO deliveries (digest, channel, destination, message, total,"
                " at) VALUES (?, ?, ?, ?, ?, ?)",
                (digest, channel, destination, index, total, at or when),
            )
            delivery = conn.execute(
                "SELECT id FROM deliveries WHERE digest = ? AND destination = ? AND message = ?",
                (digest, destination, index),
            ).fetchone()[0]
            rows = [upsert(conn, paper, when) for paper in papers]
            carried(conn, delivery, destination, rows)

        self._db.write(write)

    def delivered(self, destinations: Sequence[str], papers: Iterable[Paper]) -> set[str]:
        """The ids (``Paper.id``) of the papers any of ``destinations`` already had: the same
        paper by its key, else its title, as the seen query matches."""
        asked = wanted(papers, lambda p: p.id)
        where = (
            "EXISTS (SELECT 1 FROM delivered_papers d WHERE d.paper = p.id"
            f" AND d.destination IN ({marks(len(destinations))}))"
        )

        def query(conn: sqlite3.Connection) -> set[str]:
            return matching(conn, asked, where, destinations)

        return self._db.read(query) if asked and destinations else set()

    def of_digest(self, destinations: Sequence[str], content_hash: str) -> list[Delivered]:
        """The messages of the digest with this hash (any day or profile) delivered to any
        of ``destinations``, with their papers."""
        where = f" WHERE g.hash = ? AND d.destination IN ({marks(len(destinations))})"
        return self._records(f"{_RECORD}{where} ORDER BY d.id", (content_hash, *destinations))

    def unfinished(self, destinations: Sequence[str]) -> list[Delivered]:
        """The messages of every digest delivered to ``destinations`` only in part (fewer of
        its messages than its total), with their papers: the digests a post may resume."""
        if not destinations:
            return []
        mine = f" WHERE d.destination IN ({marks(len(destinations))})"
        sql = (
            f"WITH mine AS ({_RECORD}{mine}) SELECT * FROM mine WHERE hash IN"
            " (SELECT hash FROM mine GROUP BY hash HAVING count(DISTINCT message) < max(total))"
            " ORDER BY id"
        )
        return self._records(sql, tuple(destinations))

    def delivered_messages(self, content_hash: str, destination: str) -> set[int]:
        """Indexes (0-based) of the messages of the digest with this hash (any day or
        profile) already delivered to ``destination``."""
        return {record.message for record in self.of_digest([destination], content_hash)}

    def delivered_keys(self, destination: str) -> Iterator[str]:
        """The keys of every paper delivered to ``destination``, streamed."""
        sql = (
            "SELECT p.key FROM delivered_papers d JOIN papers p ON p.id = d.paper"
            " WHERE d.destination = ?"
        )
        return (row[0] for row in self._db.stream(sql, (destination,)))

    def _records(self, sql: str, params: Sequence[object]) -> list[Delivered]:
        """The delivered messages ``sql`` selects (``_RECORD``'s columns), with their papers."""

        def query(conn: sqlite3.Connection) -> list[Delivered]:
            rows = conn.execute(sql, params).fetchall()
            papers: dict[int, list[str]] = {}
            for part in chunks([row[0] for row in rows]):
                found = conn.execute(
                    "SELECT c.delivery, p.key FROM delivery_papers c JOIN papers p"
                    f" ON p.id = c.paper WHERE c.delivery IN ({marks(len(part))})",
                    tuple(part),
                )
                for delivery, paper_key in found:
                    papers.setdefault(delivery, []).append(paper_key)
            return [
                Delivered(*row[1:7], tuple(sorted(papers.get(row[0], ()))), row[7]) for row in rows
            ]

        return self._db.read(query)


def carried(
    conn: sqlite3.Connection, delivery: int, destination: str, papers: Sequence[int]
) -> None:
    """Note that delivery ``delivery`` carried the papers with these row ids to
    ``destination`` (inside the caller's write transaction)."""
    conn.executemany(
        "INSERT OR IGNORE INTO delivery_papers (delivery, paper) VALUES (?, ?)",
        [(delivery, paper) for paper in papers],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO delivered_papers (destination, paper, delivery) VALUES (?, ?, ?)",
        [(destination, paper, delivery) for paper in papers],
    )


def digest_id(
    conn: sqlite3.Connection, content_hash: str, day: str, profile: str, when: str
) -> int:
    """The id of a digest, inserted if new (inside the caller's write transaction)."""
    conn.execute(
        "INSERT OR IGNORE INTO digests (hash, day, profile, created) VALUES (?, ?, ?, ?)",
        (content_hash, day, profile, when),
    )
    row = conn.execute(
        "SELECT id FROM digests WHERE hash = ? AND day = ? AND profile = ?",
        (content_hash, day, profile),
    ).fetchone()
    return int(row[0])
