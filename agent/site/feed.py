"""The site's Atom feed (feedgen): one entry per day, newest first, with the day's counts and
top picks, so any feed reader follows the archive."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from feedgen.feed import FeedGenerator

from agent import __version__
from agent.site.pages import long_date, render

FEED = "feed.xml"
ENTRIES = 30  # the newest days a feed carries


def _when(stamp: str | None, day: str) -> dt.datetime:
    if stamp:
        return dt.datetime.fromisoformat(stamp)
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def atom(
    days: Sequence[tuple[str, dict[str, Any]]],
    *,
    base_url: str | None,
    site_title: str,
    profiles: Sequence[str],
    changed: Callable[[str], str | None],
) -> str:
    """The feed of ``days`` (newest first, each with its summary); an entry is updated when
    its day's page last changed. Links are absolute with ``base_url``, else relative."""
    root = base_url or ""
    feed = FeedGenerator()
    # Without a public URL the ids are still stable and unique to the day.
    feed.id(root + "index.html" if base_url else "urn:paper-agent:site")
    feed.title(site_title)
    feed.link(href=root + "index.html", rel="alternate")
    if base_url:
        feed.link(href=root + FEED, rel="self")
    feed.generator("paper-agent", version=__version__)
    newest: dt.datetime | None = None
    for day, summary in days[:ENTRIES]:
        page = f"days/{day}.html"
        when = _when(changed(page), day)
        newest = when if newest is None or when > newest else newest
        entry = feed.add_entry(order="append")
        entry.id(root + page if base_url else f"urn:paper-agent:day:{day}")
        entry.title(f"Papers of {long_date(day)}: {summary['papers']} papers")
        entry.link(href=root + page, rel="alternate")
        entry.updated(when)
        content = render(
            "feed_entry.html.j2",
            summary=summary,
            day=day,
            page=root + page,
            several=len(profiles) > 1,
        )
        entry.content(content, type="html")
    feed.updated(newest or dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    return feed.atom_str(pretty=True).decode("utf-8")
