"""Prompt tokens per paper at ``--papers-per-request`` K = 1, 4 and 8 (issue 11, item 3).

    python benchmarks/bench_tokens.py              # about 15 s
    python benchmarks/bench_tokens.py --k 1,2,4,8,16 --repeat 3

Starts ``stub_server.py`` (0 ms delay) and runs the real CLI as a fresh subprocess for each K,
from a temporary directory with its own PAPER_AGENT_HOME (an empty cache), over the bundled
sample (examples/hf-daily-papers-sample.txt, 202 papers) with the default taxonomy:

    paper-agent run examples/hf-daily-papers-sample.txt -o results.jsonl --backend openai \\
        --base-url http://127.0.0.1:<stub>/v1 --papers-per-request K

The prompt tokens are the ones the stub reports in each completion's usage, summed from the
results file (a shared request's usage is split across its papers, so the sum is the run's
total): every word or punctuation mark of every message counts one token, plus 4 per message
(``stub_server.TOKEN``). The response format's JSON Schema is not counted, as with llama.cpp,
where it becomes a grammar; a provider that counts it per request favours larger K further.
Each run is checked: exit 0, one valid result per paper, and as many requests as the stub
served. The counts are deterministic; ``--repeat`` shows the medians anyway. Exits 1 when K = 8
uses more than 0.6x the prompt tokens per paper of K = 1 (the issue's target), 2 when it could
not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "hf-daily-papers-sample.txt"
STUB = Path(__file__).resolve().parent / "stub_server.py"
TARGET = 0.6  # K = 8 over K = 1, prompt tokens per paper
CLEARED_ENV = ("OPENAI_BASE_URL", "PAPER_AGENT_MODEL", "PAPER_AGENT_RECORD", "SLACK_WEBHOOK_URL")


def served(url: str) -> int:
    """Chat completions the stub has served so far."""
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=5) as resp:
        return int(json.load(resp)["chat_completions"])


def run_once(url: str, k: int, papers: int) -> dict[str, int]:
    """One fresh run at K; its totals from the results file, checked against the stub."""
    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
        env |= {"OPENAI_API_KEY": "sk-bench", "PAPER_AGENT_HOME": str(Path(tmp) / "home")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        before = served(url)
        command = [
            *(sys.executable, "-m", "agent", "run", str(SAMPLE), "-o", "results.jsonl"),
            *("--backend", "openai", "--base-url", url, "--papers-per-request", str(k)),
        ]
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"K={k}: paper-agent exited {done.returncode}: {done.stderr[-800:]}")
        lines = [json.loads(line) for line in (Path(tmp) / "results.jsonl").open()]
        requests = served(url) - before
    valid = sum(1 for line in lines if line["error"] is None)
    if len(lines) != papers or valid != papers:
        raise SystemExit(f"K={k}: {valid} valid results of {len(lines)} lines, {papers} papers")
    totals = {
        name: sum(line["usage"][name] for line in lines)
        for name in ("prompt_tokens", "completion_tokens", "requests")
    }
    if totals["requests"] != requests:
        raise SystemExit(f"K={k}: results count {totals['requests']} requests, stub {requests}")
    return totals


def main(argv: list[str] | None = None) -> int:
    """Run every K, print the table, judge the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="1,4,8", help="comma-separated K values (1 is the base)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    ks = sorted({1, *(int(k) for k in args.k.split(","))})
    sys.path.insert(0, str(ROOT))
    from agent.sources import read_papers

    papers = len(list(read_papers([str(SAMPLE)])))
    stub = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", "--delay-ms", "0", "--lifetime", "900"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().strip()
        if not url.startswith("http"):
            print(f"stub server did not start (said {url!r})", file=sys.stderr)
            return 2
        rows = {}
        for k in ks:
            runs = [run_once(url, k, papers) for _ in range(args.repeat)]
            rows[k] = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    finally:
        stub.terminate()
        stub.wait(timeout=10)
    base = rows[1]["prompt_tokens"] / papers
    print(f"{papers} papers (examples/hf-daily-papers-sample.txt), default taxonomy, stub tokens")
    header = ("K", "requests", "prompt tok/paper", "vs K=1", "compl tok/paper")
    print("{:>3} {:>9} {:>17} {:>7} {:>16}".format(*header))
    for k, row in rows.items():
        per_paper = row["prompt_tokens"] / papers
        print(
            f"{k:>3} {row['requests']:>9.0f} {per_paper:>17.1f} {per_paper / base:>7.3f} "
            f"{row['completion_tokens'] / papers:>16.1f}"
        )
    if 8 in rows:
        ratio = rows[8]["prompt_tokens"] / rows[1]["prompt_tokens"]
        verdict = "ok" if ratio <= TARGET else "MISSED"
        print(f"K=8 / K=1 prompt tokens per paper: {ratio:.3f} (target <= {TARGET}): {verdict}")
        return 0 if ratio <= TARGET else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
