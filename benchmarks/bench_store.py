"""Speed and memory of the library at scale (a benchmark, not a test).

    python benchmarks/bench_store.py [--papers 100000] [--per-day 1000] [--repeat 7]

1. Build: N generated papers (realistic sizes; 5 % known only by their title), one UTC day per
   ``--per-day`` papers, each day as a cron run does it: the day's papers added in one
   transaction, its results recorded in one, then marked seen in one. The clock is set to each
   day so the days are real days in the file.
   The day's top 50 are then recorded as delivered to one destination.
2. Queries, the median of ``--repeat`` random days: a day's papers and a day's results
   (streamed), a run's results, ``seen`` for 1,000 papers (half seen before, under another
   version) and for one paper, and which of 1,000 papers a destination already had.
3. Memory: child processes open the library and (a) count its papers, (b) stream every result
   to /dev/null; their peak RSS (``getrusage(RUSAGE_CHILDREN)``) shows what streaming costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.models import Annotation, Paper, PaperResult, Usage
from agent.store import Library, Selection, annotations, db, deliveries, papers, runs, seen

WORDS = [
    *["learning", "model", "neural", "graph", "language", "vision", "robust", "sparse"],
    *["attention", "transformer", "diffusion", "policy", "reward", "agent", "benchmark"],
    *["dataset", "efficient", "scalable", "causal", "latent"],
]
EPOCH = dt.datetime(2025, 1, 1, 6, tzinfo=dt.UTC)
TOP = 50  # papers delivered per day

CHILD = """
import sys, datetime as dt
from pathlib import Path
from agent.store import Library, Selection
with Library.open(Path(sys.argv[1])) as lib:
    if sys.argv[2] == "count":
        print(len(lib.papers))
    else:
        every = Selection(since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        with open("/dev/null", "w") as out:
            print(sum(out.write(r.to_line() + "\\n") > 0 for r in lib.results(every)))
"""


def make_paper(i: int, rng: random.Random) -> Paper:
    """Paper ``i``: an arXiv id (or, 1 in 20, only a title), ~1,200 characters of abstract."""
    title = " ".join(rng.choice(WORDS) for _ in range(9)) + f" {i}"
    arxiv = f"{20 + i // 1_200_000}{(i // 100_000) % 12 + 1:02d}.{i % 100_000:05d}"
    return Paper(
        id=f"hf-{i}" if i % 20 == 0 else f"{arxiv}v1",
        title=title,
        abstract=" ".join(rng.choice(WORDS) for _ in range(170)),
        authors=[f"Author {rng.randrange(10**6)}" for _ in range(5)],
        url=None if i % 20 == 0 else f"https://arxiv.org/abs/{arxiv}v1",
        published=(EPOCH + dt.timedelta(days=i // 1000)).isoformat(),
        categories=["cs.LG", "cs.AI"],
        source="hf" if i % 20 == 0 else "arxiv:cs.LG",
    )


def set_clock(when: dt.datetime) -> None:
    """Every timestamp the library writes is ``when`` (plus the real time since)."""
    start = time.monotonic()

    def fake_now() -> str:
        return db.stamp(when + dt.timedelta(seconds=time.monotonic() - start))

    for module in (annotations, deliveries, papers, runs, seen):
        module.now = fake_now  # type: ignore[attr-defined]


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` took."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def build(lib: Library, n: int, per_day: int, rng: random.Random) -> dict[str, list[float]]:
    """Fill the library day by day; the seconds each day's step took."""
    steps: dict[str, list[float]] = {"add": [], "record": [], "mark": [], "deliver": []}
    for day, start in enumerate(range(0, n, per_day)):
        set_clock(EPOCH + dt.timedelta(days=day))
        batch = [make_paper(i, rng) for i in range(start, min(start + per_day, n))]
        results = [
            (
                k,
                p,
                PaperResult.ok(
                    p,
                    Annotation(tags=["LLMs"], summary="S " * 40, usage=Usage(prompt_tokens=900)),
                    "openai",
                    "m",
                ),
            )
            for k, p in enumerate(batch)
        ]
        steps["add"].append(timed(lambda batch=batch: lib.papers.add(batch)))
        run = lib.runs.start("run --source arxiv:cs.LG")
        steps["record"].append(timed(lambda r=run, res=results: lib.runs.record(r, res, "s1")))
        lib.runs.finish(run, "ok", 0)
        steps["mark"].append(timed(lambda batch=batch: lib.seen.mark(batch, "arxiv:cs.LG")))
        digest = lib.deliveries.digest(f"digest-{day}", day=f"day-{day}")
        top = batch[:TOP]  # the day's top papers went to Slack
        steps["deliver"].append(
            timed(lambda t=top, g=digest: lib.deliveries.record(g, "slack", "sha256:x", 0, 1, t))
        )
        if day % 20 == 0:
            print(f"  day {day}: {start + len(batch)} papers", file=sys.stderr)
    return steps


def child_rss(home: Path, what: str) -> tuple[int, float, str]:
    """Peak RSS (KiB) and seconds of a child that opens the library and does ``what``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), what],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    seconds = time.perf_counter() - started
    return max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before), seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--per-day", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(17)
    days = (args.papers + args.per_day - 1) // args.per_day
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        with Library.open(home) as lib:
            started = time.perf_counter()
            steps = build(lib, args.papers, args.per_day, rng)
            total = time.perf_counter() - started
            size = sum(f.stat().st_size for f in home.glob("library.sqlite3*")) / 2**20
            print(f"papers: {len(lib.papers)}  seen: {len(lib.seen)}  runs: {days}")
            print(f"build: {total:.1f} s in all, {size:.0f} MiB on disk")
            for name, secs in steps.items():
                count = TOP if name == "deliver" else args.per_day
                print(
                    f"  {name:7s} median {statistics.median(secs) * 1000:7.1f} ms per day of "
                    f"{count} papers ({count / statistics.median(secs):,.0f} papers/s)"
                )
            probe_days = rng.sample(range(days), min(args.repeat, days))
            rows: dict[str, list[float]] = {}

            def measure(name: str, fn: Callable[[], Any]) -> None:
                rows.setdefault(name, []).append(timed(fn))

            for day in probe_days:
                date = (EPOCH + dt.timedelta(days=day)).date()
                first = day * args.per_day
                asked = [make_paper(i, rng) for i in range(first, first + args.per_day // 2)]
                asked = [p.model_copy(update={"id": p.id.replace("v1", "v2")}) for p in asked]
                asked += [
                    make_paper(args.papers + 10 * day + i, rng) for i in range(args.per_day // 2)
                ]
                measure(
                    "a day's papers (stream)", lambda d=date: sum(1 for _ in lib.papers.on_day(d))
                )
                measure(
                    "a day's results (stream)",
                    lambda d=date: sum(1 for _ in lib.results(Selection(day=d))),
                )
                measure(
                    "a run's results (stream)",
                    lambda r=day + 1: sum(1 for _ in lib.results(Selection(run=r))),
                )
                measure(f"seen() of {len(asked)} papers", lambda a=asked: lib.seen.seen(a))
                measure("seen() of 1 paper", lambda a=asked: lib.seen.seen(a[:1]))
                measure(
                    f"delivered() of {len(asked)} papers",
                    lambda a=asked: lib.deliveries.delivered(["sha256:x", "slack:x"], a),
                )
            print(f"queries (median of {len(probe_days)} random days):")
            for name, secs in rows.items():
                print(f"  {name:28s} {statistics.median(secs) * 1000:8.2f} ms")
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process (it built the library): {self_rss:.0f} MiB")
        count_rss, count_s, count = child_rss(home, "count")
        export_rss, export_s, exported = child_rss(home, "export")
        print(f"child: open + count {count}: peak RSS {count_rss / 1024:.0f} MiB ({count_s:.1f} s)")
        print(
            f"child: open + stream {exported} results to /dev/null: peak RSS "
            f"{export_rss / 1024:.0f} MiB ({export_s:.1f} s)"
        )


if __name__ == "__main__":
    main()
