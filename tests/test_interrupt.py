"""Ctrl-C on a real run: exit 130, finished results kept, and the next run resumes from the cache.

Runs the CLI in a subprocess against the local stub server (benchmarks/stub_server.py) on
127.0.0.1, because a SIGINT has to reach a real process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture
def stub_url():
    """The stub server with a 150 ms delay per answer."""
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "stub_server.py"), "--delay-ms", "150"],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = server.stdout.readline().strip()
    yield url
    server.terminate()
    server.wait(timeout=10)


def stats(url: str) -> dict:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=5) as response:
        return json.load(response)


def run_command(fixtures: Path, stub_url: str, limit: int) -> list[str]:
    """``paper-agent run`` on the first ``limit`` sample papers against the stub, two in flight."""
    page = str(fixtures / "hf-daily-papers-page.txt")
    run = ["run", page, "--limit", str(limit), "--concurrency", "2", "--base-url", stub_url]
    return [sys.executable, "-m", "agent", *run, "-o", "out.jsonl"]


def wait_for_a_result(run: subprocess.Popen, partial: Path, timeout: float = 30.0) -> None:
    """Return once the run has streamed at least one finished result to ``partial``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert run.poll() is None, "the run ended before it could be interrupted"
        if partial.exists() and partial.read_text(encoding="utf-8").count("\n") >= 1:
            return
        time.sleep(0.05)
    pytest.fail(f"no result in {partial} after {timeout:.0f} s")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_a_signal_keeps_finished_results_and_the_rerun_resumes(
    stub_url, fixtures, tmp_path, signum, code, word
):
    env = {**os.environ, "OPENAI_API_KEY": "sk-interrupt-test", "PAPER_AGENT_HOME": str(tmp_path)}
    command = run_command(fixtures, stub_url, limit=60)
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    wait_for_a_result(run, tmp_path / "out.jsonl.partial")
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=20)
    assert run.returncode == code, stderr
    assert "Traceback" not in stderr
    said = [line for line in stderr.splitlines() if word in line]
    assert len(said) == 1 and "finished result(s)" in said[0]
    # A complete file: every paper has its line, those that never ran marked skipped.
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 60
    kept = [r for r in rows if r["error"] is None]
    assert 0 < len(kept) < 60
    assert {r["error"]["type"] for r in rows if r["error"]} == {"skipped"}
    assert not (tmp_path / "out.jsonl.partial").exists()
    sent_before = stats(stub_url)["chat_completions"]

    command[command.index("--concurrency") + 1] = "8"
    rerun = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(r["error"] is None for r in rows)
    fresh = [r for r in rows if not r["cached"]]
    assert len(fresh) <= 60 - len(kept)  # nothing finished before the signal is asked again
    assert stats(stub_url)["chat_completions"] - sent_before == len(fresh)


def test_a_second_run_on_the_same_output_refuses_at_once(stub_url, fixtures, tmp_path):
    """Two real paper-agent runs: the second exits 2 naming the first's pid, and the first's
    results are complete and clean (no garbage line from the second)."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-lock-test", "PAPER_AGENT_HOME": str(tmp_path)}
    command = run_command(fixtures, stub_url, limit=20)
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    wait_for_a_result(first, tmp_path / "out.jsonl.partial")
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 2
    assert f"another run (pid {first.pid}) is writing" in second.stderr
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and all(r["error"] is None for r in rows)
