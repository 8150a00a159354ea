"""A total outage: ``paper-agent run`` against a stub that answers HTTP 500 to everything.

    python benchmarks/bench_outage.py [--papers 202] [--concurrency 8] [--repeat 3]

Real retries and backoff (nothing patched), in a fresh state dir each time. Prints, per run,
the requests the stub received, the request count of the run's summary line (they must be
equal), the wall time and the line that says why the run stopped; then the medians. Issue 16
asked for a stop within 100 requests (it took about 130 requests and 90 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_run import SAMPLE, paper_agent

STUB = Path(__file__).resolve().parent / "stub_server.py"
# Never reach a real endpoint, whatever the caller's environment holds.
SCRUBBED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PAPER_AGENT_MODEL", "PAPER_AGENT_HOME")


def received(url: str) -> int:
    """The chat completions the stub has received."""
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=5) as response:
        return int(json.load(response)["chat_completions"])


def one_run(papers: int, concurrency: int) -> dict[str, object]:
    """Start a failing stub, run paper-agent against it, and say what happened."""
    stub = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", "--faults", "500=1.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = (stub.stdout.readline() if stub.stdout else "").strip()
        with tempfile.TemporaryDirectory() as home:
            env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
            env |= {"OPENAI_API_KEY": "sk-bench-outage", "PAPER_AGENT_HOME": home}
            command = [
                *paper_agent(),
                "run",
                str(SAMPLE),
                "--limit",
                str(papers),
                "--concurrency",
                str(concurrency),
                "--base-url",
                url,
                "-o",
                str(Path(home) / "out.jsonl"),
            ]
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - start
        summary = re.search(r"; (\d+) requests, ", done.stderr)
        stopped = next((line for line in done.stderr.splitlines() if "stopped" in line), "")
        return {
            "exit": done.returncode,
            "received": received(url),
            "reported": int(summary.group(1)) if summary else None,
            "seconds": round(elapsed, 1),
            "stopped": stopped,
        }
    finally:
        stub.terminate()
        stub.wait(timeout=10)


def main() -> None:
    """Run the outage ``--repeat`` times and print each run and the medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=int, default=202)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args.papers, args.concurrency) for _ in range(args.repeat)]
    for run in runs:
        print(json.dumps(run))
    print(
        f"median over {len(runs)}: {statistics.median(r['received'] for r in runs):g} requests "
        f"received, {statistics.median(r['seconds'] for r in runs):g} s; summary equal to "
        f"received in {sum(r['reported'] == r['received'] for r in runs)} of {len(runs)}"
    )


if __name__ == "__main__":
    main()
