"""Text renderers (Markdown, HTML, Slack mrkdwn, plain text, JSON) from the templates we ship."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from agent.digest.model import Digest, Entry
from agent.digest.text import escape_markdown, escape_mrkdwn, plural, without_bidi

# format -> (template, escape applied to every {{ value }}); HTML uses Jinja's autoescape.
TEMPLATES: dict[str, tuple[str, Callable[[str], str] | None]] = {
    "markdown": ("digest.md.j2", escape_markdown),
    "mrkdwn": ("digest.mrkdwn.j2", escape_mrkdwn),
    "html": ("digest.html.j2", None),
    "text": ("digest.txt.j2", None),
}


def _finalizer(escape: Callable[[str], str]) -> Callable[[Any], str]:
    # finalize runs on every {{ expression }}, so a template cannot forget to escape;
    # values marked safe in the template (only URLs from safe_url) pass through.
    def finalize(value: Any) -> str:
        return str(value) if isinstance(value, Markup) else escape(str(value))

    return finalize


@cache
def environment(fmt: str) -> Environment:
    """The Jinja environment for ``fmt``: StrictUndefined, escaping suited to the format."""
    template, escape = TEMPLATES[fmt]
    options: dict[str, Any] = {}
    if escape is not None:
        options["finalize"] = _finalizer(escape)
    env = Environment(
        loader=PackageLoader("agent.digest", "templates"),
        undefined=StrictUndefined,
        autoescape=template.endswith(".html.j2"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **options,
    )
    env.filters["plural"] = plural
    return env


def render_template(digest: Digest, fmt: str) -> str:
    """Render ``digest`` with the shipped template for ``fmt`` (markdown, mrkdwn, html, text)."""
    env = environment(fmt)
    template = env.get_template(TEMPLATES[fmt][0])
    return template.render(
        digest=digest,
        date=digest.dated,  # "papers of 2026-11-20", "run of 2026-12-05" or the --date given
        sources=", ".join(digest.sources),
        models=", ".join(digest.models),
        overview=" · ".join(f"{tag} {count}" for tag, count in digest.overview),
    )


def _paper(entry: Entry) -> dict[str, Any]:
    data = json.loads(entry.result.to_line())  # the result as results.jsonl holds it
    if not entry.ref:
        # The hashed t-... id is internal: results.jsonl keeps it, a digest never shows it.
        del data["id"]
    data["authors_short"] = entry.authors
    return data


def render_json(digest: Digest) -> str:
    """The digest as JSON: header, counts, overview, groups of full results, failures, top."""
    data = {
        "title": digest.title,
        "date": digest.date.isoformat(),
        "date_basis": digest.date_basis,  # papers (their newest date), run (today) or given
        "sources": digest.sources,
        "models": digest.models,
        "counts": {"papers": digest.total, "ok": digest.ok, "failed": digest.failed},
        "overview": [{"tag": tag, "count": count} for tag, count in digest.overview],
        "highlights": digest.highlights,
        "groups": [
            {"tag": group.tag, "papers": [_paper(e) for e in group.entries]}
            for group in digest.groups
        ],
        "failed": [_paper(e) for e in digest.failures],
        "sort": digest.sort,
        "top": [_paper(e) for e in digest.top],
        "min_relevance": digest.min_relevance,
        "below_min_relevance": digest.below,
    }
    # Results stay as results.jsonl holds them (TeX, line breaks), but never with bidi controls.
    return json.dumps(without_bidi(data), ensure_ascii=False, indent=2) + "\n"
