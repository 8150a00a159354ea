"""Ranking: the order a digest shows papers in (--sort), how many come first (--top), the cut."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, TypeVar

from agent.config import DEFAULT_TOP, DIGEST_SORTS
from agent.models import PaperResult

Sort = Literal["relevance", "tag", "upvotes"]
SORTS: tuple[Sort, ...] = DIGEST_SORTS  # type: ignore[assignment]

# The id agent.sources gives a paper that has none: "t-" and a hash of its title. It means
# nothing to a reader, so no digest shows it.
_INTERNAL_ID = re.compile(r"t-[0-9a-f]+")

R = TypeVar("R", bound=PaperResult)


def is_internal_id(paper_id: str) -> bool:
    """Whether ``paper_id`` is the hashed ``t-...`` id made for a paper without one."""
    return bool(_INTERNAL_ID.fullmatch(paper_id))


def relevance(result: PaperResult) -> float | None:
    """The optional ``relevance`` score (0-10), or None."""
    value = getattr(result, "relevance", None)
    # bool is an int: a stray true in a hand-edited file is not a score.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def upvotes(result: PaperResult) -> int | None:
    """The whole number of upvotes in the result's metadata, or None."""
    # Metadata comes from any input file: only a plain count is used, never arbitrary text.
    value = result.metadata.get("upvotes", "").strip()
    # A bounded length also keeps int() clear of Python's limit on digits it will convert.
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        return None
    return int(value)


def default_sort(results: Sequence[PaperResult]) -> Sort:
    """``relevance`` when any result has a score, else ``tag`` (the grouping alone)."""
    return "relevance" if any(relevance(r) is not None for r in results) else "tag"


def default_top(results: Sequence[PaperResult]) -> int:
    """How many top picks a digest shows unasked: DEFAULT_TOP when there is a ranking, else 0."""
    return DEFAULT_TOP if any(relevance(r) is not None for r in results) else 0


def _descending(value: float | None) -> tuple[bool, float]:
    # Missing values last; sorted() is stable, so ties keep the order they came in.
    return (value is None, -(value or 0.0))


def relevance_key(result: PaperResult) -> tuple[tuple[bool, float], ...]:
    """Sort key: highest relevance first, upvotes breaking ties, unscored papers last."""
    return (_descending(relevance(result)), _descending(upvotes(result)))


def upvotes_key(result: PaperResult) -> tuple[tuple[bool, float], ...]:
    """Sort key: most upvoted first, relevance breaking ties, papers without a count last."""
    return (_descending(upvotes(result)), _descending(relevance(result)))


def split_below(results: Sequence[R], min_relevance: float | None) -> tuple[list[R], list[R]]:
    """``(kept, below)``: a scored paper under ``min_relevance`` goes below; failures stay."""
    if min_relevance is None:
        return list(results), []
    kept: list[R] = []
    below: list[R] = []
    for result in results:
        score = relevance(result)
        low = result.error is None and score is not None and score < min_relevance
        (below if low else kept).append(result)
    return kept, below


def score_text(value: float | None) -> str:
    """``"8.5"`` for a score (always one decimal: 5.0 beside 5.2), ``""`` for None."""
    return "" if value is None else f"{value:.1f}"
