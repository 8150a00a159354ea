"""The site's Atom feed (feedgen): one entry per day, newest first, with the day's counts and
top picks, so any feed reader follows the archive."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any

from feedgen.feed import FeedGenerator

from agent import __version__
from agent.site.pages import long_date, render

FEED = "feed.xml"
ENTRIES = 30  # the newest days a feed carries
# What XML 1.0 cannot hold at all, escaped or not (U+FFFE, U+FFFF, C0 controls...): a title
# holding one would stop the feed being written, so it is dropped from the feed's text.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters no XML document may contain."""
    return _NOT_XML.sub("", text)


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
    feed.title(xml_text(site_title))
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
        entry.title(xml_text(f"Papers of {long_date(day)}: {summary['papers']} papers"))
        entry.link(href=root + page, rel="alternate")
        entry.updated(when)
        content = render(
            "feed_entry.html.j2",
            summary=summary,
            day=day,
            page=root + page,
            several=len(profiles) > 1,
        )
        entry.content(xml_text(content), type="html")
    feed.updated(newest or dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    return feed.atom_str(pretty=True).decode("utf-8")
