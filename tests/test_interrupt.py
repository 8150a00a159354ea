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
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from agent.interests import MAX_LIKED

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


# Issue 16, item 3: the offline backend's CPU-heavy phases hear Ctrl-C and SIGTERM.
SIGNALS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]


def many_papers(path: Path, n: int) -> Path:
    """``n`` distinct papers made from the shipped arXiv dev abstracts."""
    seeds = (ROOT / "examples" / "arxiv-categories-dev.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in seeds if line.strip()]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            row = rows[i % len(rows)]
            paper = {"id": f"p{i}", "title": f"{row['title']} ({i})", "abstract": row["abstract"]}
            fh.write(json.dumps(paper) + "\n")
    return path


def offline_run(tmp_path: Path, *args: str) -> subprocess.Popen:
    """``paper-agent -v run`` on the offline backend, its stderr piped."""
    command = [sys.executable, "-m", "agent", "-v", "run", *args, "--backend", "local"]
    env = {**os.environ, "PAPER_AGENT_HOME": str(tmp_path / "home")}
    return subprocess.Popen(
        [*command, "-o", "out.jsonl"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )


def wait_for_line(run: subprocess.Popen, text: str, timeout: float = 60.0) -> list[str]:
    """The stderr lines read until one holds ``text`` (a thread reads on, so the pipe never
    fills); the test fails if the run ends or ``timeout`` passes first."""
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in run.stderr:
            lines.append(line)
            if text in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    if not seen.wait(timeout):
        run.kill()
        pytest.fail(f"no {text!r} on stderr within {timeout:.0f} s: {''.join(lines)[-2000:]}")
    return lines


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("signum", "code", "word"), SIGNALS)
def test_a_signal_while_the_liked_papers_are_learned_stops_the_run_at_once(
    tmp_path, signum, code, word
):
    """As many liked papers as a run reads take the offline backend a second or more to
    learn: a signal then must not wait for them, nor for the 3,000 papers after."""
    liked = many_papers(tmp_path / "liked.jsonl", MAX_LIKED)
    papers = many_papers(tmp_path / "papers.jsonl", 3000)
    run = offline_run(tmp_path, str(papers), "--liked", str(liked), "--interest", "Agents: tools")
    lines = wait_for_line(run, f"learning from {MAX_LIKED} liked paper(s)")
    run.send_signal(signum)
    assert run.wait(timeout=60) == code
    stderr = "".join(lines)
    assert "Traceback" not in stderr
    said = [line for line in stderr.splitlines() if f"paper-agent: {word}" in line]
    assert said == [f"paper-agent: {word}: no paper had finished; out.jsonl was not written"]
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("signum", "code", "word"), SIGNALS)
def test_a_signal_stops_an_offline_run_between_papers(tmp_path, signum, code, word):
    """No paper of the offline backend waits for anything: the run must still hear a signal
    between two papers, not after the last one."""
    papers = many_papers(tmp_path / "papers.jsonl", 5000)
    run = offline_run(tmp_path, str(papers))
    wait_for_a_result(run, tmp_path / "out.jsonl.partial")
    run.send_signal(signum)
    assert run.wait(timeout=60) == code
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 5000  # a complete file: finished results, then the rest marked skipped
    skipped = [r for r in rows if r["error"] is not None]
    assert 0 < len(skipped) < 5000
    assert {r["error"]["type"] for r in skipped} == {"skipped"}
