"""A digest as data: results loaded, grouped by tag and counted, ready for any renderer."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from agent.backends.local.text import clean_latex
from agent.digest.rank import (
    Sort,
    default_sort,
    default_top,
    is_internal_id,
    relevance,
    relevance_key,
    score_text,
    split_below,
    upvotes,
    upvotes_key,
)
from agent.digest.text import one_line, plural, safe_url, short_authors
from agent.errors import InputError
from agent.models import PaperResult, ResultRecord

GroupOrder = Literal["taxonomy", "size"]
# What a digest's date is: its papers' (announced or published), the run's (none had a date),
# or the one given with --date.
DateBasis = Literal["papers", "run", "given"]
UNTAGGED = "Untagged"
DEFAULT_TITLE = "Research digest"
UNTITLED = "(untitled)"

__all__ = [
    "DateBasis",
    "Digest",
    "Entry",
    "Group",
    "GroupOrder",
    "Sort",
    "build_digest",
    "papers_date",
    "relevance",
]


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
    # Lines end at "\n" only: U+2028 or U+0085 inside a JSON string is not a line break.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            results.append(ResultRecord.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}:{number}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise InputError(f"{name}:{number}: not valid JSON (nested too deeply)") from None
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
    tags: list[str]  # every tag, first included, each on one line
    other_tags: list[str]
    summary: str
    error: str | None
    votes: str = ""  # "▲ 10" next to the title when the source counted upvotes (Hugging Face)
    ref: str = ""  # the id a reader may see: "" for the hashed t-... ids
    score: str = ""  # relevance as shown ("8.5"), "" when the paper has none
    why: str = ""  # the criterion or liked paper it matches, one line


@dataclass(frozen=True)
class Group:
    """The papers whose first tag is ``tag``."""

    tag: str
    entries: list[Entry]
    anchor: str = ""  # the id its section carries, for the table of contents


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
    sort: Sort = "tag"
    ranked: list[Entry] = field(default_factory=list)  # every annotated paper in sort order
    top_count: int = 0  # how many of ``ranked`` the top picks show
    top_asked: bool = False  # --top given: Slack then shows exactly that many
    below: int = 0  # papers under min_relevance, left out
    min_relevance: float | None = None
    date_basis: DateBasis = "given"

    def __post_init__(self) -> None:
        # Highlights are model output added later (dataclasses.replace runs this again): they
        # get the one-line cleaning every other shown string got in _entry.
        object.__setattr__(self, "highlights", [one_line(h) for h in self.highlights])

    @property
    def dated(self) -> str:
        """The date as headings show it, saying what it is: ``"papers of 2026-11-20"``,
        ``"run of 2026-12-05"`` (no paper had a date), or the --date given, as it is."""
        day = self.date.isoformat()
        return {"papers": f"papers of {day}", "run": f"run of {day}"}.get(self.date_basis, day)

    @property
    def failed(self) -> int:
        """How many papers have an error record."""
        return len(self.failures)

    @property
    def ok(self) -> int:
        """How many papers were annotated."""
        return self.total - self.failed

    @property
    def top_title(self) -> str:
        """The heading of the papers shown first: ranked picks, or a sample of every tag."""
        return "A few from each tag" if self.sort == "tag" else "Top picks"

    @property
    def top(self) -> list[Entry]:
        """The top picks, shown before the tag sections."""
        return self.ranked[: self.top_count]

    @property
    def below_note(self) -> str:
        """``"3 papers below relevance 4 not shown"``, or ``""`` when none was left out."""
        if not self.below or self.min_relevance is None:
            return ""
        threshold = score_text(self.min_relevance)
        return f"{plural(self.below, 'paper')} below relevance {threshold} not shown"


def papers_date(results: Iterable[PaperResult], today: dt.date) -> dt.date | None:
    """The newest day the papers' sources dated them (``published``), or None when none did.

    A source's date is its announcement (arXiv RSS) or first version (arXiv API, Hugging Face):
    the newest is the day the batch is from, as a daily run sees it. Days after ``today`` are
    a hand-edited or broken date and are left out; a UTC date may run one day ahead of ours.
    """
    days = []
    for result in results:
        published = getattr(result, "published", None)
        if not isinstance(published, str):
            continue
        try:
            day = dt.date.fromisoformat(published.strip()[:10])
        except ValueError:
            continue  # a date in another form ("Nov 20, 2026") is not guessed at
        if day <= today + dt.timedelta(days=1):
            days.append(day)
    return max(days, default=None)


def votes(result: PaperResult) -> str:
    """``"▲ 10"`` for a result whose metadata has a whole number of upvotes, else ``""``."""
    count = upvotes(result)
    return "" if count is None else f"▲ {count}"


def _entry(result: PaperResult) -> Entry:
    error = None
    if result.error is not None:
        error = one_line(f"{result.error.type}: {result.error.message}")
    ref = "" if is_internal_id(result.id) else one_line(result.id)
    why = getattr(result, "why", None)
    tags = [one_line(t) for t in result.tags]
    return Entry(
        result=result,
        # Titles and summaries are shown on one line in every format; a title's TeX is read
        # as the offline summaries' is ("H$_2$O" -> "H₂O").
        title=one_line(clean_latex(result.title)) or ref or UNTITLED,
        url=safe_url(result.url),
        authors=short_authors(result.authors),
        tags=[t for t in tags if t],
        other_tags=[t for t in tags[1:] if t],
        summary=one_line(result.summary or ""),
        error=error,
        votes=votes(result),
        ref=ref,
        score=score_text(relevance(result)),
        why=one_line(why) if isinstance(why, str) else "",
    )


def _unique(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _group_key(tag: str, rank: dict[str, int], fallback: str | None) -> tuple[int, int]:
    # Tags the taxonomy does not know come after the known ones, then "Untagged"; the
    # taxonomy's fallback tag ("Other") is the catch-all, so it closes the list.
    if fallback is not None and tag.casefold() == fallback.casefold():
        return (3, 0)
    if tag == UNTAGGED:
        return (2, 0)
    position = rank.get(tag.casefold())
    return (0, position) if position is not None else (1, 0)


def _within_group(entry: Entry) -> tuple[bool, float]:
    # Today's order inside a tag: by relevance when scored, else as the papers came.
    score = relevance(entry.result)
    return (score is None, -(score or 0.0))


def build_digest(
    results: Sequence[PaperResult],
    *,
    tag_order: Sequence[str] = (),
    group_order: GroupOrder = "taxonomy",
    date: dt.date | None = None,
    title: str = DEFAULT_TITLE,
    fallback: str | None = None,
    sort: Sort | None = None,
    top: int | None = None,
    min_relevance: float | None = None,
) -> Digest:
    """Group ``results`` by first tag, order groups and papers, pick the top, count everything.

    The digest is dated ``date`` when given, else by its papers (``papers_date``), else today.

    ``sort`` and ``top`` default to relevance and 15 when any result has a relevance, else to
    the tag grouping and no top picks; papers under ``min_relevance`` are left out and counted.
    """
    sort = sort or default_sort(results)
    basis: DateBasis = "given"
    if date is None:
        today = dt.date.today()
        date = papers_date(results, today)
        basis = "run" if date is None else "papers"
        date = date or today
    kept, below = split_below(results, min_relevance)
    buckets: dict[str, list[Entry]] = {}
    failures: list[Entry] = []
    for result in kept:
        entry = _entry(result)
        if entry.error is not None:
            failures.append(entry)
            continue
        tag = one_line(result.tags[0]) if result.tags and one_line(result.tags[0]) else UNTAGGED
        buckets.setdefault(tag, []).append(entry)

    first_seen = {tag: i for i, tag in enumerate(buckets)}
    rank = {name.casefold(): i for i, name in enumerate(tag_order)}

    def order(tag: str) -> tuple[int, ...]:
        by_taxonomy = (*_group_key(tag, rank, fallback), first_seen[tag])
        if group_order == "size":
            catch_all = _group_key(tag, rank, fallback)[0] >= 2
            return (catch_all, -len(buckets[tag]), *by_taxonomy)
        return by_taxonomy

    names = sorted(buckets, key=order)

    groups = []
    for number, name in enumerate(names, start=1):
        # sorted() is stable, so papers without a score keep their input order at the end.
        if sort == "upvotes":
            entries = sorted(buckets[name], key=lambda e: upvotes_key(e.result))
        else:
            entries = sorted(buckets[name], key=_within_group)
        groups.append(Group(tag=name, entries=entries, anchor=f"group-{number}"))

    in_groups = [e for g in groups for e in g.entries]
    if sort == "relevance":
        ranked = sorted(in_groups, key=lambda e: relevance_key(e.result))
    elif sort == "upvotes":
        ranked = sorted(in_groups, key=lambda e: upvotes_key(e.result))
    else:
        # No ranking: the first papers shown are a few from every tag, not one tag's first.
        ranked = [
            e
            for row in itertools.zip_longest(*(g.entries for g in groups))
            for e in row
            if e is not None
        ]

    return Digest(
        title=title,
        date=date,
        date_basis=basis,
        # Every name a results file holds is shown on one line, like titles (no control codes).
        sources=_unique(one_line(r.source) for r in results),
        models=_unique(one_line(r.model or r.backend) for r in results),
        total=len(results),
        groups=groups,
        failures=failures,
        overview=[(g.tag, len(g.entries)) for g in groups],
        sort=sort,
        ranked=ranked,
        top_count=default_top(results) if top is None else max(top, 0),
        top_asked=top is not None,
        below=len(below),
        min_relevance=min_relevance,
    )
