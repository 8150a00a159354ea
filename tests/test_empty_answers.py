"""Answers that say nothing are invalid answers: a summary that is the prompt's placeholder, a
tag name, the title or the abstract's opening copied word for word is re-asked, then an error
record; a repeated tag is one tag; placeholder ids in a group answer are said once, clearly."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
import respx

from agent.errors import PaperFailed
from agent.llm.answers import AnswerInvalid, parse_answer
from agent.llm.prompts import PromptBuilder
from agent.models import Paper
from agent.taxonomy import load_taxonomy
from tests.llm import BASE_URL, answer, completion, sent_json

TAXONOMY = load_taxonomy()
PAPER = Paper(
    id="2401.00001",
    title="Tiny Transformers Learn to Sort",
    abstract=(
        "Sorting is a classic probe of algorithmic reasoning in neural networks. We train "
        "two-layer transformers on lists of up to 64 numbers and find that they generalise to "
        "lists four times longer when trained with a curriculum."
    ),
)
PLACEHOLDERS = PromptBuilder(TAXONOMY, max_tags=3, summary_words=40).placeholders


def parse(summary: str, tags: list[str] | None = None, final: bool = False):
    raw = json.dumps({"tags": tags or ["LLMs"], "summary": summary})
    return parse_answer(
        raw,
        TAXONOMY,
        max_tags=3,
        summary_words=40,
        final=final,
        paper=PAPER,
        placeholders=PLACEHOLDERS,
    )


def test_the_placeholders_are_read_from_the_templates():
    assert {"<the summary>", "<tag names from the list>"} <= PLACEHOLDERS
    group = PromptBuilder(TAXONOMY, max_tags=3, summary_words=40, group_size=4)
    assert "<the paper's id>" in group.placeholders


@pytest.mark.parametrize(
    ("summary", "why"),
    [
        ("<the summary>", "placeholder"),
        ("the summary", "placeholder"),
        ('"<summary>"', "placeholder"),
        ("<a one-sentence summary of the paper>", "placeholder"),
        ("LLMs", "tag name"),
        ("reasoning.", "tag name"),
        ("LLMs, Reasoning and Agents", "tag name"),
        ("Tiny transformers learn to sort.", "repeats the title"),
        ("Sorting is a classic probe of algorithmic reasoning in neural networks.", "copies"),
        ("sorting is a classic probe of algorithmic reasoning", "copies"),
        (PAPER.abstract, "copies"),
    ],
)
@pytest.mark.parametrize("final", [False, True])
def test_a_summary_that_says_nothing_is_refused_even_at_the_last_attempt(summary, why, final):
    with pytest.raises(AnswerInvalid, match=why):
        parse(summary, final=final)


@pytest.mark.parametrize(
    "summary",
    [
        # Starts like the abstract, then says what the paper finds: a summary.
        "Sorting is a classic probe of reasoning: two-layer transformers trained with a "
        "curriculum generalise to lists four times longer.",
        "Two-layer transformers trained with a curriculum sort lists four times longer than "
        "those seen in training.",
        "A study of LLMs and reasoning on sorting tasks.",
    ],
)
def test_a_summary_of_its_own_is_kept(summary):
    assert parse(summary).summary == summary


def test_a_repeated_tag_is_one_tag():
    assert parse("Transformers learn to sort.", ["LLMs", "LLMs", "LLMs"]).tags == ["LLMs"]
    assert parse("Transformers learn to sort.", ["LLMs", "llms", "Agents", "LLMs"]).tags == [
        "LLMs",
        "Agents",
    ]


# Through the client: re-asked with the reason, then an error record.


@pytest.fixture
def mocked_llm():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


async def test_a_placeholder_summary_is_re_asked_with_the_reason(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=[
            answer(["LLMs"], "<the summary>"),
            answer(["LLMs", "LLMs", "LLMs"], "Curriculum-trained transformers sort longer lists."),
        ]
    )
    result = await make_backend().annotate(PAPER)
    assert result.tags == ["LLMs"]
    assert result.summary == "Curriculum-trained transformers sort longer lists."
    repair = sent_json(route.calls[1])["messages"][-1]["content"]
    assert "placeholder" in repair


async def test_a_model_that_only_copies_the_title_gets_an_error_record(mocked_llm, make_backend):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"], PAPER.title))
    with pytest.raises(PaperFailed) as failed:
        await make_backend(cache=True).annotate(PAPER)
    assert failed.value.kind == "invalid_answer"
    assert "repeats the title" in failed.value.message
    assert route.call_count == 3  # the answer and two repairs; nothing cached


async def test_a_cached_placeholder_answer_is_asked_again(mocked_llm, make_backend):
    """An answer cached before this check (or by hand) is validated again on its hit."""
    backend = make_backend(cache=True)
    key = backend.key_for(backend.prompts().messages(PAPER))
    backend.llm.cache.set(key, {"tags": ["LLMs"], "summary": "<the summary>"})
    mocked_llm.post("/chat/completions").mock(
        return_value=answer(["LLMs"], "Curriculum-trained transformers sort longer lists.")
    )
    result = await backend.annotate(PAPER)
    assert not result.cached and result.summary.startswith("Curriculum")


async def test_placeholder_ids_in_a_group_answer_are_reported_once_and_clearly(
    mocked_llm, make_backend, caplog
):
    papers = [
        Paper(id=f"2401.0000{i}", title=f"Paper number {i}", abstract=f"We sort {i} lists.")
        for i in range(3)
    ]

    def reply(request: httpx.Request) -> httpx.Response:
        user = json.loads(request.content)["messages"][1]["content"]
        if "<papers>" in user:
            entry = {"id": "<the paper's id>", "tags": ["LLMs"], "summary": "It sorts lists."}
            return httpx.Response(200, json=completion({"answers": [entry] * 3}))
        return answer(["LLMs"], "It sorts lists with transformers.")

    route = mocked_llm.post("/chat/completions").mock(side_effect=reply)
    backend = make_backend(papers_per_request=3)
    with caplog.at_level(logging.WARNING):
        try:
            results = await asyncio.gather(*(backend.annotate(p) for p in papers))
        finally:
            await backend.aclose()
    assert [r.summary for r in results] == ["It sorts lists with transformers."] * 3
    assert route.call_count == 1 + 3  # the group, then each paper alone
    said = [r.getMessage() for r in caplog.records if "placeholder id" in r.getMessage()]
    assert said == [
        "group answer: 3 of 3 answers give the prompt's placeholder id \"<the paper's id>\" "
        "instead of a paper's id (the model copied the example); those papers are asked alone"
    ]
    assert "not in the request" not in caplog.text
