"""The site's pages from its templates: Jinja with autoescape and StrictUndefined, so every
title, summary and name from the library is text, never markup."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from agent.digest.text import plural
from agent.site.model import SiteDay, slug

ASSETS = ("site.css", "site.js")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    *("January", "February", "March", "April", "May", "June", "July", "August"),
    *("September", "October", "November", "December"),
)


def long_date(day: dt.date | str) -> str:
    """``"Sunday 1 March 2026"`` (English whatever the locale: the pages are in English)."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def month_name(day: dt.date | str) -> str:
    """``"March 2026"``."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return f"{_MONTHS[day.month - 1]} {day.year}"


@dataclass(frozen=True)
class Pick:
    """A day's top paper for one profile, as the front page lists it."""

    anchor: str
    title: str
    rel: str


@dataclass(frozen=True)
class DayRow:
    """One day on the front page."""

    day: str
    label: str
    papers: int
    tags: list[tuple[str, int]]
    top: list[tuple[str, Pick]]


@dataclass(frozen=True)
class TitleRow:
    """One paper on a tag page: its title, authors and scores, linked to its day."""

    anchor: str
    title: str
    authors: str
    scores: list[tuple[str, float]]


@dataclass(frozen=True)
class TagDay:
    """One of the newest days on a tag page, with the tag's papers of that day."""

    day: str
    label: str
    rows: list[TitleRow]


def _by_month(rows: Iterable[DayRow]) -> Iterator[tuple[str, list[DayRow]]]:
    current: str | None = None
    batch: list[DayRow] = []
    for row in rows:
        month = month_name(row.day)
        if month != current and batch:
            assert current is not None
            yield current, batch
            batch = []
        current = month
        batch.append(row)
    if batch and current is not None:
        yield current, batch


@cache
def environment() -> Environment:
    """The site's Jinja environment: autoescaped, strict, with its few filters."""
    env = Environment(
        loader=PackageLoader("agent.site", "templates"),
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(slug=slug, long_date=long_date, plural=plural, groupby_month=_by_month)
    return env


def render(template: str, **context: Any) -> str:
    """Render one of the site's templates."""
    return environment().get_template(template).render(**context)


def asset(name: str) -> str:
    """The text of a shipped asset (CSS, script)."""
    return resources.files("agent.site").joinpath("assets", name).read_text(encoding="utf-8")


@cache
def version() -> str:
    """A hash of every template and asset: a site built by other ones is built again whole."""
    digest = hashlib.sha256()
    for folder in ("templates", "assets"):
        for item in sorted(resources.files("agent.site").joinpath(folder).iterdir(), key=str):
            if item.is_file():
                digest.update(item.name.encode() + b"\0" + item.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def day_page(
    day: SiteDay,
    *,
    prev: dt.date | None,
    next: dt.date | None,
    profiles: Sequence[str],
    site_title: str,
    canonical: str | None,
) -> str:
    """The page of one day."""
    sections = [(f"tag-{slug(g.tag)}", g.tag, g.papers) for g in day.groups]
    if day.failures:
        sections.append(("failed", "Failed", day.failures))
    return render(
        "day.html.j2",
        day=day,
        sections=sections,
        prev=prev,
        next=next,
        tags=sorted((t for t, _ in day.tag_counts), key=str.casefold),
        profiles=list(profiles),
        several=len(profiles) > 1,
        root="../",
        page="day",
        site_title=site_title,
        canonical=canonical,
    )
