"""Time and size of the archive site (a benchmark, not a test).

    python benchmarks/bench_site.py                 # 1, 30 and 365 days of 200 papers
    python benchmarks/bench_site.py --days 1 30 --repeat 5 --no-browser

1. Libraries of 1, 30 and 365 days of 200 papers each, filled as daily runs fill them (each
   day's run recorded at that day's time, then scored for two profiles). The papers are the 425
   real ones of examples/arxiv-categories-dev.jsonl, tagged and summarized once by the offline
   backend (bundled taxonomy), in turn, each with an arXiv id of its own.
2. ``paper-agent site -o DIR`` as a fresh process on each, into a new folder: the median wall
   time of ``--repeat`` builds, the site's files, bytes, and bytes once gzipped (what a host
   such as GitHub Pages sends).
3. At the largest size, the daily update: a copy of the library and of its site gain one more
   day, then ``paper-agent site`` runs again (median of ``--repeat``, each on a fresh copy);
   the files it wrote.
4. Page weight: the newest day's page, the front page, CSS + script, the search index.
5. In Debian's Chromium (headless, through Playwright), the front page of the largest site
   served from 127.0.0.1: first contentful paint (median of ``--repeat`` fresh loads), and the
   time from typing a search to its full count, every shard loaded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.backends.local import LocalBackend  # noqa: E402
from agent.models import Annotation, Paper  # noqa: E402
from agent.store import Library  # noqa: E402
from agent.taxonomy import load_taxonomy  # noqa: E402
from tests.site_data import day_papers, record_day  # noqa: E402

PER_DAY = 200
DATA = ROOT / "examples" / "arxiv-categories-dev.jsonl"


def source() -> tuple[list[dict[str, object]], dict[str, Annotation]]:
    """The real papers, and the offline backend's tags and summary for each (by title)."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]
    backend = LocalBackend(load_taxonomy(None))
    notes = {}
    for row in rows:
        paper = Paper(id=str(row["id"]), title=str(row["title"]), abstract=str(row["abstract"]))
        notes[paper.title] = backend.annotate_sync(paper)
    return rows, notes


def fill(home: Path, days: int, first: dt.date, rows, notes, offset: int = 0) -> None:
    """``days`` days of PER_DAY papers from ``first`` on, each day's run at that day's time."""
    with Library.open(home) as lib:
        for number in range(offset, offset + days):
            day = first + dt.timedelta(days=number)
            when = dt.datetime.combine(day, dt.time(6, 30), dt.UTC)
            papers = day_papers(number, PER_DAY, rows)
            record_day(lib, when, papers, annotate=lambda p: notes[p.title])


def site(home: Path, out: Path) -> tuple[float, str]:
    """``paper-agent site -o out`` as a fresh process: seconds, and what it printed."""
    env = {**os.environ, "PAPER_AGENT_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "agent", "site", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, done.stdout.strip()


def sizes(files: Iterable[Path]) -> tuple[int, int, int]:
    """Files, bytes, gzipped bytes."""
    count = raw = packed = 0
    for path in files:
        data = path.read_bytes()
        count, raw, packed = count + 1, raw + len(data), packed + len(gzip.compress(data, 6))
    return count, raw, packed


def site_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 10 * 2**20 else f"{n / 2**20:,.1f} MiB"


# The first contentful paint, once the browser has recorded it.
PAINT = """() => new Promise((resolve) => new PerformanceObserver((list) => {
    const entry = list.getEntriesByName('first-contentful-paint')[0];
    if (entry) resolve(entry.startTime);
}).observe({type: 'paint', buffered: true}))"""


def browser_times(out: Path, repeat: int) -> tuple[float, float, str]:
    """Median first contentful paint of the front page, and the time to a search's full
    count, in ms; and the count's line."""
    from playwright.sync_api import expect

    from tests.browser import chromium, serve

    paints = []
    with serve(out) as base, chromium() as browser:
        for _ in range(repeat):
            context = browser.new_context()
            page = context.new_page()
            page.goto(base + "index.html", wait_until="load")
            paint = page.evaluate(PAINT)
            paints.append(paint)
            context.close()
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "index.html")
        started = time.perf_counter()
        page.get_by_role("searchbox").fill("learning")
        status = page.locator("[data-status]")
        expect(status).to_have_text(re.compile(r"match(es)?\.$"), timeout=120_000)
        search = (time.perf_counter() - started) * 1000
        line = status.inner_text()
        context.close()
    return statistics.median(paints), search, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 30, 365])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    rows, notes = source()
    print(f"data: {len(rows)} papers of {DATA.name}, annotated offline", file=sys.stderr)
    table = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        largest = max(args.days)
        # The days end yesterday: no day of the library is later than the build.
        first = dt.date.today() - dt.timedelta(days=largest + 2)
        for days in sorted(args.days):
            home = work / f"home-{days}"
            started = time.perf_counter()
            fill(home, days, first, rows, notes)
            print(f"{days} days filled in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            times = []
            for attempt in range(args.repeat):
                out = work / f"site-{days}-{attempt}"
                seconds, said = site(home, out)
                times.append(seconds)
            count, raw, packed = sizes(site_files(out))
            table.append((days, statistics.median(times), min(times), count, raw, packed))
            print(f"  {said}", file=sys.stderr)
        keep = work / f"site-{largest}-0"
        home = work / f"home-{largest}"

        # The daily update: one more day, on a fresh copy each time.
        updates, written = [], ""
        for attempt in range(args.repeat):
            copy_home, copy_out = work / f"uh-{attempt}", work / f"uo-{attempt}"
            shutil.copytree(home, copy_home)
            shutil.copytree(keep, copy_out)
            fill(copy_home, 1, first, rows, notes, offset=largest)
            seconds, said = site(copy_home, copy_out)
            updates.append(seconds)
            written = said

        print()
        print(
            f"| days x {PER_DAY} papers | build (median of {args.repeat}) | files | size "
            "| gzipped |"
        )
        print("|---|---|---|---|---|")
        for days, median, _, count, raw, packed in table:
            print(f"| {days} | {median:.1f} s | {count} | {kib(raw)} | {kib(packed)} |")
        what = re.search(r"\((.*?)\)", written)
        print(
            f"| {largest} + 1 (daily update) | {statistics.median(updates):.2f} s | "
            f"{what[1] if what else written} | | |"
        )
        print()
        newest = sorted((keep / "days").glob("*.html"))[-1]
        weights = [
            ("a day's page (newest)", [newest]),
            ("the front page", [keep / "index.html"]),
            ("CSS + script", [keep / "assets/site.css", keep / "assets/site.js"]),
            ("search index (all shards)", sorted((keep / "search").glob("*.json"))),
            ("feed.xml", [keep / "feed.xml"]),
            ("largest tag page", [max((keep / "tags").glob("*.html"), key=os.path.getsize)]),
        ]
        print(f"| page weight at {largest} days | bytes | gzipped |")
        print("|---|---|---|")
        for name, files in weights:
            _, raw, packed = sizes(files)
            print(f"| {name} | {kib(raw)} | {kib(packed)} |")
        if not args.no_browser:
            paint, search, line = browser_times(keep, args.repeat)
            print()
            print(
                f"front page at {largest} days, headless Chromium: first contentful paint "
                f"{paint:.0f} ms (median of {args.repeat}); a search for 'learning' to its "
                f"full count: {search:.0f} ms ({line})"
            )


if __name__ == "__main__":
    main()
