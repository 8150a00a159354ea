"""The ranking stage with embeddings: cached vectors are used, the rest encoded in batches."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from agent.models import Paper
from agent.rank import Feedback, Semantic, as_criterion, rank
from agent.rank import semantic as semantic_module
from agent.rank.semantic import criterion_texts, paper_text
from agent.sources import read_papers

FIXTURES = Path(__file__).parent / "fixtures"
RAG = "Retrieval-augmented generation: language models that retrieve documents to answer"
DIM = 256


class HashingEncoder:
    """A deterministic stand-in for MiniLM: hashed bag of words, unit length; records calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), DIM))
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.strip(".,:;").encode()).hexdigest(), 16) % DIM] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


@pytest.fixture(scope="module")
def day() -> list[Paper]:
    """202 real papers of one Hugging Face Daily Papers page."""
    return list(read_papers([str(FIXTURES / "hf-daily-papers-page.txt")]))


def test_known_vectors_are_used_and_only_the_rest_is_encoded_in_batches(
    day: list[Paper], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(semantic_module, "BATCH", 16)
    encoder = HashingEncoder()
    known = {p.id: encoder.encode([paper_text(p)])[0] for p in day[:150]}
    encoder.calls.clear()
    semantic = Semantic(encoder, known=known)
    scores = rank(day, [RAG], semantic=semantic)
    encoded = [t for call in encoder.calls for t in call]
    assert all(len(call) <= 16 for call in encoder.calls)
    # The 52 papers without a vector, once each, plus the criterion's texts.
    assert sorted(encoded) == sorted(
        [paper_text(p) for p in day[150:]] + criterion_texts(as_criterion(RAG))
    )
    assert set(semantic.computed) == {p.id for p in day[150:]}
    assert all("semantic" in s.by_signal for s in scores)
    # A second ranking of the same day with what was computed encodes no paper again.
    encoder.calls.clear()
    rank(day, [RAG], semantic=Semantic(encoder, known={**known, **semantic.computed}))
    assert [t for call in encoder.calls for t in call] == criterion_texts(as_criterion(RAG))


def test_the_semantic_signal_changes_the_ranking_and_likes_learn_from_embeddings(
    day: list[Paper],
) -> None:
    encoder = HashingEncoder()
    plain = rank(day, [RAG])
    with_vectors = rank(day, [RAG], semantic=Semantic(encoder))
    assert [s.relevance for s in plain] != [s.relevance for s in with_vectors]
    liked = [p for p in day if "quantiz" in p.title.lower()][:4]
    rest = [p for p in day if p not in liked]
    scores = rank(rest, [RAG], Feedback(liked=liked), semantic=Semantic(encoder))
    assert all({"feedback", "feedback_semantic"} <= set(s.by_signal) for s in scores)
    named = [s for s in scores if s.why.startswith("like: ")]
    assert named
