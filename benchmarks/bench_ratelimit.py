"""``paper-agent run`` against stubs that refuse requests with 429 (issue 11 item 5, issue 16).

    python benchmarks/bench_ratelimit.py [--rates 20,40] [--seconds 20] [--repeat 3]
        [--sporadic 0.15] [--window 600/60]

Each row's runs are fresh ``paper-agent run --concurrency 32 --no-cache`` processes against a
fresh ``stub_server.py`` (answers after 100-300 ms, a limit's 429 at once), medians of
``--repeat`` runs, from the stub's log of arrivals:

- R/s rows, per R and header mode (the stub sends ``x-ratelimit-*`` headers, or none): a limit
  of R requests in any sliding second, over R x ``--seconds`` papers. Throughput / R: accepted
  requests per second from 2 s after the first request to the last accepted one, over R
  (target >= 0.85), the whole run's beside it; rejected after 2 s: the share of requests
  arriving after the first two seconds that got a 429 (target <= 0.05).
- random 429s: no limit, but ``--sporadic`` of the requests refused at random (a 429 with a
  Retry-After of 0-1 s, as a busy provider sends), 400 papers; the wall time over that of the
  same run with no 429s (the retries' own waits make even a perfect client slower).
- per-window rows (``--window L/W``, e.g. 600 per sliding 60 s), per header mode, 2.5 L
  papers: accepted requests per second over the whole run over L / W; rejected after the
  first window: the share of requests arriving after W + 5 s that got a 429 (without headers
  the first window's stall can only be found by asking; after it, target <= 0.05).

Exit 0 when every median meets its target, 1 when one misses, 2 when a run failed.
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
SPORADIC_PAPERS = 400


@dataclass
class Run:
    """One run: the stub's log of arrivals (seconds since it started, accepted) and the wall."""

    arrivals: list[tuple[float, bool]]
    wall: float

    @property
    def first(self) -> float:
        """When the first request arrived."""
        return min(t for t, _ in self.arrivals)

    def accepted(self) -> list[float]:
        """Arrival times of the requests that were not refused with a 429, in order."""
        return sorted(t for t, ok in self.arrivals if ok)

    def rejected_after(self, start: float) -> float:
        """The share of requests arriving from ``start`` seconds on that got a 429."""
        late = [ok for t, ok in self.arrivals if t >= start]
        return sum(not ok for ok in late) / len(late) if late else 0.0


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


def run_once(stub_options: list[str], papers: Path, count: int, work: Path) -> Run:
    """One stub with ``stub_options``, one ``paper-agent run``; every paper must be valid."""
    log = work / "arrivals.jsonl"
    stub_args = [sys.executable, str(STUB), "--port", "0", "--delay-ms", "100"]
    stub_args += ["--delay-max-ms", "300", "--log", str(log), "--lifetime", "900"]
    stub = subprocess.Popen([*stub_args, *stub_options], stdout=subprocess.PIPE, text=True)
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
    limited = ("rate_limit", "429")  # a limit's 429, a random one
    return Run([(a["t"], a["fault"] not in limited) for a in arrivals], wall)


def runs(name: str, stub_options: list[str], count: int, repeat: int, tmp: str) -> list[Run]:
    """``repeat`` runs of ``count`` papers against a stub with ``stub_options``."""
    papers = Path(tmp) / f"papers-{count}.jsonl"
    if not papers.exists():
        write_papers(papers, count)
    done = []
    for i in range(repeat):
        done.append(run_once(stub_options, papers, count, Path(tempfile.mkdtemp(dir=tmp))))
        print(f"{name} run {i + 1}: {done[-1].wall:.1f} s", file=sys.stderr)
    return done


def median(values: list[float]) -> float:
    """The median (the machine is noisy: every figure is one)."""
    return statistics.median(values)


def rate_rows(rates: list[int], seconds: float, repeat: int, tmp: str) -> tuple[list[str], bool]:
    """A limit of R per sliding second, with and without headers."""
    lines = [
        f"{'R/s':>4} {'headers':>8} {'papers':>6} {'throughput/R':>12} {'whole run':>9} "
        f"{'rejected>2s':>11} {'requests':>8} {'wall s':>6}"
    ]
    missed = False
    for rate in rates:
        count = round(rate * seconds)
        for headers in (False, True):
            options = ["--rate-limit", str(rate)] + (["--rate-limit-headers"] if headers else [])
            done = runs(f"R={rate} headers={headers}", options, count, repeat, tmp)
            steady, whole = [], []
            for run in done:
                accepted = run.accepted()
                late = [t for t in accepted if t >= run.first + SETTLE]
                span = accepted[-1] - (run.first + SETTLE)
                steady.append(len(late) / span / rate if span > 0 else 0.0)
                whole.append(len(accepted) / (accepted[-1] - run.first) / rate)
            rejected = median([run.rejected_after(run.first + SETTLE) for run in done])
            missed |= median(steady) < THROUGHPUT_TARGET or rejected > REJECTED_TARGET
            lines.append(
                f"{rate:>4} {'yes' if headers else 'no':>8} {count:>6} {median(steady):>12.3f} "
                f"{median(whole):>9.3f} {rejected:>11.3f} "
                f"{median([len(r.arrivals) for r in done]):>8.0f} "
                f"{median([r.wall for r in done]):>6.1f}"
            )
    lines.append(
        f"targets: throughput/R >= {THROUGHPUT_TARGET}, rejected after 2 s <= {REJECTED_TARGET}"
    )
    return lines, missed


def sporadic_rows(share: float, repeat: int, tmp: str) -> list[str]:
    """No limit, ``share`` of the requests refused at random: the wall against no 429s."""
    count = SPORADIC_PAPERS
    calm = runs("no 429s", [], count, repeat, tmp)
    busy = runs(f"{share:.0%} random 429s", ["--faults", f"429={share}"], count, repeat, tmp)
    wall, calm_wall = median([r.wall for r in busy]), median([r.wall for r in calm])
    refused = median([sum(not ok for _, ok in r.arrivals) for r in busy])
    return [
        f"{'random 429s':>12} {'papers':>6} {'requests':>8} {'429s':>5} {'wall s':>6} "
        f"{'no-429 wall s':>13} {'ratio':>5}",
        f"{share:>12.0%} {count:>6} {median([len(r.arrivals) for r in busy]):>8.0f} "
        f"{refused:>5.0f} {wall:>6.1f} {calm_wall:>13.1f} {wall / calm_wall:>5.2f}",
    ]


def window_rows(spec: str, repeat: int, tmp: str) -> tuple[list[str], bool]:
    """A limit of L per sliding W seconds, with and without headers."""
    limit, window = (float(x) for x in spec.split("/"))
    count = round(2.5 * limit)
    lines = [
        f"{'limit':>10} {'headers':>8} {'papers':>6} {'throughput/(L/W)':>16} "
        f"{'rejected>W+5s':>13} {'rejected, all':>13} {'wall s':>6}"
    ]
    missed = False
    for headers in (False, True):
        options = ["--rate-limit", f"{limit:g}", "--rate-window", f"{window:g}"]
        options += ["--rate-limit-headers"] if headers else []
        done = runs(f"{spec} headers={headers}", options, count, repeat, tmp)
        throughput = median(
            [len(r.accepted()) / (r.accepted()[-1] - r.first) / (limit / window) for r in done]
        )
        late = median([r.rejected_after(r.first + window + 5) for r in done])
        overall = median([r.rejected_after(r.first) for r in done])
        missed |= late > REJECTED_TARGET
        lines.append(
            f"{spec:>10} {'yes' if headers else 'no':>8} {count:>6} {throughput:>16.3f} "
            f"{late:>13.3f} {overall:>13.3f} {median([r.wall for r in done]):>6.1f}"
        )
    lines.append(f"target: rejected after the first window + 5 s <= {REJECTED_TARGET}")
    return lines, missed


def main(argv: list[str] | None = None) -> int:
    """Measure every row, print the medians; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,40", help="limits R, requests/s ('' for none)")
    parser.add_argument("--seconds", type=float, default=20.0, help="papers = R x this")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; medians reported")
    parser.add_argument(
        "--sporadic", type=float, default=0.15, help="share refused at random (0: no such row)"
    )
    parser.add_argument("--window", default="600/60", help="L/W: L per W seconds ('' for none)")
    args = parser.parse_args(argv)
    lines: list[str] = []
    missed = False
    with tempfile.TemporaryDirectory(prefix="paper-agent-ratelimit-") as tmp:
        try:
            if args.rates:
                rates = [int(r) for r in args.rates.split(",")]
                found, miss = rate_rows(rates, args.seconds, args.repeat, tmp)
                lines, missed = [*lines, *found, ""], missed or miss
            if args.sporadic:
                lines += [*sporadic_rows(args.sporadic, args.repeat, tmp), ""]
            if args.window:
                found, miss = window_rows(args.window, args.repeat, tmp)
                lines, missed = [*lines, *found], missed or miss
        except RuntimeError as exc:
            print(f"bench_ratelimit: {exc}", file=sys.stderr)
            return 2
    print("\n".join(lines).rstrip())
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
