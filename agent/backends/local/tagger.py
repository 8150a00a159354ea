"""The offline tagger: a description prior from the taxonomy, plus a model learned from examples.

The prior scores each tag by how many of the paper's informative terms (background IDF) occur in
the tag's name, aliases, keywords and description, with the title counted more than the abstract
and multi-word keywords matched as phrases (bigram features). Learned scores, when the taxonomy
points to labelled examples, come from ``learned.ExampleModel``; both become probabilities over
tags and are mixed, so a tag without examples still gets its prior.

A taxonomy's fallback tag ("Other") is never scored: a paper gets it, alone, when too little of
what it says is in the taxonomy's vocabulary at all (see ``PriorTagger.confidence``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from agent.backends.local.background import DocFreq, background
from agent.backends.local.text import Parsed, bigrams, features, parse
from agent.taxonomy import Taxonomy

# Field weights: a keyword or alias is a deliberate signal, a description word a weaker one.
NAME_WEIGHT = 3.0
KEYWORD_WEIGHT = 2.0
DESCRIPTION_WEIGHT = 1.0
TITLE_WEIGHT = 3.0  # a title term counts as much as three abstract occurrences
BIGRAM_BOOST = 1.5  # a phrase match ("language model") says more than its two words apart
# A word of a multi-word keyword or label, met alone, is weak evidence: "genetic programming"
# is about evolution, yet its "programming" alone is in every code paper, and "user experience"
# would claim any paper that learns "from experience". Each word still counts in full when the
# tag lists it on its own. arXiv dev P@1 0.645 -> 0.664 at 0.35 (0.656 at 0.75, 0.661 at 0.5).
PHRASE_PART_WEIGHT = 0.35
# The paper side's IDF exponent: the tag side already weighs each word by IDF, and squaring it
# let a rare word a tag mentions in passing outweigh the common words a paper is about.
PAPER_IDF_POWER = 0.75
TF_SATURATION = 1.2  # BM25's k1: the tenth "robot" adds little after the third

# A prior that is sure of itself: temperature of the softmax turning prior scores into
# probabilities, on the scale of scores normalised by the best tag's score.
PRIOR_TEMPERATURE = 0.15
# Tags whose probability reaches this share of the top tag's are kept (then capped at max_tags).
# On arXiv dev (about two categories per paper) micro F1 rises from 0.42 at 0.5 to 0.46 at 0.2
# while precision barely moves; lower still adds noise tags a digest reader would not want.
RELATIVE_THRESHOLD = 0.25
# A paper is off-topic when the taxonomy's vocabulary covers less than this share of what it
# covers of a typical research abstract (the background corpus, measured the same way), i.e.
# it speaks the taxonomy's language less than half as much. On the default taxonomy typical
# coverage is 0.15 (SciTLDR and HF papers: median 0.155); abstracts in astrophysics, condensed
# matter, number theory, ecology and economics sit at 0.01-0.09. Measured at 0.5: 13 of 16 such
# abstracts get the fallback (7 of 16 under the broader arXiv taxonomy), and so do 11 of 619
# SciTLDR and 5 of 202 HF papers (one of them the page's astrophysics paper); arXiv dev P@1
# 0.645 -> 0.642, 5-fold CV with examples 0.767 -> 0.758. At 0.4 only 10 of 16; at 0.6 the
# arXiv P@1 falls to 0.631.
COVERAGE_FRACTION = 0.5


@dataclass(frozen=True)
class TagScore:
    """A tag with its score in [0, 1]."""

    tag: str
    score: float


def paper_terms(title: str, abstract: str) -> Counter[str]:
    """Term counts of a paper, the title counted ``TITLE_WEIGHT`` times."""
    return term_counts(parse(title, abstract))


def term_counts(parsed: Parsed) -> Counter[str]:
    """Unigram and within-sentence bigram counts of a parsed paper, the title weighted up."""
    counts: Counter[str] = Counter()
    for toks in parsed.sentence_terms:
        counts.update(toks)
        counts.update(bigrams(toks))
    for term in (*parsed.title_terms, *bigrams(parsed.title_terms)):
        counts[term] += TITLE_WEIGHT
    return counts


class PriorTagger:
    """Scores tags from their names, aliases, keywords and descriptions alone."""

    def __init__(self, taxonomy: Taxonomy, docfreq: DocFreq | None = None) -> None:
        self.names = taxonomy.names
        self._df = docfreq or background()
        # Inverted index: term -> [(tag position, weight)]; a paper only touches its own terms.
        index: dict[str, list[tuple[int, float]]] = {}
        for pos, tag in enumerate(taxonomy.tags):
            if tag.is_fallback:
                continue  # "papers outside every other tag" has no words of its own to match
            weights: Counter[str] = Counter()
            for label in (tag.name, *tag.aliases):
                self._add(weights, label, NAME_WEIGHT, PHRASE_PART_WEIGHT)
            for keyword in tag.keywords:
                self._add(weights, keyword, KEYWORD_WEIGHT, PHRASE_PART_WEIGHT)
            self._add(weights, tag.description, DESCRIPTION_WEIGHT)
            # Normalise by the square root of the tag's mass: a tag with forty keywords should
            # not win every paper, yet a richly described tag may still score a little higher.
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for term, weight in weights.items():
                # The paper side's IDF is folded in here, once, instead of per paper term.
                value = weight / math.sqrt(norm) * self._df.idf(term) ** PAPER_IDF_POWER
                index.setdefault(term, []).append((pos, value))
        self._index = index
        self._bar = COVERAGE_FRACTION * self._typical_coverage()

    def _typical_coverage(self) -> float:
        """The taxonomy's coverage of the background corpus, each document's term once."""
        covered = total = 0.0
        for term, df in self._df.df.items():
            if " " not in term:
                mass = df * self._df.idf(term)
                total += mass
                if term in self._index:
                    covered += mass
        # No background table: every term is unseen, so no paper can be judged off-topic.
        return covered / total if total else 0.0

    def coverage(self, counts: Counter[str]) -> float:
        """The share of a paper's words, weighted by saturated TF and IDF, that tags mention."""
        covered = total = 0.0
        index = self._index
        k = TF_SATURATION
        for term, tf in counts.items():
            if " " in term:
                continue  # bigrams repeat their words' evidence
            mass = tf * (k + 1) / (tf + k) * self._df.idf(term)
            total += mass
            if term in index:
                covered += mass
        return covered / total if total else 0.0

    def confidence(self, counts: Counter[str]) -> float:
        """How on-topic a paper is: its coverage over the bar, below 1 meaning off-topic."""
        if self._bar <= 0.0:
            return 1.0
        return self.coverage(counts) / self._bar

    def _add(
        self, weights: Counter[str], text: str, field_weight: float, part: float = 1.0
    ) -> None:
        feats = set(features(text))
        # ``part`` weighs the single words of a multi-word text (a keyword or label).
        word_boost = part if any(" " in term for term in feats) else 1.0
        for term in feats:
            boost = BIGRAM_BOOST if " " in term else word_boost
            # One vote per field and term: a description repeating "image" is not more visual.
            weights[term] = max(weights[term], field_weight * boost * self._df.idf(term))

    def raw_scores(self, counts: Counter[str]) -> list[float]:
        """One unnormalised score per tag for a paper's term counts."""
        scores = [0.0] * len(self.names)
        index = self._index
        k = TF_SATURATION
        for term, tf in counts.items():
            postings = index.get(term)
            if postings is None:
                continue
            # Saturated TF times IDF: the paper side of BM25, without length normalisation
            # since tags are only compared within one paper.
            value = tf * (k + 1) / (tf + k)
            for pos, weight in postings:
                scores[pos] += value * weight
        return scores

    def probabilities(self, counts: Counter[str]) -> list[float]:
        """Prior scores as a distribution over tags (uniform when nothing matches)."""
        return softmax_relative(self.raw_scores(counts), PRIOR_TEMPERATURE)


def softmax_relative(scores: list[float], temperature: float) -> list[float]:
    """Softmax of scores divided by the best one, so the temperature does not depend on scale."""
    top = max(scores) if scores else 0.0
    if top <= 0.0:
        return [1.0 / len(scores)] * len(scores) if scores else []
    exps = [math.exp((s / top - 1.0) / temperature) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def select(
    names: list[str],
    probs: list[float],
    max_tags: int,
    *,
    fallback: str | None = None,
    confidence: float = 1.0,
) -> list[TagScore]:
    """The tags worth returning: the best one always, others close enough to it, at most max.

    With a ``fallback`` tag and a ``confidence`` below 1, the fallback alone, scored by how far
    below the bar the paper is; the fallback is never ranked among the other tags.
    """
    if fallback is not None and confidence < 1.0:
        return [TagScore(fallback, 1.0 - max(confidence, 0.0))]
    order = sorted(
        (i for i in range(len(names)) if names[i] != fallback), key=lambda i: (-probs[i], i)
    )
    best = probs[order[0]]
    chosen = [TagScore(names[order[0]], best)]
    uniform = 1.0 / len(order)
    for i in order[1:max_tags]:
        # No better than chance says nothing: a paper with no evidence gets one tag, not three.
        if probs[i] < best * RELATIVE_THRESHOLD or probs[i] <= uniform:
            break
        chosen.append(TagScore(names[i], probs[i]))
    return chosen
