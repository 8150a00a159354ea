"""zotero:users/ID[/collections/KEY] as liked papers, through respx against Zotero API pages
written to the documented format: paging by Link, 429 and Backoff waits, a missing or refused
key in one line, and the key in no output or log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.errors import ConfigError, InputError
from agent.sources import SourceError
from agent.sources.refs import LikedOptions, read_liked
from agent.sources.refs.entry import Tally
from agent.sources.refs.zotero import ZoteroLibrary

PAGES = Path(__file__).parent / "fixtures" / "refs" / "zotero"
API = "https://api.zotero.org"
ITEMS = f"{API}/users/123456/collections/ABCD1234/items/top"
SPEC = "zotero:users/123456/collections/ABCD1234"
KEY = "Zk3yT0kenForTests42"


def page(number: int, **headers: str) -> httpx.Response:
    """Page ``number`` of the fixture library as the API sends it, with ``headers`` added."""
    recorded = json.loads((PAGES / f"page-{number}.json").read_text(encoding="utf-8"))
    sent = {**recorded["headers"], **{k.replace("_", "-"): v for k, v in headers.items()}}
    return httpx.Response(recorded["status"], headers=sent, json=recorded["body"])


def start(request: httpx.Request) -> str | None:
    return request.url.params.get("start")


def read(spec: str = SPEC, key: str | None = KEY, url: str = API) -> tuple[list, list[str]]:
    lines: list[str] = []
    options = LikedOptions(zotero_api_url=url, zotero_api_key=key, notify=lines.append)
    return read_liked(spec, options), lines


@pytest.fixture
def zotero():
    with respx.mock(assert_all_called=False) as router:
        yield router


def test_every_page_is_read_by_its_next_link_and_notes_are_left_out(zotero, sleeps) -> None:
    route = zotero.get(ITEMS).mock(side_effect=[page(1), page(2), page(3)])
    papers, lines = read()
    assert lines == [
        f"liked: read 7 entries from {SPEC}, 4 usable (2 notes or attachments, 1 without title)"
    ]
    requests = [call.request for call in route.calls]
    assert [start(r) for r in requests] == ["0", "100", "200"]  # as the Link headers said
    assert dict(requests[0].url.params) == {"format": "json", "limit": "100", "start": "0"}
    for request in requests:
        assert request.headers["Zotero-API-Version"] == "3"
        assert request.headers["Zotero-API-Key"] == KEY
        assert KEY not in str(request.url)
    attention, nature, imagenet, gpt4 = papers
    assert attention.id == "1706.03762"  # its archiveID
    assert attention.authors == ["Ashish Vaswani", "Noam Shazeer", "Łukasz Kaiser"]
    assert attention.published == "2017-06-12" and attention.source == SPEC
    assert attention.metadata == {"doi": "10.48550/arXiv.1706.03762", "key": "ABCD2345"}
    assert nature.id == "10.1038/nature14539"
    assert nature.url == "https://www.nature.com/articles/nature14539"
    assert imagenet.abstract == "" and imagenet.id.startswith("t-")  # used by its title
    assert imagenet.authors == ["Alex Krizhevsky", "Ilya Sutskever", "Geoffrey E. Hinton"]
    assert gpt4.id == "2303.08774" and gpt4.authors == ["OpenAI"]  # "arXiv: ..." in extra
    assert gpt4.published == "2023-03"
    assert sleeps == []  # no Backoff, no 429: no wait


def test_a_429_waits_its_retry_after_then_the_page_is_read(zotero, sleeps) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "4"}, text="Rate limit exceeded")
    route = zotero.get(ITEMS).mock(side_effect=[page(1), limited, page(2), page(3)])
    papers, _ = read()
    assert len(papers) == 4
    assert [start(c.request) for c in route.calls] == ["0", "100", "100", "200"]
    assert sleeps == [4.0]


def test_a_backoff_header_holds_the_next_request(zotero, sleeps, caplog) -> None:
    route = zotero.get(ITEMS).mock(
        side_effect=[page(1, Backoff="7"), page(2), page(3, Backoff="9")]
    )
    with caplog.at_level(logging.WARNING):
        papers, _ = read()
    assert len(papers) == 4 and route.call_count == 3
    # 7 s before page 2; the last page's Backoff holds no request: there is none after it.
    assert sleeps == [7.0]
    assert "Zotero asks to wait 7s (Backoff)" in caplog.text


def test_a_503_with_only_a_backoff_header_is_retried_after_it(zotero, sleeps) -> None:
    busy = httpx.Response(503, headers={"Backoff": "12"}, text="Service Unavailable")
    zotero.get(ITEMS).mock(side_effect=[busy, page(1), page(2), page(3)])
    papers, _ = read()
    assert len(papers) == 4
    assert sleeps == [12.0]  # the retry policy reads Backoff as it reads Retry-After


def test_a_private_library_without_a_key_is_one_line_naming_the_variable(zotero) -> None:
    route = zotero.get(ITEMS).respond(403, text="Forbidden")
    with pytest.raises(SourceError) as info:
        read(key=None)
    assert str(info.value) == (
        f"{SPEC}: Zotero refused access (HTTP 403): set ZOTERO_API_KEY to a key that may read "
        "it (zotero.org/settings/keys)"
    )
    assert route.call_count == 1  # a 403 is not retried
    assert "Zotero-API-Key" not in route.calls[0].request.headers


def test_a_refused_key_is_one_line_and_the_key_is_in_no_output_or_log(
    zotero, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    zotero.get(ITEMS).respond(403, text=f"Invalid key {KEY}")
    papers = tmp_path / "papers.jsonl"
    papers.write_text(json.dumps({"title": "T", "abstract": "A."}) + "\n")
    monkeypatch.setenv("ZOTERO_API_KEY", f"  {KEY}\n")
    args = ["-vv", "run", str(papers), "--backend", "local", "--liked", SPEC]
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"paper-agent: error: {SPEC}: Zotero refused access (HTTP 403): the key in "
        "ZOTERO_API_KEY may not read it, or is no longer valid"
    )
    for text in (result.stdout, result.stderr, caplog.text):
        assert KEY.lower() not in text.lower()


def test_the_run_reads_a_zotero_collection_and_says_so(
    zotero, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps
) -> None:
    zotero.get(ITEMS).mock(side_effect=[page(1), page(2), page(3)])
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        json.dumps({"id": "2601.00001", "title": "Attention for translation", "abstract": "A."})
        + "\n"
    )
    monkeypatch.setenv("ZOTERO_API_KEY", KEY)
    args = ["run", str(papers), "--backend", "local", "-o", "out.jsonl", "--liked", SPEC]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert (
        f"paper-agent: liked: read 7 entries from {SPEC}, 4 usable "
        "(2 notes or attachments, 1 without title)\n"
    ) in result.stderr
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert "Attention Is All You Need" in row["why"]


def test_the_api_url_is_a_setting_and_a_next_page_elsewhere_is_not_followed(
    zotero, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror (PAPER_AGENT_ZOTERO_API_URL) is asked; its link to another host, where the key
    would go too, is refused."""
    mirror = "http://zotero-mirror.test/api"
    route = zotero.get(f"{mirror}/groups/42/items/top").mock(return_value=page(1))
    papers = tmp_path / "papers.jsonl"
    papers.write_text(json.dumps({"title": "T", "abstract": "A."}) + "\n")
    monkeypatch.setenv("PAPER_AGENT_ZOTERO_API_URL", mirror)
    args = ["run", str(papers), "--backend", "local", "--liked", "zotero:groups/42"]
    result = CliRunner().invoke(cli, args)
    assert route.call_count == 1
    assert result.exit_code == 2
    assert result.stderr == (
        "paper-agent: error: zotero:groups/42: the next page is on another host "
        "(api.zotero.org); not followed\n"
    )


@pytest.mark.parametrize(
    "spec",
    [
        "zotero:",
        "zotero:users",
        "zotero:users/abc",
        "zotero:people/123",
        "zotero:users/123/collections/SHORT",
        "zotero:users/123/items/ABCD1234",
    ],
)
def test_a_bad_spec_is_refused_before_any_request(zotero, spec: str) -> None:
    with pytest.raises(InputError, match="use zotero:users/ID or zotero:groups/ID"):
        read(spec)
    assert not zotero.calls


def test_a_key_no_header_can_carry_is_a_config_error(zotero) -> None:
    with pytest.raises(ConfigError, match="ZOTERO_API_KEY holds a character"):
        read(key="key\u201d")
    assert not zotero.calls


async def test_a_404_and_a_page_that_is_not_json_are_one_line_each(zotero) -> None:
    library = ZoteroLibrary.from_spec("users/1/collections/ZZZZ9999", API, KEY)
    zotero.get(f"{API}/users/1/collections/ZZZZ9999/items/top").mock(
        side_effect=[
            httpx.Response(404, text="Not found"),
            httpx.Response(200, text="<html>maintenance</html>"),
        ]
    )
    async with httpx.AsyncClient() as http:
        with pytest.raises(SourceError) as info:
            await library.read(http, Tally())
        assert str(info.value) == (
            "zotero:users/1/collections/ZZZZ9999: no such Zotero library or collection (HTTP 404)"
        )
        with pytest.raises(SourceError) as info:
            await library.read(http, Tally())
        assert str(info.value) == (
            "zotero:users/1/collections/ZZZZ9999: api.zotero.org did not return a JSON list "
            "of items"
        )


async def test_fewer_items_than_total_results_is_said(zotero, caplog) -> None:
    library = ZoteroLibrary.from_spec("users/123456/collections/ABCD1234", API, None)
    zotero.get(ITEMS).mock(side_effect=[page(1, Link=""), page(2)])
    async with httpx.AsyncClient() as http:
        with caplog.at_level(logging.WARNING):
            references = await library.read(http, Tally())
    assert len(references) == 2  # page 1 without its Link: the only page read
    assert "Zotero listed 7 items but gave 3" in caplog.text


async def test_items_no_parser_foresaw_cost_only_themselves(zotero) -> None:
    library = ZoteroLibrary.from_spec("groups/7", API, None)
    hostile = [
        "a string",
        {"key": "AAAA2222"},  # no data
        {"data": {"itemType": ["note"], "title": "Listed type", "creators": "Smith"}},
        {"data": {"itemType": "journalArticle", "title": {"x": 1}, "creators": [1, None]}},
        {"data": {"itemType": "book", "title": "Fine", "creators": [{"name": ["x"]}]}},
        {"data": {"itemType": "preprint", "title": "T", "extra": ["arXiv: 2401.00001"]}},
    ]
    zotero.get(f"{API}/groups/7/items/top").respond(200, json=hostile)
    tally = Tally()
    async with httpx.AsyncClient() as http:
        references = await library.read(http, tally)
    assert [r.title for r in references] == ["Listed type", "", "Fine", "T"]
    assert tally.read == 6 and tally.unused == {"unreadable": 2}
    assert references[2].authors == [] and references[3].arxiv == ""  # no list read as text
