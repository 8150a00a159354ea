"""Every query the library runs is answered from an index, never by reading a whole table of
papers (the library is meant for a million papers); only counts and whole listings may."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from pathlib import Path

import pytest

from agent.models import Annotation, Paper, PaperResult
from agent.store import Library, Selection

# Tables that stay small (a run a day, a user's votes, a few batch jobs): they may be read whole.
SMALL = {"runs", "r", "batch_jobs", "feedback", "f", "legacy_imports", "sqlite_master"}
SMALL |= {"mine"}  # one destination's delivered messages, found by an index, then grouped
# Counting the papers reads an index whole, by design; a migration filling a new table, once.
ALLOWED = re.compile(
    r"^SELECT count\(\*\) FROM papers$|^\s*INSERT INTO delivery_papers \(delivery, paper\) SELECT"
)


@pytest.fixture
def statements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement the library sends while a day's work is done through its API."""
    sent: list[str] = []
    connect = sqlite3.connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)  # type: ignore[arg-type]
        conn.set_trace_callback(sent.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    papers = [Paper(id=f"2401.{n:05d}v1", title=f"P {n}", abstract="A.") for n in range(5)]
    papers.append(Paper(id="hf-1", title="Only A Title", abstract="A."))
    now = dt.datetime.now(dt.UTC)
    with Library.open(tmp_path) as lib:
        keys = lib.papers.add(papers)
        lib.seen.seen(papers)
        lib.seen.mark(papers, "arxiv")
        run = lib.runs.start("run")
        results = [
            (i, p, PaperResult.ok(p, Annotation(tags=["a"], summary="S."), "local", None))
            for i, p in enumerate(papers)
        ]
        lib.runs.record(run, results, "s")
        lib.runs.finish(run, "ok", 0)
        lib.scores.record("ml", "lexical", [(k, 5.0, None) for k in keys])
        lib.scores.get("ml", keys)
        for selection in (Selection(run=run), Selection(day=now.date()), Selection(since=now)):
            list(lib.results(selection, profile="ml"))
        list(lib.papers.on_day(now.date()))
        list(lib.papers.on_day(now.date(), by="published"))
        list(lib.papers.since(now))
        list(lib.papers.of_run(run))
        list(lib.papers.changed_since(now))
        lib.papers.get(keys[0])
        lib.papers.find("2401.00001v3")
        digest = lib.deliveries.digest("h")
        lib.deliveries.record(digest, "slack", "sha256:x", 0, 2, papers[:2])
        lib.deliveries.delivered_messages("h", "sha256:x")
        lib.deliveries.delivered(["sha256:x", "slack:y"], papers)
        lib.deliveries.unfinished(["sha256:x", "slack:y"])
        lib.deliveries.of_digest(["sha256:x", "slack:y"], "h")
        list(lib.deliveries.delivered_keys("sha256:x"))
        lib.feedback.add(keys[0], 1)
        lib.feedback.get(keys[0])
        list(lib.feedback.list("ml"))
        lib.feedback.remove(keys[0])
        lib.embeddings.put("m", {keys[0]: [1.0]})
        lib.embeddings.get("m", keys)
        lib.annotations.get(keys[0], "s")
        lib.annotations.of_paper(keys[0])
        lib.seen.list(10)
        len(lib.papers), len(lib.seen), lib.runs.list(), lib.batch_jobs.all()
        list(lib.feedback.list())
        lib.seen.forget("2401.00002")
        lib.seen.clear()
    monkeypatch.undo()
    return [s for s in sent if re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT|WITH)", s, re.I)]


def plan(path: Path, statement: str) -> list[str]:
    """The query plan's lines for one statement, on the library's file."""
    conn = sqlite3.connect(path)
    try:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}")]
    finally:
        conn.close()


def test_no_query_reads_a_whole_table_of_papers(statements, tmp_path):
    assert len(statements) > 50
    scans = re.compile(r"^SCAN (\w+)")  # every row of the table, or of one of its indexes
    plans = {s: plan(tmp_path / "library.sqlite3", s) for s in statements}
    bad = {
        statement: lines
        for statement, lines in plans.items()
        if not ALLOWED.search(statement)
        and any((m := scans.match(line)) and m.group(1) not in SMALL for line in lines)
    }
    assert bad == {}


@pytest.mark.parametrize(
    "query",
    [
        r"WHERE \(p.key IN .* AND p.seen IS NOT NULL",  # seen()
        r"WHERE \(p.key IN .* AND EXISTS",  # delivered()
        r"WHERE d.destination IN",  # unfinished()
        r"WHERE c.delivery IN",  # the papers of delivered messages
        r"WHERE p.first_seen >= ",  # a day's papers
        r"WHERE p.published >= ",
        r"p.first_seen >= '.*' AND p.first_seen < '9999'",  # results since
        r"WHERE rp.run = ",  # a run's results
        r"FROM delivered_papers d JOIN papers p",  # delivered_keys()
        r"WHERE g.hash = ",  # delivered_messages()
        r"WHERE updated >= .* UNION",  # changed_since()
    ],
)
def test_the_hot_queries_search_an_index(statements, tmp_path, query):
    matching = [s for s in statements if re.search(query, s)]
    assert matching, f"no statement matched {query}"
    for statement in matching:
        lines = plan(tmp_path / "library.sqlite3", statement)
        assert any(line.startswith("SEARCH") for line in lines), (statement, lines)
