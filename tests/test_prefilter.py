"""Prefilters: keywords on word boundaries, any/all, exclude, authors kept, categories, summary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from agent.models import Paper
from agent.prefilter import FilterReport, Filters, apply


def paper(
    title: str,
    abstract: str = "",
    *,
    authors: list[str] | None = None,
    categories: list[str] | None = None,
) -> Paper:
    """A paper with just the fields the filters read."""
    return Paper(
        id=title, title=title, abstract=abstract, authors=authors or [], categories=categories or []
    )


def kept(filters: Filters, *papers: Paper) -> list[str]:
    """Titles of the papers ``filters`` keeps."""
    return [p.title for p in apply(papers, filters)]


def test_no_filters_keep_everything() -> None:
    filters = Filters()
    assert not filters.active
    report = FilterReport()
    assert len(list(apply([paper("a"), paper("b")], filters, report))) == 2
    assert report.summary() == "2 of 2 papers kept"


def test_include_any_matches_title_or_abstract_case_insensitively() -> None:
    filters = Filters(include=["diffusion", "Robot"])
    assert filters.active
    assert kept(
        filters,
        paper("Diffusion for video"),
        paper("Grasping", "A ROBOT arm picks fruit."),
        paper("Parsing", "We parse sentences."),
    ) == ["Diffusion for video", "Grasping"]


def test_include_all_needs_every_keyword() -> None:
    filters = Filters(include=["language model", "large language model"], match="all")
    # Overlapping keywords both count: one phrase inside the other is still two matches.
    assert kept(filters, paper("A large language model"), paper("A language model")) == [
        "A large language model"
    ]
    both = Filters(include=["agents", "memory"], match="all")
    assert kept(both, paper("Agents", "with long-term memory"), paper("Agents", "tools")) == [
        "Agents"
    ]


@pytest.mark.parametrize(
    ("keyword", "text", "hit"),
    [
        ("RL", "Offline RL from logs", True),
        ("RL", "We crawl each URL twice", False),  # not inside a word
        ("RL", "RLHF pipelines", False),
        ("RL", "(RL)", True),
        ("reinforcement learning", "reinforcement\n  learning at scale", True),  # any whitespace
        ("chain of thought", "chain-of-thought prompting", True),  # hyphens split words too
        ("reinforcement learning", "reinforcement-free learning", False),
        ("C++", "A C++ compiler", True),  # keywords with symbols still match whole
        ("C++", "A C+++ dialect", True),
        ("GPT", "GPT-4o answers", True),
        ("graph", "subgraphs and graphical models", False),
        ("graph", "graphs", True),  # a plural ending is the same word
    ],
)
def test_keywords_match_whole_words(keyword: str, text: str, hit: bool) -> None:
    assert bool(kept(Filters(include=[keyword]), paper("t", text))) is hit


def test_a_phrase_does_not_run_from_title_into_abstract() -> None:
    filters = Filters(include=["vision language"])
    assert kept(filters, paper("Vision", "Language is hard.")) == []
    assert kept(filters, paper("Vision language models")) == ["Vision language models"]


def test_exclude_drops_and_wins_over_include() -> None:
    filters = Filters(include=["agent"], exclude=["survey"])
    assert kept(
        filters, paper("An agent survey"), paper("An agent benchmark"), paper("A survey")
    ) == ["An agent benchmark"]


def test_authors_are_always_kept() -> None:
    filters = Filters(
        include=["robot"], exclude=["survey"], categories=["cs.RO"], authors=["Yann LeCun"]
    )
    by_him = paper("A survey of vision", authors=["  yann   lecun "], categories=["cs.CV"])
    other = paper("A survey of vision", authors=["Someone Else"], categories=["cs.CV"])
    assert kept(filters, by_him, other) == ["A survey of vision"]
    accents = Filters(include=["x"], authors=["Sebastien Bubeck"])
    assert kept(accents, paper("Sparks", authors=["Sébastien Bubeck"])) == ["Sparks"]


def test_categories_keep_matching_and_uncategorised_papers() -> None:
    filters = Filters(categories=["cs.LG", "stat"])
    assert kept(
        filters,
        paper("lg", categories=["cs.CV", "cs.LG"]),  # a cross-list counts
        paper("ml", categories=["stat.ML"]),  # an archive covers its categories
        paper("none"),  # no categories to judge by: kept
        paper("astro", categories=["astro-ph.GA"]),
        paper("cv", categories=["cs.CV"]),
    ) == ["lg", "ml", "none"]
    assert kept(Filters(categories=["cs.lg"]), paper("x", categories=["cs.LG"])) == ["x"]


def test_summary_counts_each_reason_once() -> None:
    filters = Filters(include=["agent"], exclude=["survey"], categories=["cs.AI"])
    papers = [
        paper("agent one", categories=["cs.AI"]),
        paper("agent two"),
        paper("planning", categories=["cs.AI"]),
        paper("planning again"),
        paper("an agent survey"),
        paper("agent", categories=["math.CO"]),
    ]
    report = FilterReport()
    assert [p.title for p in apply(papers, filters, report)] == ["agent one", "agent two"]
    assert (report.total, report.kept) == (6, 2)
    assert report.summary() == (
        "2 of 6 papers kept (2 without an include keyword, 1 excluded, 1 in other categories, "
        "3 without categories, not judged by --category)"
    )
    single = FilterReport(total=1, kept=0)
    single.dropped["exclude"] += 1
    assert single.summary() == "0 of 1 paper kept (1 excluded)"


def test_apply_streams() -> None:
    pulled: list[int] = []

    def endless() -> Iterator[Paper]:
        n = 0
        while True:
            pulled.append(n)
            yield paper(f"agent {n}" if n % 2 else f"other {n}")
            n += 1

    report = FilterReport()
    stream = apply(endless(), Filters(include=["agent"]), report)
    assert next(stream).title == "agent 1"
    assert pulled == [0, 1]  # nothing read ahead
    assert (report.total, report.kept) == (2, 1)


def test_blank_entries_are_refused() -> None:
    with pytest.raises(ValidationError, match="empty entry"):
        Filters(include=["agent", "  "])
    with pytest.raises(ValidationError):
        Filters(match="some")  # type: ignore[arg-type]


def test_many_keywords_are_fast() -> None:
    import time

    filters = Filters(include=[f"keyword{i}" for i in range(200)] + ["needle"])
    papers = [
        paper(f"t{i}", "word " * 200 + ("needle" if i % 10 == 0 else "")) for i in range(2000)
    ]
    start = time.perf_counter()
    assert len(list(apply(papers, filters))) == 200
    assert time.perf_counter() - start < 2.0  # one compiled regex, not 201 searches per paper


def test_a_keyword_finds_its_plural_but_not_a_longer_word():
    from agent.prefilter import Filters, apply

    papers = [
        Paper(id="1", title="LLM agents that browse", abstract="x"),
        Paper(id="2", title="Agentic workflows", abstract="x"),
        Paper(id="3", title="Three benchmarks", abstract="x"),
    ]
    kept = [p.id for p in apply(papers, Filters(include=["agent", "benchmark"]))]
    assert kept == ["1", "3"]


def test_papers_without_categories_are_kept_and_counted_as_not_judged() -> None:
    filters = Filters(categories=["cs.CL"])
    report = FilterReport()
    papers = [paper("nlp", categories=["cs.CL"]), paper("vision", categories=["cs.CV"])]
    papers += [paper("a file row"), paper("another")]
    assert [p.title for p in apply(papers, filters, report)] == ["nlp", "a file row", "another"]
    assert report.summary() == (
        "3 of 4 papers kept (1 in other categories, 2 without categories, not judged by --category)"
    )
