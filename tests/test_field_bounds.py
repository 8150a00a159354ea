"""A huge field costs its paper a cut on the way in, from every source, never the run: each
text field has a stated bound (README, "Limits"), and reading one stays small in memory."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.models import (
    ELLIPSIS,
    MAX_ABSTRACT_CHARS,
    MAX_AUTHORS,
    MAX_CATEGORIES,
    MAX_ID_CHARS,
    MAX_METADATA,
    MAX_NAME_CHARS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    MAX_VALUE_CHARS,
    Paper,
)
from agent.sources import SourceOptions, Window, parse_source, read_papers
from tests.feeds import atom, paper, rss
from tests.llm import API_KEY, BASE_URL, answer

BIG = 4_000_000  # characters in each huge field: a few MB, as a hostile feed or file holds
HUGE_TITLE = "word " * (BIG // 5)
HUGE_AUTHORS = "Ada Lovelace, " * (BIG // 14)
# Measured: 36 MB to read a 12 MB JSONL line with the bounds, 137 MB before (the title split
# into 800,000 words, the authors into 285,000 names, each held whole).
FILE_PEAK = 64_000_000


def peak_of(work: Callable[[], Any]) -> tuple[Any, int]:
    """What ``work()`` returns, and the most memory Python held while it ran."""
    tracemalloc.start()
    try:
        return work(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_bounded(p: Paper) -> None:
    """Every text field of ``p`` within its bound."""
    assert len(p.id) <= MAX_ID_CHARS and len(p.title) <= MAX_TITLE_CHARS
    assert len(p.abstract) <= MAX_ABSTRACT_CHARS
    assert len(p.authors) <= MAX_AUTHORS and all(len(a) <= MAX_NAME_CHARS for a in p.authors)
    assert len(p.categories) <= MAX_CATEGORIES
    assert all(len(c) <= MAX_NAME_CHARS for c in p.categories)
    assert len(p.metadata) <= MAX_METADATA
    assert all(len(k) <= MAX_NAME_CHARS for k in p.metadata)
    assert all(len(v) <= MAX_VALUE_CHARS for v in p.metadata.values())


def assert_clipped_title(p: Paper) -> None:
    assert p.title.startswith("word word") and p.title.endswith(ELLIPSIS)
    assert MAX_TITLE_CHARS * 3 // 4 <= len(p.title) <= MAX_TITLE_CHARS


def test_huge_fields_in_a_jsonl_file_are_clipped_in_little_memory(tmp_path: Path) -> None:
    huge = {
        "id": "p1",
        "title": HUGE_TITLE,
        "abstract": "We study a thing. It works.",
        "authors": HUGE_AUTHORS,
        "venue": "x" * BIG,
    }
    many = {
        "id": "p2",
        "title": "Many of everything",
        "abstract": "Fine.",
        "authors": [f"Author {i}" for i in range(MAX_AUTHORS * 2)],
        "categories": [f"cs.X{i}" for i in range(MAX_CATEGORIES * 3)],
        "metadata": {f"k{i}": str(i) for i in range(MAX_METADATA * 3)},
    }
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps(huge) + "\n" + json.dumps(many) + "\n", encoding="utf-8")
    (first, second), peak = peak_of(lambda: list(read_papers([str(path)])))
    assert peak < FILE_PEAK, f"{peak / 1e6:.0f} MB to read a 12 MB line"
    assert_bounded(first)
    assert_clipped_title(first)
    assert first.authors[0] == "Ada Lovelace" and len(first.authors) > 100
    assert first.metadata["venue"] == "x" * (MAX_VALUE_CHARS - 1) + ELLIPSIS
    assert_bounded(second)
    assert second.authors[-1] == f"Author {MAX_AUTHORS - 1}"  # the first ones are kept
    assert len(second.categories) == MAX_CATEGORIES and len(second.metadata) == MAX_METADATA


def test_huge_fields_in_a_csv_file_and_a_saved_page_are_clipped(tmp_path: Path) -> None:
    csv_path = tmp_path / "huge.csv"
    csv_path.write_text(
        f'title,abstract,authors,venue\n"{HUGE_TITLE}",Fine.,"{HUGE_AUTHORS}",{"y" * BIG}\n',
        encoding="utf-8",
    )
    page_path = tmp_path / "huge.txt"
    prose = "We study a long thing and it works in every case we try. " * 2000
    page_path.write_text(
        "A short title of a paper\n\n" + "\n\n".join([prose] * 100) + "\n", encoding="utf-8"
    )
    [from_csv] = read_papers([str(csv_path)])
    assert_bounded(from_csv)
    assert_clipped_title(from_csv)
    [from_page] = read_papers([str(page_path)])
    assert_bounded(from_page)
    assert from_page.abstract.startswith("We study") and from_page.abstract.endswith(ELLIPSIS)


def test_an_over_long_id_stays_unique_and_an_over_long_url_is_dropped() -> None:
    one = Paper(id="x" * 500 + "1", title="T", abstract="A", url="https://e.org/" + "p" * 3000)
    two = Paper(id="x" * 500 + "2", title="T", abstract="A")
    assert len(one.id) == len(two.id) == MAX_ID_CHARS and one.id != two.id
    assert one.url is None
    fits = "https://e.org/" + "p" * (MAX_URL_CHARS - 14)
    assert Paper(id="a", title="T", abstract="A", url=fits).url == fits


def test_a_clipped_paper_read_back_is_unchanged() -> None:
    # `paper-agent fetch` writes clipped papers; `run` reads them again.
    first = Paper(id="p", title=HUGE_TITLE[:50_000], abstract="A", authors=["n" * 5000])
    again = Paper.model_validate_json(first.model_dump_json())
    assert again == first


NOW = dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC)


def options(**extra: Any) -> SourceOptions:
    return SourceOptions(window=Window.parse(since="1d", now=NOW), arxiv_delay=0, **extra)


async def fetch_peak(spec: str, url: str, body: bytes, opts: SourceOptions) -> tuple[Any, int]:
    """The papers ``spec`` makes of ``body``, and the memory held while parsing them."""
    source = parse_source(spec, opts)
    with respx.mock() as router:
        router.get(url__startswith=url).mock(return_value=httpx.Response(200, content=body))
        async with httpx.AsyncClient() as http:
            tracemalloc.start()
            try:
                return await source.fetch(http), tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()


async def test_huge_fields_in_an_rss_feed_are_clipped_in_little_memory() -> None:
    item = {**paper(1), "title": HUGE_TITLE, "abstract": "word " * (BIG // 5)}
    body = rss([item]).replace("Ada Lovelace, Alan Turing", HUGE_AUTHORS).encode()
    url = "http://rss.test/rss"
    papers, peak = await fetch_peak("arxiv-rss:cs.LG", url, body, options(arxiv_rss_url=url))
    [got] = papers
    assert_bounded(got)
    assert_clipped_title(got)
    assert got.abstract.endswith(ELLIPSIS) and got.authors[0] == "Ada Lovelace"
    # Measured: 26 MB for this 12 MB feed with the bounds, 73 MB before.
    assert peak < 48_000_000, f"{peak / 1e6:.0f} MB for a 12 MB feed"


async def test_huge_fields_in_an_arxiv_answer_are_clipped() -> None:
    entry = {**paper(1), "title": HUGE_TITLE}
    body = atom([entry]).replace("<name>Ada Lovelace</name>", f"<name>{'n' * BIG}</name>")
    url = "http://arxiv.test/api/query"
    papers, _ = await fetch_peak("arxiv:cs.LG", url, body.encode(), options(arxiv_api_url=url))
    [got] = papers
    assert_bounded(got)
    assert_clipped_title(got)


async def test_huge_fields_in_a_hugging_face_answer_are_clipped(monkeypatch) -> None:
    from agent.sources import hf

    monkeypatch.setattr(hf, "today", lambda: dt.date(2026, 3, 6))
    item = {
        "paper": {
            "id": "2603.00001",
            "title": HUGE_TITLE,
            "summary": "Fine.",
            "authors": [{"name": "n" * BIG}, *({"name": f"A{i}"} for i in range(MAX_AUTHORS))],
            "githubRepo": "https://github.com/" + "r" * BIG,
        }
    }
    url = "http://hf.test/api/daily_papers"
    body = json.dumps([item]).encode()
    papers, _ = await fetch_peak("hf:2026-03-06", url, body, options(hf_api_url=url))
    [got] = papers
    assert_bounded(got)
    assert_clipped_title(got)
    assert len(got.authors) == MAX_AUTHORS and got.authors[0].endswith(ELLIPSIS)


def test_a_paper_with_a_huge_title_is_one_small_request(isolated_env, sleeps) -> None:
    rows = [
        {"id": "huge", "title": HUGE_TITLE, "abstract": "We study a thing. It works."},
        {"id": "fine", "title": "A fine paper", "abstract": "We study a thing. It works."},
    ]
    path = isolated_env / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL}
    with respx.mock(base_url=BASE_URL) as router:
        route = router.post("/chat/completions").mock(return_value=answer(["LLMs"]))
        result = CliRunner().invoke(
            cli, ["run", str(path), "-o", "out.jsonl"], env=env, catch_exceptions=False
        )
    assert result.exit_code == 0, result.output
    sizes = [len(call.request.content) for call in route.calls]
    assert len(sizes) == 2 and max(sizes) < 64_000  # not a 4 MB prompt
    written = [json.loads(line) for line in (isolated_env / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written] == ["huge", "fine"]
    assert written[0]["title"].endswith(ELLIPSIS) and written[0]["error"] is None
