"""The offline tagger's description prior: what counts as evidence for a tag."""

from __future__ import annotations

from agent.backends.local.tagger import PriorTagger, paper_terms
from agent.taxonomy import Tag, Taxonomy


def top_tag(taxonomy: Taxonomy, title: str, abstract: str) -> str:
    """The prior's best tag for one paper."""
    prior = PriorTagger(taxonomy)
    scores = prior.raw_scores(paper_terms(title, abstract))
    return taxonomy.names[max(range(len(scores)), key=scores.__getitem__)]


def test_a_word_of_a_phrase_keyword_is_weak_alone() -> None:
    # "programming" alone is a code paper's word, not evidence of genetic programming.
    taxonomy = Taxonomy(
        tags=[
            Tag(
                name="Evolution",
                description="Evolutionary search.",
                keywords=["genetic programming"],
            ),
            Tag(name="Software", description="Writing software.", keywords=["code", "software"]),
        ]
    )
    title = "Programming practice in open source"
    abstract = "We study how developers review code in forty teams."
    assert top_tag(taxonomy, title, abstract) == "Software"
    title, abstract = "Genetic programming revisited", "We evolve programs by genetic programming."
    assert top_tag(taxonomy, title, abstract) == "Evolution"


def test_a_word_listed_on_its_own_keeps_its_full_weight() -> None:
    alone = Taxonomy(tags=[Tag(name="A", description="x", keywords=["experience"])])
    in_phrase = Taxonomy(tags=[Tag(name="A", description="x", keywords=["user experience"])])
    counts = paper_terms("Learning from experience", "Agents learn from experience.")
    assert PriorTagger(alone).raw_scores(counts)[0] > PriorTagger(in_phrase).raw_scores(counts)[0]
