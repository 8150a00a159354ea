"""arxiv-rss: arXiv's daily feed through respx, on hand-written feeds in the real shape."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
import respx

from agent.errors import InputError
from agent.sources import SourceError, SourceOptions, Window, parse_source
from agent.sources.rss import ArxivRssSource

RSS = "http://rss.test/rss"
FEED = f"{RSS}/cs.LG+cs.CL"
NOW = dt.datetime(2024, 1, 9, 12, tzinfo=dt.UTC)
DEFAULT_IDS = ["2401.00001", "2401.00002", "2401.00003"]
ALL_IDS = [*DEFAULT_IDS, "2312.09999", "math/0601001"]


def options(announce: set[str] | None = None) -> SourceOptions:
    extra = {"announce": frozenset(announce)} if announce is not None else {}
    return SourceOptions(window=Window.parse(now=NOW), arxiv_rss_url=RSS, **extra)


@pytest.fixture
def feed(fixtures) -> bytes:
    """A day's feed for cs.LG+cs.CL with every announce type and one paper listed twice."""
    return (fixtures / "rss" / "cs.LG+cs.CL.xml").read_bytes()


async def fetch(source: ArxivRssSource, *responses: httpx.Response, url: str = FEED):
    """Run ``source.fetch`` against ``responses`` in turn; the papers and the route."""
    with respx.mock() as router:
        route = router.get(url).mock(side_effect=list(responses))
        async with httpx.AsyncClient() as http:
            papers = await source.fetch(http)
    return papers, route


async def test_default_keeps_new_and_cross_each_id_once(feed):
    source = parse_source("arxiv-rss:cs.LG,cs.CL", options())
    papers, route = await fetch(source, httpx.Response(200, content=feed))
    assert route.call_count == 1
    assert [p.id for p in papers] == DEFAULT_IDS
    assert [p.metadata["announce_type"] for p in papers] == ["new", "new", "cross"]


@pytest.mark.parametrize(
    ("announce", "ids"),
    [
        ({"new"}, ["2401.00001", "2401.00002"]),
        ({"cross"}, ["2401.00003", "2401.00001"]),  # 2401.00001 is also listed as a cross
        ({"replace"}, ["2312.09999"]),
        ({"replace-cross"}, ["math/0601001"]),
        ({"new", "cross", "replace", "replace-cross"}, ALL_IDS),
    ],
)
async def test_announce_chooses_the_types_kept(feed, announce, ids):
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options(announce))
    papers, _ = await fetch(source, httpx.Response(200, content=feed))
    assert [p.id for p in papers] == ids
    assert {p.metadata["announce_type"] for p in papers} <= announce


async def test_every_paper_is_exact_and_clean(feed):
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options({"new", "replace"}))
    papers, _ = await fetch(source, httpx.Response(200, content=feed))
    first, second, replaced = papers
    assert first.model_dump() == {
        "id": "2401.00001",
        "title": "Sparse Mixtures of Experts Route Tokens by Entropy",
        "abstract": (
            "We route each token to the experts whose gating entropy is lowest, and show that "
            "this halves the communication cost of training."
        ),
        "authors": ["Ada Lovelace", "Alan Turing", "Grace Hopper"],
        "url": "https://arxiv.org/abs/2401.00001",
        "published": "2024-01-09T05:00:00Z",
        "categories": ["cs.LG", "cs.AI", "cs.CL"],
        "source": "arxiv-rss:cs.LG,cs.CL",
        "metadata": {"announce_type": "new", "version": "1"},
    }
    # No guid: the id comes from the link and the version from the description.
    assert (second.id, second.metadata["version"]) == ("2401.00002", "1")
    assert second.title == "Instruction Tuning with & without Labels"
    assert second.abstract == "Labels help less than <expected> once the instructions are diverse."
    assert (replaced.id, replaced.metadata["version"]) == ("2312.09999", "2")
    for paper in papers:
        assert not re.search(r"v\d+$", paper.id)
        assert paper.url == f"https://arxiv.org/abs/{paper.id}"
        for text in (paper.title, paper.abstract, *paper.authors):
            assert text == " ".join(text.split())
        assert "Announce Type" not in paper.abstract


async def test_an_old_style_id_keeps_its_archive_and_primary_category(feed):
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options({"replace-cross"}))
    (paper,), _ = await fetch(source, httpx.Response(200, content=feed))
    assert paper.id == "math/0601001"
    assert paper.url == "https://arxiv.org/abs/math/0601001"
    assert paper.categories == ["math.OC", "cs.LG"]
    assert paper.metadata == {"announce_type": "replace-cross", "version": "3"}


async def test_an_empty_weekend_feed_is_a_quiet_day_not_an_error(fixtures):
    weekend = (fixtures / "rss" / "weekend.xml").read_bytes()
    source = ArxivRssSource.from_spec("cs.LG", options())
    papers, route = await fetch(source, httpx.Response(200, content=weekend), url=f"{RSS}/cs.LG")
    assert papers == [] and route.call_count == 1
    assert source.nothing_new() == (
        "no new papers from arxiv-rss:cs.LG (arXiv's feed is empty on weekends and holidays)"
    )


async def test_a_feed_of_other_announce_types_says_what_was_left_out(feed):
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options({"replace"}))
    feed_without_replace = feed.replace(
        b"<arxiv:announce_type>replace<", b"<arxiv:announce_type>new<"
    )
    papers, _ = await fetch(source, httpx.Response(200, content=feed_without_replace))
    assert papers == []
    assert "6 of other announce types left out" in source.nothing_new()


async def test_503_then_200_waits_as_told_and_succeeds(feed, sleeps):
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options())
    busy = httpx.Response(503, headers={"Retry-After": "7"})
    papers, route = await fetch(source, busy, httpx.Response(200, content=feed))
    assert route.call_count == 2
    assert sleeps[0] == 7.0  # then the arXiv pacer's own spacing (the test's clock is real)
    assert [p.id for p in papers] == DEFAULT_IDS


async def test_a_feed_that_keeps_failing_is_a_source_error_naming_it(sleeps):
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options())
    with pytest.raises(SourceError, match=r"^arxiv-rss:cs\.LG,cs\.CL: \S+ answered HTTP 503 "):
        await fetch(source, *[httpx.Response(503)] * 8)


async def test_a_404_is_not_retried(sleeps):
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options())
    with respx.mock() as router:
        route = router.get(FEED).mock(return_value=httpx.Response(404))
        async with httpx.AsyncClient() as http:
            with pytest.raises(SourceError, match="HTTP 404"):
                await source.fetch(http)
    assert route.call_count == 1 and sleeps == []


@pytest.mark.parametrize("body", [b"<html>maintenance</html>", b"not xml at all <"])
async def test_a_body_that_is_no_rss_feed_is_a_source_error(body):
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options())
    with pytest.raises(SourceError, match=r"^arxiv-rss:cs\.LG,cs\.CL: "):
        await fetch(source, httpx.Response(200, content=body))


async def test_max_keeps_the_first_papers_with_a_warning(feed, caplog):
    small = SourceOptions(window=Window.parse(now=NOW), arxiv_rss_url=RSS, max_papers=2)
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", small)
    papers, _ = await fetch(source, httpx.Response(200, content=feed))
    assert [p.id for p in papers] == DEFAULT_IDS[:2]
    assert "kept the first 2 of 3 papers (--max)" in caplog.text


async def test_a_dtd_anywhere_in_the_feed_is_refused_unparsed(caplog):
    from tests.feeds import paper, rss

    # Past the first 4 KB, where a check of the body's head alone would not look.
    prolog = "<!--" + "x" * 5000 + '-->\n<!DOCTYPE rss [<!ENTITY boom "BOOM">]>\n'
    body = rss([{**paper(1), "title": "TITLE"}]).replace("TITLE", "&boom;")
    body = body.replace("?>\n", "?>\n" + prolog, 1)
    source = ArxivRssSource.from_spec("cs.LG,cs.CL", options())
    with pytest.raises(SourceError, match="did not return an RSS feed"):
        await fetch(source, httpx.Response(200, text=body))
    assert "declared a DTD or an entity; refused unparsed" in caplog.text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("arxiv-rss:cs.lg", "did you mean cs.LG"),
        ("arxiv-rss:", "needs categories"),
        ("arxiv-rss:cs.LG,cs.XX", "unknown arXiv category 'cs.XX'"),
    ],
)
def test_a_bad_spec_is_an_input_error_before_any_request(spec, message):
    with respx.mock(), pytest.raises(InputError, match=message):  # strict: no route at all
        parse_source(spec, options())


def test_categories_may_be_joined_as_in_the_feed_url():
    source = parse_source("arxiv-rss:cs.LG+cs.CL", options())
    assert source.spec == "arxiv-rss:cs.LG,cs.CL"
    assert source.url == FEED


@pytest.mark.parametrize("announce", [set(), {"new", "old"}, {"crosses"}])
def test_an_unknown_announce_type_is_an_input_error(announce):
    with pytest.raises(InputError, match="choose from new, cross, replace, replace-cross"):
        ArxivRssSource.from_spec("cs.LG", options(announce))
