"""The fallback tag ("Other"): taxonomy, LLM answers, prompt, offline tagger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.backends.local import LocalBackend
from agent.errors import ConfigError
from agent.llm.answers import parse_answer
from agent.llm.prompts import PromptBuilder, answer_schema
from agent.models import Paper
from agent.sources import read_papers
from agent.taxonomy import FALLBACK_DESCRIPTION, Tag, Taxonomy, load_taxonomy

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).parent.parent / "examples" / "taxonomies"

TWO_TAGS = (
    '[[tags]]\nname = "A"\ndescription = "d"\naliases = ["misc"]\n'
    '[[tags]]\nname = "B"\ndescription = "e"\n'
)

# Written for these tests: abstracts far from machine learning, in each field's own words.
OFF_TOPIC = [
    (
        "Stellar mass growth of satellite galaxies in massive clusters since z = 1.2",
        "We measure the stellar mass function of satellite galaxies in twelve X-ray selected "
        "clusters with deep near-infrared photometry and spectroscopic redshifts. The faint-end "
        "slope steepens towards the cluster cores, and quiescent satellites dominate below "
        "10^10 solar masses. Tidal stripping and ram-pressure quenching reproduce the trend when "
        "infall times are drawn from the halo merger trees.",
    ),
    (
        "Rational points on genus two curves over cyclotomic extensions",
        "Let C be a smooth projective curve of genus two over Q whose Jacobian has rank one. We "
        "prove that the set of rational points of C over the cyclotomic Z_p extension is finite "
        "for all primes p of good ordinary reduction, and we compute it explicitly for forty "
        "curves of small conductor with the Chabauty-Coleman method.",
    ),
    (
        "Pollinator visitation and seed set of alpine cushion plants along a snowmelt gradient",
        "We recorded insect visits to four cushion plant species in forty plots along a "
        "snowmelt gradient over three summers. Late-melting plots received fewer bumblebee "
        "visits and set less seed, while fly visitation remained stable. Earlier snowmelt "
        "under warming may therefore shift the pollinator community of alpine meadows.",
    ),
    (
        "Grain prices and the timing of rural unrest in eighteenth-century Provence",
        "Using parish registers and market price series from 1720 to 1789, we date ninety-one "
        "episodes of rural unrest. Riots clustered in the months after harvest failures and "
        "were more frequent in villages far from the grain ports, suggesting that market access "
        "rather than seigneurial dues drove local protest.",
    ),
]

ON_TOPIC = [
    (
        "Sparse mixture-of-experts language models with learned routing",
        "We train large language models whose transformer layers route tokens to a few experts. "
        "A learned router with a load-balancing loss cuts inference cost by half at equal "
        "perplexity, and instruction tuning on top keeps the gains on reasoning benchmarks.",
    ),
    (
        "Diffusion policies for robot manipulation from few demonstrations",
        "We learn visuomotor policies for robot arms with a diffusion model conditioned on "
        "camera images. With twenty demonstrations per task the robot grasps and places objects "
        "in clutter, outperforming behaviour cloning baselines in simulation and on hardware.",
    ),
]


def write(tmp_path: Path, text: str) -> Path:
    """A taxonomy file holding ``text``."""
    path = tmp_path / "tax.toml"
    path.write_text(text)
    return path


def paper(title: str, abstract: str) -> Paper:
    """A paper with an id taken from its title."""
    return Paper(id=title[:20], title=title, abstract=abstract)


# --- the taxonomy -------------------------------------------------------------------------


def test_a_new_fallback_name_becomes_the_last_tag(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(write(tmp_path, 'fallback = "Other"\n' + TWO_TAGS))
    assert taxonomy.fallback == "Other"
    assert taxonomy.names == ["A", "B", "Other"]
    other = taxonomy.tags[-1]
    assert other.is_fallback and other.description == FALLBACK_DESCRIPTION
    assert not any(tag.is_fallback for tag in taxonomy.topics)
    assert taxonomy.resolve("other") == "Other"
    assert taxonomy.tag_limit(3) == 2  # the fallback never comes with other tags


def test_a_fallback_may_be_one_of_the_tags_and_keeps_its_words(tmp_path: Path) -> None:
    text = (
        'fallback = "misc."\n[[tags]]\nname = "Misc."\ndescription = "Anything else."\n'
        '[[tags]]\nname = "B"\ndescription = "e"\n'
    )
    taxonomy = load_taxonomy(write(tmp_path, text))
    assert taxonomy.fallback == "Misc."  # spelt as the tag is
    assert taxonomy.names == ["B", "Misc."]
    assert taxonomy.tags[-1].description == "Anything else." and taxonomy.tags[-1].is_fallback


def test_no_fallback_is_the_old_behaviour(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(write(tmp_path, TWO_TAGS))
    assert taxonomy.fallback is None and taxonomy.names == ["A", "B"]
    assert taxonomy.topics == taxonomy.tags


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('fallback = "MISC"\n' + TWO_TAGS, "fallback 'MISC' is an alias of tag 'A'"),
        ('fallback = "  "\n' + TWO_TAGS, "fallback is blank"),
        ("fallback = 3\n" + TWO_TAGS, "fallback"),
        ('fallback = "A"\n[[tags]]\nname = "A"\ndescription = "d"\n', "besides its fallback"),
        (f'fallback = "{"x" * 81}"\n' + TWO_TAGS, "at most 80 characters"),
    ],
)
def test_bad_fallbacks_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_taxonomy(write(tmp_path, text))


def test_fallback_survives_a_round_trip_and_a_copy() -> None:
    taxonomy = load_taxonomy()
    again = Taxonomy.model_validate(taxonomy.model_dump())
    assert again.names == taxonomy.names and again.tags[-1].is_fallback
    assert taxonomy.model_copy(update={"max_tags": 2}).tags[-1].is_fallback


@pytest.mark.parametrize("path", [None, EXAMPLES / "arxiv.toml", EXAMPLES / "arxiv-examples.toml"])
def test_bundled_taxonomies_have_other_last(path: Path | None) -> None:
    taxonomy = load_taxonomy(path)
    assert taxonomy.fallback == "Other" and taxonomy.names[-1] == "Other"


# --- the LLM's answer and prompt ----------------------------------------------------------


def parse(raw: dict[str, object], taxonomy: Taxonomy) -> list[str]:
    """The tags ``parse_answer`` keeps from ``raw``."""
    tags = parse_answer(json.dumps(raw), taxonomy, max_tags=3, summary_words=40).tags
    return tags


def test_fallback_alone_is_a_valid_answer() -> None:
    taxonomy = load_taxonomy()
    assert parse({"tags": ["other"], "summary": "Galaxies grow."}, taxonomy) == ["Other"]


def test_fallback_beside_real_tags_is_dropped() -> None:
    taxonomy = load_taxonomy()
    answer = {"tags": ["Other", "LLMs", "Agents", "Code"], "summary": "Agents write code."}
    # Dropped before the limit applies, so it does not cost a real tag its place.
    assert parse(answer, taxonomy) == ["LLMs", "Agents", "Code"]
    assert parse({"tags": ["Agents", "Other"], "summary": "x"}, taxonomy) == ["Agents"]


def test_without_a_fallback_other_is_unknown() -> None:
    from agent.llm.answers import AnswerInvalid

    taxonomy = Taxonomy(tags=[Tag(name="A", description="a")])
    with pytest.raises(AnswerInvalid, match="unknown tag"):
        parse({"tags": ["Other"], "summary": "x"}, taxonomy)


def test_schema_and_prompt_offer_the_fallback_alone() -> None:
    taxonomy = load_taxonomy()
    schema = answer_schema(taxonomy, max_tags=3, summary_words=40)
    assert schema["properties"]["tags"]["items"]["enum"][-1] == "Other"
    system = PromptBuilder(taxonomy, max_tags=3, summary_words=40).messages_system()
    assert 'Use "Other" only when no other tag fits, and then alone' in system
    assert "- Other: Papers outside every other tag." in system
    plain = PromptBuilder(
        Taxonomy(tags=[Tag(name="A", description="a")]), max_tags=3, summary_words=40
    )
    assert "only when no other tag fits" not in plain.messages_system()


# --- the offline tagger -------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    """The offline backend on the default (machine-learning) taxonomy."""
    return LocalBackend(load_taxonomy())


@pytest.mark.parametrize(("title", "abstract"), OFF_TOPIC)
def test_off_topic_papers_get_the_fallback(
    backend: LocalBackend, title: str, abstract: str
) -> None:
    assert backend.annotate_sync(paper(title, abstract)).tags == ["Other"]
    scores = backend.tag_scores(paper(title, abstract))
    assert len(scores) == 1 and 0.0 < scores[0].score <= 1.0


@pytest.mark.parametrize(("title", "abstract"), ON_TOPIC)
def test_on_topic_papers_do_not(backend: LocalBackend, title: str, abstract: str) -> None:
    tags = backend.annotate_sync(paper(title, abstract)).tags
    assert tags and "Other" not in tags


def test_few_sample_page_papers_get_the_fallback(backend: LocalBackend) -> None:
    papers = list(read_papers([str(FIXTURES / "hf-daily-papers-page.txt")]))
    other = [p.title for p in papers if backend.annotate_sync(p).tags == ["Other"]]
    # Measured: 5 of 202, one of them the page's astrophysics paper (pulsar wind nebulae).
    assert len(other) <= len(papers) * 0.04
    assert any("Pulsar" in title for title in other)
    assert all(backend.annotate_sync(p).tags.count("Other") <= 1 for p in papers)


def test_an_empty_paper_gets_the_fallback(backend: LocalBackend) -> None:
    assert backend.annotate_sync(paper("", "")).tags == ["Other"]


def test_without_a_fallback_an_off_topic_paper_still_gets_a_tag() -> None:
    taxonomy = load_taxonomy()
    plain = Taxonomy(tags=taxonomy.topics)
    ann = LocalBackend(plain).annotate_sync(paper(*OFF_TOPIC[0]))
    assert ann.tags and "Other" not in ann.tags


def test_arxiv_taxonomy_keeps_its_tags_on_cs_papers() -> None:
    taxonomy = load_taxonomy(EXAMPLES / "arxiv.toml")
    backend = LocalBackend(taxonomy)
    rows = [json.loads(line) for line in (FIXTURES / "arxiv-sample.jsonl").open()]
    others = sum(
        backend.annotate_sync(paper(r["title"], r["abstract"])).tags == ["Other"] for r in rows
    )
    assert others <= 1  # every sample paper is in one of its categories
    assert backend.annotate_sync(paper(*OFF_TOPIC[1])).tags == ["Other"]
