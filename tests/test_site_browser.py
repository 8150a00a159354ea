"""The archive site in a real browser (Debian's Chromium, headless, through Playwright), served
from 127.0.0.1: search and filters, a day opened from the index, the feed, JavaScript off,
hostile text, accessibility and a phone's width. Every page is checked for console errors and
for any request that leaves 127.0.0.1.

Skipped with its reason where no Chromium is installed, except in CI (CI=true), where
``.ci/run`` installs it and a skip would hide that the pages were never tested.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent.models import Paper
from agent.site import update_site
from agent.store import Library
from tests.browser import chromium, chromium_missing, serve
from tests.site_data import START, day_papers, record_day, sample_papers

expect: Any = None  # playwright.sync_api.expect, imported with the browser
DAYS = 3
PER_DAY = 12
HOSTILE_TITLE = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2> Evil"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = chromium_missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    global expect
    from playwright.sync_api import expect as playwright_expect

    expect = playwright_expect
    expect.set_options(timeout=10_000)
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Three days of twelve papers, two profiles, and one hostile paper on the first day."""
    root = tmp_path_factory.mktemp("site")
    hostile = Paper(
        id="2503.00666",
        title=HOSTILE_TITLE,
        abstract=f"Summary {HOSTILE_TITLE}<a href='javascript:window.pwned=4'>x</a>. More.",
        authors=["Mallory"],
        url="javascript:window.pwned=3",
        categories=["cs.CL"],
        source="arxiv",
    )
    with Library.open(root / "home") as lib:
        for number in range(DAYS):
            day = START + dt.timedelta(days=number)
            papers = day_papers(number, PER_DAY, sample_papers())
            if number == 0:
                papers.append(hostile)
            record_day(lib, dt.datetime.combine(day, dt.time(6), dt.UTC), papers)
        update_site(lib, root / "out")
    return root / "out"


@pytest.fixture(scope="module")
def base(site) -> Iterator[str]:
    with serve(site) as url:
        yield url


class Watched:
    """A page whose requests, console errors and uncaught errors are recorded."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        self.page = context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def check(self) -> None:
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        outside = [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1"]
        assert self.requests and outside == [], outside


@pytest.fixture
def watched(browser) -> Iterator[Any]:
    """Open pages with ``watched(**context_options)``; each is checked when the test ends."""
    opened: list[Watched] = []

    def open_page(**options: Any) -> Any:
        context = browser.new_context(**options)
        opened.append(Watched(context))
        return opened[-1]

    yield open_page
    try:
        for w in opened:
            w.check()
    finally:
        for w in opened:
            w.context.close()


def rows(site: Path) -> list[dict[str, Any]]:
    """Every paper of the search index, as the test reads it (not as the script does)."""
    found = []
    index = json.loads((site / "search/index.json").read_text(encoding="utf-8"))
    for shard in index["shards"]:
        data = json.loads((site / "search" / shard["file"]).read_text(encoding="utf-8"))
        for day, papers in data["days"].items():
            for _, title, authors, tags, rels in papers:
                scores = {
                    p: r for p, r in zip(data["profiles"], rels, strict=True) if r is not None
                }
                found.append(
                    {"day": day, "title": title, "authors": authors, "tags": tags, **scores}
                )
    return found


def status(page: Any, pattern: str) -> None:
    expect(page.locator("[data-status]")).to_have_text(re.compile(pattern))


def test_search_narrows_the_list_and_a_tag_filter_works(watched, site, base):
    papers = rows(site)
    w = watched()
    page = w.page
    page.goto(base + "index.html")
    expect(page.locator("form[data-filters]")).to_be_visible()
    assert page.locator("[data-days] li").count() == DAYS
    # A word in some titles but not all.
    word = "detection"
    wanted = [p for p in papers if word in (p["title"] + " " + p["authors"]).lower()]
    assert 0 < len(wanted) < len(papers)
    page.get_by_role("searchbox", name="Search").fill(word.upper())
    status(page, rf"^{len(wanted)} papers? match(es)?\.$")
    hits = page.locator("[data-hits] li")
    expect(hits).to_have_count(len(wanted))
    assert all(word in text.lower() for text in hits.all_inner_texts())
    expect(page.locator("[data-days]")).to_be_hidden()
    # The filters live in the URL, so the view can be shared.
    assert "q=DETECTION" in page.url
    page.get_by_role("searchbox", name="Search").fill("")
    page.get_by_label("Tag", exact=True).select_option("Vision")
    tagged = [p for p in papers if "Vision" in p["tags"]]
    status(page, rf"^{len(tagged)} papers? match(es)?\.$")
    expect(hits).to_have_count(len(tagged))
    assert all("Vision" in text for text in hits.locator(".meta").all_inner_texts())
    page.get_by_label("Relevance at least").fill("8")
    page.get_by_label("Profile", exact=True).select_option("nlp")
    both = [p for p in tagged if p.get("nlp", -1) >= 8]
    status(page, rf"^{len(both)} papers? match(es)?\.$")
    expect(hits).to_have_count(len(both))


def test_a_day_opens_from_the_index_and_filters_its_papers(watched, base):
    w = watched()
    page = w.page
    page.goto(base + "index.html")
    newest = (START + dt.timedelta(days=DAYS - 1)).isoformat()
    page.locator("[data-days] li a").first.click()
    page.wait_for_url(f"**/days/{newest}.html")
    expect(page.locator("h1")).to_contain_text("Papers of")
    papers = page.locator("article[data-paper]")
    assert papers.count() == PER_DAY
    page.get_by_label("Tag", exact=True).select_option("Vision")
    shown = page.locator("article[data-paper]:visible")
    status(page, r"^Showing \d+ of 12 papers\.$")
    count = int(re.search(r"Showing (\d+)", page.locator("[data-status]").inner_text())[1])
    assert 0 < count < PER_DAY and shown.count() == count
    assert all("Vision" in t for t in shown.locator(".tags").all_inner_texts())
    # A tag section left with no paper is hidden with them.
    assert (
        page.locator("section[data-group]:visible h2").count()
        < page.locator("section[data-group] h2").count()
    )


def test_the_feed_parses_in_the_browser(watched, base):
    w = watched()
    w.page.goto(base + "index.html")
    parsed = w.page.evaluate(
        """async () => {
            const response = await fetch('feed.xml');
            const doc = new DOMParser().parseFromString(await response.text(), 'application/xml');
            return {
                error: doc.querySelector('parsererror') !== null,
                root: doc.documentElement.namespaceURI + ' ' + doc.documentElement.localName,
                entries: doc.getElementsByTagName('entry').length,
            };
        }"""
    )
    assert parsed == {"error": False, "root": "http://www.w3.org/2005/Atom feed", "entries": DAYS}


def test_pages_work_with_javascript_off(watched, base):
    w = watched(java_script_enabled=False)
    page = w.page
    page.goto(base + "index.html")
    expect(page.locator("form[data-filters]")).to_be_hidden()
    expect(page.locator("noscript")).to_have_count(1)
    assert page.locator("[data-days] li").count() == DAYS
    page.locator("[data-days] li a").first.click()
    page.wait_for_url("**/days/*.html")
    expect(page.locator("article[data-paper]").first).to_be_visible()
    page.locator(".tags a").first.click()
    page.wait_for_url("**/tags/*.html")
    expect(page.locator("h1")).to_be_visible()


def test_hostile_titles_and_links_stay_inert(watched, base):
    w = watched()
    page = w.page
    page.goto(base + f"days/{START}.html")
    title = page.get_by_text("Evil", exact=False).first
    expect(title).to_have_text(HOSTILE_TITLE)
    summary = f"Summary {HOSTILE_TITLE}<a href='javascript:window.pwned=4'>x</a>."
    expect(page.locator(".summary", has_text="Summary <script>")).to_have_text(summary)
    assert page.evaluate("() => window.pwned") is None
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("main img").count() == 0
    # The same text through the search index and the script.
    page.goto(base + "index.html")
    page.get_by_role("searchbox", name="Search").fill("evil")
    status(page, r"^1 paper matches\.$")
    expect(page.locator("[data-hits] li a")).to_have_text(HOSTILE_TITLE)
    assert page.evaluate("() => window.pwned") is None


def _luminance(rgb: tuple[float, ...]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(fg: str, bg: str) -> float:
    a, b = (_luminance(tuple(float(x) for x in re.findall(r"[\d.]+", c))) for c in (fg, bg))
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


COLOURS = """(selectors) => selectors.map((selector) => {
    const el = document.querySelector(selector);
    if (!el) return null;
    let bg = el;
    while (bg && getComputedStyle(bg).backgroundColor === 'rgba(0, 0, 0, 0)') bg = bg.parentElement;
    return [selector, getComputedStyle(el).color,
            bg ? getComputedStyle(bg).backgroundColor : 'rgb(255, 255, 255)'];
})"""
TEXTS = [
    "h1",
    ".lede",
    ".meta",
    ".summary",
    "article h3 a",
    ".tags a",
    ".rel",
    ".score",
    "label",
    "input[type=search]",
    ".pager a",
    "footer p",
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_are_accessible(watched, base, scheme):
    w = watched(color_scheme=scheme)
    page = w.page
    for name in ("index.html", f"days/{START}.html", "tags/index.html"):
        page.goto(base + name)
        for landmark in ("header", "nav", "main", "footer"):
            assert page.locator(landmark).count() >= 1, (name, landmark)
        assert page.locator("html").get_attribute("lang") == "en"
        # Every control has a label that names it.
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select')]
                .filter((c) => !c.labels || c.labels.length === 0).map((c) => c.outerHTML)"""
        )
        assert unlabelled == [], (name, unlabelled)
    page.goto(base + f"days/{START}.html")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    for selector, fg, bg in filter(None, page.evaluate(COLOURS, TEXTS)):
        assert _contrast(fg, bg) >= 4.5, (scheme, selector, fg, bg)


def test_pages_fit_a_phone(watched, base):
    w = watched(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    for name in ("index.html", f"days/{START}.html", "tags/index.html"):
        w.page.goto(base + name)
        expect(w.page.locator("h1")).to_be_visible()
        wide = w.page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 390, (name, wide)
        size = w.page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 16
