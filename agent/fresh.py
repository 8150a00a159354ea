"""What is new today: fetch the sources, drop the papers seen in earlier runs, and mark papers
seen only once their results are written (a failed or interrupted run never hides a paper)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.config import Settings
from agent.errors import PaperAgentError
from agent.models import Paper
from agent.sources.fetching import Fetched, FetchRequest

log = logging.getLogger(__name__)


@dataclass
class Fresh:
    """The new papers of a fetch, and what to tell the user about the rest."""

    papers: list[Paper]
    fetched: Fetched
    sources: int
    seen_before: list[Paper] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per quiet source, and how many papers earlier runs already had."""
        lines = list(self.fetched.quiet)
        if self.seen_before:
            lines.append(
                f"{len(self.seen_before)} of {len(self.fetched.papers)} fetched paper(s) were "
                "annotated in an earlier run (--include-seen runs them again)"
            )
        return lines

    def nothing_new(self) -> str:
        """The one line of a day with no new paper."""
        if self.fetched.papers:
            return "no new papers: every fetched paper was annotated in an earlier run"
        return "; ".join(self.fetched.quiet) or "no new papers"

    def error(self) -> PaperAgentError | None:
        """The sources that failed, as one error (exit 2 if all did, else 1)."""
        return self.fetched.error(self.sources)

    def mark_seen(self, done: Iterable[str], settings: Settings) -> bool:
        """Mark the papers whose results were written without error (ids in ``done``); False
        (with a warning) when the library cannot take them: the run's work stands."""
        finished = set(done)
        papers = [p for p in self.papers if p.id in finished]
        if not papers:
            return True
        from agent.store import Library

        try:
            with Library.open(settings.home) as library:
                for source in dict.fromkeys(p.source for p in papers):
                    library.seen.mark([p for p in papers if p.source == source], source=source)
        except PaperAgentError as exc:
            log.warning("could not mark papers as seen (%s): the next run may repeat them", exc)
            return False
        log.info("marked %d paper(s) as seen", len(papers))
        return True


def fetch_now(request: FetchRequest, settings: Settings) -> Fetched:
    """Fetch ``request`` on a client of its own, with SIGTERM handled as for a run."""
    from agent.llm.http import make_client
    from agent.runner import run_job
    from agent.sources.fetching import fetch_sources

    sources = request.sources(settings)  # every spec checked before any request

    async def go() -> Fetched:
        async with make_client(settings.timeout) as http:
            return await fetch_sources(sources, http)

    return run_job(go())


def fresh_papers(request: FetchRequest, settings: Settings, *, include_seen: bool) -> Fresh:
    """Fetch ``request`` and keep what no earlier run annotated (all with ``include_seen``)."""
    fetched = fetch_now(request, settings)
    fresh = Fresh(list(fetched.papers), fetched, len(request.specs))
    if include_seen or not fetched.papers:
        return fresh
    from agent.store import Library

    with Library.open(settings.home) as library:
        seen = library.seen.seen(fetched.papers)
    fresh.papers = [p for p in fetched.papers if p.id not in seen]
    fresh.seen_before = [p for p in fetched.papers if p.id in seen]
    return fresh
