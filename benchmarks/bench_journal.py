"""The delivery journal at scale: DAYS days of a heavy cron job (2,000 papers a day in --full
messages of 25) in the library, then what one more day costs: the plan's reads (which of the
day's 2,000 papers the destination has, the digests it may resume) and each message's record.

    python benchmarks/bench_journal.py                 # 90 days, 5 rounds
    python benchmarks/bench_journal.py --days 365 --repeat 9

Prints the library's size and the median time of one plan's reads and of one record(). Never
reaches the network; works in a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agent.delivery.journal import DeliveryLog, Destination, paper_key
from agent.models import PaperResult

PAPERS_A_DAY = 2000
PER_MESSAGE = 25


def result(day: int, n: int) -> PaperResult:
    """Paper ``n`` of ``day``, annotated."""
    pid = f"{2000 + day // 28:04d}.{day % 28 * PAPERS_A_DAY + n:05d}"
    return PaperResult(id=pid, title=f"Paper {pid}", backend="local", summary="S.", tags=["a"])


def fill(journal: DeliveryLog, destination: Destination, days: int) -> None:
    """``days`` days of deliveries, each message recorded as a post records it."""
    total = PAPERS_A_DAY // PER_MESSAGE
    for day in range(days):
        papers = [result(day, n) for n in range(PAPERS_A_DAY)]
        for index in range(total):
            carried = papers[index * PER_MESSAGE : (index + 1) * PER_MESSAGE]
            journal.record(destination, f"{day:024d}", f"day-{day}", index, total, carried)
        if day % 30 == 0:
            print(f"  day {day}", file=sys.stderr)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    destination = Destination("slack", "slack:0123456789abcdef", "Slack", "Slack")
    reads, records = [], []
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        with DeliveryLog(home) as journal:
            started = time.perf_counter()
            fill(journal, destination, args.days)
            filled = time.perf_counter() - started
            for round_ in range(args.repeat):
                # Tomorrow: half of yesterday's papers again (an overlapping window), half new.
                today = [result(args.days - 1, n) for n in range(PAPERS_A_DAY // 2)]
                today += [result(args.days + round_, n) for n in range(PAPERS_A_DAY // 2)]
                started = time.perf_counter()
                had = journal.delivered(destination, today)
                journal.unfinished(destination)
                journal.of_digest(destination, "f" * 24)
                reads.append(time.perf_counter() - started)
                assert len(had) == PAPERS_A_DAY // 2, len(had)
                fresh = [r for r in today if paper_key(r) not in had][:PER_MESSAGE]
                started = time.perf_counter()
                journal.record(destination, "f" * 24, "today", round_, 80, fresh)
                records.append(time.perf_counter() - started)
        size = sum(f.stat().st_size for f in home.glob("library.sqlite3*"))
    count = args.days * PAPERS_A_DAY
    print(f"journal: {count:,} delivered papers, library {size / 2**20:.0f} MiB ({filled:.0f} s)")
    print(f"a plan's reads (once per delivery):  median {statistics.median(reads) * 1000:.0f} ms")
    print(f"record (once per message):           median {statistics.median(records) * 1000:.1f} ms")
    per_day = PAPERS_A_DAY // PER_MESSAGE * statistics.median(records)
    print(f"a day of {PAPERS_A_DAY // PER_MESSAGE} messages: {per_day:.2f} s of journal writes")


if __name__ == "__main__":
    main()
