"""``paper-agent run`` against a stub that answers 429 above R requests/s (issue 11, item 5).

    python benchmarks/bench_ratelimit.py [--rates 20,40] [--seconds 20] [--repeat 3]

For each R and each header mode (the stub sends ``x-ratelimit-*`` headers, or none), a fresh
``stub_server.py --rate-limit R`` (a sliding one-second window, answers after 100-300 ms, a 429
at once) serves a fresh ``paper-agent run --concurrency 32 --no-cache`` over R x ``--seconds``
papers. From the stub's log of arrivals it reports, median of ``--repeat`` runs:

- throughput / R: accepted requests per second from 2 s after the first request to the last
  accepted one, over R (target >= 0.85); the whole run's figure, start included, beside it;
- rejected after 2 s: the share of requests arriving after the first two seconds that got a
  429 (target <= 0.05).

Exit 0 when every median meets both targets, 1 when one misses, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_run import SAMPLE, paper_agent

ROOT = Path(__file__).resolve().parent.parent
STUB = Path(__file__).resolve().parent / "stub_server.py"
SETTLE = 2.0  # seconds after the first request that the rejection target leaves out
THROUGHPUT_TARGET = 0.85
REJECTED_TARGET = 0.05


@dataclass
class Figures:
    """One run's figures, from the stub's log."""

    steady: float  # throughput after SETTLE, over R
    whole: float  # throughput of the whole run, over R
    rejected: float  # share of requests after SETTLE answered 429
    requests: int
    wall: float


def write_papers(path: Path, count: int) -> None:
    """``count`` papers as JSONL: the bundled sample's, repeated with distinct ids and titles."""
    sys.path.insert(0, str(ROOT))
    from agent.sources import read_papers

    sample = list(read_papers([str(SAMPLE)]))
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            paper = sample[n % len(sample)]
            title = paper.title if n < len(sample) else f"{paper.title} (part {n // len(sample)})"
            line = {"id": f"bench-{n}", "title": title, "abstract": paper.abstract}
            out.write(json.dumps(line) + "\n")


def run_once(rate: int, headers: bool, papers: Path, count: int, work: Path) -> Figures:
    """One stub, one ``paper-agent run``; the figures from the stub's arrival log."""
    log = work / "arrivals.jsonl"
    stub_args = [sys.executable, str(STUB), "--port", "0", "--delay-ms", "100"]
    stub_args += ["--delay-max-ms", "300", "--rate-limit", str(rate), "--log", str(log)]
    stub_args += ["--lifetime", "600"] + (["--rate-limit-headers"] if headers else [])
    stub = subprocess.Popen(stub_args, stdout=subprocess.PIPE, text=True)
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"stub server did not start (said {url!r})")
        out = work / "results.jsonl"
        args = [*paper_agent(), "run", str(papers), "-o", str(out), "--backend", "openai"]
        args += ["--base-url", url, "--concurrency", "32", "--no-cache"]
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "PAPER_AGENT_HOME": str(work)}
        env.pop("OPENAI_BASE_URL", None)
        # This checkout's code, even where the console script was installed from another.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        start = time.perf_counter()
        proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    finally:
        stub.send_signal(signal.SIGINT)
        stub.communicate(timeout=10)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"paper-agent run exited {proc.returncode}: {' | '.join(tail)}")
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    if len(results) != count or any(r["error"] for r in results):
        raise RuntimeError(f"{out}: {len(results)} results for {count} papers, or an error")
    arrivals = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    first = min(a["t"] for a in arrivals)
    accepted = sorted(a["t"] for a in arrivals if a["fault"] != "rate_limit")
    late = [a for a in arrivals if a["t"] >= first + SETTLE]
    late_accepted = [t for t in accepted if t >= first + SETTLE]
    steady_span = accepted[-1] - (first + SETTLE)
    return Figures(
        steady=len(late_accepted) / steady_span / rate if steady_span > 0 else 0.0,
        whole=len(accepted) / (accepted[-1] - first) / rate,
        rejected=sum(a["fault"] == "rate_limit" for a in late) / len(late) if late else 0.0,
        requests=len(arrivals),
        wall=wall,
    )


def main(argv: list[str] | None = None) -> int:
    """Measure every (R, header mode), print the medians; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,40", help="the stub's limits R, requests/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="papers = R x this")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; medians reported")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    header = (
        f"{'R/s':>4} {'headers':>8} {'papers':>6} {'throughput/R':>12} {'whole run':>9} "
        f"{'rejected>2s':>11} {'requests':>8} {'wall s':>6}"
    )
    lines, missed = [header], False
    with tempfile.TemporaryDirectory(prefix="paper-agent-ratelimit-") as tmp:
        for rate in rates:
            count = round(rate * args.seconds)
            papers = Path(tmp) / f"papers-{count}.jsonl"
            write_papers(papers, count)
            for headers in (False, True):
                runs = []
                for i in range(args.repeat):
                    work = Path(tempfile.mkdtemp(dir=tmp))
                    try:
                        runs.append(run_once(rate, headers, papers, count, work))
                    except RuntimeError as exc:
                        print(f"bench_ratelimit: {exc}", file=sys.stderr)
                        return 2
                    f = runs[-1]
                    print(
                        f"R={rate} headers={headers} run {i + 1}: throughput/R {f.steady:.3f} "
                        f"(whole {f.whole:.3f}), rejected after {SETTLE:g}s {f.rejected:.3f}",
                        file=sys.stderr,
                    )
                steady = statistics.median(f.steady for f in runs)
                rejected = statistics.median(f.rejected for f in runs)
                missed |= steady < THROUGHPUT_TARGET or rejected > REJECTED_TARGET
                lines.append(
                    f"{rate:>4} {'yes' if headers else 'no':>8} {count:>6} {steady:>12.3f} "
                    f"{statistics.median(f.whole for f in runs):>9.3f} {rejected:>11.3f} "
                    f"{statistics.median(f.requests for f in runs):>8.0f} "
                    f"{statistics.median(f.wall for f in runs):>6.1f}"
                )
    print("\n".join(lines))
    print(f"targets: throughput/R >= {THROUGHPUT_TARGET}, rejected after 2 s <= {REJECTED_TARGET}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
