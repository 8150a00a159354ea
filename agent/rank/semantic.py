"""The semantic signals (optional, the ``semantic`` extra): sentence embeddings of the day's
papers, compared with each criterion and learned from the liked papers.

A criterion's signal is the mean of two standardised cosines, to "name: text" and to its best
aspect (as the lexical signal adds its best aspect). Liked papers give an embedding classifier:
the liked centroid minus the negatives' (as ``agent.rank.learned`` does on TF-IDF).

Embeddings are slow (all-MiniLM-L6-v2: about 16 papers/s on one core), so a caller passes the
vectors it already has (``known``, by paper id: the library stores them) and only the rest are
encoded, ``BATCH`` at a time; ``computed`` then holds the new ones for the caller to keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from agent.interests import Criterion
from agent.models import Paper
from agent.rank.learned import Rows, disliked_share
from agent.rank.lexical import aspects
from agent.rank.matrix import Array

if TYPE_CHECKING:
    from agent.backends.local.semantic import Encoder

BATCH = 256  # texts per encoder call: bounded memory, and progress between calls


def paper_text(paper: Paper) -> str:
    """What is embedded of a paper: its title and abstract."""
    return f"{paper.title}. {paper.abstract}".strip(" .")


def criterion_texts(criterion: Criterion) -> list[str]:
    """What is embedded of a criterion: "name: text" first, then each aspect."""
    return [f"{criterion.name}: {criterion.text}", *aspects(criterion)]


class Semantic:
    """An encoder, and the paper vectors the caller already has."""

    def __init__(
        self, encoder: Encoder | None = None, known: Mapping[str, npt.ArrayLike] | None = None
    ) -> None:
        if encoder is None:
            from agent.backends.local.semantic import MiniLM  # ConfigError without the extra

            encoder = MiniLM()
        self.encoder = encoder
        self.known = dict(known or {})
        self.computed: dict[str, Array] = {}

    def encode(self, texts: Sequence[str]) -> Array:
        """Unit vectors of ``texts``, one row each, encoded ``BATCH`` at a time."""
        parts = [
            np.asarray(self.encoder.encode(texts[i : i + BATCH]), dtype=np.float64)
            for i in range(0, len(texts), BATCH)
        ]
        if not parts:
            return np.zeros((0, 0))
        out = np.vstack(parts)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0.0, 1.0, norms)

    def papers(self, papers: Sequence[Paper]) -> Array:
        """One unit vector per paper: known ones as given, the others encoded (and kept)."""
        missing = [p for p in papers if p.id not in self.known and p.id not in self.computed]
        unique = list({p.id: p for p in missing}.values())
        if unique:
            vectors = self.encode([paper_text(p) for p in unique])
            self.computed.update(zip((p.id for p in unique), vectors, strict=True))
        rows = [self.known.get(p.id, self.computed.get(p.id)) for p in papers]
        if not rows:
            return np.zeros((0, 0))
        out = np.vstack([np.asarray(r, dtype=np.float64).ravel() for r in rows])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0.0, 1.0, norms)

    def criteria(self, criteria: Iterable[Criterion]) -> list[Array]:
        """Per criterion, its text vectors ("name: text" first, then the aspects)."""
        listed = list(criteria)
        texts = [criterion_texts(c) for c in listed]
        flat = self.encode([t for group in texts for t in group])
        out, start = [], 0
        for group in texts:
            out.append(flat[start : start + len(group)])
            start += len(group)
        return out


def criterion_similarity(vectors: Array, texts: Array) -> tuple[Array, Array]:
    """Cosines of every paper to "name: text", and to the best aspect."""
    cosines = vectors @ texts.T
    best_aspect = cosines[:, 1:].max(axis=1) if texts.shape[0] > 1 else cosines[:, 0]
    return cosines[:, 0], best_aspect


def liked_direction(vectors: Array, liked: Rows, negatives: Rows, disliked: Rows) -> Array:
    """The embedding classifier: a shrunk Fisher discriminant of the liked papers against the
    negatives (disliked first), ``(C + lambda I)^-1 (mean(liked) - mean(negatives))``.

    ``C`` is the covariance of the day's papers and ``lambda`` their mean variance (shrinkage
    halfway to the identity). The plain centroid difference, as on TF-IDF, made liked papers
    hurt criteria + embeddings on a dev seed (MAP -0.003): embedding dimensions are
    correlated, and the discriminant discounts the directions every paper varies along.
    """
    against = vectors[negatives].mean(axis=0) if len(negatives) else 0.0
    if len(disliked):
        share = disliked_share(len(negatives))
        against = share * vectors[disliked].mean(axis=0) + (1.0 - share) * against
    direction = vectors[liked].mean(axis=0) - against
    if len(negatives) < 2:
        return direction
    cov = np.cov(vectors[negatives], rowvar=False)
    shrink = float(np.trace(cov)) / cov.shape[0]
    return np.linalg.solve(cov + shrink * np.eye(cov.shape[0]), direction)
