"""A large liked-papers file: run time, and how fast SIGTERM ends the run (issue 16, item 3).

    python benchmarks/bench_liked.py [--sizes 5000,20000] [--repeat 3] [--timeout 600]
    PYTHONPATH=/tmp/other-tree python benchmarks/bench_liked.py   # measure another source tree

For each size it writes a liked file of that many distinct papers (arXiv dev abstracts with
their sentences shuffled and a word dropped, as ``bench_local.py`` makes them), then runs the
real command as a fresh process, from a temporary directory with its own ``PAPER_AGENT_HOME``:

    paper-agent run examples/hf-daily-papers-sample.txt --backend local --liked LIKED.jsonl \
        --interest "Agents: LLM agents that use tools" -o results.jsonl

and reports the median wall time (interpreter start included) of ``--repeat`` runs; a run still
going after ``--timeout`` seconds is killed and reported as ``> timeout``. Then, for the largest
size, it starts the same run once more with ``-v``, sends SIGTERM as soon as the run logs that
it is learning the liked papers (or ``--signal-after`` seconds in, for code that does not log
it: on the old code that is inside its quadratic phase) and reports the exit code and how long
the process took to exit after the signal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_local import SEED, seed_papers, synthesize

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "hf-daily-papers-sample.txt"
INTEREST = "Agents: LLM agents that use tools"


def write_liked(path: Path, n: int) -> None:
    """``n`` distinct liked papers, synthesized from the arXiv dev abstracts."""
    with path.open("w", encoding="utf-8") as fh:
        for row in synthesize(seed_papers(SEED), n, random.Random(3)):
            fh.write(json.dumps(row) + "\n")


def command(liked: Path, out: Path) -> list[str]:
    """The run under test."""
    run = ["run", str(SAMPLE), "--backend", "local", "--liked", str(liked)]
    return [sys.executable, "-m", "agent", *run, "--interest", INTEREST, "-o", str(out)]


def environment(home: str) -> dict[str, str]:
    """A private state dir; one core's worth of BLAS, as the other benchmarks."""
    return os.environ | {
        "PAPER_AGENT_HOME": home,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def timed_run(liked: Path, timeout: float) -> float | None:
    """Wall seconds of one run (None when killed at ``timeout``); a failed run is an error."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.jsonl"
        start = time.perf_counter()
        try:
            done = subprocess.run(
                command(liked, out),
                cwd=tmp,
                env=environment(tmp),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"run failed ({done.returncode}): {done.stderr.strip()}")
        return seconds


def signal_latency(liked: Path, after: float, timeout: float) -> dict[str, object]:
    """SIGTERM in the liked-paper phase: once the run logs that it is learning the liked papers
    (``-v``), else ``after`` seconds in (code that does not say it); the exit code and the
    seconds from the signal to the exit."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.jsonl"
        cmd = command(liked, out)
        cmd.insert(cmd.index("run"), "-v")
        run = subprocess.Popen(
            cmd,
            cwd=tmp,
            env=environment(tmp),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        learning = threading.Event()

        def read() -> None:
            for line in run.stderr:
                lines.append(line)
                if "learning from" in line:
                    learning.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        trigger = "logged" if learning.wait(after) else f"{after} s"
        if run.poll() is not None:
            return {"note": f"the run had ended before the signal ({trigger})"}
        sent = time.perf_counter()
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
            return {"trigger": trigger, "exit": "killed", "seconds_to_exit": f"> {timeout:.0f}"}
        seconds = time.perf_counter() - sent
        reader.join(timeout=5)
        said = [line.strip() for line in lines if "terminated" in line]
        return {
            "trigger": trigger,
            "exit": run.returncode,
            "seconds_to_exit": round(seconds, 2),
            "said": said[-1] if said else "",
        }


def main() -> None:
    """Print one JSON line per size, then the signal row."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,20000", help="liked papers, comma-separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds before a run is killed")
    ap.add_argument(
        "--signal-after", type=float, default=15.0, help="when the run does not log its phase"
    )
    ap.add_argument("--signal-timeout", type=float, default=120.0, help="wait after SIGTERM")
    args = ap.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            liked = Path(tmp) / f"liked-{n}.jsonl"
            write_liked(liked, n)
            times: list[float | None] = []
            for _ in range(args.repeat):
                seconds = timed_run(liked, args.timeout)
                times.append(seconds)
                if seconds is None:
                    break  # a run that hits the timeout will hit it again
            finished = [round(t, 2) for t in times if t is not None]
            median = (
                round(statistics.median(finished), 2)
                if len(finished) == len(times)
                else f"> {args.timeout:.0f}"
            )
            row = {"liked": n, "runs_s": finished, "median_s": median}
            print(json.dumps(row), flush=True)
        largest = Path(tmp) / f"liked-{max(sizes)}.jsonl"
        row = signal_latency(largest, args.signal_after, args.signal_timeout)
        print(json.dumps({"liked": max(sizes), "sigterm_after_s": args.signal_after, **row}))


if __name__ == "__main__":
    main()
