"""The delivery journal at its largest: 90 days of a heavy cron job (2,000 papers a day in
--full messages of 25), then what one more day costs: the plan's read and each message's record.

    python benchmarks/bench_journal.py            # 5 rounds
    python benchmarks/bench_journal.py --repeat 9

Prints the file size and the median time of one read (deliveries()) and of one record(). Never
reaches the network; works in a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from agent.delivery.journal import KEEP_DAYS, Delivery, DeliveryLog, Destination

PAPERS_A_DAY = 2000
PER_MESSAGE = 25


def fill(journal: DeliveryLog, destination: Destination) -> None:
    """KEEP_DAYS days of records, written at once (as the pruning keeps them)."""
    now = dt.datetime.now(dt.UTC)
    records = []
    for day in range(KEEP_DAYS - 1, 0, -1):
        at = (now - dt.timedelta(days=day)).isoformat()
        total = PAPERS_A_DAY // PER_MESSAGE
        for index in range(total):
            first = day * PAPERS_A_DAY + index * PER_MESSAGE
            papers = tuple(f"26{day:02d}.{n:05d}" for n in range(first, first + PER_MESSAGE))
            records.append(
                Delivery(f"{day:024d}", "slack", destination.id, index, total, papers, at)
            )
    journal._write(records)  # one write, where 7,000 record() calls would take an hour


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    destination = Destination("slack", "slack:0123456789abcdef", "Slack", "Slack")
    reads, records = [], []
    with tempfile.TemporaryDirectory() as home:
        journal = DeliveryLog(Path(home) / "deliveries.json")
        for round_ in range(args.repeat):
            fill(journal, destination)
            started = time.perf_counter()
            journal.deliveries(destination)
            reads.append(time.perf_counter() - started)
            papers = tuple(f"new.{round_}.{n:05d}" for n in range(PER_MESSAGE))
            now = dt.datetime.now(dt.UTC).isoformat()
            record = Delivery("f" * 24, "slack", destination.id, 0, 80, papers, now)
            started = time.perf_counter()
            journal.record(record)
            records.append(time.perf_counter() - started)
        size = journal.path.stat().st_size
    count = (KEEP_DAYS - 1) * PAPERS_A_DAY
    print(f"journal: {count:,} papers in {size / 1e6:.1f} MB")
    print(f"read (once per delivery):   median {statistics.median(reads) * 1000:.0f} ms")
    print(f"record (once per message):  median {statistics.median(records) * 1000:.0f} ms")
    per_day = PAPERS_A_DAY // PER_MESSAGE * statistics.median(records)
    print(f"a day of {PAPERS_A_DAY // PER_MESSAGE} messages: {per_day:.1f} s of journal writes")


if __name__ == "__main__":
    main()
