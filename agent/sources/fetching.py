"""Fetch from several sources at once: each one's papers, or why it failed, or that it was quiet."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from agent.errors import InputError
from agent.models import Paper
from agent.sources.base import Source, SourceError, SourceIncomplete, Window

if TYPE_CHECKING:
    from agent.config import Settings

log = logging.getLogger(__name__)


@dataclass
class Fetched:
    """What a fetch brought: papers in source order, without repeats across sources."""

    papers: list[Paper] = field(default_factory=list)
    failures: list[SourceError] = field(default_factory=list)
    quiet: list[str] = field(default_factory=list)  # one line per source that had nothing
    repeats: int = 0  # papers more than one source gave

    def error(self, sources: int) -> SourceError | None:
        """The failures as one error: exit 2 when every source failed, 1 when others worked."""
        if not self.failures:
            return None
        error = SourceError("; ".join(str(f) for f in self.failures))
        if len(self.failures) < sources or self.papers:
            error.exit_code = 1  # papers came (from others, or part of this one): they ran
        return error

    def add(self, papers: list[Paper]) -> None:
        """Append ``papers``, keeping the first of any paper already fetched: the same id, or
        the same title (a source that gives no arXiv id)."""
        from agent.sources.seen import title_key

        known = {p.id for p in self.papers} | {title_key(p.title) for p in self.papers}
        for paper in papers:
            title = title_key(paper.title)
            if paper.id in known or (title is not None and title in known):
                self.repeats += 1
                continue
            known |= {paper.id, title}
            self.papers.append(paper)


async def fetch_sources(sources: list[Source], http: httpx.AsyncClient) -> Fetched:
    """Each source in turn (arXiv wants one request at a time); a failing source does not
    stop the others."""
    fetched = Fetched()
    for source in sources:
        try:
            papers = await source.fetch(http)
        except SourceIncomplete as exc:
            # What came back is kept and run; the source still counts as failed (exit 1).
            log.warning("%s", exc)
            fetched.failures.append(exc)
            fetched.add(exc.papers)
            continue
        except SourceError as exc:
            log.warning("%s", exc)
            fetched.failures.append(exc)
            continue
        log.info("%s: %d paper(s)", source.spec, len(papers))
        if papers:
            fetched.add(papers)
        else:
            fetched.quiet.append(source.nothing_new())
    return fetched


def fetch_papers(
    specs: list[str],
    settings: Settings,
    *,
    since: str | None,
    from_date: dt.date | None,
    to_date: dt.date | None,
    max_papers: int,
    announce: frozenset[str] | None,
) -> Fetched:
    """Check every spec (no request before all are valid), then fetch them in turn."""
    from agent.http import make_client
    from agent.runner import run_job
    from agent.sources import parse_source

    try:
        window = Window.parse(since, from_date, to_date)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    options = settings.source_options(window, max_papers, announce)
    sources = [parse_source(spec, options) for spec in specs]

    async def go() -> Fetched:
        async with make_client(settings.timeout) as http:
            return await fetch_sources(sources, http)

    return run_job(go())
