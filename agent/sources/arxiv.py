"""arXiv's export API (``arxiv:cs.LG,cs.CL``): a date window, paged politely, read by namespace."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from agent.errors import InputError
from agent.llm.retry import Pacer, RetryPolicy
from agent.models import Paper
from agent.sources.base import (
    SourceError,
    SourceIncomplete,
    SourceOptions,
    abs_url,
    collapse,
    fetch_url,
    host_of,
    parse_xml,
)
from agent.sources.categories import ARCHIVES, check_categories

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"

PAGE_SIZE = 100  # arXiv's manual suggests modest slices; larger pages come back empty more often
EMPTY_PAGE_RETRIES = 3  # arXiv sometimes answers a page with no entries; asking again fixes it
# arXiv's own backoff advice is minutes, not milliseconds: fewer, longer waits than the LLM's.
ARXIV_POLICY = RetryPolicy(
    max_attempts=5, base_delay=3.0, max_delay=60.0, max_backoff=30.0, max_total_wait=180.0
)

# "http://arxiv.org/abs/2401.01234v2", "http://arxiv.org/abs/hep-th/9901001v1"
_ENTRY_ID = re.compile(
    r"/abs/(?P<id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Za-z]{2})?/\d{7})(?:v(?P<version>\d+))?/?$"
)
_ARXIV_HTTP = re.compile(r"^http://(?=(?:[\w-]+\.)*arxiv\.org/)", re.IGNORECASE)
_SPLIT = re.compile(r"[,\s]+")

# One pacer per API for each run's shared client: two arxiv: sources fetched one after the
# other keep their distance too. Keyed by the client, so no state outlives a run (or a test).
_PACERS: weakref.WeakKeyDictionary[httpx.AsyncClient, dict[str, Pacer]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Page:
    """One answer of the API: how many results it says exist, and what this page held."""

    total: int
    entries: int  # every <entry>, parsed or not: the next start counts what came back
    papers: list[Paper] = field(default_factory=list)
    blank: bool = False  # a 200 with no feed at all: says nothing, not even a total


class ArxivSource:
    """Papers submitted to some categories within the window, newest first."""

    def __init__(
        self,
        categories: list[str],
        options: SourceOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.categories = categories
        self.options = options
        self.spec = "arxiv:" + ",".join(categories)
        self.clock = clock  # what the pacer measures gaps with; tests pass a fake one

    @classmethod
    def from_spec(cls, rest: str, options: SourceOptions) -> ArxivSource:
        """``cs.LG,cs.CL``: each name checked against arXiv's list, no request sent."""
        names = [name for name in _SPLIT.split(rest) if name]
        if not names:
            raise InputError("arxiv: needs categories, e.g. arxiv:cs.LG,cs.CL")
        return cls(list(dict.fromkeys(check_categories(names))), options)

    @property
    def query(self) -> str:
        """The ``search_query``: any of the categories, submitted within the window."""
        cats = " OR ".join(f"cat:{_term(name)}" for name in self.categories)
        window = self.options.window
        return f"({cats}) AND submittedDate:[{_stamp(window.start)} TO {_stamp(window.end)}]"

    async def fetch(self, http: httpx.AsyncClient) -> list[Paper]:
        """Every paper of the window up to ``max_papers``, one request at a time, paced."""
        limit = self.options.max_papers
        pacer = arxiv_pacer(http, self.options.arxiv_delay, self.clock)
        papers: dict[str, Paper] = {}
        received = total = empty = 0
        # However the server answers (a `start` it ignores, a total that lies), this many pages
        # is enough for `limit` papers.
        for _ in range(math.ceil(limit / PAGE_SIZE) * 2 + EMPTY_PAGE_RETRIES + 1):
            if len(papers) >= limit:
                break
            try:
                page = await self._page(http, pacer, received, min(PAGE_SIZE, limit - len(papers)))
            except SourceError as exc:
                if not papers or isinstance(exc, SourceIncomplete):
                    raise
                # A later page failed: what came before is run, and the source still fails.
                raise SourceIncomplete(
                    f"{exc} at result {received}; the {len(papers)} paper(s) before it were run",
                    list(papers.values())[:limit],
                ) from None
            if not page.entries:
                # An empty page may be arXiv's glitch, not the end: only a feed's total says
                # so (a blank body has none, even on the first page).
                if not page.blank and received >= max(total, page.total):
                    break
                empty += 1
                if empty > EMPTY_PAGE_RETRIES:
                    raise SourceIncomplete(
                        self._empty_message(
                            page, received, max(total, page.total), empty, limit - len(papers)
                        ),
                        list(papers.values())[:limit],
                    )
                log.info("%s: empty page at %d, asking again", self.spec, received)
                continue
            empty = 0
            total = page.total
            received += page.entries  # what came back, not what was asked for
            known = len(papers)
            for paper in page.papers:
                papers.setdefault(paper.id, paper)
            if received >= total:
                break
            if len(papers) == known:
                log.warning("%s: arXiv repeated a page at %d; stopping there", self.spec, received)
                break
        if len(papers) >= limit and total > received:
            log.warning(
                "%s: kept the newest %d of %d papers (--max); raise --max to get them all",
                self.spec,
                limit,
                total,
            )
        return list(papers.values())[:limit]

    def _empty_message(self, page: Page, received: int, total: int, times: int, room: int) -> str:
        """Why the source stops at an empty page (``room``: how many more papers fit)."""
        if page.blank:
            what = f"a blank page at {received} {times} times; how many papers are missing is"
            return f"{self.spec}: arXiv answered {what} unknown (try again later)"
        missing = min(total - received, room)
        return (
            f"{self.spec}: arXiv answered an empty page at {received} of {total} results "
            f"{times} times; {missing} paper(s) may be missing (the rest were run; try again "
            "later)"
        )

    def nothing_new(self) -> str:
        """The one line a run prints when the window held no papers."""
        line = f"no new papers from {self.spec} {self.options.window.describe()}"
        if self.options.window.has_weekend():
            line += "; arXiv does not announce on weekends"
        return line

    async def _page(self, http: httpx.AsyncClient, pacer: Pacer, start: int, size: int) -> Page:
        params = {
            "search_query": self.query,
            "sortBy": "submittedDate",
            "sortOrder": "descending",
            "start": str(start),
            "max_results": str(size),
        }

        try:
            response = await fetch_url(
                http,
                self.options.arxiv_api_url,
                self.spec,
                ARXIV_POLICY,
                params=params,
                pacer=pacer,
            )
        except SourceError as exc:
            answer = getattr(exc, "response", None)
            raise (self._status_error(answer) if answer is not None else exc) from None
        return self._parse(response.content)

    @property
    def _host(self) -> str:
        return host_of(self.options.arxiv_api_url)

    def _status_error(self, response: httpx.Response) -> SourceError:
        # arXiv explains a rejected query in an Atom entry titled "Error"; show its words.
        reason = _error_text(_xml(response.content)) if response.status_code < 500 else None
        if reason:
            return SourceError(f"{self.spec}: arXiv refused the query: {reason}")
        gave_up = " (gave up after retries)" if response.status_code in (429, 503) else ""
        return SourceError(
            f"{self.spec}: {self._host} answered HTTP {response.status_code} "
            f"{response.reason_phrase}{gave_up}"
        )

    def _parse(self, content: bytes) -> Page:
        root = _xml(content)
        if root is None and not content.strip(b" \t\r\n<>?xml"):
            # arXiv sometimes answers 200 with a blank body: an empty page, asked again.
            return Page(total=0, entries=0, papers=[], blank=True)
        if root is None or root.tag != ATOM + "feed":
            raise SourceError(f"{self.spec}: {self._host} did not answer with an Atom feed")
        reason = _error_text(root)
        if reason:
            raise SourceError(f"{self.spec}: arXiv refused the query: {reason}")
        try:
            total = int((root.findtext(OPENSEARCH + "totalResults") or "").strip())
        except ValueError:
            raise SourceError(
                f"{self.spec}: {self._host} answered a feed without opensearch:totalResults"
            ) from None
        entries = root.findall(ATOM + "entry")
        papers = [paper for entry in entries if (paper := self._paper(entry)) is not None]
        return Page(total=total, entries=len(entries), papers=papers)

    def _paper(self, entry: ET.Element) -> Paper | None:
        raw_id = collapse(entry.findtext(ATOM + "id"))
        match = _ENTRY_ID.search(raw_id)
        if match is None:
            log.warning("%s: skipped an entry without an arXiv id (%.80r)", self.spec, raw_id)
            return None
        arxiv_id = match["id"]
        primary = entry.find(ARXIV + "primary_category")
        terms = [primary.get("term") if primary is not None else None]
        terms += [category.get("term") for category in entry.findall(ATOM + "category")]
        metadata = {"version": match["version"] or "", "pdf": _pdf_link(entry)}
        for key in ("comment", "journal_ref", "doi"):
            metadata[key] = collapse(entry.findtext(ARXIV + key))
        return Paper(
            id=arxiv_id,
            title=collapse(entry.findtext(ATOM + "title")),
            abstract=collapse(entry.findtext(ATOM + "summary")),
            authors=[
                name
                for author in entry.findall(ATOM + "author")
                if (name := collapse(author.findtext(ATOM + "name")))
            ],
            url=abs_url(arxiv_id),
            published=collapse(entry.findtext(ATOM + "published")) or None,
            categories=list(dict.fromkeys(t.strip() for t in terms if t and t.strip())),
            source=self.spec,
            metadata={key: value for key, value in metadata.items() if value},
        )


def arxiv_pacer(
    http: httpx.AsyncClient, delay: float, clock: Callable[[], float] = time.monotonic
) -> Pacer:
    """The one pacer of every arXiv request made on ``http`` (API and RSS alike)."""
    pacer = _PACERS.setdefault(http, {}).setdefault("arxiv", Pacer(delay, clock))
    pacer.interval = delay
    return pacer


def _term(category: str) -> str:
    # A whole archive is asked for by wildcard: no paper carries the bare name "cs".
    return f"{category}.*" if category in ARCHIVES else category


def _stamp(when: dt.datetime) -> str:
    when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    return when.strftime("%Y%m%d%H%M")


def _xml(content: bytes) -> ET.Element | None:
    return parse_xml(content)


def _error_text(root: ET.Element | None) -> str | None:
    """The text of arXiv's error entry (title "Error", no paper id), if the feed is one."""
    if root is None:
        return None
    for entry in root.iter(ATOM + "entry"):
        title = collapse(entry.findtext(ATOM + "title"))
        if title == "Error" and not _ENTRY_ID.search(collapse(entry.findtext(ATOM + "id"))):
            return collapse(entry.findtext(ATOM + "summary")) or "no reason given"
    return None


def _pdf_link(entry: ET.Element) -> str:
    for link in entry.findall(ATOM + "link"):
        href = (link.get("href") or "").strip()
        if href and (link.get("title") == "pdf" or link.get("type") == "application/pdf"):
            return _ARXIV_HTTP.sub("https://", href)  # older feeds link over plain http
    return ""
