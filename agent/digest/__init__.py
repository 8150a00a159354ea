"""Digests: results grouped by tag and rendered for Slack, Markdown, HTML email or JSON."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from agent.digest.model import (
    DEFAULT_TITLE,
    Digest,
    GroupOrder,
    build_digest,
    load_results,
    parse_results,
)
from agent.digest.rank import DEFAULT_TOP, SORTS, Sort
from agent.digest.render import render_json, render_template
from agent.digest.slack import (
    SlackLimits,
    SlackPost,
    build_slack_message,
    build_slack_messages,
    slack_messages,
    slack_posts,
)
from agent.models import PaperResult

FORMATS = ("slack", "mrkdwn", "markdown", "html", "json")

__all__ = [
    "DEFAULT_TOP",
    "FORMATS",
    "SORTS",
    "Digest",
    "SlackLimits",
    "SlackPost",
    "Sort",
    "build_digest",
    "build_slack_message",
    "build_slack_messages",
    "load_results",
    "make_digest",
    "parse_results",
    "render",
    "render_digest",
    "slack_messages",
    "slack_posts",
]


def make_digest(
    results: Sequence[PaperResult],
    *,
    group_order: GroupOrder = "taxonomy",
    taxonomy: str | Path | None = None,
    date: dt.date | None = None,
    title: str = DEFAULT_TITLE,
    sort: Sort | None = None,
    top: int | None = None,
    min_relevance: float | None = None,
) -> Digest:
    """Build a Digest, ordering groups by the taxonomy file (the bundled one when None)."""
    from agent.taxonomy import load_taxonomy

    loaded = load_taxonomy(taxonomy)
    return build_digest(
        results,
        tag_order=loaded.names,
        group_order=group_order,
        date=date,
        title=title,
        # Taxonomy.fallback arrives with issue 9's fallback tag; older taxonomies have none.
        fallback=getattr(loaded, "fallback", None),
        sort=sort,
        top=top,
        min_relevance=min_relevance,
    )


def render(digest: Digest, fmt: str, *, full: bool = False, more_url: str | None = None) -> str:
    """Render a built Digest as ``fmt`` (one of FORMATS, or ``text`` for plain text).

    ``full`` and ``more_url`` shape Slack only: every paper in numbered messages, or one
    screen with a link to the full digest.
    """
    if fmt == "json":
        return render_json(digest)
    if fmt == "slack":
        # A JSON array of webhook payloads, one per message, in posting order.
        messages = slack_messages(digest, full=full, more_url=more_url)
        return json.dumps(messages, ensure_ascii=False, indent=2) + "\n"
    if fmt in ("markdown", "mrkdwn", "html", "text"):
        return render_template(digest, fmt)
    raise ValueError(f"unknown digest format {fmt!r}; choose one of {', '.join(FORMATS)}")


def render_digest(
    results: Sequence[PaperResult],
    fmt: str,
    *,
    group_order: GroupOrder = "taxonomy",
    taxonomy: str | Path | None = None,
    date: dt.date | None = None,
    sort: Sort | None = None,
    top: int | None = None,
    min_relevance: float | None = None,
    full: bool = False,
    more_url: str | None = None,
) -> str:
    """Results to a digest string in ``fmt`` in one call."""
    digest = make_digest(
        results,
        group_order=group_order,
        taxonomy=taxonomy,
        date=date,
        sort=sort,
        top=top,
        min_relevance=min_relevance,
    )
    return render(digest, fmt, full=full, more_url=more_url)
