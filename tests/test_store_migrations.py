"""The library's file: its schema from empty and from every older version, a file from a newer
version, damage moved aside, and a lock held past the timeout."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.models import Paper
from agent.store import DB_NAME, Library
from agent.store.db import Database
from agent.store.deliveries import Deliveries
from agent.store.embeddings import Embeddings
from agent.store.feedback import Feedback
from agent.store.migrations import LATEST, MIGRATIONS, migrate, version
from agent.store.runs import Runs
from agent.store.scores import Scores
from agent.store.seen import Seen
from tests.legacy_state import copy_legacy_home

DAMAGED = re.compile(r"library\.sqlite3\.damaged-\d{8}T\d{6}")


def paper(n: int) -> Paper:
    return Paper(id=f"2401.{n:05d}", title=f"Paper {n} " + "about things " * 20, abstract="A.")


def schema(path: Path) -> list[tuple[str, str]]:
    """Every table and index the file holds, with the SQL that made it."""
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def fill(db: Database, at: int) -> None:
    """Write through the API everything the schema of version ``at`` can hold."""
    if at >= 1:
        Seen(db).mark([paper(1), paper(2)], "arxiv")
        runs = Runs(db)
        run = runs.start("run", {"backend": "local"})
        runs.finish(run, "ok", 0)
        Scores(db).record("ml", "lexical", [("2401.00001", 5.0, "why")])
        deliveries = Deliveries(db)
        digest = deliveries.digest("h")
        if at >= 3:
            deliveries.record(digest, "slack", "sha256:x", 0, 1, [paper(2)])
        else:
            db.write(lambda conn: _old_delivery(conn, digest))
        Feedback(db).add("2401.00001", 1)
    if at >= 2:
        Embeddings(db).put("mini", {"2401.00001": [1.0, 2.0]})


def _old_delivery(conn: sqlite3.Connection, digest: int) -> None:
    """A delivery as schemas 1 and 2 held it: the message, and the first to carry a paper."""
    conn.execute(
        "INSERT INTO deliveries (id, digest, channel, destination, message, total, at)"
        " VALUES (7, ?, 'slack', 'sha256:x', 0, 1, '2026-12-01T00:00:00.000000+00:00')",
        (digest,),
    )
    conn.execute(
        "INSERT INTO delivered_papers SELECT 'sha256:x', id, 7 FROM papers WHERE key = '2401.00002'"
    )


def test_a_new_library_has_the_latest_schema_in_wal_mode(tmp_path):
    with Library.open(tmp_path) as lib:
        assert len(lib.papers) == 0
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert version(conn) == LATEST
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_migrations_are_numbered_in_order():
    assert [int(m.__name__[1:4]) for m in MIGRATIONS] == list(range(1, LATEST + 1))


@pytest.mark.parametrize("older", range(LATEST))
def test_a_library_of_every_older_schema_is_brought_up_to_date_with_nothing_lost(tmp_path, older):
    old = tmp_path / "old"
    db = Database(old / DB_NAME, lambda conn: migrate(conn, upto=older))
    db.open()
    fill(db, older)
    db.close()
    assert version(sqlite3.connect(old / DB_NAME)) == older
    with Library.open(old) as lib:
        if older >= 1:
            assert len(lib.seen) == 2 and lib.runs.list()[0].status == "ok"
            assert lib.scores.get("ml", ["2401.00001"])["2401.00001"].relevance == 5.0
            assert lib.deliveries.delivered_messages("h", "sha256:x") == {0}
            assert list(lib.deliveries.delivered_keys("sha256:x")) == ["2401.00002"]
            [delivered] = lib.deliveries.of_digest(["sha256:x"], "h")
            assert delivered.papers == ("2401.00002",)  # each message's papers, filled in
            assert lib.feedback.get("2401.00001") == 1
        lib.papers.add([paper(1)])
        lib.embeddings.put("mini", {"2401.00001": [3.0]})  # the newest table works
    with Library.open(tmp_path / "new"):
        pass
    assert schema(old / DB_NAME) == schema(tmp_path / "new" / DB_NAME)


def test_a_library_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")  # as a newer version leaves it
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="newer paper-agent"):
        Library.open(tmp_path)
    assert path.read_bytes() == before


# --- damage ----------------------------------------------------------------------------------


def moved(home: Path) -> list[Path]:
    return sorted(p for p in home.glob(f"{DB_NAME}.damaged-*") if DAMAGED.fullmatch(p.name))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def garbage(home: Path) -> bytes:
    home.mkdir(parents=True, exist_ok=True)
    data = os.urandom(8192)
    (home / DB_NAME).write_bytes(data)
    return data


def cut(path: Path) -> bytes:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    return path.read_bytes()


def truncated(home: Path) -> bytes:
    with Library.open(home) as lib:
        lib.seen.mark([paper(n) for n in range(3000)], "arxiv")
    return cut(home / DB_NAME)


@pytest.mark.parametrize("damage", [garbage, truncated])
def test_a_damaged_library_is_moved_aside_and_a_fresh_one_works(tmp_path, damage, caplog):
    damaged_bytes = damage(tmp_path)
    with Library.open(tmp_path) as lib:
        assert len(lib.papers) == 0
        assert lib.seen.mark([paper(1)], "arxiv") == 1
    [aside] = moved(tmp_path)
    assert lib.moved_aside == aside and aside.read_bytes() == damaged_bytes
    [warning] = warnings(caplog)
    assert str(aside) in warning
    with Library.open(tmp_path) as again:
        assert len(again.seen) == 1 and again.moved_aside is None
    assert len(moved(tmp_path)) == 1


def test_a_library_damaged_under_an_open_one_costs_one_warning(tmp_path, caplog):
    papers = [paper(n) for n in range(3000)]
    with Library.open(tmp_path) as lib:
        lib.seen.mark(papers, "arxiv")
        cut(lib.path)  # under the open library, as a crash or a full disk would
        assert lib.seen.seen(papers) == set()  # a fresh library answered, without an exception
        assert lib.seen.mark([paper(1)], "arxiv") == 1
        assert len(lib.papers) == 1
    [aside] = moved(tmp_path)
    [warning] = warnings(caplog)
    assert str(aside) in warning and "malformed" in warning


def test_a_fresh_library_after_damage_imports_the_old_state_files_again(tmp_path):
    copy_legacy_home(tmp_path)
    with Library.open(tmp_path) as lib:
        assert len(lib.seen) == 6
    cut(tmp_path / DB_NAME)
    with Library.open(tmp_path) as lib:
        assert len(lib.seen) == 6 and lib.moved_aside is not None


# --- locks -----------------------------------------------------------------------------------


def test_a_library_locked_past_the_timeout_is_one_config_error(tmp_path):
    Library.open(tmp_path).close()
    holder = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        with Library.open(tmp_path, timeout=0.2) as lib:
            started = time.monotonic()
            with pytest.raises(ConfigError, match=r"locked by another process \(waited 0.2 s\)"):
                lib.seen.mark([paper(1)], "arxiv")
            assert time.monotonic() - started < 5
            assert lib.seen.seen([paper(1)]) == set()  # WAL: readers never wait
            assert list(lib.papers.since(dt.datetime(2000, 1, 1))) == []  # streams too
    finally:
        holder.close()
    with Library.open(tmp_path) as lib:
        assert lib.seen.mark([paper(1)], "arxiv") == 1  # nothing was left half-done
