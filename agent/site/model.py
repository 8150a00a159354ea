"""A day of the archive as data: the day's papers read from the library, cleaned for display
the way every digest cleans them, grouped by first tag, with each profile's score and top
picks, and the names (anchors, file names) that stay the same from one build to the next."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.digest import build_digest
from agent.digest.model import Entry
from agent.digest.text import one_line
from agent.models import ResultRecord
from agent.store import Library, Selection

# An arXiv key ("2401.00001") is its own anchor; any other key (a normalized title, an
# old-style "hep-th/9901001") is named by a hash of it, so an anchor is always a plain token.
_PLAIN_KEY = re.compile(r"[0-9]{4}\.[0-9]{4,5}")
_SLUG = re.compile(r"[^a-z0-9]+")
TOP = 10  # top picks a day's page shows per profile (a few screens on a phone at most)


@dataclass(frozen=True)
class Score:
    """A paper's relevance (0-10) to one profile, and why, as shown."""

    relevance: float
    why: str

    @property
    def text(self) -> str:
        """``"8.5"``: one decimal always."""
        return f"{self.relevance:.1f}"


@dataclass(frozen=True)
class SitePaper:
    """One paper as the site shows it (text already on one line, the URL already safe)."""

    anchor: str
    title: str
    url: str | None
    authors: str
    tags: list[str]
    summary: str
    error: str | None
    ref: str  # the id a reader may see ("2401.00001"), "" for internal ones
    votes: str
    scores: dict[str, Score]  # by profile


@dataclass(frozen=True)
class TagGroup:
    """The papers whose first tag is ``tag``."""

    tag: str
    papers: list[SitePaper]


@dataclass(frozen=True)
class SiteDay:
    """One UTC day of the library: its papers by first tag, its failures, its top picks."""

    day: dt.date
    papers: list[SitePaper]  # every paper, as the library orders the day
    groups: list[TagGroup]  # largest first
    failures: list[SitePaper]
    top: dict[str, list[SitePaper]]  # by profile, best first

    @property
    def tag_counts(self) -> list[tuple[str, int]]:
        """Every tag with how many of the day's papers carry it (anywhere), most first."""
        counts: dict[str, int] = {}
        for paper in self.papers:
            for tag in paper.tags:
                counts[tag] = counts.get(tag, 0) + 1
        return sorted(counts.items(), key=lambda item: (-item[1], item[0].casefold()))


def anchor(key: str) -> str:
    """The stable HTML id of the paper the library knows by ``key``."""
    if _PLAIN_KEY.fullmatch(key):
        return f"p-{key}"
    return "p-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


@functools.lru_cache(maxsize=4096)
def slug(tag: str) -> str:
    """The stable file and anchor name of a tag: readable, and unique by a short hash (two tags
    may read alike once lowercased and stripped: "C++" and "C")."""
    readable = _SLUG.sub("-", tag.casefold()).strip("-")[:40].strip("-")
    tail = hashlib.sha256(tag.encode("utf-8")).hexdigest()[:6]
    return f"{readable}-{tail}" if readable else tail


def read_day(
    library: Library,
    day: dt.date,
    profiles: Sequence[str] = (),
    scorer: str | None = None,
    top: int = TOP,
) -> SiteDay:
    """The papers first seen on ``day`` with their latest outcome and each profile's score."""
    keyed = list(library.keyed_results(Selection(day=day)))
    keys = [k for k, _ in keyed]
    scores: dict[str, dict[str, Score]] = {k: {} for k in keys}
    for profile in profiles:
        for k, found in library.scores.get(profile, keys, scorer).items():
            scores[k][profile] = Score(found.relevance, one_line(found.why or ""))
    # Papers are grouped and ordered within their tag by the first profile's relevance, as the
    # digest does it; the other profiles order only their own top picks.
    first = profiles[0] if profiles else None
    records: list[ResultRecord] = []
    key_of: dict[int, str] = {}
    for k, record in keyed:
        score = scores[k].get(first) if first else None
        if score is not None:
            record = record.model_copy(update={"relevance": score.relevance, "why": score.why})
        records.append(record)
        key_of[id(record)] = k
    digest = build_digest(records, group_order="size", date=day, top=0)

    def paper(entry: Entry) -> SitePaper:
        k = key_of[id(entry.result)]
        return SitePaper(
            anchor=anchor(k),
            title=entry.title,
            url=entry.url,
            authors=entry.authors,
            tags=entry.tags,
            summary=entry.summary,
            error=entry.error,
            ref=entry.ref,
            votes=entry.votes,
            scores=scores[k],
        )

    groups = [TagGroup(g.tag, [paper(e) for e in g.entries]) for g in digest.groups]
    failures = [paper(e) for e in digest.failures]
    grouped = [p for g in groups for p in g.papers]
    shown = {p.anchor: p for p in [*grouped, *failures]}
    in_order = [shown[anchor(k)] for k in keys if anchor(k) in shown]
    picks: dict[str, list[SitePaper]] = {}
    for profile in profiles:
        scored = [p for p in in_order if p.error is None and profile in p.scores]
        # sorted() is stable: ties keep the day's order.
        scored.sort(key=lambda p, name=profile: -p.scores[name].relevance)
        picks[profile] = scored[:top]
    return SiteDay(day, in_order, groups, failures, picks)
