"""hf: Hugging Face Daily Papers through respx, on the real API item and a day built from it."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
import respx

from agent.errors import InputError
from agent.sources import SourceError, SourceOptions, Window, hf, parse_source
from agent.sources.hf import HuggingFaceSource

API = "http://hf.test/api/daily_papers"
TODAY = dt.date(2026, 3, 9)  # a Monday
DAY_IDS = ["2602.23229", "2603.04567", "2603.05678"]


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch) -> dt.date:
    """UTC today, fixed so today and yesterday are known dates."""
    monkeypatch.setattr(hf, "today", lambda: TODAY)
    return TODAY


def options(**extra: object) -> SourceOptions:
    now = dt.datetime.combine(TODAY, dt.time(12), dt.UTC)
    return SourceOptions(window=Window.parse(now=now), hf_api_url=API, **extra)


@pytest.fixture
def day(fixtures) -> list[dict]:
    """The real API item and two variants (one without GitHub repo or project page)."""
    return json.loads((fixtures / "hf" / "daily_papers_2026-03-06.json").read_text())


async def fetch(source: HuggingFaceSource, *responses: httpx.Response):
    """Run ``source.fetch`` against ``responses`` in turn; the papers and the route."""
    with respx.mock() as router:
        route = router.get(API).mock(side_effect=list(responses))
        async with httpx.AsyncClient() as http:
            papers = await source.fetch(http)
    return papers, route


async def test_a_day_gives_exactly_its_papers_with_their_extras(day):
    source = parse_source("hf:2026-03-06", options())
    papers, route = await fetch(source, httpx.Response(200, json=day))
    assert route.call_count == 1
    assert dict(route.calls[0].request.url.params) == {
        "date": "2026-03-06",
        "limit": "100",
        "p": "0",
    }
    assert [p.id for p in papers] == DAY_IDS
    first, second, third = papers
    assert first.title == "Large Multimodal Models as General In-Context Classifiers"
    assert first.abstract.startswith("Which multimodal model should we use for classification?")
    assert first.authors[0] == "Marco Garosi" and len(first.authors) == 5
    assert first.url == "https://arxiv.org/abs/2602.23229"
    assert first.published == "2026-02-26T17:08:18Z"
    assert first.source == "hf:2026-03-06"
    assert first.metadata == {
        "upvotes": "10",
        "github": "https://github.com/marco-garosi/CIRCLE",
        "project_page": "https://circle-lmm.github.io/",
        "keywords": (
            "Vision-Language Models, Large Multimodal Models, zero-shot classification, "
            "in-context learning, open-world classification, cache-based adapters, CIRCLE, "
            "pseudo-labeling, context refinement"
        ),
        "github_stars": "9",
        "num_comments": "1",
    }
    # No GitHub repo, project page or stars: those keys are absent, not "None".
    assert second.metadata == {
        "upvotes": "3",
        "keywords": "token budget, long-context reasoning",
        "num_comments": "0",
    }
    assert second.title == "Token Budgets for Long-Context Reasoning"
    assert second.abstract == (
        "We give each reasoning step a token budget. Budgets learned per task cut generation "
        "length by 40% at equal accuracy."
    )
    assert second.authors == ["Rosa Parks", "Ida B. Wells"]  # the hidden one is named too
    assert "project_page" not in third.metadata  # empty in the API: left out
    assert third.metadata["upvotes"] == "27"


async def test_the_single_real_item_parses(fixtures):
    one = json.loads((fixtures / "hf" / "daily_papers_response_one_item.json").read_text())
    papers, _ = await fetch(parse_source("hf:today", options()), httpx.Response(200, json=one))
    assert [p.id for p in papers] == ["2602.23229"]


@pytest.mark.parametrize(("word", "date"), [("today", "2026-03-09"), ("yesterday", "2026-03-08")])
async def test_today_and_yesterday_are_utc_dates(word, date):
    source = parse_source(f"hf:{word}", options())
    _, route = await fetch(source, httpx.Response(200, json=[]))
    assert route.calls[0].request.url.params["date"] == date


async def test_an_empty_day_is_normal_and_says_so():
    source = parse_source("hf:2026-03-07", options())  # a Saturday
    papers, route = await fetch(source, httpx.Response(200, json=[]))
    assert papers == [] and route.call_count == 1
    assert source.nothing_new() == (
        "no papers on Hugging Face Daily Papers for 2026-03-07 "
        "(hf:2026-03-07; few papers are listed at weekends)"
    )


async def test_503_then_200_waits_as_told_and_succeeds(day, sleeps):
    busy = httpx.Response(503, headers={"Retry-After": "2"})
    papers, route = await fetch(
        parse_source("hf:today", options()), busy, httpx.Response(200, json=day)
    )
    assert route.call_count == 2 and sleeps == [2.0]
    assert [p.id for p in papers] == DAY_IDS


async def test_a_day_that_keeps_failing_is_a_source_error_naming_it(sleeps):
    source = parse_source("hf:today", options())
    with pytest.raises(SourceError, match=r"^hf:today: hf.test answered HTTP 500 "):
        await fetch(source, *[httpx.Response(500)] * 8)


@pytest.mark.parametrize("body", [b"<html>down</html>", b'{"error": "Invalid date"}'])
async def test_a_body_that_is_no_list_of_papers_is_a_source_error(body):
    with pytest.raises(SourceError, match=r"^hf:today: "):
        await fetch(parse_source("hf:today", options()), httpx.Response(200, content=body))


async def test_pages_until_a_short_page_without_repeats(day, monkeypatch):
    monkeypatch.setattr(hf, "PAGE_SIZE", 2)
    pages = [httpx.Response(200, json=day[:2]), httpx.Response(200, json=day[2:])]
    papers, route = await fetch(parse_source("hf:today", options()), *pages)
    assert [call.request.url.params["p"] for call in route.calls] == ["0", "1"]
    assert [p.id for p in papers] == DAY_IDS


async def test_a_server_that_ignores_the_page_stops_after_a_page_of_repeats(day, monkeypatch):
    monkeypatch.setattr(hf, "PAGE_SIZE", 2)
    same = [httpx.Response(200, json=day[:2]) for _ in range(3)]
    papers, route = await fetch(parse_source("hf:today", options()), *same)
    assert route.call_count == 2
    assert [p.id for p in papers] == DAY_IDS[:2]


async def test_max_papers_bounds_the_day(day):
    papers, _ = await fetch(
        parse_source("hf:today", options(max_papers=2)), httpx.Response(200, json=day)
    )
    assert [p.id for p in papers] == DAY_IDS[:2]


async def test_an_item_without_an_id_is_skipped_and_a_version_dropped(day):
    broken = {**day[0], "paper": {**day[0]["paper"], "id": ""}}
    versioned = {**day[1], "paper": {**day[1]["paper"], "id": "2603.04567v2"}}
    papers, _ = await fetch(
        parse_source("hf:today", options()), httpx.Response(200, json=[broken, versioned, "x"])
    )
    assert [p.id for p in papers] == ["2603.04567"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hf:2026-13-01", "use a date"),
        ("hf:06/03/2026", "use a date"),
        ("hf:tomorrow", "use a date"),
        ("hf:", "use a date"),
        ("hf:2026-03-10", "in the future"),
    ],
)
def test_a_bad_date_is_an_input_error_and_no_request_is_sent(spec, message):
    with respx.mock(assert_all_called=False) as router, pytest.raises(InputError, match=message):
        route = router.get(API)
        parse_source(spec, options())
    assert not route.called
