"""The seen query on the library: matching by id and title, real concurrent processes, damage,
the CLI."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.errors import ConfigError
from agent.models import Paper
from agent.store import DB_NAME, Library
from agent.store import db as db_module
from agent.store.keys import key

ROOT = Path(__file__).resolve().parent.parent
DAMAGED = re.compile(r"library\.sqlite3\.damaged-\d{8}T\d{6}(-\d+)?")


def paper(pid: str, title: str = "A Paper", url: str | None = None) -> Paper:
    return Paper(id=pid, title=title, abstract="Something.", url=url)


@pytest.fixture
def path(isolated_env: Path) -> Path:
    """The library the CLI uses, inside the test's state dir."""
    return isolated_env / "home" / DB_NAME


@pytest.fixture
def library(path: Path):
    with Library.open() as opened:
        yield opened


@pytest.fixture
def store(library: Library):
    """The library's seen query, as the seen-store was."""
    return library.seen


def moved(path: Path) -> list[Path]:
    """The damaged stores set aside next to ``path`` (their sidecars not counted)."""
    return sorted(p for p in path.parent.glob(f"{DB_NAME}.damaged-*") if DAMAGED.fullmatch(p.name))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- keys and matching -------------------------------------------------------------------


def test_key_is_the_arxiv_id_without_version_else_the_normalized_title():
    assert key(paper("2401.12345v3")) == "2401.12345"
    assert key(paper("hep-th/9901001v2")) == "hep-th/9901001"
    assert key(paper("arXiv:2401.12345v1")) == "2401.12345"
    assert key(paper("t-1", url="https://arxiv.org/pdf/2401.12345v2")) == "2401.12345"
    assert key(paper("t-2", url="https://huggingface.co/papers/2401.12345")) == "2401.12345"
    assert (
        key(paper("t-3", "  Attention, Is ALL\tyou need?! ")) == "title:attention is all you need"
    )
    assert key(paper("t-4", "ﬁne-tuning — Ａ study")) == "title:fine tuning a study"
    assert key(paper("doc-7", "?!")) == "id:doc-7"  # no word to match on: its own id only


def test_the_default_library_is_in_the_state_dir(library, path):
    assert library.path == path and path.exists()


def test_a_paper_marked_with_a_version_is_seen_with_any_version_or_none(store):
    assert store.mark([paper("2401.00001v2")], "arxiv:cs.LG") == 1
    asked = [paper("2401.00001"), paper("2401.00001v5"), paper("2401.00002v2")]
    assert store.seen(asked) == {"2401.00001", "2401.00001v5"}
    url_only = paper("t-x", "Another Title", url="http://arxiv.org/abs/2401.00001v1")
    assert store.seen([url_only]) == {"t-x"}


def test_marking_is_idempotent(store):
    papers = [paper(f"2401.0000{n}", f"Paper {n}") for n in range(5)]
    assert store.mark(papers, "arxiv:cs.LG") == 5
    assert store.mark([*papers, paper("2401.00001v3", "Paper 1")], "arxiv:cs.LG") == 0
    assert store.mark([paper("t-a", "Title only"), paper("t-b", "TITLE only!")], "hf") == 1
    assert len(store) == 6
    assert store.mark([], "hf") == 0 and store.seen([]) == set()


def test_a_title_only_paper_matches_a_paper_stored_by_its_id(store):
    store.mark([paper("2401.00001", "Attention Is All You Need")], "arxiv:cs.CL")
    from_page = paper("t-abc", "attention is all you need.")
    assert store.seen([from_page]) == {"t-abc"}
    assert store.mark([from_page], "hf") == 0  # the same paper: no second row
    assert len(store) == 1


def test_a_paper_with_an_id_matches_one_stored_by_title_only(store):
    store.mark([paper("t-abc", "Attention Is All You Need")], "hf")
    by_id = paper("2401.00001v1", "Attention is all you need")
    assert store.seen([by_id]) == {"2401.00001v1"}
    # Marking it gives the stored paper its id: one row, found by either key, forgotten at once.
    assert store.mark([by_id], "arxiv:cs.CL") == 0
    [entry] = store.list()
    assert (entry.key, entry.id, entry.source) == ("2401.00001", "t-abc", "hf")
    assert store.seen([paper("2401.00001"), paper("t-new", "ATTENTION is all you need")]) == {
        "2401.00001",
        "t-new",
    }
    assert store.forget("2401.00001") == 1
    assert store.seen([by_id, paper("t-abc", "Attention Is All You Need")]) == set()


def test_two_arxiv_ids_with_one_title_are_two_papers(store):
    store.mark([paper("2401.00001", "A Survey of Large Language Models")], "arxiv:cs.CL")
    other = paper("2403.00009", "A survey of large language models")
    assert store.seen([other]) == set()
    assert store.mark([other], "arxiv:cs.CL") == 1
    # A title-only copy matches both; the answer is the same: seen.
    assert store.seen([paper("t-s", "A Survey of Large Language Models")]) == {"t-s"}


def test_seen_answers_in_chunks_for_a_big_day(store):
    papers = [paper(f"2401.{n:05d}", f"Paper {n}") for n in range(1, 2001)]
    store.mark(papers[::2], "arxiv:cs.LG")
    titles = [paper(f"t-{n}", f"paper {n}") for n in range(1, 2001)]
    assert store.seen(papers) == {p.id for p in papers[::2]}
    assert store.seen(titles) == {p.id for p in titles[::2]}


def test_the_store_persists_across_runs(path):
    with Library.open() as first:
        first.seen.mark([paper("2401.00001")], "arxiv:cs.LG")
    with Library.open(path.parent) as second:
        assert second.seen.seen([paper("2401.00001v2")]) == {"2401.00001v2"}


def test_list_forget_clear(store):
    store.mark([paper("2401.00001v2", "Old"), paper("t-1", "Page title")], "day 1")
    store.mark([paper("2401.00003", "New")], "day 2")
    assert [e.id for e in store.list()] == ["2401.00003", "t-1", "2401.00001v2"]
    assert [e.id for e in store.list(limit=1)] == ["2401.00003"]
    first = store.list()[0].first_seen
    assert first.tzinfo is not None and first.utcoffset().total_seconds() == 0
    assert store.forget("2401.00001") == 1  # without the version it was stored with
    assert store.forget("2401.00003v7") == 1  # with another version
    assert store.forget("t-1") == 1  # the exact paper id
    assert store.forget("2401.00009") == 0
    store.mark([paper(f"2401.0001{n}") for n in range(4)], "day 3")
    assert store.clear() == 4 and len(store) == 0


# --- process safety ----------------------------------------------------------------------

WORKER = """
import sys, time
from pathlib import Path
from agent.models import Paper
from agent.store import Library

home, first, count, go, source = sys.argv[1:]
papers = [
    Paper(id=f"2401.{n:05d}", title=f"Paper number {n}", abstract="")
    for n in range(int(first), int(first) + int(count))
]
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.001)
added = 0
with Library.open(Path(home)) as library:  # opened at the start signal: the first open races
    for one in papers:
        added += library.seen.mark([one], source)  # one transaction each: the most contention
    assert library.seen.seen(papers) == {p.id for p in papers}
print(added, flush=True)
"""


def test_two_processes_marking_at_once_both_succeed(tmp_path):
    home, go = tmp_path / "shared", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home), first, "500", str(go), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for first, name in (("0", "a"), ("250", "b"))  # 250 papers in common
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    go.touch()
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    assert sum(int(out) for out, _ in outputs) == 750  # each paper added exactly once
    with Library.open(home) as library:
        assert len(library.seen) == 750
        everything = [paper(f"2401.{n:05d}") for n in range(750)]
        assert len(library.seen.seen(everything)) == 750
        assert {e.source for e in library.seen.list()} == {"a", "b"}


def test_a_store_locked_past_the_timeout_is_one_config_error(path):
    Library.open().close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        with Library.open(timeout=0.2) as library:
            started = time.monotonic()
            with pytest.raises(ConfigError, match=r"locked by another process \(waited 0.2 s\)"):
                library.seen.mark([paper("2401.00001")], "arxiv:cs.LG")
            assert time.monotonic() - started < 5
            assert library.seen.seen([paper("2401.00001")]) == set()  # WAL: readers never wait
    finally:
        holder.close()
    with Library.open() as library:
        assert library.seen.mark([paper("2401.00001")], "arxiv:cs.LG") == 1  # nothing half-done


# --- damage ------------------------------------------------------------------------------


def garbage(path: Path) -> bytes:
    """A store whose file is random bytes; returns them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(8192)
    path.write_bytes(data)
    return data


def cut(path: Path) -> bytes:
    """Truncate the store's file to half its size; returns what is left."""
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    return path.read_bytes()


def full(path: Path) -> list[Paper]:
    """A healthy store holding 3000 papers with long titles (many pages); returns them."""
    papers = [paper(f"2401.{n:05d}", f"Paper {n} " + "about things " * 20) for n in range(3000)]
    with Library.open(path.parent) as library:
        library.seen.mark(papers, "arxiv:cs.LG")
    return papers


def truncated(path: Path) -> bytes:
    """A store with 3000 papers whose file was then cut to half its size."""
    full(path)
    return cut(path)


@pytest.mark.parametrize("damage", [garbage, truncated])
def test_a_damaged_store_is_moved_aside_and_a_fresh_one_works(path, damage, caplog):
    damaged_bytes = damage(path)
    with Library.open() as library:
        store = library.seen
        assert len(store) == 0
        assert store.mark([paper("2401.00001")], "arxiv:cs.LG") == 1
        assert store.seen([paper("2401.00001v1")]) == {"2401.00001v1"}
    [aside] = moved(path)
    assert library.moved_aside == aside
    assert aside.read_bytes() == damaged_bytes  # kept as it was, for inspection
    [warning] = warnings(caplog)
    assert str(aside) in warning
    with Library.open() as again:
        assert len(again.seen) == 1  # the fresh store persists, and is not moved again
    assert len(moved(path)) == 1


def test_a_store_damaged_under_an_open_one_costs_one_warning(path, caplog):
    papers = full(path)
    with Library.open() as library:
        store = library.seen
        cut(path)  # under the open store, as a crash or a full disk would
        assert store.seen(papers) == set()  # a fresh store answered, without an exception
        assert store.mark([paper("2402.00001")], "arxiv:cs.LG") == 1
        assert store.seen([paper("2402.00001")]) == {"2402.00001"}
        assert len(store) == 1
    [aside] = moved(path)
    [warning] = warnings(caplog)
    assert str(aside) in warning and "database disk image is malformed" in warning


# --- the CLI -----------------------------------------------------------------------------


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, ["seen", *args], input=stdin, catch_exceptions=False)


def test_seen_list_shows_date_id_source_title_newest_first(store):
    store.mark([paper("2401.00001", "First"), paper("2401.00002v2", "Second")], "arxiv:cs.LG")
    store.mark([paper("t-9f2", "Evil \x1b[31mtitle")], "hf")
    day = store.list()[0].first_seen.strftime("%Y-%m-%d")
    result = invoke("list")
    assert result.exit_code == 0
    assert result.stdout == (
        f"{day}  t-9f2         hf           Evil \\x1b[31mtitle\n"
        f"{day}  2401.00002v2  arxiv:cs.LG  Second\n"
        f"{day}  2401.00001    arxiv:cs.LG  First\n"
    )
    assert invoke("list", "--limit", "1").stdout.count("\n") == 1


def test_seen_list_json(store):
    store.mark([paper("2401.00001v2", "Ünïcode \x1b title")], "arxiv:cs.LG")
    result = invoke("list", "--json")
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["id"] == "2401.00001v2" and record["key"] == "2401.00001"
    assert record["source"] == "arxiv:cs.LG" and record["title"] == "Ünïcode \x1b title"
    assert record["first_seen"].endswith("+00:00")
    assert line.isascii() and "\x1b" not in line


def test_seen_list_on_an_empty_store(path):
    result = invoke("list")
    assert result.exit_code == 0 and result.stdout == f"no papers seen yet ({path})\n"
    assert invoke("list", "--json").stdout == ""


def test_seen_forget(store):
    store.mark([paper("2401.00001v2", "One"), paper("t-2", "Two")], "arxiv:cs.LG")
    result = invoke("forget", "2401.00001", "t-2")
    assert result.exit_code == 0
    assert result.stdout == "forgot 2401.00001\nforgot t-2\n"
    assert len(store) == 0
    missing = invoke("forget", "2401.99999")
    assert missing.exit_code == 1
    assert missing.stderr == "not in the seen-store: 2401.99999\n"
    assert invoke("forget").exit_code == 2  # an ID is required
    empty = invoke("forget", " ")
    assert empty.exit_code == 2 and "not an empty one" in empty.stderr


def test_seen_clear_asks_first(store, path):
    store.mark([paper("2401.00001"), paper("2401.00002", "Other")], "arxiv:cs.LG")
    declined = invoke("clear", stdin="n\n")
    assert declined.exit_code == 1 and len(store) == 2
    assert f"Forget all seen papers in {path}?" in declined.stderr
    result = invoke("clear", stdin="y\n")
    assert result.exit_code == 0 and result.stdout == f"forgot 2 seen paper(s) in {path}\n"
    assert len(store) == 0
    assert invoke("clear", "-y").stdout == f"forgot 0 seen paper(s) in {path}\n"


def test_seen_list_on_a_damaged_store_says_where_it_went(path):
    garbage(path)
    result = invoke("list", "--json")
    assert result.exit_code == 0 and result.stdout == ""
    [aside] = moved(path)
    assert f"damaged library moved aside to {aside}" in result.stderr


def test_seen_clear_on_a_locked_store_is_one_line_and_exit_2(path, monkeypatch):
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT", 0.2)
    Library.open().close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = CliRunner().invoke(cli, ["seen", "clear", "-y"])
    finally:
        holder.close()
    assert result.exit_code == 2
    assert result.stderr == (
        f"paper-agent: error: the library {path} is locked by another process "
        "(waited 0.2 s); try again when it finishes\n"
    )
