"""The library imports a state dir written by paper-agent 0.1.0 whole, leaves its files as they
were, imports once, and again only what changed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from agent.models import Paper
from agent.store import Library
from agent.store.legacy import DELIVERIES, JOBS, SEEN
from tests.legacy_state import FILES, TITLE_ONLY, copy_legacy_home

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-home"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A copy of the state dir release 0.1.0 made (a real run, post, email log, batch jobs)."""
    return copy_legacy_home(tmp_path / "legacy-home")


def digests(home: Path) -> dict[str, bytes]:
    """Each old state file's sha256."""
    return {name: hashlib.sha256((home / name).read_bytes()).digest() for name in FILES}


def probes() -> list[Paper]:
    """Papers to ask both stores about: other versions, a title-only copy of an arXiv paper,
    the title-only paper now with an arXiv id, and papers never seen."""
    title = "Learning to reason with model number 2"
    return [
        *(Paper(id=f"2611.{n:05d}v2", title=f"T{n}", abstract="") for n in range(1, 8)),
        Paper(id="hf-2", title=title.upper() + "!", abstract=""),
        Paper(id="2612.00001", title=TITLE_ONLY.title, abstract=""),
        Paper(id="2612.00002", title="Never seen", abstract=""),
        Paper(id="hf-3", title="Never seen either", abstract=""),
    ]


def test_a_state_dir_of_today_is_imported_whole_and_left_as_it_was(home):
    before = digests(home)
    with Library.open(home) as lib:
        imported = {i.name: i.rows for i in lib.imported}
        library_seen = lib.seen.list()
        library_answers = lib.seen.seen(probes())
        messages = {
            (digest, where): lib.deliveries.delivered_messages(digest, where)
            for digest, by_destination in _log(home).items()
            for where in by_destination
        }
        jobs = lib.batch_jobs.all()
    assert digests(home) == before  # read, never written
    assert imported == {SEEN: 6, DELIVERIES: 2, JOBS: 2}
    assert sorted((e.key, e.id, e.title, e.source, e.first_seen) for e in library_seen) == sorted(
        (key, pid, title, source, dt.datetime.fromisoformat(when))
        for key, pid, title, source, when in _old_seen(home)
    )
    # What the seen-store of 0.1.0 answered on this state dir.
    assert library_answers == {
        *(f"2611.{n:05d}v2" for n in range(1, 6)),
        "hf-2",  # the title of an arXiv paper, from a source without ids
        "2612.00001",  # a paper stored by its title alone, now with an arXiv id
    }
    old_log = _log(home)
    assert messages == {(d, w): set(old_log[d][w]["delivered"]) for d, w in messages}  # type: ignore[index]
    assert all(messages.values()) and len(messages) == 2
    assert jobs == json.loads((home / JOBS).read_text())


def test_the_fixture_of_release_0_1_0_is_imported_whole(tmp_path):
    home = shutil.copytree(FIXTURE, tmp_path / "home")
    source = sqlite3.connect(home / SEEN)
    rows = source.execute("SELECT key, paper_id, title, source, first_seen FROM seen").fetchall()
    source.close()
    old_log = json.loads((home / DELIVERIES).read_text())["digests"]
    old_jobs = json.loads((home / JOBS).read_text())
    with Library.open(home) as lib:
        seen = {(e.key, e.id, e.title, e.source, e.first_seen.timestamp()) for e in lib.seen.list()}
        for digest, by_destination in old_log.items():
            for where, entry in by_destination.items():
                assert lib.deliveries.delivered_messages(digest, where) == set(entry["delivered"])
        assert lib.batch_jobs.all() == old_jobs
        assert lib.papers.get("2611.00004").sources == ["arxiv-rss:cs.LG"]
    assert len(rows) == 6
    assert seen == {(*row[:4], _timestamp(row[4])) for row in rows}


def test_the_import_runs_once(home):
    with Library.open(home) as lib:
        assert len(lib.imported) == 3
        counts = (len(lib.seen), len(lib.batch_jobs.all()))
    with Library.open(home) as again:
        assert again.imported == []
        assert (len(again.seen), len(again.batch_jobs.all())) == counts


def test_an_old_file_written_after_the_import_is_imported_again_adding_only_what_is_new(home):
    with Library.open(home) as lib:
        lib.seen.forget("2611.00001")  # the library's own change is not undone by a re-import
        assert len(lib.seen) == 5
    old = sqlite3.connect(home / SEEN)  # an older paper-agent ran on the same state dir
    with old:
        old.execute(
            "INSERT INTO seen VALUES ('2612.00009', 'title:written by an older version', 1,"
            " '2612.00009', 'Written by an older version', 'x', '2026-12-06T08:00:00+00:00')"
        )
    old.close()
    with Library.open(home) as lib:
        assert [(i.name, i.rows) for i in lib.imported] == [(SEEN, 1)]
        assert lib.seen.seen([Paper(id="2612.00009v3", title="", abstract="")]) == {"2612.00009v3"}
        assert len(lib.seen) == 6


def test_unreadable_old_files_are_warned_about_once_and_the_rest_imported(home, caplog):
    (home / DELIVERIES).write_text("{not json")
    (home / JOBS).write_text(json.dumps([{"sha256": "c" * 64, "created": 1.0}, {"oops": 1}]))
    with Library.open(home) as lib:
        by_name = {i.name: i for i in lib.imported}
        assert by_name[SEEN].rows == 6 and by_name[SEEN].problem is None
        assert by_name[DELIVERIES].rows == 0 and "cannot read it" in str(
            by_name[DELIVERIES].problem
        )
        assert by_name[JOBS].rows == 1 and "1 entry(ies) are not batch jobs" in str(
            by_name[JOBS].problem
        )
        assert [job["sha256"] for job in lib.batch_jobs.all()] == ["c" * 64]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and all(str(home) in line for line in warned)
    with Library.open(home) as again:
        assert again.imported == []  # not tried again until the file changes


def test_a_damaged_old_seen_store_keeps_what_can_be_read(home):
    (home / SEEN).write_bytes(b"not a database" * 100)
    with Library.open(home) as lib:
        [seen_import] = [i for i in lib.imported if i.name == SEEN]
        assert seen_import.rows == 0 and "cannot be read" in str(seen_import.problem)
        assert len(lib.batch_jobs.all()) == 2  # the other files still came in


def test_a_delivery_log_of_version_2_is_imported_with_the_papers_of_each_message(tmp_path):
    """The journal today's main wrote before the library (never released, imported anyway):
    each message with its channel and papers; a paper the library lacks comes in by its key."""
    at = "2026-12-05T21:42:11.123456+00:00"
    record = {"digest": "d" * 24, "channel": "slack", "destination": "slack:0f", "total": 2}
    records = [
        {**record, "message": 0, "papers": ["2611.00001", "title:a study of things"], "at": at},
        {**record, "message": 1, "papers": ["id:doc-7"], "at": at},
        {**record, "message": "2", "papers": [], "at": at},  # a hand edit: left out
        {**record, "channel": "", "destination": "sha256:aa", "message": 0, "papers": [], "at": at},
    ]
    home = tmp_path / "home"
    home.mkdir()
    (home / DELIVERIES).write_text(json.dumps({"version": 2, "deliveries": records}))
    with Library.open(home) as lib:
        [imported] = lib.imported
        assert (imported.rows, imported.problem) == (
            3,
            "1 record(s) are not deliveries and were left out",
        )
        first, second = lib.deliveries.of_digest(["slack:0f"], "d" * 24)
        assert (first.message, first.channel, first.total, first.at) == (0, "slack", 2, at)
        assert first.papers == ("2611.00001", "title:a study of things")
        assert second.papers == ("id:doc-7",)
        [old] = lib.deliveries.of_digest(["sha256:aa"], "d" * 24)
        assert (old.channel, old.papers) == ("unknown", ())
        # Known by its key alone, each is the paper a later source gives.
        later = [
            Paper(id="2611.00001v2", title="T", abstract=""),
            Paper(id="hf-1", title="A Study of Things!", abstract=""),
            Paper(id="doc-7", title="?", abstract=""),
            Paper(id="2611.00002", title="A study of things", abstract=""),
        ]
        assert lib.deliveries.delivered(["slack:0f"], later) == {
            "2611.00001v2",
            "hf-1",
            "doc-7",
            "2611.00002",  # an arXiv id matches a paper stored by its title alone
        }
        assert lib.papers.get("title:a study of things").title == "a study of things"


def test_a_state_dir_without_old_files_imports_nothing(tmp_path):
    with Library.open(tmp_path / "fresh") as lib:
        assert lib.imported == []
        assert len(lib.papers) == 0


def _old_seen(home: Path) -> list[tuple[str, str, str, str, str]]:
    """The rows of the 0.1.0 seen-store: key, paper id, title, source, first seen."""
    old = sqlite3.connect(home / SEEN)
    rows = old.execute("SELECT key, paper_id, title, source, first_seen FROM seen").fetchall()
    old.close()
    return rows


def _log(home: Path) -> dict[str, dict[str, object]]:
    digests_: dict[str, dict[str, object]] = json.loads((home / DELIVERIES).read_text())["digests"]
    return digests_


def _timestamp(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text).timestamp()
