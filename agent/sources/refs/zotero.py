"""A Zotero library through its web API (v3): ``zotero:users/123456`` or ``zotero:groups/ID``,
either with ``/collections/KEY``; the library's top-level items, page after page.

Pages are followed by the ``Link: <...>; rel="next"`` header, as the API documents, and only on
the API's own host (the key goes nowhere else). A 429 or 5xx is retried by the one retry policy
(its ``Retry-After``, or Zotero's ``Backoff``, is waited); a ``Backoff`` on a good page is waited
before the next request, as Zotero asks of every client. The key comes from ``ZOTERO_API_KEY``
in the ``Zotero-API-Key`` header, registered as a secret first: it is in no URL, log or message.
"""

from __future__ import annotations

import logging
import re

import httpx

from agent.errors import ConfigError, InputError
from agent.llm import retry
from agent.llm.redact import register
from agent.sources.base import SourceError, fetch_url, host_of
from agent.sources.refs.entry import (
    NOT_PAPERS,
    UNREADABLE,
    Reference,
    Tally,
    date_text,
    labelled_arxiv,
    person,
    text,
)

log = logging.getLogger(__name__)

KEY_ENV = "ZOTERO_API_KEY"
API_VERSION = "3"
PAGE_SIZE = 100  # the API's largest page
MAX_PAGES = 200  # 20,000 items: far beyond a reading list; a bigger library is cut, and says so
MAX_BACKOFF = retry.RetryPolicy.max_total_wait  # the longest any one wait of ours may be
SKIPPED_TYPES = frozenset({"note", "attachment", "annotation"})
_SPEC = re.compile(
    r"^(?P<kind>users|groups)/(?P<id>\d{1,20})(?:/collections/(?P<collection>[A-Za-z0-9]{8}))?/?$"
)


class ZoteroLibrary:
    """The top-level items of one Zotero library, or of one collection in it."""

    def __init__(self, path: str, api_url: str, api_key: str | None) -> None:
        self.path = path  # "users/123456/collections/ABCD1234"
        self.spec = f"zotero:{path}"
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key

    @classmethod
    def from_spec(cls, rest: str, api_url: str, api_key: str | None) -> ZoteroLibrary:
        """``users/ID`` or ``groups/ID``, optionally ``/collections/KEY``, checked before any
        request; ``api_key`` (may be None: a public library needs none) must fit a header."""
        match = _SPEC.match(rest.strip())
        if match is None:
            raise InputError(
                f"zotero:{rest}: use zotero:users/ID or zotero:groups/ID, optionally with "
                "/collections/KEY (e.g. zotero:users/123456/collections/ABCD1234)"
            )
        key = (api_key or "").strip() or None
        register(key)  # before anything can print it
        if key is not None and not (key.isascii() and key.isprintable()):
            raise ConfigError(
                f"{KEY_ENV} holds a character no API key has (a pasted quote or control "
                "character?); set it again"
            )
        path = f"{match.group('kind')}/{match.group('id')}"
        if match.group("collection"):
            path += f"/collections/{match.group('collection').upper()}"
        return cls(path, api_url, key)

    async def read(self, http: httpx.AsyncClient, tally: Tally) -> list[Reference]:
        """Every top-level item but notes and attachments, in the API's order; each item seen
        is counted in ``tally``."""
        url: str | None = f"{self.api_url}/{self.path}/items/top"
        params: dict[str, str] | None = {"format": "json", "limit": str(PAGE_SIZE), "start": "0"}
        headers = {"Zotero-API-Version": API_VERSION}
        if self.api_key is not None:
            headers["Zotero-API-Key"] = self.api_key
        references: list[Reference] = []
        seen, pages, total, wait, said = 0, 0, None, 0.0, False
        while url is not None:
            if pages == MAX_PAGES:
                log.warning("%s: stopped after %d pages (%d items)", self.spec, pages, seen)
                break
            if wait:  # Zotero's Backoff: no request before it has passed (said once)
                if not said:
                    log.warning("%s: Zotero asks to wait %gs (Backoff); waiting", self.spec, wait)
                said = True
                await retry.sleep(wait)
            response = await self._get(http, url, params, headers)
            pages += 1
            items = self._items(response)
            for item in items:
                seen += 1
                tally.read += 1
                if (reference := self._reference(item, seen, tally)) is not None:
                    references.append(reference)
            total = _count(response.headers.get("total-results"), total)
            wait = min(retry.backoff(response.headers) or 0.0, MAX_BACKOFF)
            url, params = (self._next(response) if items else None), None
        if total is not None and seen < total:
            log.warning("%s: Zotero listed %d items but gave %d", self.spec, total, seen)
        return references

    async def _get(
        self, http: httpx.AsyncClient, url: str, params: dict[str, str] | None, headers: dict
    ) -> httpx.Response:
        try:
            return await fetch_url(
                http, url, self.spec, retry.RetryPolicy(), params=params, headers=headers
            )
        except SourceError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status == 403:
                fix = (
                    f"set {KEY_ENV} to a key that may read it (zotero.org/settings/keys)"
                    if self.api_key is None
                    else f"the key in {KEY_ENV} may not read it, or is no longer valid"
                )
                raise SourceError(f"{self.spec}: Zotero refused access (HTTP 403): {fix}") from None
            if status == 404:
                raise SourceError(
                    f"{self.spec}: no such Zotero library or collection (HTTP 404)"
                ) from None
            raise

    def _items(self, response: httpx.Response) -> list[object]:
        try:
            items = response.json()
        except (ValueError, RecursionError):
            items = None
        if not isinstance(items, list):
            host = host_of(self.api_url)
            raise SourceError(f"{self.spec}: {host} did not return a JSON list of items")
        return items

    def _next(self, response: httpx.Response) -> str | None:
        """The next page's URL from the ``Link`` header, refused on another host."""
        target = response.links.get("next", {}).get("url")
        if not target:
            return None
        here, there = httpx.URL(self.api_url), response.url.join(target)
        if (there.scheme, there.host, there.port) != (here.scheme, here.host, here.port):
            raise SourceError(
                f"{self.spec}: the next page is on another host ({there.host}); not followed"
            )
        return str(there)

    def _reference(self, item: object, number: int, tally: Tally) -> Reference | None:
        data = item.get("data") if isinstance(item, dict) else None
        if not isinstance(data, dict):
            tally.skip(UNREADABLE, f"{self.spec} item {number}", "not a Zotero item object")
            return None
        key = text(data.get("key")) or f"#{number}"
        where = f"{self.spec} item {key}"
        kind = data.get("itemType")
        if isinstance(kind, str) and kind in SKIPPED_TYPES:
            tally.skip(NOT_PAPERS, where, f"a standalone {kind}")
            return None
        meta = item.get("meta") if isinstance(item, dict) else None
        parsed = meta.get("parsedDate") if isinstance(meta, dict) else None
        return Reference(
            where=where,
            title=text(data.get("title")),
            abstract=text(data.get("abstractNote")),
            authors=_authors(data.get("creators")),
            doi=text(data.get("DOI")),
            url=text(data.get("url")),
            # A preprint's "archiveID" is "arXiv:2401.00001"; older items say so in "extra".
            arxiv=labelled_arxiv(text(data.get("archiveID")), text(data.get("extra"))),
            published=date_text(parsed) or date_text(data.get("date")),
            key=key,
        )


def _authors(creators: object) -> list[str]:
    """The authors' names (every creator's when none is an author)."""
    if not isinstance(creators, list):
        return []
    people = [c for c in creators if isinstance(c, dict)]
    authors = [c for c in people if c.get("creatorType") == "author"] or people
    names = (
        text(c.get("name")) or person(text(c.get("firstName")), text(c.get("lastName")))
        for c in authors
    )
    return [name for name in names if name]


def _count(value: str | None, previous: int | None) -> int | None:
    """The ``Total-Results`` header as a number (the last one given wins)."""
    digits = (value or "").strip()
    return int(digits) if digits.isascii() and digits.isdigit() else previous
