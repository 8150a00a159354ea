"""A library filled day by day, as daily runs fill it, for the archive site's tests and its
benchmark: each day's papers recorded by a run at that day's time, then scored per profile."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import time_machine

from agent.models import Annotation, Paper, PaperResult, Usage
from agent.store import Library

FIXTURES = Path(__file__).parent / "fixtures"
START = dt.date(2025, 3, 1)
PROFILES = ("ml", "nlp")
WHY = ("matches 'efficient training'", "like a paper you liked", "matches 'language models'")
# arXiv categories of the sample as the tags a taxonomy would give.
TAGS = {
    "cs.CL": "Language",
    "cs.CV": "Vision",
    "cs.LG": "Learning",
    "cs.AI": "Agents",
    "stat.ML": "Statistics",
    "cs.RO": "Robotics",
}

Annotate = Callable[[Paper], Annotation]
_FIRST = ("Ana", "Bo", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi")
_LAST = ("Silva", "Novak", "Wang", "Okafor", "Berg", "Haddad", "Ito", "Moreau", "Kaur", "Lund")


def _name(n: int) -> str:
    """A made-up author's name, the same for the same ``n``."""
    return f"{_FIRST[n % len(_FIRST)]} {_LAST[n // len(_FIRST) % len(_LAST)]}"


def sample_papers() -> list[dict[str, object]]:
    """The arXiv sample of the test fixtures (30 real papers with their categories)."""
    lines = (FIXTURES / "arxiv-sample.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def simple_annotation(paper: Paper) -> Annotation:
    """Tags from the categories, the abstract's first sentence as the summary."""
    tags = [TAGS.get(c, "Other") for c in paper.categories] or ["Other"]
    first = paper.abstract.split(". ")[0].strip()
    return Annotation(
        tags=list(dict.fromkeys(tags)),
        summary=" ".join(first.split()[:40]).rstrip(".") + ".",
        usage=Usage(),
    )


def relevance(paper_id: str, profile: str) -> float:
    """A score that looks random but is the same on every build: 0.0 to 10.0."""
    digest = hashlib.sha256(f"{paper_id}/{profile}".encode()).digest()
    return int.from_bytes(digest[:2], "big") % 101 / 10


def day_papers(
    day_number: int, per_day: int, source: Sequence[dict[str, object]], first_id: int = 0
) -> list[Paper]:
    """``per_day`` papers for one day: the sample's, in turn, each with an arXiv id of its own."""
    papers = []
    for i in range(per_day):
        n = first_id + day_number * per_day + i
        base = source[n % len(source)]
        arxiv = f"26{n // 100_000 % 12 + 1:02d}.{n % 100_000:05d}"
        papers.append(
            Paper(
                id=arxiv,
                title=str(base["title"]),
                abstract=str(base["abstract"]),
                authors=[_name(n), _name(n * 7 + 3), _name(n * 13 + 5)][: 1 + n % 3],
                url=f"https://arxiv.org/abs/{arxiv}",
                categories=list(base.get("tags") or base.get("categories") or []),  # type: ignore[call-overload]
                source="arxiv",
            )
        )
    return papers


def record_day(
    lib: Library,
    when: dt.datetime,
    papers: Sequence[Paper],
    *,
    annotate: Annotate = simple_annotation,
    profiles: Sequence[str] = PROFILES,
    failed: Sequence[int] = (),
) -> list[str]:
    """One daily run at ``when``: the papers recorded (those at ``failed`` positions as
    errors), then scored for each profile. Returns the papers' library keys."""
    with time_machine.travel(when, tick=True):
        keys = lib.papers.add(papers)
        run = lib.runs.start("run --source arxiv")
        outcomes = []
        for position, paper in enumerate(papers):
            if position in failed:
                result = PaperResult.failed(
                    paper, "invalid_output", "no valid answer", "local", "local-v1"
                )
            else:
                result = PaperResult.ok(paper, annotate(paper), "local", "local-v1")
            outcomes.append((position, paper, result))
        lib.runs.record(run, outcomes, "settings-1")
        lib.runs.finish(run, "ok", 0)
        for profile in profiles:
            lib.scores.record(
                profile,
                "fused",
                [
                    (k, relevance(p.id, profile), WHY[i % len(WHY)])
                    for i, (k, p) in enumerate(zip(keys, papers, strict=True))
                    if i not in failed
                ],
            )
    return keys


def fill(
    home: Path,
    days: int,
    per_day: int,
    *,
    start: dt.date = START,
    annotate: Annotate = simple_annotation,
    profiles: Sequence[str] = PROFILES,
    source: Sequence[dict[str, object]] | None = None,
) -> list[dt.date]:
    """A library in ``home`` with ``days`` days of ``per_day`` papers from ``start`` on."""
    source = source or sample_papers()
    filled = []
    with Library.open(home) as lib:
        for number in range(days):
            day = start + dt.timedelta(days=number)
            when = dt.datetime.combine(day, dt.time(6, 30), dt.UTC)
            record_day(
                lib,
                when,
                day_papers(number, per_day, source),
                annotate=annotate,
                profiles=profiles,
            )
            filled.append(day)
    return filled
