"""The lexical signal: BM25 of each criterion over a day's papers, by word and by phrase.

A criterion is read as phrases: its text split at punctuation, "and" and "or" ("Computer
vision: image classification, object detection" gives "computer vision", "image
classification", "object detection"). A phrase matches as adjacent words (a bigram term);
each of its words met alone counts ``PHRASE_PART`` of its weight, so "data augmentation" in a
paper is weak evidence for "retrieval-augmented generation". Words match at two levels
(``agent.rank.terms``): by inflection in full, by derivation at ``DERIVED_WEIGHT``, so
"augmentation" only faintly matches "augmented" and never as the phrase.

Each query term weighs ``IDF ** IDF_POWER`` (background IDF, ``agent.backends.local.background``:
rare topic words decide, "model" does not); the criterion's name counts ``NAME_WEIGHT`` times,
being the label the user chose; and the best single aspect (the name, the head before a colon,
each listed item) is added, so a paper squarely on one listed item is not outscored by one
that brushes every word. The raw score ``s`` becomes ``s / (s + Q/2)``, ``Q`` being what an
average paper holding each query term once would score: a fraction in [0, 1) that means the
same for a short criterion and a long one.

Measured on the relevance dev set (criteria alone, MAP, 10 interests; ten held-out interests
in brackets): derivation level only 0.487 (0.669), inflection only 0.473 (0.676), both levels
with phrase parts at half weight 0.482 (0.671). The two-level reading costs nothing measurable
and keeps "augmentation" from a RAG criterion's top.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from itertools import pairwise

import numpy as np

from agent.backends.local.background import DocFreq, background
from agent.backends.local.text import words
from agent.interests import Criterion
from agent.rank.matrix import Array, TermMatrix
from agent.rank.terms import background_key, derive, inflect

# BM25: k1 high enough that the fifth mention of "dropout" still counts (a paper about a topic
# repeats it); b as usual; AVG_LENGTH the mean mass of an abstract with its weighted title
# (unigrams + bigrams) on ICLR, arXiv and HF abstracts. Carried over from the offline backend.
K1 = 3.0
B = 0.75
AVG_LENGTH = 235.0
IDF_POWER = 1.5
NAME_WEIGHT = 2.0
ASPECT_WEIGHT = 1.0
HALF_SATURATION = 0.5
PHRASE_PART = 0.5  # a word of a multi-word phrase, met alone
DERIVED_WEIGHT = 0.5  # the derivation level beside the inflection level
_PHRASE_BREAK = re.compile(r"[,;:()\[\]/]|\band\b|\bor\b|[.!?](?:\s|$)")
_ASPECT_BREAK = re.compile(r",|;|\band\b|\bor\b")

Query = dict[str, float]


@cache
def _background() -> DocFreq:
    return background()


def _idf(term: str) -> float:
    return _background().idf(background_key(term)) ** IDF_POWER


def phrases(text: str) -> list[str]:
    """The phrases of a criterion's text, lower-cased, in order."""
    return [p.strip() for p in _PHRASE_BREAK.split(text.lower()) if p and p.strip()]


def query(text: str, level: Callable[[str], str], weight: float = 1.0) -> Query:
    """Term weights of ``text`` at one level: phrase bigrams in full, their words in part."""
    out: Query = {}
    for phrase in phrases(text):
        toks = [level(w) for w in words(phrase)]
        part = PHRASE_PART if len(toks) > 1 else 1.0
        for term in toks:
            out[term] = max(out.get(term, 0.0), weight * part * _idf(term))
        for a, b in pairwise(toks):
            term = f"{a} {b}"
            out[term] = max(out.get(term, 0.0), weight * _idf(term))
    return out


def aspects(criterion: Criterion) -> list[str]:
    """The parts a paper may be squarely about: the name, the head, each listed item."""
    head, colon, rest = criterion.text.partition(":")
    parts = [criterion.name, head, *_ASPECT_BREAK.split(rest)] if colon else [criterion.name]
    return list(dict.fromkeys(p.strip(" .") for p in parts if p.strip(" .")))


class _LevelQuery:
    """One level's full query, its aspects, and its normaliser Q."""

    def __init__(self, criterion: Criterion, level: Callable[[str], str]) -> None:
        self.full = query(criterion.text, level)
        for term, w in query(criterion.name, level, NAME_WEIGHT).items():
            self.full[term] = max(self.full.get(term, 0.0), w)
        self.aspects = [q for q in (query(a, level) for a in aspects(criterion)) if q]
        self.mass = sum(self.full.values()) or 1.0

    def fraction(self, counts: TermMatrix, norm: Array) -> Array:
        s = _bm25(self.full, counts, norm)
        best = np.zeros(counts.n_rows)
        for q in self.aspects:
            best = np.maximum(best, _bm25(q, counts, norm))
        s = np.where(s > 0.0, s + ASPECT_WEIGHT * best, 0.0)
        return s / (s + HALF_SATURATION * self.mass)


def _bm25(q: Query, counts: TermMatrix, norm: Array) -> Array:
    out = np.zeros(counts.n_rows)
    for term, w in q.items():
        rows, tf = counts.column(term)
        if len(rows):
            out[rows] += w * tf * (K1 + 1.0) / (tf + norm[rows])
    return out


def length_norm(counts: TermMatrix) -> Array:
    """BM25's per-paper factor k1 * (1 - b + b * length / average)."""
    return K1 * (1.0 - B + B * counts.row_sums() / AVG_LENGTH)


class LexicalIndex:
    """The day's papers at both levels, with their BM25 length factors."""

    def __init__(self, inflected: TermMatrix, derived: TermMatrix) -> None:
        self.inflected, self.derived = inflected, derived
        # Both levels count the same words and pairs, so one length serves both: the
        # inflection level may hold only the terms the queries read.
        self._norm = length_norm(derived)

    def scores(self, criterion: CriterionQuery) -> Array:
        """The criterion's score for every paper, in [0, 1 + DERIVED_WEIGHT)."""
        a = criterion.inflected.fraction(self.inflected, self._norm)
        return a + DERIVED_WEIGHT * criterion.derived.fraction(self.derived, self._norm)


class CriterionQuery:
    """A criterion read as weighted terms at both levels."""

    def __init__(self, criterion: Criterion) -> None:
        self.criterion = criterion
        self.inflected = _LevelQuery(criterion, inflect)
        self.derived = _LevelQuery(criterion, derive)

    def inflected_terms(self) -> set[str]:
        """Every inflection-level term the query reads, and each bigram's "first-word "."""
        out: set[str] = set()
        for q in (self.inflected.full, *self.inflected.aspects):
            out.update(q)
            out.update(t.split(" ")[0] + " " for t in q if " " in t)
        return out
