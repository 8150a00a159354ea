"""The search index the front page's script reads: one small JSON file naming the shards, and
one shard per month, each paper a compact row. A daily build rewrites only its month's shard."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.site.model import SiteDay

INDEX = "search/index.json"
Row = list[Any]  # [anchor, title, authors, tags, [relevance or null for each profile]]


def shard_name(month: str) -> str:
    """The shard of a month ("2026-03"), relative to the site."""
    return f"search/{month}.json"


def rows(day: SiteDay, profiles: Sequence[str]) -> list[Row]:
    """The day's papers as search rows."""
    found = []
    for paper in day.papers:
        rels = [paper.scores[p].relevance if p in paper.scores else None for p in profiles]
        found.append([paper.anchor, paper.title, paper.authors, paper.tags, rels])
    return found


# Fetched as JSON and only ever set as text, but a file served with the wrong type, or pasted
# into a page, still holds no markup: < > & are written as \u escapes, as JSON allows.
_INERT = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_INERT) + "\n"


def shard_text(month: str, profiles: Sequence[str], days: dict[str, list[Row]]) -> str:
    """A month's shard: its days newest first."""
    ordered = dict(sorted(days.items(), reverse=True))
    return _json({"month": month, "profiles": list(profiles), "days": ordered})


def read_shard(path: Path) -> dict[str, list[Row]] | None:
    """The days of a shard a build wrote, or None when it cannot be read as one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        days = data["days"]
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError):
        return None
    if not isinstance(days, dict) or not all(isinstance(v, list) for v in days.values()):
        return None
    return days


def index_text(
    profiles: Sequence[str], tags: Sequence[str], shards: Sequence[tuple[str, int]]
) -> str:
    """The file the script reads first: profiles, tags, and the shards newest first."""
    listed = [
        {"file": shard_name(month).removeprefix("search/"), "papers": count}
        for month, count in sorted(shards, reverse=True)
    ]
    return _json({"profiles": list(profiles), "tags": list(tags), "shards": listed})
