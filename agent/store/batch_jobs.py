"""Batch jobs in the library: each request file sent to a Batch API and the batch answering
it (``agent.llm.batch_api.Job`` as a plain dict), known by the file's sha256 and when the job
was made, so a rerun finds its batches and never uploads the same work twice."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.store.db import Database, now, to_json


class BatchJobs:
    """The saved batch jobs, shared by every process on the state dir."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[dict[str, Any]]:
        """Every saved job, oldest first."""
        sql = "SELECT job FROM batch_jobs ORDER BY created, rowid"
        rows = self._db.read(lambda conn: conn.execute(sql).fetchall())
        return [json.loads(row[0]) for row in rows]

    def put(self, job: Mapping[str, Any]) -> None:
        """Add or replace a job (known by its ``sha256`` and ``created``)."""
        row = job_row(job, now())
        sql = "INSERT OR REPLACE INTO batch_jobs VALUES (?, ?, ?, ?, ?, ?)"
        self._db.write(lambda conn: conn.execute(sql, row))

    def remove(self, sha256: str, created: float) -> bool:
        """Forget a job; False when there was none."""
        sql = "DELETE FROM batch_jobs WHERE sha256 = ? AND created = ?"
        return bool(self._db.write(lambda conn: conn.execute(sql, (sha256, created)).rowcount))


def job_row(job: Mapping[str, Any], when: str) -> tuple[Any, ...]:
    """The table row of a job: its key, what is queried, and the whole job as JSON."""
    if not isinstance(job.get("sha256"), str) or not isinstance(job.get("created"), int | float):
        raise ValueError("a batch job needs its request file's sha256 and its created time")
    return (
        job["sha256"],
        float(job["created"]),
        job.get("batch_id"),
        str(job.get("status", "")),
        to_json(dict(job)),
        when,
    )
