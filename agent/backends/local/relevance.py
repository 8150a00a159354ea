"""Offline relevance: how well a paper matches the team's criteria and the papers it liked.

Two signals, each a fraction in [0, 1):

* **Criteria** (lexical). BM25 of each criterion over title + abstract, with IDF from the
  bundled background table raised to ``IDF_POWER`` (rare topic words decide, "model" does not),
  the title counted ``TITLE_WEIGHT`` times (``term_counts``), phrases matched as bigram terms, and
  the criterion's name counted twice: it is the label the user chose for the topic. A criterion
  is also split into aspects (its name, its head before the colon, each listed item after it)
  and the best single aspect is added, so a paper squarely on one listed item ("dropout") is
  not outscored by one that brushes every word. The raw score ``s`` becomes ``s / (s + Q/2)``,
  where ``Q`` is what an average-length paper containing each query term once would score, so
  the fraction means the same for a short criterion and a long one.
* **Liked papers** (learned). With ``negatives`` (a sample of the batch, as arxiv-sanity
  does): L2-regularised logistic regression over TF-IDF vectors (background IDF), liked papers
  as positives; its margin is rescaled so the negatives' mean is 0 and the liked papers' mean
  is 1, clipped. Without negatives (the backend sees one paper at a time): the mean cosine
  similarity to the ``KNN`` nearest liked papers, divided by how similar the liked papers are
  to one another (measured on at most ``TYPICAL_SAMPLE`` of them), clipped to 1. (A single
  "background document" built from the DF table was tried as the negative: every real paper
  beats it, so it ranked nothing.) The liked vectors are kept as term postings in numpy
  arrays, so scoring a paper costs the postings of its own terms, not a loop over every liked
  paper.

``relevance = 10 * ((1 - LIKED_WEIGHT) * criteria + LIKED_WEIGHT * liked)`` when both exist,
else ``10 * `` the one that does, rounded to 3 decimals: a continuous score, so ties are rare.
``relevance_by[name]`` is the criterion's own ``10 * fraction``; ``why`` names the criterion or
the nearest liked paper, whichever contributes more, and is "" below ``WHY_FLOOR``.

Measured (``benchmarks/eval_relevance.py relevance-dev.jsonl --seeds 7,1,2,3,4``; dev MAP of
"criterion + 20 liked", mean of the five seeds, then the same on the ten held-out interests):
this scorer 0.418 / 0.646 (seed 7: 0.416). Issue 9 asks 0.55; nothing in this family gets
near it, and none of the following was adopted (each was within noise on dev, or lost on the
held-out interests, which must not get worse):

* Batch negatives (``--batch-negatives``, LR against 300 batch papers): 0.430 / 0.642, and the
  backend scores one paper at a time.
* Okapi relevance feedback: the criterion's BM25 query expanded with the liked papers' 50 or
  100 terms of highest offer weight r * RSJ (Robertson-Sparck Jones weights, background DF as
  the collection), one BM25 score: 0.427 / 0.640 with the kNN signal; 0.420 / 0.642 alone.
  Criterion terms reweighted by the share of liked papers using them: 0.408-0.414 / <= 0.641.
* Rocchio: the liked centroid in place of kNN, 0.419-0.420 / 0.633; kNN with k = 1, 5, 10:
  0.410 / 0.636, 0.419 / 0.647 (+0.001 on both: noise), 0.417 / 0.645; TF-IDF with IDF^1.5
  or IDF^2: 0.418, 0.415; LIKED_WEIGHT 0.2 / 0.4 / 0.5: 0.418 / 0.414 / 0.406.
* Within-batch fusion of the criterion and the liked score: z-scores 0.416-0.420 / <= 0.641,
  reciprocal rank fusion (k = 60) 0.403-0.422 / <= 0.636, against 0.418 for the fixed sum.
* On top of the expanded query (0.422 / 0.644 there): pseudo-relevance feedback from the
  batch's top 10 or 30 papers, 0.422 / 0.645; label propagation over the batch's 10-NN graph
  (alpha 0.2 / 0.3), 0.422 / 0.646 and 0.417 / 0.646.
  LSA (100 or 300 SVD dimensions of the batch) centroid similarity: 0.416 / 0.645 at best.

Why: the gold is the authors' free-form keywords, and many relevant papers don't list the
phrase. Even with every label, the ceiling is low: ``--ceiling`` trains this model on the
liked sample plus every labelled paper outside one fold of five (dozens of positives, 300
labelled negatives) and ranks that fold: 0.433 / 0.651 (per seed 0.436 0.451 0.433 0.439
0.407). A z-score fusion of the criterion with an L2 logistic regression trained on all those
labels reached 0.44-0.45 (seeds 7 and 1; scratch, not shipped). The criterion alone ranks the same
papers at 0.405 / 0.620: 20 liked papers add +0.013 / +0.026 and full supervision +0.03.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.backends.local.background import DocFreq, background
from agent.backends.local.tagger import term_counts
from agent.backends.local.text import features, parse
from agent.interests import Criterion, Interests
from agent.models import Paper

if TYPE_CHECKING:
    import numpy as np

# BM25: k1 high enough that the fifth mention of "dropout" still counts (a paper about a topic
# repeats it); b as usual. AVG_LENGTH is the mean term_counts mass of an abstract with its
# weighted title (unigrams + bigrams), measured on ICLR, arXiv and HF abstracts: 200-250.
K1 = 3.0
B = 0.75
AVG_LENGTH = 235.0
IDF_POWER = 1.5
NAME_WEIGHT = 2.0
ASPECT_WEIGHT = 1.0
HALF_SATURATION = 0.5  # a raw score of Q/2 maps to 0.5
# Liked model: balanced classes, fixed-step gradient descent; weak L2 keeps 20 examples from
# being memorised. Terms in fewer than two training papers are dropped (they only memorise).
L2 = 1e-2
EPOCHS = 300
MAX_NEGATIVES = 300
KNN = 3  # without negatives: mean similarity to the three nearest liked papers
# How alike the liked papers are to one another is measured on at most this many of them.
TYPICAL_SAMPLE = 256
# Cosine similarity (TF-IDF) that makes two papers alike: 20 liked papers of one interest on
# relevance-dev sit 0.035-0.08 from their three nearest; unrelated papers 0.01-0.02. A kNN
# scale below it, or a nearest liked paper below it, says nothing. Dev MAP with 20 liked
# (seeds 7, 1, 2): 0.416/0.430/0.417 without the floor, 0.418/0.429/0.411 at 0.05.
SIMILARITY_FLOOR = 0.05
LIKED_WEIGHT = 0.3  # dev MAP with 20 liked: 0.42 at 0.2, 0.41 at 0.4 (kNN); 0.43 at 0.4 (LR)
WHY_FLOOR = 0.15  # below this fraction a signal is noise, not a reason
WHY_TITLE_CHARS = 60
_ASPECT_SPLIT = re.compile(r",|;|\band\b|\bor\b")


@dataclass(frozen=True)
class RelevanceScore:
    """A paper's relevance (0-10), the one-line reason, and per-criterion scores."""

    relevance: float
    why: str
    by: dict[str, float] = field(default_factory=dict)


def _query(text: str, weight: float, df: DocFreq, into: Counter[str]) -> None:
    for term in set(features(text)):
        into[term] = max(into[term], weight * df.idf(term) ** IDF_POWER)


class _Bm25Query:
    """One query's term weights and its normaliser Q."""

    def __init__(self, weights: Counter[str]) -> None:
        self.weights = dict(weights)
        self.mass = sum(weights.values()) or 1.0

    def score(self, counts: Counter[str], norm: float) -> float:
        """BM25 with length factor ``norm`` = k1 * (1 - b + b * length / avg)."""
        s = 0.0
        get = counts.get
        for term, w in self.weights.items():
            tf = get(term)
            if tf:
                s += w * tf * (K1 + 1) / (tf + norm)
        return s


class CriterionScorer:
    """The lexical score of one criterion: full BM25 plus its best aspect."""

    def __init__(self, criterion: Criterion, df: DocFreq) -> None:
        self.name = criterion.name
        full: Counter[str] = Counter()
        _query(criterion.text, 1.0, df, full)
        _query(criterion.name, NAME_WEIGHT, df, full)
        self.full = _Bm25Query(full)
        head, _, rest = criterion.text.partition(":")
        parts = [criterion.name, head, *_ASPECT_SPLIT.split(rest)] if rest else [criterion.name]
        self.aspects = []
        for part in dict.fromkeys(p.strip() for p in parts if p.strip()):
            q: Counter[str] = Counter()
            _query(part, 1.0, df, q)
            if q:
                self.aspects.append(_Bm25Query(q))

    def fraction(self, counts: Counter[str], norm: float) -> float:
        """The score mapped to [0, 1): s / (s + HALF_SATURATION * Q)."""
        s = self.full.score(counts, norm)
        if s <= 0.0:
            return 0.0
        s += ASPECT_WEIGHT * max((a.score(counts, norm) for a in self.aspects), default=0.0)
        return s / (s + HALF_SATURATION * self.full.mass)


class LikedModel:
    """Logistic regression on TF-IDF: liked papers against negatives or the background."""

    def __init__(
        self,
        liked: Sequence[Paper],
        negatives: Sequence[Paper] = (),
        df: DocFreq | None = None,
        check: Callable[[], None] | None = None,
    ) -> None:
        import numpy as np

        self._df = df or background()
        self._idf: dict[str, float] = {}
        pos = _vectors(self, liked, check)
        neg = _vectors(self, negatives[:MAX_NEGATIVES], check)
        self.titles = [p.title for p in liked]
        # Term -> postings of the liked vectors: the nearest liked paper, for ``why`` and kNN.
        self._index = _Postings(pos)
        self.weights: dict[str, float] = {}
        if not neg:
            # Without negatives, similarity to the nearest liked papers, scaled by how similar
            # the liked papers are to each other: a paper as close to them as they are to one
            # another scores 1. Measured on an evenly spaced sample: an average needs no more,
            # and every liked paper against every other one is quadratic.
            step = max(1, -(-len(pos) // TYPICAL_SAMPLE))
            inner = []
            for v in pos[::step]:
                if check is not None:
                    check()
                inner.append(_top(self._index.similarities(v), KNN + 1)[1:])
            typical = sum(float(s.mean()) for s in inner if len(s)) / max(len(inner), 1)
            # Two liked papers on different topics are barely alike (0.02): scaled by that,
            # any paper would look as close to them as they are to each other.
            self._low, self._span = 0.0, max(typical, SIMILARITY_FLOOR)
            return
        seen: Counter[str] = Counter()
        for vec in (*pos, *neg):
            seen.update(vec.keys())
        vocab = sorted(t for t, c in seen.items() if c >= 2 or len(pos) < 2)
        index = {t: i for i, t in enumerate(vocab)}
        rows = pos + neg
        x = np.zeros((len(rows), len(vocab)), dtype=np.float64)
        for r, vec in enumerate(rows):
            for term, value in vec.items():
                col = index.get(term)
                if col is not None:
                    x[r, col] = value
        y = np.zeros(len(x))
        y[: len(pos)] = 1.0
        n_neg = len(x) - len(pos)
        # Balanced classes: each side weighs half, whatever the number of negatives.
        weight = np.where(y == 1.0, 0.5 / max(len(pos), 1), 0.5 / max(n_neg, 1))
        w = np.zeros(len(vocab))
        b = 0.0
        for _ in range(EPOCHS):
            p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
            g = (p - y) * weight
            w -= x.T @ g + L2 * w
            b -= float(g.sum())
        self.weights = {t: float(v) for t, v in zip(vocab, w, strict=True) if v != 0.0}
        # Anchors: a weakly regularised model's probabilities crowd into a narrow band whose
        # place depends on the training set, so the margin is rescaled between the mean of the
        # negatives (0) and of the liked papers (1); the fraction then means "how liked-like".
        margins = x @ w
        self._low = float(margins[len(pos) :].mean())
        self._span = max(float(margins[: len(pos)].mean()) - self._low, 1e-9)

    def vector(self, counts: Counter[str]) -> dict[str, float]:
        """Sublinear-TF x background-IDF weights, L2-normalised."""
        idf = self._idf
        vec = {}
        for t, tf in counts.items():
            if tf > 0:
                w = idf.get(t)
                if w is None:  # a log per distinct term, not per occurrence in every paper
                    w = idf[t] = self._df.idf(t)
                vec[t] = (1.0 + math.log(tf)) * w
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {t: v / norm for t, v in vec.items()}

    def score(self, vec: dict[str, float]) -> tuple[float, int]:
        """How liked-like the paper is (0 = the negatives, 1 = the liked), and its nearest one."""
        sims = self._index.similarities(vec)
        nearest = int(sims.argmax()) if len(sims) else -1  # the first of equals, as max() did
        if nearest >= 0 and sims[nearest] < SIMILARITY_FLOOR:
            nearest = -1  # no liked paper is close enough to be named as the reason
        if self.weights:
            weights = self.weights
            z = sum(v * weights.get(t, 0.0) for t, v in vec.items())
        else:
            top = _top(sims, KNN)
            z = float(top.mean()) if len(top) else 0.0
        return min(max((z - self._low) / self._span, 0.0), 1.0), nearest


def _vectors(
    model: LikedModel, papers: Sequence[Paper], check: Callable[[], None] | None
) -> list[dict[str, float]]:
    """The papers' TF-IDF vectors; ``check`` runs between papers (it raises to stop)."""
    out = []
    for paper in papers:
        if check is not None:
            check()
        out.append(model.vector(term_counts(parse(paper.title, paper.abstract))))
    return out


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest values, largest first (all of them when there are fewer)."""
    import numpy as np

    if len(values) > k:
        values = np.partition(values, len(values) - k)[len(values) - k :]
    return np.sort(values)[::-1]


class _Postings:
    """Sparse vectors as term -> (paper, weight) postings held in numpy arrays (a CSC matrix):
    a paper's similarity to every one of them costs the postings of its own terms, summed by
    numpy, not a Python loop over each pair."""

    def __init__(self, vectors: Sequence[dict[str, float]]) -> None:
        import numpy as np

        self.n = len(vectors)
        self.columns: dict[str, int] = {}
        column = self.columns.setdefault
        columns: list[int] = []
        values: list[float] = []
        for vec in vectors:
            columns += [column(term, len(self.columns)) for term in vec]
            values += vec.values()
        cols = np.asarray(columns, dtype=np.int64)
        order = np.argsort(cols, kind="stable")
        sizes = np.fromiter(map(len, vectors), dtype=np.int64, count=self.n)
        self.papers = np.repeat(np.arange(self.n, dtype=np.int64), sizes)[order]
        self.values = np.asarray(values, dtype=np.float64)[order]
        self.lengths = np.bincount(cols, minlength=len(self.columns))
        self.starts = np.cumsum(self.lengths) - self.lengths

    def similarities(self, vec: dict[str, float]) -> np.ndarray:
        """The dot product of ``vec`` with every stored vector."""
        import numpy as np

        get = self.columns.get
        found = [(col, value) for term, value in vec.items() if (col := get(term)) is not None]
        if not found:
            return np.zeros(self.n)
        cols = np.fromiter((c for c, _ in found), dtype=np.int64, count=len(found))
        weights = np.fromiter((w for _, w in found), dtype=np.float64, count=len(found))
        lengths = self.lengths[cols]
        # Every posting of these columns, gathered without a loop: column k's run starts at
        # starts[k] and sits at offset (its place among the gathered runs) in the result.
        shift = np.repeat(self.starts[cols] - (np.cumsum(lengths) - lengths), lengths)
        at = np.arange(int(lengths.sum())) + shift
        products = self.values[at] * np.repeat(weights, lengths)
        return np.bincount(self.papers[at], weights=products, minlength=self.n)


class RelevanceModel:
    """Scores papers against interests, offline and fast."""

    def __init__(
        self,
        interests: Interests,
        negatives: Sequence[Paper] = (),
        check: Callable[[], None] | None = None,
    ) -> None:
        """``check`` runs between the steps of learning the liked papers; it raises to stop."""
        df = background()
        self.criteria = [CriterionScorer(c, df) for c in interests.criteria]
        liked = interests.liked
        self.liked = LikedModel(liked, negatives, df, check) if liked else None

    def liked_score(self, paper: Paper) -> tuple[float, str] | None:
        """The liked-paper signal alone (0-10) and its why; None without liked papers."""
        if self.liked is None:
            return None
        counts = term_counts(parse(paper.title, paper.abstract))
        prob, nearest = self.liked.score(self.liked.vector(counts))
        return round(10.0 * prob, 3), self._liked_why(prob, nearest)

    def score(self, paper: Paper) -> RelevanceScore:
        """Relevance 0-10 with a fraction, the reason, and each criterion's own score."""
        counts = term_counts(parse(paper.title, paper.abstract))
        length = sum(counts.values())
        norm = K1 * (1.0 - B + B * length / AVG_LENGTH)
        fractions = {c.name: c.fraction(counts, norm) for c in self.criteria}
        by = {name: round(10.0 * f, 3) for name, f in fractions.items()}
        best_name = max(fractions, key=fractions.__getitem__) if fractions else ""
        crit = fractions.get(best_name, 0.0)
        if self.liked is None:
            why = best_name if crit >= WHY_FLOOR else ""
            return RelevanceScore(round(10.0 * crit, 3), why, by)
        prob, nearest = self.liked.score(self.liked.vector(counts))
        if not self.criteria:
            return RelevanceScore(round(10.0 * prob, 3), self._liked_why(prob, nearest), by)
        total = (1.0 - LIKED_WEIGHT) * crit + LIKED_WEIGHT * prob
        if (1.0 - LIKED_WEIGHT) * crit >= LIKED_WEIGHT * prob:
            why = best_name if crit >= WHY_FLOOR else ""
        else:
            why = self._liked_why(prob, nearest)
        return RelevanceScore(round(10.0 * total, 3), why, by)

    def _liked_why(self, prob: float, nearest: int) -> str:
        if self.liked is None or nearest < 0 or prob < 0.5:  # 0.5: no likelier than not
            return ""
        return f"like “{shorten(self.liked.titles[nearest], WHY_TITLE_CHARS)}”"


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return f"{cut}…"


# The LLM's 0-10 answer judged the criteria; liked papers can only add to it. A paper much like
# one the team liked is pulled part of the way up to that similarity, never pushed down: a paper
# unlike anything liked may still be exactly what a criterion asks for.
COMBINE_PULL = 0.5


def combine(
    llm: float,
    liked: float | None,
    llm_why: str = "",
    liked_why: str = "",
    pull: float = COMBINE_PULL,
) -> tuple[float, str]:
    """The LLM's relevance raised toward the liked-paper score: ``llm + pull * max(0, liked -
    llm)``, clamped to 0-10; ``why`` is the liked paper's when it raised the score more than
    the LLM's own answer did, else the LLM's."""
    llm = min(max(float(llm), 0.0), 10.0)
    if liked is None:
        return llm, llm_why
    liked = min(max(float(liked), 0.0), 10.0)
    gain = pull * max(0.0, liked - llm)
    value = round(min(llm + gain, 10.0), 3)
    stronger = liked > llm and bool(liked_why)
    return value, liked_why if stronger or not llm_why else llm_why
