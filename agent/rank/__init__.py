"""The ranking stage: a day's papers scored against a profile's criteria and feedback.

``rank(papers, criteria, feedback, semantic=..., llm=...) -> list[Score]``. Signals (lexical,
learned from liked papers, optional embeddings, an optional LLM) are standardised per day and
fused with documented weights (``agent.rank.fusion``).
"""

from agent.rank.fusion import Judgement
from agent.rank.profile import Feedback, as_criteria, as_criterion, first_clause
from agent.rank.ranking import Score, rank, top
from agent.rank.semantic import Semantic

__all__ = [
    "Feedback",
    "Judgement",
    "Score",
    "Semantic",
    "as_criteria",
    "as_criterion",
    "first_clause",
    "rank",
    "top",
]
