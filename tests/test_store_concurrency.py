"""Two real processes on one state dir at once: the first open (migrations and the import of
the old state files) happens once, and every write of both lands exactly once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from agent.models import Paper
from agent.store import DB_NAME, Library, Selection
from agent.store.legacy import DELIVERIES, JOBS, SEEN
from tests.legacy_state import copy_legacy_home

ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import json, sys, time
from pathlib import Path
from agent.models import Annotation, Paper, PaperResult
from agent.store import Library

home, go, name = Path(sys.argv[1]), sys.argv[4], sys.argv[5]
first, count = int(sys.argv[2]), int(sys.argv[3])
papers = [Paper(id=f"2501.{n:05d}", title=f"P{n}", abstract="A.", source=name)
          for n in range(first, first + count)]
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.005)
added = 0
with Library.open(home) as lib:  # opened at the start signal: the first open races too
    run = lib.runs.start(f"worker {name}")
    for position, one in enumerate(papers):  # one transaction each: as much contention as can be
        result = PaperResult.ok(one, Annotation(tags=[name], summary="S."), "local", None)
        lib.runs.record(run, [(position, one, result)], settings="s")
        added += lib.seen.mark([one], name)
    lib.runs.finish(run, "ok", 0)
    imported = {i.name: i.rows for i in lib.imported}
print(json.dumps({"added": added, "run": run, "imported": imported}), flush=True)
"""


def test_two_processes_opening_and_writing_at_once_each_land_once(tmp_path):
    home, go = tmp_path / "home", tmp_path / "go"
    copy_legacy_home(home)  # a state dir of today, without a library yet
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home), first, "120", str(go), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for first, name in (("0", "a"), ("60", "b"))  # 60 papers in common
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    go.touch()
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    reports = [json.loads(out) for out, _ in outputs]

    assert sum(r["added"] for r in reports) == 180  # each paper newly seen exactly once
    imported: dict[str, int] = {}
    for report in reports:
        for name, rows in report["imported"].items():
            assert name not in imported, f"{name} was imported twice"
            imported[name] = rows
    assert imported == {SEEN: 6, DELIVERIES: 2, JOBS: 2}
    conn = sqlite3.connect(home / DB_NAME)
    assert conn.execute("SELECT count(*) FROM legacy_imports").fetchone()[0] == 3
    conn.close()
    with Library.open(home) as lib:
        assert lib.imported == []
        assert len(lib.papers) == 6 + 180 and len(lib.seen) == 6 + 180
        for report in reports:
            rows = list(lib.results(Selection(run=report["run"])))
            assert len(rows) == 120 and lib.runs.get(report["run"]).ok == 120
        both = lib.papers.get("2501.00100")
        assert both is not None and sorted(both.sources) == ["a", "b"]
        assert lib.seen.seen([Paper(id="2501.00179v2", title="", abstract="")]) == {"2501.00179v2"}
