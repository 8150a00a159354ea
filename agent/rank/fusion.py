"""How the signals become one relevance: each standardised over the day, summed with fixed
weights, mapped to 0-10, with ``why`` naming the part that weighed most.

Per criterion ``c`` (each signal as a z-score over the day's papers)::

    S_c = LEXICAL * lexical_c + EXPANSION * expansion_c [+ SEMANTIC * semantic_c]

and for the profile::

    S = max(max_c S_c, LIKED_ROUTE * W_c * w(n) * alike)
        + w(n) * clip(liked) [+ w(n) * SEMANTIC_LIKED * clip(liked_semantic)]
    Z = S / W_c        relevance = 10 * (1 - exp(-max(Z, 0) / SCALE))

where ``W_c`` is the sum of a criterion's weights and ``alike`` the liked signals' mean z
(unclipped). Dividing by ``W_c`` alone keeps Z on the criteria's scale: liked papers move a paper
up or down by how much it is like them (their z averages 0 over the day) instead of shrinking
every score, which is what adding four liked papers did before.

Weights, measured on the relevance dev set (MAP; ``benchmarks/eval_rank.py``, "b0" being the
criterion alone on the same papers) and checked on ten held-out interests:

* Lexical, expansion and semantic weigh the same (1.0): what an honest z-score sum does without
  a reason to prefer one signal. With the semantic signal at 0.5 or 0.75, criteria alone was
  0.520 / 0.521 on dev against 0.521 at 1.0 (held-out 0.710 / 0.713 / 0.715).
* Liked papers weigh ``w(n) = n / (n + LIKED_HALF)``: a signal learned from few examples is
  noisy, so it earns weight with evidence (half a criterion signal's weight at 10 likes). Its
  z-score is clipped at ``LIKED_CLIP`` when there are criteria: a paper nearly identical to one
  liked paper scores z 6-14 from that one example, enough to jump any criterion match. Both
  parts were needed for "liked papers never make it worse" on every seed: with a fixed weight 1
  the worst of five dev seeds lost 0.017 MAP to b0, with w(n) alone 0.008; with both, 20 likes
  gain +0.003 to +0.013 on dev (+0.009 to +0.017 held-out), 5 likes +0.003 / +0.005 at worst.
  Clipping the lexical signal the same way costs 0.08 MAP: its long tail is where matches are.
  Disliked papers refine the negatives but do not add to n (random dislikes inflating the
  weight took the worst dev seed's gain to zero); without likes, n counts them.
* With embeddings, the embedding classifier (``semantic.liked_direction``) weighs
  ``SEMANTIC_LIKED`` = half of w(n): at the full w(n) the worst dev seed gained +0.002, at half
  +0.004 (held-out +0.005 / +0.004); the plain centroid difference lost 0.003 on a seed.
* The likes are also a way in (``LIKED_ROUTE``): the clip leaves a twin of a liked paper that
  matches no criterion word at relevance 0; scored by its likeness at half a criterion's scale
  (weighted by w(n)) it reads 7 with four likes. Rankings were the same within 0.001 MAP, every
  seed still gaining; at the full scale the worst seed's gain fell to +0.000 (20 likes) and
  -0.002 (5 likes).
* Without criteria the liked signal is the ranking, unclipped (Z = its z).

``SCALE``: a paper two standard deviations above the day's mean on every signal reads 6.3,
three 7.8; an average paper 0. Statistics are the day's, drawn toward typical values
(``PRIORS``) by ``PRIOR_PAPERS`` pseudo-papers, so a day of a few papers is still scored by
its criteria. The learned signals have no typical value to fall back on: a day of one paper
ranked by liked papers alone scores 0.

An LLM, where used, judges the top of this ranking; a judged paper's relevance is
``LLM_SHARE * llm + (1 - LLM_SHARE) * offline`` (the LLM reads the criteria closely, the offline
signals know the liked papers; neither is measured better here, so equal shares), and its
``why`` is the LLM's reason. Unjudged papers keep their offline relevance, so a judgement can
move a paper below them but never lift an unjudged one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent.rank.matrix import Array

LEXICAL = 1.0
EXPANSION = 1.0
SEMANTIC = 1.0
SEMANTIC_LIKED = 0.5
LIKED_HALF = 10.0
LIKED_CLIP = 3.0
LIKED_ROUTE = 0.5
SCALE = 2.0
LLM_SHARE = 0.5
WHY_Z = 1.0  # a part below one standard deviation above the day's mean is not a reason
PRIOR_PAPERS = 10.0
# Mean and standard deviation of a signal over typical papers (the 1,568 papers of the relevance
# dev set against its twenty dev and held-out criteria; lexical sd 0.14-0.29 by criterion;
# semantic: the cosines to "name: text", 0.24 / 0.09, and to the best aspect, 0.28 / 0.09):
# where a small day's statistics are drawn toward.
PRIORS: dict[str, tuple[float, float]] = {
    "lexical": (0.22, 0.20),
    "semantic": (0.26, 0.09),
}


@dataclass(frozen=True)
class Judgement:
    """An LLM's relevance (0-10) of one paper, and its reason."""

    relevance: float
    why: str = ""


def standardise(values: Array, rows: Array, prior: tuple[float, float] | None = None) -> Array:
    """``values`` as z-scores over ``rows`` (the day), with ``PRIOR_PAPERS`` pseudo-papers of
    the ``prior`` (mean, sd) mixed into the statistics; all zeros where nothing varies."""
    day = values[rows]
    n = float(len(day))
    if prior is None:
        if n < 2:
            return np.zeros_like(values)
        mean, var = float(day.mean()), float(day.var())
    else:
        m0, s0 = prior
        mean = (float(day.sum()) + PRIOR_PAPERS * m0) / (n + PRIOR_PAPERS)
        spread = float(((day - mean) ** 2).sum()) + PRIOR_PAPERS * (s0 * s0 + (m0 - mean) ** 2)
        var = spread / (n + PRIOR_PAPERS)
    if var <= 0.0:
        return np.zeros_like(values)
    return (values - mean) / math.sqrt(var)


def feedback_weight(n: int) -> float:
    """The weight of a signal learned from ``n`` liked papers (or, without any, disliked
    ones): n / (n + LIKED_HALF)."""
    return n / (n + LIKED_HALF)


def to_relevance(z: Array) -> Array:
    """Fused z-scores mapped to 0-10: 10 * (1 - exp(-max(z, 0) / SCALE)), 3 decimals."""
    return np.round(10.0 * (1.0 - np.exp(-np.maximum(z, 0.0) / SCALE)), 3)


def with_llm(offline: float, judgement: Judgement) -> float:
    """A judged paper's relevance: LLM_SHARE of the LLM's, the rest the offline one's."""
    llm = min(max(float(judgement.relevance), 0.0), 10.0)
    return round(LLM_SHARE * llm + (1.0 - LLM_SHARE) * offline, 3)
