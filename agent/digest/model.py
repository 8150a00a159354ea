"""A digest as data: results loaded, grouped by tag and counted, ready for any renderer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from agent.digest.text import one_line, safe_url, short_authors
from agent.errors import InputError
from agent.models import PaperResult, ResultRecord

GroupOrder = Literal["taxonomy", "size"]
UNTAGGED = "Untagged"
DEFAULT_TITLE = "Research digest"


def load_results(path: str | Path) -> list[PaperResult]:
    """Read results.jsonl; a bad line is an InputError naming the file and line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"results file not found: {file}") from None
    except UnicodeDecodeError:
        raise InputError(f"{file} is not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(f"cannot read results file {file}: {exc.strerror}") from None
    return parse_results(text, str(file))


def parse_results(text: str, name: str = "<stdin>") -> list[PaperResult]:
    """Parse results.jsonl text; ``name`` is used in error messages."""
    results: list[PaperResult] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            results.append(ResultRecord.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}:{number}: not valid JSON ({exc.msg})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise InputError(f"{name}:{number}: {where}: {first['msg']}") from None
    return results  # empty on a day with no new paper: the digest says "0 papers"


@dataclass(frozen=True)
class Entry:
    """One paper as every renderer shows it (text still raw: each renderer escapes its own)."""

    result: PaperResult
    title: str
    url: str | None
    authors: str
    other_tags: list[str]
    summary: str
    error: str | None
    votes: str = ""  # "▲ 10" next to the title when the source counted upvotes (Hugging Face)


@dataclass(frozen=True)
class Group:
    """The papers whose first tag is ``tag``."""

    tag: str
    entries: list[Entry]


@dataclass(frozen=True)
class Digest:
    """Everything a digest shows, in display order."""

    title: str
    date: dt.date
    sources: list[str]
    models: list[str]
    total: int
    groups: list[Group]
    failures: list[Entry]
    overview: list[tuple[str, int]] = field(default_factory=list)
    highlights: list[str] = field(default_factory=list)  # "what stood out today" (LLM, opt-in)

    @property
    def failed(self) -> int:
        """How many papers have an error record."""
        return len(self.failures)

    @property
    def ok(self) -> int:
        """How many papers were annotated."""
        return self.total - self.failed


def relevance(result: PaperResult) -> float | None:
    """The optional ``relevance`` score (a later field of PaperResult), or None."""
    value = getattr(result, "relevance", None)
    return float(value) if isinstance(value, int | float) else None


def votes(result: PaperResult) -> str:
    """``"▲ 10"`` for a result whose metadata has a whole number of upvotes, else ``""``."""
    # Metadata comes from any input file: only a plain count is shown, never arbitrary text.
    value = result.metadata.get("upvotes", "").strip()
    # A bounded length also keeps int() clear of Python's limit on digits it will convert.
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        return ""
    return f"▲ {int(value)}"


def _entry(result: PaperResult) -> Entry:
    error = None
    if result.error is not None:
        error = one_line(f"{result.error.type}: {result.error.message}")
    return Entry(
        result=result,
        # Titles and summaries are shown on one line in every format.
        title=one_line(result.title) or result.id,
        url=safe_url(result.url),
        authors=short_authors(result.authors),
        other_tags=list(result.tags[1:]),
        summary=one_line(result.summary or ""),
        error=error,
        votes=votes(result),
    )


def _unique(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _group_key(tag: str, rank: dict[str, int]) -> tuple[int, int]:
    # Tags the taxonomy does not know come after the known ones; "Untagged" always last.
    if tag == UNTAGGED:
        return (2, 0)
    position = rank.get(tag.casefold())
    return (0, position) if position is not None else (1, 0)


def build_digest(
    results: Sequence[PaperResult],
    *,
    tag_order: Sequence[str] = (),
    group_order: GroupOrder = "taxonomy",
    date: dt.date | None = None,
    title: str = DEFAULT_TITLE,
) -> Digest:
    """Group ``results`` by first tag, order the groups and papers, and count everything."""
    buckets: dict[str, list[Entry]] = {}
    failures: list[Entry] = []
    for result in results:
        entry = _entry(result)
        if entry.error is not None:
            failures.append(entry)
            continue
        tag = result.tags[0].strip() if result.tags and result.tags[0].strip() else UNTAGGED
        buckets.setdefault(tag, []).append(entry)

    first_seen = {tag: i for i, tag in enumerate(buckets)}
    rank = {name.casefold(): i for i, name in enumerate(tag_order)}

    def order(tag: str) -> tuple[int, ...]:
        by_taxonomy = (*_group_key(tag, rank), first_seen[tag])
        if group_order == "size":
            return (tag == UNTAGGED, -len(buckets[tag]), *by_taxonomy)
        return by_taxonomy

    names = sorted(buckets, key=order)

    groups = []
    for name in names:
        # sorted() is stable, so papers without a score keep their input order at the end.
        entries = sorted(
            buckets[name],
            key=lambda e: (relevance(e.result) is None, -(relevance(e.result) or 0.0)),
        )
        groups.append(Group(tag=name, entries=entries))

    return Digest(
        title=title,
        date=date or dt.date.today(),
        sources=_unique(r.source for r in results),
        models=_unique(r.model or r.backend for r in results),
        total=len(results),
        groups=groups,
        failures=failures,
        overview=[(g.tag, len(g.entries)) for g in groups],
    )
