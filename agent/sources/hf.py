"""Hugging Face Daily Papers (``hf:2026-03-06``, ``hf:today``, ``hf:yesterday``) via its API."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import httpx

from agent.errors import InputError
from agent.llm.retry import RetryPolicy
from agent.models import Paper
from agent.sources.base import (
    SourceError,
    SourceOptions,
    abs_url,
    collapse,
    fetch_url,
    host_of,
    utc_iso,
)
from agent.sources.files import canonical_arxiv_id, is_arxiv_id

log = logging.getLogger(__name__)

# The API pages with ``limit`` (at most 100) and ``p`` (from 0); a day holds tens of papers,
# so one page is the rule and the bound only stops a server that ignores ``p``.
PAGE_SIZE = 100
MAX_PAGES = 20
HF_PAPERS = "https://huggingface.co/papers/"
_VERSION = re.compile(r"v\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def today() -> dt.date:
    """Today in UTC (Hugging Face's days are UTC days); tests patch this."""
    return dt.datetime.now(dt.UTC).date()


class HuggingFaceSource:
    """The papers Hugging Face lists for one UTC day, with upvotes and links as metadata."""

    def __init__(self, day: dt.date, options: SourceOptions, spec: str) -> None:
        self.day = day
        self.options = options
        self.spec = spec

    @classmethod
    def from_spec(cls, rest: str, options: SourceOptions) -> HuggingFaceSource:
        """``YYYY-MM-DD``, ``today`` or ``yesterday`` (UTC); no date in the future."""
        word = rest.strip().lower()
        now = today()
        if word == "today":
            day = now
        elif word == "yesterday":
            day = now - dt.timedelta(days=1)
        else:
            try:
                if not _DATE.match(word):
                    raise ValueError(word)
                day = dt.date.fromisoformat(word)
            except ValueError:
                raise InputError(
                    f"hf:{rest}: use a date (hf:2026-03-06), hf:today or hf:yesterday"
                ) from None
            if day > now:
                raise InputError(f"hf:{rest} is in the future (today is {now} UTC)")
        return cls(day, options, f"hf:{rest.strip()}")

    async def fetch(self, http: httpx.AsyncClient) -> list[Paper]:
        """Every paper listed on the day, page after page, each id once, in the API's order."""
        papers: list[Paper] = []
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            items = await self._page(http, page)
            added = 0
            for number, item in enumerate(items, page * PAGE_SIZE + 1):
                paper = self._paper(item, number)
                if paper is not None and paper.id not in seen:
                    seen.add(paper.id)
                    papers.append(paper)
                    added += 1
            # A short page is the last; a page of repeats means ``p`` was ignored.
            if len(items) < PAGE_SIZE or added == 0 or len(papers) >= self.options.max_papers:
                break
        else:
            log.warning("%s: stopped after %d pages", self.spec, MAX_PAGES)
        return papers[: self.options.max_papers]

    def nothing_new(self) -> str:
        """An empty day is normal: weekends, or a day whose list is not up yet."""
        why = (
            "few papers are listed at weekends"
            if self.day.weekday() >= 5
            else "the day's list may not be up yet"
        )
        return f"no papers on Hugging Face Daily Papers for {self.day} ({self.spec}; {why})"

    async def _page(self, http: httpx.AsyncClient, page: int) -> list[Any]:
        url = self.options.hf_api_url
        params = {"date": self.day.isoformat(), "limit": str(PAGE_SIZE), "p": str(page)}

        response = await fetch_url(http, url, self.spec, RetryPolicy(), params=params)
        try:
            items = response.json()
        except (ValueError, RecursionError):
            raise SourceError(f"{self.spec}: {host_of(url)} did not return JSON") from None
        if not isinstance(items, list):
            raise SourceError(f"{self.spec}: {host_of(url)} did not return a list of papers")
        return items

    def _paper(self, item: object, number: int) -> Paper | None:
        inner = item.get("paper") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(inner, dict):
            log.warning("%s: item %d is not a paper; skipped", self.spec, number)
            return None
        given = str(inner.get("id") or "").strip()
        pid = canonical_arxiv_id(given) or _VERSION.sub("", given)
        title = collapse(_text(inner.get("title")) or _text(item.get("title")))
        if not pid or not title:
            log.warning("%s: item %d has no id or title; skipped", self.spec, number)
            return None
        return Paper(
            id=pid,
            title=title,
            abstract=collapse(_text(inner.get("summary")) or _text(item.get("summary"))),
            authors=_names(inner.get("authors")),
            url=abs_url(pid) if is_arxiv_id(pid) else HF_PAPERS + pid,
            published=_published(inner.get("publishedAt") or item.get("publishedAt")),
            source=self.spec,
            metadata=_metadata(inner, item),
        )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _names(authors: object) -> list[str]:
    """Every author's name (a ``hidden`` author is one without a linked account, still named)."""
    if not isinstance(authors, list):
        return []
    names = (
        collapse(a["name"]) if isinstance(a, dict) and isinstance(a.get("name"), str) else ""
        for a in authors
    )
    return [n for n in names if n]


def _metadata(inner: dict[str, Any], item: dict[str, Any]) -> dict[str, str]:
    keywords = inner.get("ai_keywords")
    fields = {
        "upvotes": inner.get("upvotes"),
        "github": inner.get("githubRepo"),
        "project_page": inner.get("projectPage"),
        "keywords": ", ".join(collapse(str(k)) for k in keywords)
        if isinstance(keywords, list)
        else None,
        "github_stars": inner.get("githubStars"),
        "num_comments": item.get("numComments"),
    }
    # bool is an int: a stray true would read as "True" upvotes, so only real values pass.
    return {
        key: collapse(str(value))
        for key, value in fields.items()
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip()
    }


def _published(value: object) -> str | None:
    """An ISO timestamp in UTC, seconds precision (``2026-02-26T17:08:18Z``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return value.strip()
    return utc_iso(when, value.strip())
