"""Results read back from the library, line for line as ``results.jsonl`` has them (DESIGN "The
results file"): a run's in its input order, or a day's or a span's papers, each with its latest
outcome, so ``digest``, ``post`` and ``export`` need no results file."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from agent.models import ErrorInfo, ResultRecord, Usage
from agent.store.db import Database, day_range, stamp

_COLUMNS = (
    "rp.paper_id, p.title, p.url, p.authors, rp.source, p.metadata, a.tags, a.summary,"
    " rp.backend, rp.model, rp.cached, rp.usage, rp.error_type, rp.error_message, rp.fields"
)
# A paper's latest outcome: the last run that had it (an index seek per paper).
_LATEST = (
    "rp.rowid = (SELECT x.rowid FROM run_papers x WHERE x.paper = p.id"
    " ORDER BY x.run DESC, x.position DESC LIMIT 1)"
)


@dataclass(frozen=True)
class Selection:
    """Which results: one run's, the papers first seen on one UTC day, or since a time."""

    run: int | None = None
    day: dt.date | None = None
    since: dt.datetime | None = None

    def __post_init__(self) -> None:
        given = sum(v is not None for v in (self.run, self.day, self.since))
        if given != 1:
            raise ValueError("a selection is one of run, day or since")


def results(
    db: Database,
    selection: Selection,
    profile: str | None = None,
    scorer: str | None = None,
) -> Iterator[ResultRecord]:
    """The selected results, streamed; with ``profile``, each carries its relevance and why
    for that profile (by ``scorer``, else the latest score of any scorer)."""
    return (record for _, record in keyed_results(db, selection, profile, scorer))


def keyed_results(
    db: Database,
    selection: Selection,
    profile: str | None = None,
    scorer: str | None = None,
) -> Iterator[tuple[str, ResultRecord]]:
    """``results``, each with its paper's library key (a results line has only the id its
    source gave, which another source may give differently)."""
    params: dict[str, Any] = {"profile": profile, "scorer": scorer}
    if selection.run is not None:
        source = "run_papers rp JOIN papers p ON p.id = rp.paper"
        where, order = "rp.run = :run", "rp.position"
        params["run"] = selection.run
    else:
        source = f"papers p JOIN run_papers rp ON {_LATEST}"
        where, order = "p.first_seen >= :start AND p.first_seen < :end", "p.first_seen, p.id"
        if selection.day is not None:
            params["start"], params["end"] = day_range(selection.day)
        else:
            assert selection.since is not None
            params["start"], params["end"] = stamp(selection.since), "9999"
    score = "NULL, NULL"
    if profile is not None:
        by = "" if scorer is None else " AND y.scorer = :scorer"
        source += (
            " LEFT JOIN scores s ON s.id = (SELECT y.id FROM scores y WHERE y.paper = p.id"
            f" AND y.profile = :profile{by} ORDER BY y.updated DESC, y.id DESC LIMIT 1)"
        )
        score = "s.relevance, s.why"
    sql = (
        f"SELECT p.key, {_COLUMNS}, {score} FROM {source}"
        f" LEFT JOIN annotations a ON a.id = rp.annotation WHERE {where} ORDER BY {order}"
    )
    return ((row[0], _record(row[1:])) for row in db.stream(sql, params))


def days(db: Database) -> list[tuple[dt.date, int]]:
    """The UTC days whose papers (by first seen) have results, oldest first, with how many
    (what ``Selection(day=...)`` gives for each)."""
    sql = (
        "SELECT substr(p.first_seen, 1, 10) AS day, count(*) FROM papers p"
        " WHERE EXISTS (SELECT 1 FROM run_papers x WHERE x.paper = p.id)"
        " GROUP BY day ORDER BY day"
    )
    rows = db.read(lambda conn: conn.execute(sql).fetchall())
    return [(dt.date.fromisoformat(day), count) for day, count in rows]


def write_jsonl(records: Iterable[ResultRecord], out: IO[str]) -> int:
    """Write records as ``results.jsonl`` lines; returns how many."""
    count = 0
    for record in records:
        out.write(record.to_line() + "\n")
        count += 1
    return count


def _record(row: Sequence[Any]) -> ResultRecord:
    """One results line from the columns of one row."""
    (pid, title, url, authors, source, metadata, tags, summary, backend, model) = row[:10]
    cached, usage, error_type, error_message, fields, relevance, why = row[10:]
    written = json.loads(fields) if fields else {}
    if relevance is not None:  # a profile's score stands for the run's own
        written |= {"relevance": relevance, "why": why, "relevance_by": {}}
    return ResultRecord(
        id=pid,
        title=title,
        url=url,
        authors=json.loads(authors),
        source=source,
        tags=json.loads(tags) if tags else [],
        summary=summary,
        backend=backend,
        model=model,
        cached=bool(cached),
        usage=Usage.model_validate_json(usage),
        error=None if error_type is None else ErrorInfo(type=error_type, message=error_message),
        metadata=json.loads(metadata),
        **written,
    )
