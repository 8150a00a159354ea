"""arXiv's daily RSS feed (``arxiv-rss:cs.LG,cs.CL``): the day's announcements, by type."""

from __future__ import annotations

import email.utils
import logging
import re
import xml.etree.ElementTree as ET

import httpx

from agent.errors import InputError
from agent.models import Paper
from agent.sources.arxiv import ARXIV_POLICY, arxiv_pacer
from agent.sources.base import (
    SourceError,
    SourceOptions,
    abs_url,
    collapse,
    fetch_url,
    parse_xml,
    utc_iso,
)
from agent.sources.categories import check_categories
from agent.sources.files import arxiv_id, is_arxiv_id, split_authors

log = logging.getLogger(__name__)

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
ARXIV_NS = "http://arxiv.org/schemas/atom"
DC_NS = "http://purl.org/dc/elements/1.1/"

# The guid is "oai:arXiv.org:2401.00001v1"; old-style ids ("hep-th/9901001v3") occur too.
_GUID = re.compile(r"^oai:arxiv\.org:(?P<id>\S+?)(?:v(?P<version>\d+))?$", re.IGNORECASE)
# The description opens "arXiv:2401.00001v1 Announce Type: new \nAbstract: ...".
_DESCRIPTION_ID = re.compile(r"arXiv:(?P<id>\S+?)v(?P<version>\d+)\b")
_DESCRIPTION_TYPE = re.compile(r"Announce Type:\s*(?P<type>[\w-]+)", re.IGNORECASE)
_ABSTRACT = re.compile(r"\bAbstract:", re.IGNORECASE)
_SPLIT = re.compile(r"[,+\s]+")


class ArxivRssSource:
    """One request to ``{arxiv_rss_url}/cs.LG+cs.CL``; items kept by announce type."""

    def __init__(self, categories: list[str], options: SourceOptions) -> None:
        self.categories = categories
        self.options = options
        self.spec = "arxiv-rss:" + ",".join(categories)
        self.left_out = 0  # items of an announce type not chosen, for nothing_new()

    @classmethod
    def from_spec(cls, rest: str, options: SourceOptions) -> ArxivRssSource:
        """``cs.LG,cs.CL`` (or ``cs.LG+cs.CL``, as in the feed's URL), each name checked."""
        names = [n for n in _SPLIT.split(rest) if n]
        if not names:
            raise InputError("arxiv-rss: needs categories, e.g. arxiv-rss:cs.LG,cs.CL")
        unknown = sorted(set(options.announce) - set(ANNOUNCE_TYPES))
        if unknown or not options.announce:
            raise InputError(
                f"unknown announce type {', '.join(unknown) or '(none)'}: "
                f"choose from {', '.join(ANNOUNCE_TYPES)}"
            )
        return cls(list(dict.fromkeys(check_categories(names))), options)

    @property
    def url(self) -> str:
        """The feed of every category at once: arXiv joins them with ``+``."""
        return f"{self.options.arxiv_rss_url.rstrip('/')}/{'+'.join(self.categories)}"

    async def fetch(self, http: httpx.AsyncClient) -> list[Paper]:
        """The feed's papers of the chosen announce types, each id once, in feed order, at most
        ``max_papers`` of them."""
        root = parse_xml(await self._download(http))
        channel = root.find("channel") if root is not None else None
        if root is None or root.tag != "rss" or channel is None:
            raise SourceError(f"{self.spec}: {self.url} did not return an RSS feed")
        papers: list[Paper] = []
        seen: set[str] = set()
        self.left_out = 0
        for number, item in enumerate(channel.iter("item"), 1):
            paper = self._paper(item, number)
            if paper is None:
                continue
            if paper.metadata["announce_type"] not in self.options.announce:
                self.left_out += 1
                continue
            if paper.id not in seen:
                seen.add(paper.id)
                papers.append(paper)
        limit = self.options.max_papers
        if len(papers) > limit:
            log.warning(
                "%s: kept the first %d of %d papers (--max); raise --max to get them all",
                self.spec,
                limit,
                len(papers),
            )
        return papers[:limit]

    def nothing_new(self) -> str:
        """Why an empty fetch is a normal day: weekends, holidays, or types not chosen."""
        chosen = ", ".join(t for t in ANNOUNCE_TYPES if t in self.options.announce)
        if self.left_out:
            return (
                f"no {chosen} papers from {self.spec} today "
                f"({self.left_out} of other announce types left out; --announce chooses)"
            )
        return f"no new papers from {self.spec} (arXiv's feed is empty on weekends and holidays)"

    async def _download(self, http: httpx.AsyncClient) -> bytes:
        pacer = arxiv_pacer(http, self.options.arxiv_delay)  # arXiv's terms hold for feeds too
        response = await fetch_url(http, self.url, self.spec, ARXIV_POLICY, pacer=pacer)
        # Bytes, not text: the XML declaration names the encoding, ElementTree honours it.
        return response.content

    def _paper(self, item: ET.Element, number: int) -> Paper | None:
        description = item.findtext("description") or ""
        found = _identify(item, description)
        if found is None:
            log.warning(
                "%s: item %d has no arXiv id in its guid or link; skipped", self.spec, number
            )
            return None
        pid, version = found
        announce = (item.findtext(f"{{{ARXIV_NS}}}announce_type") or "").strip().lower()
        if not announce and (typed := _DESCRIPTION_TYPE.search(description)):
            announce = typed.group("type").lower()
        creators = ", ".join(e.text or "" for e in item.iter(f"{{{DC_NS}}}creator"))
        metadata = {"announce_type": announce or "new"}
        if version:
            metadata["version"] = version
        return Paper(
            id=pid,
            title=collapse(item.findtext("title")),
            abstract=_abstract(description),
            authors=split_authors(collapse(creators), f"{self.spec} item {number}"),
            url=abs_url(pid),
            published=_published(item.findtext("pubDate")),
            categories=list(
                dict.fromkeys(collapse(c.text) for c in item.iter("category") if c.text)
            ),
            source=self.spec,
            metadata=metadata,
        )


def _identify(item: ET.Element, description: str) -> tuple[str, str] | None:
    """(id without version, version number or "") from the guid, else the link."""
    guid_text = (item.findtext("guid") or "").strip()
    guid = _GUID.match(guid_text)
    if guid and is_arxiv_id(guid.group("id")):
        return guid.group("id"), guid.group("version") or ""
    # A guid may also be the abstract page's URL; else the link says which paper it is.
    found = arxiv_id(guid_text) or arxiv_id((item.findtext("link") or "").strip())
    if found is None:
        return None
    stated = _DESCRIPTION_ID.search(description)
    return found, stated.group("version") if stated and stated.group("id") == found else ""


def _abstract(description: str) -> str:
    """What follows ``Abstract:``; a description without it is all abstract, bar its header."""
    marker = _ABSTRACT.search(description)
    if marker is not None:
        return collapse(description[marker.end() :])
    header = _DESCRIPTION_TYPE.search(description)
    return collapse(description[header.end() :] if header else description)


def _published(value: str | None) -> str | None:
    """An RFC 822 ``pubDate`` as ISO 8601 in UTC (the form the other sources give)."""
    if not value or not value.strip():
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return value.strip()
    return utc_iso(when, value.strip())
