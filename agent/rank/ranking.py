"""rank(): a whole day's papers scored against a profile in one pass (see ``fusion`` for how)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.errors import ConfigError
from agent.interests import Criterion
from agent.models import Paper, clip
from agent.rank import fusion
from agent.rank.learned import Rows, linear_model, pseudo_relevant, tfidf
from agent.rank.lexical import CriterionQuery, LexicalIndex
from agent.rank.matrix import Array, TermMatrix
from agent.rank.profile import Feedback, as_criteria
from agent.rank.semantic import Semantic, criterion_similarity, liked_direction
from agent.rank.terms import paper_terms

WHY_TITLE_CHARS = 60


@dataclass(frozen=True)
class Score:
    """One paper's relevance (0-10), the reason in the reader's words, each criterion's own
    relevance (0-10), and each signal's z-score over the day (for the criterion signals, those
    of the paper's best criterion; ``llm`` is the LLM's 0-10 where it judged the paper)."""

    paper_id: str
    relevance: float
    why: str
    by_criterion: dict[str, float] = field(default_factory=dict)
    by_signal: dict[str, float] = field(default_factory=dict)


def rank(
    papers: Sequence[Paper],
    criteria: Iterable[str | Mapping[str, object] | Criterion] = (),
    feedback: Feedback | None = None,
    *,
    semantic: Semantic | None = None,
    llm: Mapping[str, fusion.Judgement] | None = None,
) -> list[Score]:
    """Score a day's papers (in input order) by the criteria, the feedback and, when given,
    embeddings and an LLM's judgements of some of them (by paper id)."""
    crits = as_criteria(criteria)
    feedback = feedback or Feedback()
    if not crits and not feedback.liked:
        raise ConfigError("nothing to rank by: no criteria and no liked papers")
    if not papers:
        return []
    queries = [CriterionQuery(c) for c in crits]
    return _Day(papers, feedback, semantic, queries).scores(queries, llm or {})


def top(scores: Sequence[Score], m: int) -> list[str]:
    """The ids of the ``m`` most relevant papers (what an LLM is asked to refine)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i].relevance)
    return [scores[i].paper_id for i in order[:m]]


class _Day:
    """The day's papers and the feedback as matrices: every row a paper, the day's first."""

    def __init__(
        self,
        papers: Sequence[Paper],
        feedback: Feedback,
        semantic: Semantic | None,
        queries: Sequence[CriterionQuery],
    ) -> None:
        self.papers = list(papers)
        self.liked = list(feedback.liked)
        extra = self.liked + list(feedback.disliked)
        # Only the queries read the inflection level, and only the day's papers are queried.
        wanted = frozenset(t for q in queries for t in q.inflected_terms())
        terms = [paper_terms(p, wanted) for p in self.papers]
        terms += [paper_terms(p, frozenset()) for p in extra]
        n, n_liked = len(self.papers), len(self.liked)
        derived = TermMatrix([t.derived for t in terms])
        self.index = LexicalIndex(TermMatrix([t.inflected for t in terms]), derived)
        self.vectors = tfidf(derived)
        self.day: Rows = np.arange(n)
        self.liked_rows: Rows = np.arange(n, n + n_liked)
        disliked_ids = {p.id for p in feedback.disliked}
        liked_ids = {p.id for p in self.liked}
        # A day's paper voted on before is that vote's example, never a plain negative.
        in_day_disliked = [i for i, p in enumerate(self.papers) if p.id in disliked_ids]
        self.disliked_rows: Rows = np.asarray(
            [*range(n + n_liked, n + len(extra)), *in_day_disliked], dtype=np.int64
        )
        self.negatives: Rows = np.asarray(
            [i for i, p in enumerate(self.papers) if p.id not in liked_ids | disliked_ids],
            dtype=np.int64,
        )
        self.semantic = semantic
        self.embeddings: Array | None = None
        if semantic is not None:
            self.embeddings = semantic.papers(self.papers + extra)

    def _z(self, values: Array, prior: str | None = None) -> Array:
        return fusion.standardise(values, self.day, fusion.PRIORS.get(prior or ""))

    def _criterion(
        self, query: CriterionQuery, texts: Array | None
    ) -> tuple[Array, float, dict[str, Array]]:
        """The criterion's weighted sum S_c over all rows, its weight, and its signals."""
        lexical = self._z(self.index.scores(query), "lexical")
        total, weight = fusion.LEXICAL * lexical, fusion.LEXICAL
        signals = {"lexical": lexical}
        pseudo = pseudo_relevant(lexical, self.negatives)
        rest = np.setdiff1d(self.negatives, pseudo)
        if len(pseudo) and len(rest) >= 2:  # expansion needs papers to contrast with
            expansion = self._z(self.vectors.dot(linear_model(self.vectors, pseudo, rest)))
            total, weight = total + fusion.EXPANSION * expansion, weight + fusion.EXPANSION
            signals["expansion"] = expansion
        if texts is not None and self.embeddings is not None:
            full, aspect = criterion_similarity(self.embeddings, texts)
            sem = (self._z(full, "semantic") + self._z(aspect, "semantic")) / 2.0
            total, weight = total + fusion.SEMANTIC * sem, weight + fusion.SEMANTIC
            signals["semantic"] = sem
        return total, weight, signals

    def _feedback(self, clipped: bool) -> tuple[Array, float, float, Array, dict[str, Array]]:
        """The votes' weighted part of S over all rows, the evidence weight w(n), the part's
        total weight, how alike each paper is to the liked papers (the signals' unclipped mean
        z), and the signals."""
        # The evidence is the liked papers: the negative side is known from the day already,
        # and dislikes only refine it (counting them too cost the guard its margin on dev).
        w = fusion.feedback_weight(len(self.liked) or len(self.disliked_rows))
        bound = fusion.LIKED_CLIP if clipped else np.inf
        # Only dislikes: the day's ordinary paper is the positive side, the disliked the other.
        pos, neg = (
            (self.liked_rows, self.negatives) if self.liked else (self.negatives, self.day[:0])
        )
        model = linear_model(self.vectors, pos, neg, self.disliked_rows)
        signals = {"feedback": self._z(self.vectors.dot(model))}
        shares = {"feedback": 1.0}
        if self.embeddings is not None:
            direction = liked_direction(self.embeddings, pos, neg, self.disliked_rows)
            signals["feedback_semantic"] = self._z(self.embeddings @ direction)
            shares["feedback_semantic"] = fusion.SEMANTIC_LIKED
        part = sum(w * shares[k] * np.clip(z, -bound, bound) for k, z in signals.items())
        alike = sum(shares[k] * z for k, z in signals.items()) / sum(shares.values())
        return part, w, w * sum(shares.values()), alike, signals

    def scores(
        self, queries: list[CriterionQuery], llm: Mapping[str, fusion.Judgement]
    ) -> list[Score]:
        """Every day paper's Score, in input order."""
        n = len(self.papers)
        criteria = [q.criterion for q in queries]
        texts: list[Array | None] = [None] * len(criteria)
        if self.semantic is not None and criteria:
            texts = list(self.semantic.criteria(criteria))
        per = [self._criterion(q, t) for q, t in zip(queries, texts, strict=True)]
        signals: dict[str, Array] = {}
        crit_weight, crit_part, crit_z = 0.0, np.zeros(n), np.full(n, -np.inf)
        by_crit = np.zeros((0, n))
        if per:
            crit_weight = per[0][1]
            stacked = np.vstack([total[:n] for total, _, _ in per])
            best = stacked.argmax(axis=0)
            crit_part = stacked[best, np.arange(n)]
            crit_z = crit_part / crit_weight
            by_crit = fusion.to_relevance(stacked / crit_weight)
            for name in per[0][2]:
                values = np.vstack([sig[name][:n] for _, _, sig in per])
                signals[name] = values[best, np.arange(n)]  # the best criterion's
        liked_part, evidence, liked_weight = np.zeros(n), 0.0, 0.0
        alike = np.full(n, -np.inf)
        if self.liked or len(self.disliked_rows):
            fb = self._feedback(clipped=bool(per))
            part, evidence, liked_weight, alike_all, liked_signals = fb
            liked_part, alike = part[:n], alike_all[:n]
            signals.update({k: v[:n] for k, v in liked_signals.items()})
        if per and self.liked:
            # The likes are a second way in: a paper far more like them than it meets any
            # criterion (a twin of a liked paper) is scored by that likeness instead.
            route = fusion.LIKED_ROUTE * crit_weight * evidence
            crit_part = np.maximum(crit_part, route * alike)
        # On the criteria's scale: liked papers move a paper up or down by how much it is like
        # them (their z averages 0 over the day), never scale every score down.
        relevance = fusion.to_relevance((crit_part + liked_part) / (crit_weight or liked_weight))
        out = []
        for i, paper in enumerate(self.papers):
            why = ""
            # The stronger signal names the reason: how alike the paper is to the liked papers
            # against how well it meets its best criterion, both in z over the day.
            if self.liked and alike[i] > crit_z[i] and alike[i] >= fusion.WHY_Z:
                title = " ".join(self.liked[self._nearest_liked(i)].title.split())
                why = f"like: {clip(title, WHY_TITLE_CHARS)}"
            elif per and crit_z[i] >= fusion.WHY_Z:
                why = criteria[int(best[i])].name
            by_signal = {k: round(float(v[i]), 3) for k, v in signals.items()}
            value = float(relevance[i])
            judgement = llm.get(paper.id)
            if judgement is not None:
                value = fusion.with_llm(value, judgement)
                by_signal["llm"] = float(judgement.relevance)
                why = judgement.why or why
            by = {c.name: float(by_crit[k, i]) for k, c in enumerate(criteria)}
            out.append(Score(paper.id, value, why, by, by_signal))
        return out

    def _nearest_liked(self, i: int) -> int:
        """The liked paper that day paper ``i`` most resembles (embedding or TF-IDF cosine)."""
        if self.embeddings is not None:
            return int((self.embeddings[self.liked_rows] @ self.embeddings[i]).argmax())
        return int(self.vectors.dot(self.vectors.row(i))[self.liked_rows].argmax())
