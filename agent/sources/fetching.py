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
        from agent.sources.files import title_key

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
            # What came back is kept and run; the source still counts as failed (exit 1). The
            # caller says so, once.
            fetched.failures.append(exc)
            fetched.add(exc.papers)
            continue
        except SourceError as exc:
            fetched.failures.append(exc)
            continue
        except Exception as exc:  # an answer no parser foresaw: this source fails, not the run
            log.debug("%s: unreadable answer", source.spec, exc_info=True)
            fetched.failures.append(
                SourceError(
                    f"{source.spec}: unreadable answer ({type(exc).__name__}; -vv shows it)"
                )
            )
            continue
        log.info("%s: %d paper(s)", source.spec, len(papers))
        if papers:
            fetched.add(papers)
        else:
            fetched.quiet.append(source.nothing_new())
    return fetched


@dataclass(frozen=True)
class FetchRequest:
    """What to fetch: the specs, and the window, limit and announce types they share."""

    specs: list[str]
    since: str | None = None
    from_date: dt.date | None = None
    to_date: dt.date | None = None
    max_papers: int = 500
    announce: frozenset[str] | None = None

    def sources(self, settings: Settings) -> list[Source]:
        """Every source, checked before any request (a bad spec or window: ``InputError``)."""
        from agent.sources import parse_source

        try:
            window = Window.parse(self.since, self.from_date, self.to_date)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        options = settings.source_options(window, self.max_papers, self.announce)
        return [parse_source(spec, options) for spec in self.specs]
