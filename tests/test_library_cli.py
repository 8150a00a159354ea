"""The library from the command line: ``runs``, ``export``, ``digest`` and ``post`` without a
results file, a state dir of release 0.1.0 taken over by a real run, and two real runs at once
on one state dir."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.llm.batch_api import Jobs
from agent.store import DB_NAME, Library
from tests.feeds import atom, paper
from tests.legacy_state import FILES, copy_legacy_home
from tests.slack import SlackStandIn

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.datetime.now(dt.UTC).date()
ARXIV = "http://arxiv.test/api/query"


def invoke(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env=env or None, catch_exceptions=False)


@pytest.fixture
def home(isolated_env: Path) -> Path:
    return isolated_env / "home"


@pytest.fixture
def ran(fixtures: Path) -> Path:
    """The five fixture papers run once (offline) into r.jsonl."""
    done = invoke("run", str(fixtures / "papers.jsonl"), "--backend", "local", "-o", "r.jsonl")
    assert done.exit_code == 0, done.stderr
    return Path("r.jsonl")


# --- runs ----------------------------------------------------------------------------------


def test_runs_lists_each_run_newest_first(ran, home, tmp_path):
    broken = tmp_path / "two.jsonl"
    rows = [{"id": "x-1", "title": "A title", "abstract": "A."}, {"id": "x-2", "title": ""}]
    broken.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert invoke("run", str(broken), "--backend", "local", "-o", "out.jsonl").exit_code == 1
    with Library.open(home) as lib:
        first, second = sorted(lib.runs.list(), key=lambda r: r.id)
    done = invoke("runs")
    assert done.exit_code == 0
    assert done.stdout == (
        "ID  STARTED (UTC)     STATUS  OK  FAILED  SKIPPED  EXIT  COMMAND\n"
        f" 2  {second.started:%Y-%m-%d %H:%M}  failed   1       1        0     1  "
        f"run {broken} -o out.jsonl\n"
        f" 1  {first.started:%Y-%m-%d %H:%M}  ok       5       0        0     0  "
        "run " + str(Path(__file__).parent / "fixtures" / "papers.jsonl") + " -o r.jsonl\n"
    )
    assert invoke("runs", "--limit", "1").stdout.count("\n") == 2  # the header and run 2
    [line] = invoke("runs", "--json", "--limit", "1").stdout.splitlines()
    record = json.loads(line)
    assert (record["id"], record["status"], record["ok"], record["failed"]) == (2, "failed", 1, 1)
    assert record["settings"]["backend"] == "local"


def test_runs_on_an_empty_library(home):
    done = invoke("runs")
    assert done.exit_code == 0 and done.stdout == f"no runs yet ({home / DB_NAME})\n"


# --- export --------------------------------------------------------------------------------


def test_export_writes_a_run_a_day_or_a_span_as_its_results_file(ran):
    written = ran.read_text()
    for selection in (["--run", "1"], ["--date", TODAY.isoformat()], ["--since", "1d"]):
        assert invoke("export", *selection).stdout == written, selection
    done = invoke("export", "--run", "1", "-o", "again.jsonl")
    assert done.exit_code == 0 and done.stderr == "paper-agent: 5 result(s) -> again.jsonl\n"
    assert Path("again.jsonl").read_text() == written
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    quiet = invoke("export", "--date", yesterday)
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert quiet.stderr == f"paper-agent: no results in the library for {yesterday} (UTC)\n"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "give RESULTS.jsonl, or --date, --run or --since to use the library"),
        (["--run", "1", "--since", "1d"], "--run and --since: give only one of"),
        (["--date", "2026-12-01", "--run", "1"], "--date and --run: give only one of"),
        (["--since", "5x"], "--since '5x': use a number of hours or days"),
        (["--run", "0"], "Invalid value for '--run'"),
    ],
)
def test_export_needs_exactly_one_selection(ran, args, error):
    done = invoke("export", *args)
    assert done.exit_code == 2 and error in done.stderr and done.stdout == ""


def test_a_run_the_library_lacks_is_one_line(ran):
    done = invoke("export", "--run", "7")
    assert done.exit_code == 2
    assert (
        done.stderr == "paper-agent: error: no run 7 in the library (paper-agent runs lists them)\n"
    )


# --- digest and post from the library ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["markdown", "json", "slack", "html"])
def test_a_days_digest_from_the_library_is_the_digest_of_its_results_file(ran, fmt):
    day = TODAY.isoformat()
    from_file = invoke("digest", str(ran), "--date", day, "-f", fmt)
    from_library = invoke("digest", "--date", day, "-f", fmt)
    assert from_file.exit_code == from_library.exit_code == 0
    assert from_library.stdout == from_file.stdout and from_file.stdout
    by_run = invoke("digest", "--run", "1", "-f", fmt)
    assert by_run.stdout == invoke("digest", str(ran), "-f", fmt).stdout


def test_digest_refuses_a_file_and_a_library_selection(ran):
    done = invoke("digest", str(ran), "--since", "7d")
    assert done.exit_code == 2
    assert "RESULTS.jsonl and --since: give only one of" in done.stderr


def test_post_from_the_library_delivers_once(ran, sleeps):
    with SlackStandIn() as slack:
        first = invoke("post", "--date", TODAY.isoformat(), SLACK_WEBHOOK_URL=slack.url)
        assert first.exit_code == 0, first.stderr
        again = invoke("post", str(ran), SLACK_WEBHOOK_URL=slack.url)
        assert again.exit_code == 0 and len(slack.received) == 1
    assert "nothing new to send: 5 papers already delivered there" in again.stderr


# --- a state dir of release 0.1.0 ----------------------------------------------------------


def test_a_state_dir_of_release_0_1_0_is_taken_over_by_a_real_run(home):
    copy_legacy_home(home)
    before = {name: hashlib.sha256((home / name).read_bytes()).digest() for name in FILES}
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=ARXIV).respond(200, text=atom([paper(n) for n in range(1, 9)]))
        done = invoke(
            "run", "--source", "arxiv:cs.LG", "--backend", "local", "-o", "r.jsonl",
            PAPER_AGENT_ARXIV_API_URL=ARXIV,
        )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert "5 of 8 fetched paper(s) were annotated in an earlier run" in done.stderr
    assert [json.loads(line)["id"] for line in Path("r.jsonl").read_text().splitlines()] == [
        "2611.00006",
        "2611.00007",
        "2611.00008",
    ]
    listed = invoke("seen", "list", "--json")
    seen = {json.loads(line)["id"]: json.loads(line) for line in listed.stdout.splitlines()}
    old = {f"2611.{n:05d}" for n in range(1, 6)} | {"hf-77"}
    assert set(seen) == old | {"2611.00006", "2611.00007", "2611.00008"}
    assert seen["hf-77"]["first_seen"] == "2026-12-05T21:42:11+00:00"  # as 0.1.0 noted it
    assert seen["2611.00004"]["source"] == "arxiv-rss:cs.LG"
    assert len(Jobs(home).load()) == 2  # the batch jobs came in too
    after = {name: hashlib.sha256((home / name).read_bytes()).digest() for name in FILES}
    assert after == before  # the old files are read, never written


# --- two real processes at once ------------------------------------------------------------


def test_two_runs_at_once_on_one_state_dir_are_each_recorded_whole(tmp_path):
    """Each run reads its papers from a pipe the test fills only once both are waiting on it,
    so both open the library (and import the old files) and record at the same moment."""
    import threading

    home = copy_legacy_home(tmp_path / "home")  # their first open imports it: that races too
    env = {**os.environ, "PAPER_AGENT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    inputs, texts = [], []
    for name, first in (("a", 0), ("b", 150)):  # 150 papers in common
        rows = [
            {"id": f"2612.{n:05d}", "title": f"Paper {n} on agents", "abstract": f"We study {n}."}
            for n in range(first, first + 300)
        ]
        path = tmp_path / f"{name}.jsonl"
        os.mkfifo(path)
        inputs.append(path)
        texts.append("".join(json.dumps(row) + "\n" for row in rows))
    command = [sys.executable, "-m", "agent", "run", "--backend", "local"]
    runs = [
        subprocess.Popen(
            [*command, str(path), "-o", str(path.with_suffix(".out"))],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in inputs
    ]

    both = threading.Barrier(2, timeout=120)

    def fill(path: Path, text: str) -> None:
        with path.open("w") as pipe:  # opens once the run opens it to read
            both.wait()  # the other run is waiting for its papers too
            pipe.write(text)

    writers = [
        threading.Thread(target=fill, args=pair, daemon=True)
        for pair in zip(inputs, texts, strict=True)
    ]
    for writer in writers:
        writer.start()
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    with Library.open(home) as lib:
        recorded = sorted(lib.runs.list(), key=lambda r: r.command)
        assert [(r.status, r.ok) for r in recorded] == [("ok", 300), ("ok", 300)]
        for info, path in zip(recorded, inputs, strict=True):
            lines = [r.to_line() + "\n" for r in lib.results(_run(info.id))]
            assert lines == path.with_suffix(".out").read_text().splitlines(keepends=True)
        assert len(lib.papers) == 6 + 450  # the old seen papers, and each new paper once
    conn = sqlite3.connect(home / DB_NAME)
    assert conn.execute("SELECT count(*) FROM legacy_imports").fetchone()[0] == 3
    conn.close()


def _run(run: int):
    from agent.store import Selection

    return Selection(run=run)
