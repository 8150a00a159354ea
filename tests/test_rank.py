"""The ranking stage (agent.rank): matching, fusion, feedback, why, and the LLM rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.errors import ConfigError
from agent.models import Paper
from agent.rank import Feedback, Judgement, as_criteria, as_criterion, first_clause, rank, top
from agent.rank.fusion import LLM_SHARE, feedback_weight
from agent.rank.lexical import CriterionQuery, LexicalIndex
from agent.rank.matrix import TermMatrix
from agent.rank.terms import inflect, paper_terms
from agent.sources import read_papers

FIXTURES = Path(__file__).parent / "fixtures"
RAG = "Retrieval-augmented generation: language models that retrieve documents to answer"
QUANT = {"name": "Quantization", "text": "Model quantization: low-bit weights and activations"}


@pytest.fixture(scope="module")
def day() -> list[Paper]:
    """202 real papers of one Hugging Face Daily Papers page."""
    return list(read_papers([str(FIXTURES / "hf-daily-papers-page.txt")]))


def paper(pid: str, title: str, abstract: str) -> Paper:
    return Paper(id=pid, title=title, abstract=abstract)


AUGMENTATION = paper(
    "aug",
    "Stronger Data Augmentation for Convolutional Image Classifiers",
    "Data augmentation is the main regularizer of convolutional networks. We learn augmentation "
    "policies for training images; stronger augmentation improves the image classification "
    "accuracy of CNNs on ImageNet and CIFAR, and the augmentations transfer across architectures.",
)
RAG_PAPER = paper(
    "rag",
    "Retrieval-Augmented Generation with Dense Passage Retrieval",
    "We study retrieval-augmented generation: a language model retrieves documents from a large "
    "corpus and conditions its generation on them to answer open-domain questions.",
)


def ranked_ids(scores) -> list[str]:
    return [s.paper_id for s in sorted(scores, key=lambda s: -s.relevance)]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Reinforcement learning: agents that learn from rewards", "Reinforcement learning"),
        # No clause break: the whole criterion names itself, never cut at five words.
        (
            "Retrieval-augmented generation and search with external knowledge",
            "Retrieval-augmented generation and search with external knowledge",
        ),
        ("Regularization e.g. dropout, weight decay", "Regularization e.g. dropout"),
        ("LLM agents (tools, planning)", "LLM agents"),
        ("Graph networks - message passing", "Graph networks"),
        ("Compression of v2.5 models; pruning", "Compression of v2.5 models"),
    ],
)
def test_a_bare_criterion_is_named_by_its_first_clause(text: str, name: str) -> None:
    assert first_clause(text) == name
    assert as_criterion(text).name == name


def test_a_criterion_table_keeps_its_name_and_names_must_differ() -> None:
    c = as_criterion({"name": " Quantization ", "text": "Model  quantization: low-bit"})
    assert (c.name, c.text) == ("Quantization", "Model quantization: low-bit")
    with pytest.raises(ConfigError, match="both named"):
        as_criteria([QUANT, "quantization: anything"])
    with pytest.raises(ConfigError, match="non-empty 'text'"):
        as_criterion({"name": "x", "text": " "})


@pytest.mark.parametrize(
    ("word", "form"),
    [
        ("models", "model"),
        ("modelled", "model"),
        ("augmented", "augment"),
        ("augmentation", "augmentation"),  # a derivation, not an inflection
        ("classes", "class"),
        ("loss", "loss"),
        ("analysis", "analysis"),
        ("studies", "study"),
    ],
)
def test_inflection_joins_only_inflected_forms(word: str, form: str) -> None:
    assert inflect(word) == form


def lexical(criterion: str, papers: list[Paper]) -> np.ndarray:
    terms = [paper_terms(p) for p in papers]
    index = LexicalIndex(
        TermMatrix([t.inflected for t in terms]), TermMatrix([t.derived for t in terms])
    )
    return index.scores(CriterionQuery(as_criterion(criterion)))


def test_augmentation_does_not_match_augmented_generation(day: list[Paper]) -> None:
    # Issue 18: a CNN data-augmentation paper was pick 11 for retrieval-augmented generation.
    aug, rag = lexical(RAG, [AUGMENTATION, RAG_PAPER])
    assert aug < 0.2 * rag
    scores = rank([*day, AUGMENTATION, RAG_PAPER], [RAG])
    order = ranked_ids(scores)
    assert order.index("rag") < 3
    assert order.index("aug") > 30
    assert next(s for s in scores if s.paper_id == "aug").why == ""


def test_a_phrase_counts_more_than_its_words_apart() -> None:
    together = paper("t", "A study", "We study augmented generation of text with a model.")
    apart = paper("a", "A study", "We study generation of text with a model augmented by noise.")
    t, a = lexical("augmented generation", [together, apart])
    assert t > 1.25 * a


def test_why_is_the_criterion_name_in_the_users_words(day: list[Paper]) -> None:
    scores = rank(day, [QUANT, RAG])
    best = max(scores, key=lambda s: s.by_criterion["Quantization"])
    assert best.why == "Quantization"
    assert "Quantization" in next(p.title for p in day if p.id == best.paper_id)
    assert set(best.by_criterion) == {"Quantization", "Retrieval-augmented generation"}
    assert [s.paper_id for s in scores] == [p.id for p in day]  # input order
    assert all(0.0 <= s.relevance <= 10.0 for s in scores)


def quantization_likes(day: list[Paper]) -> tuple[list[Paper], list[Paper]]:
    liked = [p for p in day if "quantiz" in p.title.lower()][:4]
    return liked, [p for p in day if p not in liked]


def test_why_names_the_liked_paper_it_resembles(day: list[Paper]) -> None:
    liked, rest = quantization_likes(day)
    scores = rank(rest, [RAG], Feedback(liked=liked))
    named = [s for s in scores if s.why.startswith("like: ")]
    assert named
    titles = {" ".join(p.title.split())[:40] for p in liked}
    assert all(s.why.removeprefix("like: ")[:40] in titles for s in named)
    # The paper most like the likes, by the liked signal, is explained by them.
    alike = max(scores, key=lambda s: s.by_signal["feedback"])
    assert alike.why.startswith("like: ")


def test_one_liked_paper_cannot_jump_a_criterion_match(day: list[Paper]) -> None:
    liked, rest = quantization_likes(day)
    twin = liked[0].model_copy(update={"id": "twin"})  # the same paper, again in the day
    scores = rank([*rest, twin], [RAG], Feedback(liked=liked))
    order = ranked_ids(scores)
    rag_best = max(scores, key=lambda s: s.by_criterion[as_criterion(RAG).name])
    assert order.index(rag_best.paper_id) < order.index("twin")
    # ...yet it rises well above an ordinary paper of the day.
    assert order.index("twin") < len(order) // 10
    twin_score = next(s for s in scores if s.paper_id == "twin")
    assert twin_score.by_signal["feedback"] > 3.0  # its raw z is beyond the clip


def test_likes_weigh_by_evidence() -> None:
    weights = [feedback_weight(n) for n in (1, 5, 10, 20, 100)]
    assert weights == sorted(weights)
    assert feedback_weight(10) == 0.5
    assert weights[-1] < 1.0


def test_liked_papers_lift_papers_like_them(day: list[Paper]) -> None:
    liked, rest = quantization_likes(day)
    before = {s.paper_id: s.relevance for s in rank(rest, [RAG])}
    after = rank(rest, [RAG], Feedback(liked=liked))
    alike = sorted(after, key=lambda s: -s.by_signal["feedback"])[:5]
    assert all(s.relevance > before[s.paper_id] for s in alike)


def test_disliked_papers_push_papers_like_them_down(day: list[Paper]) -> None:
    # A reader who wants retrieval but dislikes one line of it (differentiable search indices).
    disliked = [p for p in day if "Differentiable Search Ind" in p.title][:1]
    twin = disliked[0].model_copy(update={"id": "twin"})
    rest = [p for p in day if p not in disliked]
    plain = {s.paper_id: s for s in rank([*rest, twin], [RAG])}
    voted = {s.paper_id: s for s in rank([*rest, twin], [RAG], Feedback(disliked=disliked))}
    assert voted["twin"].relevance < plain["twin"].relevance
    assert ranked_ids(voted.values()).index("twin") > ranked_ids(plain.values()).index("twin")


def test_liked_papers_alone_rank_the_day(day: list[Paper]) -> None:
    liked, rest = quantization_likes(day)
    scores = rank(rest, [], Feedback(liked=liked))
    top5 = [next(p for p in rest if p.id == i) for i in top(scores, 5)]
    assert sum(("quantiz" in p.abstract or "ompress" in p.abstract) for p in top5) >= 3
    assert all(s.why.startswith("like: ") for s in scores if s.paper_id in top(scores, 5))


def test_a_day_of_one_paper_is_still_scored() -> None:
    (match,) = rank([RAG_PAPER], [RAG])
    (other,) = rank([AUGMENTATION], [RAG])
    assert match.relevance > 5.0
    assert other.relevance < 2.0


def test_an_llm_judgement_shares_the_score_and_gives_the_reason(day: list[Paper]) -> None:
    offline = rank(day, [RAG, QUANT])
    picked = top(offline, 3)
    judged = {picked[0]: Judgement(1.0, "about CNN augmentation, not retrieval")}
    refined = rank(day, [RAG, QUANT], llm=judged)
    for before, after in zip(offline, refined, strict=True):
        if after.paper_id == picked[0]:
            assert after.relevance == pytest.approx(
                LLM_SHARE * 1.0 + (1 - LLM_SHARE) * before.relevance, abs=1e-3
            )
            assert after.why == "about CNN augmentation, not retrieval"
            assert after.by_signal["llm"] == 1.0
        else:
            assert after == before
    assert picked[0] not in top(refined, 3)


def test_nothing_to_rank_by_is_a_config_error_and_an_empty_day_is_empty() -> None:
    with pytest.raises(ConfigError, match="nothing to rank by"):
        rank([RAG_PAPER], [])
    assert rank([], [RAG]) == []


def test_term_matrix_reads_rows_and_columns_as_a_dense_matrix_would() -> None:
    rows = [{"a": 1.0, "b": 2.0}, {}, {"b": 3.0, "c": 4.0}, {"a": 5.0}]
    m = TermMatrix(rows)
    dense = np.array([[r.get(t, 0.0) for t in m.terms()] for r in rows])
    w = np.array([0.5, -1.0, 2.0])
    assert np.allclose(m.dot(w), dense @ w)
    assert np.allclose(m.weighted_rows(np.array([1.0, 2.0, 3.0, 4.0])), dense.T @ [1, 2, 3, 4])
    assert np.allclose(m.row_sums(), dense.sum(axis=1))
    rows_b, values_b = m.column("b")
    assert rows_b.tolist() == [0, 2] and values_b.tolist() == [2.0, 3.0]
    assert len(m.column("zzz")[0]) == 0
    assert np.allclose(m.row(2), dense[2])


def test_background_idfs_equal_idf_term_by_term() -> None:
    from agent.backends.local.background import background

    df = background()
    terms = ["model", "dropout", "augment gener", "never-seen-term"]
    assert np.allclose(df.idfs(terms), [df.idf(t) for t in terms])
