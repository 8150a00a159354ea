"""The archive site as files: what each page shows, that it rebuilds only what changed, that
hostile text stays text, and ``paper-agent site`` as a user runs it."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.errors import ConfigError, OutputError
from agent.models import Paper
from agent.outputs import output_lock
from agent.site import SiteReport, update_site
from agent.site.manifest import MANIFEST
from agent.site.model import anchor, slug
from agent.store import Library, Selection
from tests.site_data import START, WHY, day_papers, fill, record_day, relevance, sample_papers


def build(home: Path, out: Path, **options) -> SiteReport:
    with Library.open(home) as lib:
        return update_site(lib, out, **options)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


class Page(HTMLParser):
    """A page as a browser reads it: its elements' ids, links, and text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        found = dict(attrs)
        if "id" in found:
            self.ids.append(found["id"])
        if tag == "a" and "href" in found:
            self.links.append(found["href"])

    def handle_data(self, data):
        self.text.append(data)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def page(out: Path, name: str) -> Page:
    return Page((out / name).read_text(encoding="utf-8"))


def mtimes(out: Path) -> dict[str, int]:
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in out.rglob("*")
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".lock")
    }


@pytest.fixture
def home(isolated_env) -> Path:
    """Three days of six papers, scored for two profiles."""
    fill(isolated_env / "home", 3, 6)
    return isolated_env / "home"


@pytest.fixture
def out(isolated_env) -> Path:
    return isolated_env / "site"


def test_the_index_lists_every_day_newest_first_each_linked_to_its_page(home, out):
    report = build(home, out)
    assert (report.days, report.papers, report.full) == (3, 18, True)
    days = [(START + dt.timedelta(days=n)).isoformat() for n in range(3)]
    index = page(out, "index.html")
    linked = [link for link in index.links if link.startswith("days/") and "#" not in link]
    assert linked == [f"days/{d}.html" for d in reversed(days)]
    for day in days:
        assert (out / f"days/{day}.html").is_file()
    assert "18 papers over 3 days" in index.plain


def test_a_day_page_shows_every_paper_with_link_authors_tags_summary_and_scores(home, out):
    build(home, out)
    with Library.open(home) as lib:
        keyed = list(lib.keyed_results(Selection(day=START)))
    day = page(out, f"days/{START}.html")
    text = day.plain
    for key, record in keyed:
        assert anchor(key) in day.ids  # the stable anchor of the paper
        assert record.url in day.links
        assert record.authors[0] in text and record.summary in text
        for tag in record.tags:
            assert f"../tags/{slug(tag)}.html" in day.links
        for profile in ("ml", "nlp"):
            assert f"{relevance(record.id, profile):.1f} {profile}" in text
    assert WHY[0] in text


def test_top_picks_come_first_for_each_profile_best_first(home, out):
    build(home, out)
    html = (out / f"days/{START}.html").read_text(encoding="utf-8")
    with Library.open(home) as lib:
        ids = {anchor(k): r.id for k, r in lib.keyed_results(Selection(day=START))}
    for number, profile in ((1, "ml"), (2, "nlp")):
        section = html.split(f'id="top-{number}"')[1].split("</section>")[0]
        assert f"Top picks for {profile}" in section
        picked = re.findall(r'href="#(p-[^"]+)"', section)
        scores = [relevance(ids[a], profile) for a in picked]
        assert len(picked) == 6 and scores == sorted(scores, reverse=True)
    # Top picks, then the papers by tag.
    assert html.index('id="top-1"') < html.index('class="group"')


def test_each_tag_has_a_page_listing_its_papers_linked_to_their_anchor(home, out):
    build(home, out)
    with Library.open(home) as lib:
        keyed = list(lib.keyed_results(Selection(day=START)))
    key, record = keyed[0]
    tag = record.tags[0]
    tag_page = page(out, f"tags/{slug(tag)}.html")
    assert f"../days/{START}.html#{anchor(key)}" in tag_page.links
    assert tag in tag_page.plain
    tags_index = page(out, "tags/index.html")
    assert f"{slug(tag)}.html" in tags_index.links


def test_anchors_and_names_stay_the_same_from_one_build_to_the_next(home, out, isolated_env):
    build(home, out)
    first = page(out, f"days/{START}.html").ids
    again = isolated_env / "again"
    build(home, again, full=True)
    assert page(again, f"days/{START}.html").ids == first
    assert anchor("2501.00001") == "p-2501.00001"
    assert anchor("title:a paper") == anchor("title:a paper") != anchor("title:another")
    assert re.fullmatch(r"p-[0-9a-f]{12}", anchor("hep-th/9901001"))
    assert slug("C++") != slug("C") and slug("C++").startswith("c-")


def test_a_second_build_writes_nothing(home, out):
    build(home, out)
    before = mtimes(out)
    report = build(home, out)
    assert (report.written, report.read, report.full) == ([], 0, False)
    assert mtimes(out) == before


def test_a_new_day_writes_its_page_and_what_lists_it_and_leaves_older_days_alone(home, out):
    build(home, out)
    before = mtimes(out)
    new_day = START + dt.timedelta(days=3)
    with Library.open(home) as lib:
        when = dt.datetime.combine(new_day, dt.time(7), dt.UTC)
        record_day(lib, when, day_papers(3, 6, sample_papers()))
    report = build(home, out)
    month = START.isoformat()[:7]
    last = (START + dt.timedelta(days=2)).isoformat()
    assert f"days/{new_day}.html" in report.written
    # The day before gains its "next" link; the rest of what changed lists the new day.
    assert f"days/{last}.html" in report.written
    assert {"index.html", "feed.xml", "search/index.json", f"search/{month}.json"} <= set(
        report.written
    )
    assert report.read == 2
    after = mtimes(out)
    for day in (START, START + dt.timedelta(days=1)):
        name = f"days/{day}.html"
        assert name not in report.written and after[name] == before[name]
    assert after["assets/site.css"] == before["assets/site.css"]


def test_a_paper_scored_again_rewrites_only_its_day(home, out):
    build(home, out)
    with Library.open(home) as lib:
        key, _ = next(iter(lib.keyed_results(Selection(day=START + dt.timedelta(days=1)))))
        lib.scores.record("ml", "fused", [(key, 0.5, "now barely relevant")])
    report = build(home, out)
    assert report.read == 1
    day_pages = [name for name in report.written if name.startswith("days/")]
    assert day_pages == [f"days/{START + dt.timedelta(days=1)}.html"]
    assert "now barely relevant" in page(out, day_pages[0]).plain


def test_a_page_removed_by_hand_comes_back_and_days_left_out_are_removed(home, out):
    build(home, out)
    (out / f"days/{START}.html").unlink()
    report = build(home, out)
    assert report.written == [f"days/{START}.html"]
    later = START + dt.timedelta(days=1)
    report = build(home, out, since=later)
    assert f"days/{START}.html" in report.removed
    assert not (out / f"days/{START}.html").exists()
    assert report.days == 2
    assert f"days/{START}.html" not in page(out, "index.html").links


def test_a_damaged_manifest_means_a_full_build_not_a_failure(home, out, caplog):
    build(home, out)
    (out / MANIFEST).write_text("{not json", encoding="utf-8")
    report = build(home, out)
    assert report.full and report.read == 3
    assert "building the whole site" in caplog.text


def test_profile_since_and_base_url(home, out):
    later = START + dt.timedelta(days=1)
    build(home, out, profile="nlp", since=later, base_url="https://example.org/papers")
    index = page(out, "index.html")
    assert f"days/{START}.html" not in index.links
    day = (out / f"days/{later}.html").read_text(encoding="utf-8")
    assert 'data-profile="nlp"' in day and 'data-profile="ml"' not in day
    assert "Top picks for" not in day  # one profile: no need to name it
    assert f'<link rel="canonical" href="https://example.org/papers/days/{later}.html">' in day
    tag = re.search(r'href="\.\./tags/([^"]+)"', day)[1]
    assert f'href="https://example.org/papers/tags/{tag}"' in (out / "tags" / tag).read_text(
        encoding="utf-8"
    )
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert feed.entries[0].link == f"https://example.org/papers/days/{later + dt.timedelta(1)}.html"


def test_a_profile_without_scores_is_said_once_and_shows_none(home, out, caplog):
    build(home, out, profile=["nlpx", "nlpx"])
    assert caplog.text.count("no paper has a score for profile 'nlpx'") == 1
    assert 'class="score"' not in (out / f"days/{START}.html").read_text(encoding="utf-8")


def test_the_feed_is_atom_with_one_entry_per_day_newest_first(home, out):
    build(home, out)
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    days = [(START + dt.timedelta(days=n)).isoformat() for n in reversed(range(3))]
    assert [e.link for e in feed.entries] == [f"days/{d}.html" for d in days]
    assert len({e.id for e in feed.entries}) == 3
    assert "Top picks for ml" in feed.entries[0].content[0].value


def test_the_search_index_lists_every_paper_by_month(home, out):
    build(home, out)
    index = json.loads((out / "search/index.json").read_text(encoding="utf-8"))
    assert index["profiles"] == ["ml", "nlp"]
    assert index["shards"] == [{"file": f"{START.isoformat()[:7]}.json", "papers": 18}]
    shard = json.loads((out / "search" / index["shards"][0]["file"]).read_text(encoding="utf-8"))
    rows = [row for day in shard["days"].values() for row in day]
    assert len(rows) == 18 and list(shard["days"]) == sorted(shard["days"], reverse=True)
    anchor_, title, authors, tags, rels = rows[0]
    assert anchor_.startswith("p-") and title and authors and tags and len(rels) == 2


def test_hostile_text_renders_inert(isolated_env, out):
    home = isolated_env / "home"
    script = "<script>window.pwned=1</script>"
    hostile = Paper(
        id="2503.00666",
        title=f"{script}Title\u202e txt.exe",
        abstract=f"It works {script}<a href='javascript:alert(3)'>here</a>. More.",
        authors=['Eve "><img src=x onerror=alert(1)>'],
        url="javascript:alert(document.cookie)",
        categories=["cs.CL"],
        source="arxiv",
    )
    with Library.open(home) as lib:
        record_day(lib, dt.datetime.combine(START, dt.time(9), dt.UTC), [hostile])
        key = lib.papers.get("2503.00666").key
        # U+FFFF: no XML may hold it, so it would stop the feed being written at all.
        why = "</script><script>alert(2)</script>\uffff"
        lib.scores.record("ml", "fused", [(key, 9.0, why)])
    build(home, out, base_url="https://example.org/")
    for name in ("index.html", f"days/{START}.html", "feed.xml", "search/2025-03.json"):
        text = (out / name).read_text(encoding="utf-8")
        assert "<script>window" not in text and "<script>alert" not in text, name
        assert "<img src=x" not in text and "<a href='javascript" not in text, name
        assert not re.search(r"href=\W*javascript", text, re.I), name
        assert "\u202e" not in text, name
    day = page(out, f"days/{START}.html")
    assert day.tags.count("script") == 1  # the site's own script, and nothing else
    assert f"{script}Title txt.exe" in day.plain  # shown as the text it is
    assert f"It works {script}<a href='javascript:alert(3)'>here</a>." in day.plain
    assert not any(link.startswith("javascript") for link in day.links)
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo and feed.entries[0].title.startswith("Papers of")


def test_an_empty_library_makes_a_site_that_says_so(isolated_env, out):
    report = build(isolated_env / "home", out)
    assert (report.days, report.papers) == (0, 0)
    assert "No papers yet" in page(out, "index.html").plain
    assert feedparser.parse((out / "feed.xml").read_bytes()).entries == []


def test_a_folder_of_other_files_is_never_written_into(home, isolated_env):
    folder = isolated_env / "mine"
    folder.mkdir()
    (folder / "index.html").write_text("my own page", encoding="utf-8")
    with pytest.raises(OutputError, match="holds files but no site"):
        build(home, folder)
    assert (folder / "index.html").read_text(encoding="utf-8") == "my own page"
    assert sorted(p.name for p in folder.iterdir()) == ["index.html"]
    file = isolated_env / "file"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(OutputError, match="not a folder"):
        build(home, file)


def test_a_first_build_stopped_half_way_is_taken_up_by_the_next(home, out, monkeypatch):
    from agent.site import build as site_build

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(site_build.feed, "atom", stop)  # after every day page is written
    with pytest.raises(KeyboardInterrupt):
        build(home, out)
    assert (out / f"days/{START}.html").is_file() and not (out / "feed.xml").exists()
    monkeypatch.undo()
    report = build(home, out)
    assert report.full and (out / "feed.xml").is_file()
    assert "18 papers over 3 days" in page(out, "index.html").plain


def test_one_build_at_a_time(home, out):
    build(home, out)
    with output_lock(out / MANIFEST, "the site"), pytest.raises(OutputError, match="writing"):
        build(home, out)


def test_a_base_url_must_be_http(home, out):
    with pytest.raises(ConfigError, match="http"):
        build(home, out, base_url="javascript:alert(1)")
    assert not out.exists()


def test_the_command_builds_then_updates(home, out):
    result = invoke("site", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("site: 3 days, 18 papers (")
    assert result.output.rstrip().endswith(str(out / "index.html"))
    again = invoke("site", "-o", str(out))
    assert "(0 files written," in again.output


def test_the_command_reads_the_site_url_from_the_config_file(home, out, isolated_env):
    (isolated_env / "paper-agent.toml").write_text(
        '[site]\nsite_url = "https://example.org/archive/"\n', encoding="utf-8"
    )
    assert invoke("site", "-o", str(out)).exit_code == 0
    assert "https://example.org/archive/days/" in (out / "feed.xml").read_text(encoding="utf-8")


def test_bad_input_is_one_line_and_exit_2(home, isolated_env):
    (isolated_env / "taken").mkdir()
    (isolated_env / "taken" / "x.txt").write_text("x", encoding="utf-8")
    for args in (
        ["-o", str(isolated_env / "taken")],
        ["-o", "s", "--base-url", "ftp://example.org/"],
        ["-o", "s", "--since", "yesterday"],
    ):
        result = CliRunner().invoke(cli, ["site", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


@pytest.fixture
def pools(monkeypatch):
    """Call it to have two cores and worker pools from two days on; it lists the pools
    started (their sizes)."""
    from agent.site import days

    started: list[int] = []

    class Pool(days.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            started.append(args[0])
            super().__init__(*args, **kwargs)

    def parallel() -> list[int]:
        monkeypatch.setattr(days, "ProcessPoolExecutor", Pool)
        monkeypatch.setattr(days, "PARALLEL_FROM", 2)
        monkeypatch.setattr(days, "_cpus", lambda: 2)
        return started

    return parallel


def test_days_made_in_worker_processes_are_the_days_made_here(home, out, isolated_env, pools):
    build(home, out)
    started = pools()
    parallel = isolated_env / "parallel"
    build(home, parallel)
    assert started == [2]
    made_here = mtimes(out)
    assert set(mtimes(parallel)) == set(made_here)
    for name in made_here:
        if name != "feed.xml":  # dated by when each build wrote its days
            assert (parallel / name).read_bytes() == (out / name).read_bytes(), name


def test_no_worker_process_is_forked_beside_another_thread(home, out, pools):
    started = pools()
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        report = build(home, out)
    finally:
        done.set()
        other.join()
    assert started == [] and report.read == 3
