"""Day pages made from the library: one day read and rendered (page, search rows, summary), and
many days at once across processes when a build reads a whole archive (a year of days is CPU
work: reading, cleaning and rendering 73,000 papers)."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.site import pages, search
from agent.site.model import SiteDay, read_day
from agent.store import Library

SUMMARY_PICKS = 5  # top picks per profile a day's summary keeps (the feed shows them)
PARALLEL_FROM = 40  # days to read past which worker processes pay for their start
MAX_WORKERS = 8


@dataclass(frozen=True)
class DayJob:
    """What making one day's page needs besides the library."""

    day: str  # "2026-03-01"
    before: str | None  # the site's day before it, for the page's links
    after: str | None
    profiles: tuple[str, ...]
    scorer: str | None
    title: str
    base: str | None  # the site's public URL, for the canonical link

    @property
    def page(self) -> str:
        """The page's path in the site."""
        return f"days/{self.day}.html"


@dataclass(frozen=True)
class DayResult:
    """One day made: its page, its search rows, its summary for the manifest."""

    day: str
    page: str
    rows: list[search.Row]
    summary: dict[str, Any]


def make_day(library: Library, job: DayJob) -> DayResult:
    """Read one day from the library and render it."""
    day = read_day(library, dt.date.fromisoformat(job.day), job.profiles, job.scorer)
    page = pages.day_page(
        day,
        prev=dt.date.fromisoformat(job.before) if job.before else None,
        next=dt.date.fromisoformat(job.after) if job.after else None,
        profiles=job.profiles,
        site_title=job.title,
        canonical=job.base + job.page if job.base else None,
    )
    return DayResult(
        job.day, page, search.rows(day, job.profiles), summary(day, job.before, job.after)
    )


def make_days(library: Library, jobs: Sequence[DayJob]) -> Iterator[DayResult]:
    """Every job's day, in order: here for a few, in worker processes (each with the library
    open on its own connection) for many."""
    workers = min(_cpus(), MAX_WORKERS, len(jobs) // (PARALLEL_FROM // 2) or 1)
    # Forked workers only (Linux): a spawned one would run the caller's main script again,
    # side effects and all, where it lacks an ``if __name__ == "__main__"`` guard. A forked
    # worker opens the library anew and never touches the connection it inherited (SQLite's
    # rule), and it ends with os._exit, which closes nothing of the parent's. Never from a
    # process with other threads (a run's): one may hold a lock the fork would copy held.
    alone = threading.active_count() == 1
    if len(jobs) < PARALLEL_FROM or workers < 2 or sys.platform != "linux" or not alone:
        yield from (make_day(library, job) for job in jobs)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_open, initargs=(library.home,)
    ) as pool:
        yield from pool.map(_make, jobs, chunksize=4)


def summary(day: SiteDay, before: str | None, after: str | None) -> dict[str, Any]:
    """What the front page, the tag pages and the feed need of a day, kept in the manifest."""
    return {
        "papers": len(day.papers),
        "failed": len(day.failures),
        "tags": [[tag, count] for tag, count in day.tag_counts],
        "top": {
            profile: [
                [p.anchor, p.title, p.scores[profile].relevance, p.scores[profile].why]
                for p in picks[:SUMMARY_PICKS]
            ]
            for profile, picks in day.top.items()
        },
        "prev": before,
        "next": after,
    }


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_library: Library | None = None  # a worker's own, opened once


def _open(home: Path) -> None:
    global _library
    _library = Library.open(home)


def _make(job: DayJob) -> DayResult:
    assert _library is not None
    return make_day(_library, job)
