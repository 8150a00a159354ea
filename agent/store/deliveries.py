"""Digests and their deliveries in the library: which message of which digest reached which
destination (so ``--resume`` sends only the rest), and which papers each destination has had
(so no paper reaches the same destination twice). A destination is a one-way fingerprint
(``agent.delivery.journal.destination_id``), never a webhook URL or an address."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from agent.store.db import Database, chunks, marks, now
from agent.store.papers import row_ids

UNKNOWN_CHANNEL = "unknown"  # a delivery imported from the old log, which did not say


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
        paper_keys: Sequence[str] = (),
    ) -> None:
        """Note that message ``index`` (0-based) of ``total`` of a digest reached
        ``destination`` through ``channel``, carrying the papers ``paper_keys``."""
        when = now()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO deliveries (digest, channel, destination, message, total,"
                " at) VALUES (?, ?, ?, ?, ?, ?)",
                (digest, channel, destination, index, total, when),
            )
            delivery = conn.execute(
                "SELECT id FROM deliveries WHERE digest = ? AND destination = ? AND message = ?",
                (digest, destination, index),
            ).fetchone()[0]
            ids = row_ids(conn, paper_keys)
            missing = [k for k in paper_keys if k not in ids]
            if missing:
                raise KeyError(f"no paper {missing[0]!r} in the library")
            conn.executemany(
                "INSERT OR IGNORE INTO delivered_papers (destination, paper, delivery)"
                " VALUES (?, ?, ?)",
                [(destination, ids[k], delivery) for k in paper_keys],
            )

        self._db.write(write)

    def delivered_messages(self, content_hash: str, destination: str) -> set[int]:
        """Indexes (0-based) of the messages of the digest with this hash (any day or
        profile) already delivered to ``destination``."""
        sql = (
            "SELECT d.message FROM deliveries d JOIN digests g ON g.id = d.digest"
            " WHERE g.hash = ? AND d.destination = ?"
        )
        rows = self._db.read(lambda conn: conn.execute(sql, (content_hash, destination)).fetchall())
        return {row[0] for row in rows}

    def delivered_keys(self, destination: str) -> Iterator[str]:
        """The keys of every paper delivered to ``destination``, streamed."""
        sql = (
            "SELECT p.key FROM delivered_papers d JOIN papers p ON p.id = d.paper"
            " WHERE d.destination = ?"
        )
        return (row[0] for row in self._db.stream(sql, (destination,)))

    def delivered(self, destination: str, paper_keys: Iterable[str]) -> set[str]:
        """Which of ``paper_keys`` were already delivered to ``destination``."""
        keys = list(dict.fromkeys(paper_keys))

        def query(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for part in chunks(keys):
                sql = (
                    "SELECT p.key FROM papers p JOIN delivered_papers d"
                    " ON d.destination = ? AND d.paper = p.id"
                    f" WHERE p.key IN ({marks(len(part))})"
                )
                found.update(row[0] for row in conn.execute(sql, (destination, *part)))
            return found

        return self._db.read(query) if keys else set()


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
