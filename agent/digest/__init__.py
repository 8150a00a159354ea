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
from agent.digest.render import render_json, render_template
from agent.digest.slack import SlackLimits, build_slack_messages
from agent.models import PaperResult

FORMATS = ("slack", "mrkdwn", "markdown", "html", "json")

__all__ = [
    "FORMATS",
    "Digest",
    "SlackLimits",
    "build_digest",
    "build_slack_messages",
    "load_results",
    "make_digest",
    "parse_results",
    "render",
    "render_digest",
]


def make_digest(
    results: Sequence[PaperResult],
    *,
    group_order: GroupOrder = "taxonomy",
    taxonomy: str | Path | None = None,
    date: dt.date | None = None,
    title: str = DEFAULT_TITLE,
) -> Digest:
    """Build a Digest, ordering groups by the taxonomy file (the bundled one when None)."""
    from agent.taxonomy import load_taxonomy

    tag_order = load_taxonomy(taxonomy).names
    return build_digest(
        results, tag_order=tag_order, group_order=group_order, date=date, title=title
    )


def render(digest: Digest, fmt: str) -> str:
    """Render a built Digest as ``fmt`` (one of FORMATS, or ``text`` for plain text)."""
    if fmt == "json":
        return render_json(digest)
    if fmt == "slack":
        # A JSON array of webhook payloads, one per message, in posting order.
        messages = build_slack_messages(digest)
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
) -> str:
    """Results to a digest string in ``fmt`` in one call."""
    return render(make_digest(results, group_order=group_order, taxonomy=taxonomy, date=date), fmt)
