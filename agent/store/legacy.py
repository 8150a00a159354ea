"""The state files of earlier versions, imported into the library with nothing lost.

Before the library, the state dir held three stores: ``seen.sqlite3`` (the seen-store),
``deliveries.json`` (the delivery log: version 1 of release 0.1.0, or version 2, which
recorded the papers of each message) and ``batches/jobs.json`` (the batch jobs). Opening the
library imports each one it finds. The old files are left in place, untouched (read, never
written or renamed), so an older paper-agent still works on the same state dir; each import is
recorded with the file's size and modification time, and a file that changed since (an older
version wrote to it) is imported again. Imports only add what the library lacks: a paper, a
delivery or a job it already has is left as it is (so a paper it forgot stays forgotten; at
worst one an older version marked is annotated once more).
Each file is imported in one write transaction that first checks the record, so two processes
opening the state dir at once import it once. A file that cannot be read is recorded with why,
and warned about once; it is tried again only when it changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from agent.store.batch_jobs import job_row
from agent.store.db import now, stamp, to_json, transaction
from agent.store.deliveries import UNKNOWN_CHANNEL, carried, digest_id

log = logging.getLogger(__name__)

SEEN = "seen.sqlite3"
DELIVERIES = "deliveries.json"
JOBS = "batches/jobs.json"


class LegacyError(Exception):
    """An old state file could not be read (whole or in part)."""


@dataclass(frozen=True)
class Imported:
    """One old file imported on this open: how many rows it added, and what went wrong."""

    name: str
    rows: int
    problem: str | None = None


Importer = Callable[[sqlite3.Connection, Path], int]


def import_legacy(conn: sqlite3.Connection, home: Path) -> list[Imported]:
    """Import every old state file in ``home`` that is new or changed since its last import."""
    done = []
    for name, importer in ((SEEN, _seen), (DELIVERIES, _deliveries), (JOBS, _jobs)):
        path = home / name
        signature = _signature(path)
        if signature is None or _recorded(conn, name) == signature:
            continue
        with transaction(conn, write=True):
            if _recorded(conn, name) == signature:
                continue  # another process imported it while this one waited
            problem = None
            try:
                rows = importer(conn, path)
            except LegacyError as exc:
                rows, problem = exc.args[1], str(exc.args[0])
            conn.execute(
                "INSERT OR REPLACE INTO legacy_imports VALUES (?, ?, ?, ?, ?)",
                (name, signature, now(), rows, problem),
            )
        done.append(Imported(name, rows, problem))
        if problem:
            log.warning("imported %d row(s) of %s into the library; %s", rows, path, problem)
        else:
            log.info("imported %d row(s) of %s into the library", rows, path)
    return done


def _seen(conn: sqlite3.Connection, path: Path) -> int:
    """The seen papers, with their keys, ids, titles, sources and first-seen times."""
    added = 0
    insert = (
        "INSERT OR IGNORE INTO papers (key, title_key, arxiv_id, paper_id, title, sources,"
        " first_seen, updated, seen, seen_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    for key, title_key, has_arxiv, paper_id, title, source, first_seen in _seen_rows(path):
        when = _time(first_seen)
        added += conn.execute(
            insert,
            (
                key,
                title_key,
                key if has_arxiv else None,
                paper_id,
                title,
                to_json([source] if source else []),
                when,
                when,
                when,
                source,
            ),
        ).rowcount
    return added


def _seen_rows(path: Path) -> Iterator[tuple[Any, ...]]:
    """The old seen-store's rows, streamed; a file SQLite cannot read is a LegacyError."""
    count = 0
    try:
        # Read-only: the old file is never written, not even by a checkpoint on close.
        uri = f"file:{pathname2url(str(path.resolve()))}?mode=ro"
        src = sqlite3.connect(uri, uri=True, timeout=15.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise LegacyError(f"cannot open it: {exc}", 0) from None
    try:
        cursor = src.execute(
            "SELECT key, title_key, has_arxiv, paper_id, title, source, first_seen FROM seen"
            " ORDER BY rowid"
        )
        while rows := cursor.fetchmany(500):
            for row in rows:
                yield row
                count += 1
    except sqlite3.Error as exc:
        raise LegacyError(f"the rest cannot be read: {exc}", count) from None
    finally:
        with contextlib.suppress(sqlite3.Error):
            src.close()


def _deliveries(conn: sqlite3.Connection, path: Path) -> int:
    """The delivered messages of the delivery log: version 1's per digest and destination
    (no papers, and neither channel, day nor profile: it did not say), or version 2's, each
    message with the keys of the papers it carried (a paper the library lacks is stored by
    its key alone, so it is never delivered twice)."""
    data = _json(path, dict, "a delivery log")
    if isinstance(data.get("deliveries"), list):
        return _deliveries_2(conn, data["deliveries"])
    digests = data.get("digests")
    if not isinstance(digests, dict):
        raise LegacyError("it does not hold a delivery log", 0)
    added = 0
    for content_hash, destinations in digests.items():
        if not isinstance(destinations, dict):
            continue
        gid = None
        for destination, entry in destinations.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("delivered"), list):
                continue
            total = _count(entry.get("total")) or 0
            when = _time(entry.get("updated"))
            gid = gid or digest_id(conn, content_hash, "", "", when)
            for index in entry["delivered"]:
                if _count(index) is not None:
                    added += _delivery(conn, gid, UNKNOWN_CHANNEL, destination, index, total, when)
    return added


def _deliveries_2(conn: sqlite3.Connection, records: list[Any]) -> int:
    """Version 2's records: one per message, with its channel and papers; a record of
    another shape (a hand edit) is left out and counted."""
    added = skipped = 0
    for record in records:
        fields = _delivery_fields(record)
        if fields is None:
            skipped += 1
            continue
        content_hash, channel, destination, index, total, papers, at = fields
        when = _time(at)
        gid = digest_id(conn, content_hash, "", "", when)
        added += _delivery(conn, gid, channel or UNKNOWN_CHANNEL, destination, index, total, when)
        delivery = conn.execute(
            "SELECT id FROM deliveries WHERE digest = ? AND destination = ? AND message = ?",
            (gid, destination, index),
        ).fetchone()[0]
        carried(conn, delivery, destination, [_paper_row(conn, k, when) for k in papers])
    if skipped:
        raise LegacyError(f"{skipped} record(s) are not deliveries and were left out", added)
    return added


def _delivery_fields(record: object) -> tuple[str, str, str, int, int, list[str], str] | None:
    """A version-2 record's fields, or None when it is not one."""
    if not isinstance(record, dict):
        return None
    fields = (record.get(name) for name in ("digest", "channel", "destination", "at"))
    content_hash, channel, destination, at = fields
    index, total, papers = _count(record.get("message")), record.get("total"), record.get("papers")
    if not (
        isinstance(content_hash, str)
        and isinstance(channel, str)
        and isinstance(destination, str)
        and isinstance(at, str)
        and index is not None
        and isinstance(papers, list)
        and all(isinstance(k, str) and k for k in papers)
    ):
        return None
    return content_hash, channel, destination, index, _count(total) or 0, papers, at


def _delivery(
    conn: sqlite3.Connection,
    digest: int,
    channel: str,
    destination: str,
    index: int,
    total: int,
    when: str,
) -> int:
    """One delivered message, unless the library has it; returns 1 when it was added."""
    return int(
        conn.execute(
            "INSERT OR IGNORE INTO deliveries (digest, channel, destination, message, total, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (digest, channel, destination, index, total, when),
        ).rowcount
    )


def _paper_row(conn: sqlite3.Connection, paper_key: str, when: str) -> int:
    """The row of the paper with this key, stored by its key alone if new: an arXiv id, a
    normalized title (``title:...``) or an id (``id:...``)."""
    found = conn.execute("SELECT id FROM papers WHERE key = ?", (paper_key,)).fetchone()
    if found is not None:
        return int(found[0])
    kind, _, rest = paper_key.partition(":")
    title = rest if kind == "title" and rest else ""
    pid = rest if kind == "id" and rest else paper_key
    arxiv = None if kind in ("title", "id") and rest else paper_key
    cursor = conn.execute(
        "INSERT INTO papers (key, title_key, arxiv_id, paper_id, title, first_seen, updated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (paper_key, paper_key if title else None, arxiv, pid, title, when, when),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _count(value: object) -> int | None:
    """A JSON number that is a count or an index (not a bool, not negative), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _jobs(conn: sqlite3.Connection, path: Path) -> int:
    """The batch jobs, each as it was saved."""
    added = skipped = 0
    for job in _json(path, list, "a list of batch jobs"):
        try:
            row = job_row(job, now()) if isinstance(job, dict) else None
        except ValueError:
            row = None
        if row is None:
            skipped += 1
            continue
        added += conn.execute(
            "INSERT OR IGNORE INTO batch_jobs VALUES (?, ?, ?, ?, ?, ?)", row
        ).rowcount
    if skipped:
        raise LegacyError(f"{skipped} entry(ies) are not batch jobs and were left out", added)
    return added


def _json(path: Path, kind: type, what: str) -> Any:
    """The file's JSON, checked to be a ``kind`` (``what`` names it in the problem)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LegacyError(f"cannot read it: {exc}", 0) from None
    if not isinstance(data, kind):
        raise LegacyError(f"it does not hold {what}", 0)
    return data


def _time(text: object) -> str:
    """An old timestamp in the library's form (now, when it is missing or unreadable)."""
    try:
        return stamp(dt.datetime.fromisoformat(text)) if isinstance(text, str) else now()
    except ValueError:
        return now()


def _recorded(conn: sqlite3.Connection, name: str) -> str | None:
    """The signature of the file as last imported, or None."""
    row = conn.execute("SELECT signature FROM legacy_imports WHERE name = ?", (name,)).fetchone()
    return str(row[0]) if row else None


def _signature(path: Path) -> str | None:
    """Size and modification time of the file and of its WAL when that holds anything (a
    read-only reader leaves an empty one); None without the file."""
    try:
        info = path.stat()
    except OSError:
        return None
    signature = f"{info.st_size}:{info.st_mtime_ns}"
    with contextlib.suppress(OSError):
        wal = Path(f"{path}-wal").stat()
        if wal.st_size:
            signature += f"/{wal.st_size}:{wal.st_mtime_ns}"
    return signature
