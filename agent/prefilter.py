"""Prefilters: drop papers by keyword, author or category before any LLM call is paid for."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from agent.models import Paper

Reason = Literal["include", "exclude", "category"]

# Summary wording per reason, in the order the summary lists them.
_REASON_TEXT: dict[Reason, str] = {
    "include": "without an include keyword",
    "exclude": "excluded",
    "category": "in other categories",
}

# Title and abstract are searched as one text; this separator is neither a word character nor
# whitespace, so a phrase cannot run from the end of the title into the abstract.
_JOIN = "\x00"


_SPACE = r"[\s\-]+"  # the words of a keyword may be split by any spaces or hyphens
_END = ""  # trie key marking that a keyword ends at this node
_Trie = dict[str, "_Trie"]


def _units(keyword: str) -> list[str]:
    """A keyword as regex pieces: one per character, one gap between its words."""
    units: list[str] = []
    for i, word in enumerate(keyword.lower().split()):
        if i:
            units.append(_SPACE)
        units.extend(re.escape(c) for c in word)
    return units


def _trie_regex(node: _Trie) -> str:
    """The regex of a trie of units: shared prefixes are written once."""
    branches = [unit + _trie_regex(child) for unit, child in sorted(node.items()) if unit]
    if not branches:
        return ""
    if len(branches) == 1 and _END not in node:
        return branches[0]
    return "(?:" + "|".join(branches) + (")?" if _END in node else ")")


def _keywords_pattern(keywords: list[str]) -> str:
    """A regex matching any of ``keywords`` as whole words (compile it case-insensitively).

    The alternation is a prefix tree: Python's regex engine tries every branch of a flat
    alternation at each word start, so 200 keywords cost 200 tries there; a tree costs a few.
    """
    root: _Trie = {}
    for keyword in keywords:
        node = root
        for unit in _units(keyword):
            node = node.setdefault(unit, {})
        node[_END] = {}
    # Lookarounds instead of \b: \b misbehaves at a keyword's non-word edges ("C++", ".NET").
    # A plural ending is allowed: "agent" finds "agents", "benchmark" finds "benchmarks".
    return rf"(?<!\w){_trie_regex(root)}(?:e?s)?(?!\w)"


def _person(name: str) -> str:
    """An author name folded for matching: case, accents and spacing do not count."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().replace(".", ". ").split())


class Filters(BaseModel):
    """Which papers to keep; every list empty keeps them all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: list[str] = []  # keep papers that mention one (or, with match="all", each) of these
    exclude: list[str] = []  # drop papers that mention any of these
    match: Literal["any", "all"] = "any"
    authors: list[str] = []  # a paper by one of them is kept whatever the other filters say
    categories: list[str] = []  # "cs.LG", or an archive such as "cs" for all of cs.*

    @field_validator("include", "exclude", "authors", "categories")
    @classmethod
    def _no_blanks(cls, values: list[str]) -> list[str]:
        cleaned = [" ".join(v.split()) for v in values]
        if any(not v for v in cleaned):
            raise ValueError("an empty entry would match every paper; remove it")
        return cleaned

    @property
    def active(self) -> bool:
        """Whether any filter is set (else every paper is kept)."""
        return bool(self.include or self.exclude or self.authors or self.categories)

    @cached_property
    def _include(self) -> re.Pattern[str] | None:
        if not self.include:
            return None
        if self.match == "all":
            # One lookahead per keyword: each is searched from the start on its own, so
            # overlapping keywords ("language model", "large language model") all count.
            parts = "".join(f"(?=.*?{_keywords_pattern([k])})" for k in self.include)
            return re.compile(parts, re.IGNORECASE | re.DOTALL)
        return re.compile(_keywords_pattern(self.include), re.IGNORECASE)

    @cached_property
    def _exclude(self) -> re.Pattern[str] | None:
        if not self.exclude:
            return None
        return re.compile(_keywords_pattern(self.exclude), re.IGNORECASE)

    @cached_property
    def _authors(self) -> frozenset[str]:
        return frozenset(_person(a) for a in self.authors)

    @cached_property
    def _categories(self) -> tuple[frozenset[str], tuple[str, ...]]:
        exact = frozenset(c.casefold() for c in self.categories if "." in c)
        archives = tuple(c.casefold() + "." for c in self.categories if "." not in c)
        return exact, archives

    def reason(self, paper: Paper) -> Reason | None:
        """Why ``paper`` is dropped, or None when it is kept."""
        if self._authors and any(_person(a) in self._authors for a in paper.authors):
            return None
        if self.categories and paper.categories:
            exact, archives = self._categories
            cats = [c.casefold() for c in paper.categories]
            if not any(c in exact or c.startswith(archives) for c in cats):
                return "category"
        if self._exclude is None and self._include is None:
            return None
        text = f"{paper.title}{_JOIN}{paper.abstract}"
        if self._exclude is not None and self._exclude.search(text):
            return "exclude"
        if self._include is not None:
            found = self._include.match(text) if self.match == "all" else self._include.search(text)
            if not found:
                return "include"
        return None


@dataclass
class FilterReport:
    """Counts of one pass of ``apply``: papers seen, kept, and dropped by reason."""

    total: int = 0
    kept: int = 0
    dropped: Counter[Reason] = field(default_factory=Counter)
    uncategorized: int = 0  # papers the category filter could not judge (no categories)

    def summary(self) -> str:
        """One line for the run summary: "37 of 412 papers kept (300 without an include ...)"."""
        noun = "paper" if self.total == 1 else "papers"
        line = f"{self.kept} of {self.total} {noun} kept"
        parts = [f"{self.dropped[r]} {text}" for r, text in _REASON_TEXT.items() if self.dropped[r]]
        if self.uncategorized:
            parts.append(f"{self.uncategorized} without categories, not judged by --category")
        return f"{line} ({', '.join(parts)})" if parts else line


def apply(
    papers: Iterable[Paper], filters: Filters, report: FilterReport | None = None
) -> Iterator[Paper]:
    """The papers ``filters`` keeps, lazily, in order; ``report`` (if given) counts as they pass."""
    report = report if report is not None else FilterReport()
    for paper in papers:
        report.total += 1
        if filters.categories and not paper.categories:
            report.uncategorized += 1
        why = filters.reason(paper)
        if why is None:
            report.kept += 1
            yield paper
        else:
            report.dropped[why] += 1
