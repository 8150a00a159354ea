"""The state files of earlier versions, imported into the library with nothing lost.

Before the library, the state dir held three stores: ``seen.sqlite3`` (the seen-store),
``deliveries.json`` (the delivery log) and ``batches/jobs.json`` (the batch jobs). Opening the
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
from agent.store.deliveries import UNKNOWN_CHANNEL, digest_id

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
    """The delivered messages of each digest and destination (channel unknown: the old log
    did not say; day and profile too)."""
    digests = _json(path, dict, "digests")
    added = 0
    for content_hash, destinations in digests.items():
        if not isinstance(destinations, dict):
            continue
        gid = None
        for destination, entry in destinations.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("delivered"), list):
                continue
            total = entry.get("total")
            total = total if isinstance(total, int) and not isinstance(total, bool) else 0
            when = _time(entry.get("updated"))
            gid = gid or digest_id(conn, content_hash, "", "", when)
            for index in entry["delivered"]:
                if isinstance(index, int) and not isinstance(index, bool):
                    added += conn.execute(
                        "INSERT OR IGNORE INTO deliveries (digest, channel, destination,"
                        " message, total, at) VALUES (?, ?, ?, ?, ?, ?)",
                        (gid, UNKNOWN_CHANNEL, destination, index, total, when),
                    ).rowcount
    return added


def _jobs(conn: sqlite3.Connection, path: Path) -> int:
    """The batch jobs, each as it was saved."""
    added = skipped = 0
    for job in _json(path, list, None):
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


def _json(path: Path, kind: type, field: str | None) -> Any:
    """The file's JSON (its ``field`` when given), checked to be a ``kind``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LegacyError(f"cannot read it: {exc}", 0) from None
    if field is not None:
        data = data.get(field) if isinstance(data, dict) else None
    if not isinstance(data, kind):
        raise LegacyError(f"it does not hold {kind.__name__} of {field or 'jobs'}", 0)
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
