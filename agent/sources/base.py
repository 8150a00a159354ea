"""What every source shares: the date window, the options, the one interface, and its errors."""

from __future__ import annotations

import datetime as dt
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as defused

from agent.config import Settings
from agent.errors import PaperAgentError
from agent.llm.retry import Pacer, RetryPolicy, call_with_retry
from agent.models import MAX_ABSTRACT_CHARS, Paper

log = logging.getLogger(__name__)

ARXIV_ABS = "https://arxiv.org/abs/"
ARXIV_BEGAN = dt.date(1991, 8, 1)
MAX_SPAN = dt.timedelta(days=3660)  # arXiv's query window; anything longer is a typo
_SINCE = re.compile(r"^(\d+)([hd])$")


class SourceError(PaperAgentError):
    """A source could not be fetched (network, 5xx after retries, an error it reported)."""


class SourceIncomplete(SourceError):
    """A source gave part of what it has: its papers are run, and the run says what is
    missing (exit 1, not a quiet success)."""

    def __init__(self, message: str, papers: list[Paper]) -> None:
        super().__init__(message)
        self.papers = papers


@dataclass(frozen=True)
class Window:
    """The UTC span a fetch covers, both ends inclusive."""

    start: dt.datetime
    end: dt.datetime
    dated: bool = False  # given as --from/--to days, not as a span back from now

    @classmethod
    def parse(
        cls,
        since: str | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
        now: dt.datetime | None = None,
    ) -> Window:
        """``--since 1d|36h|7d`` or ``--from DATE [--to DATE]`` (default: the last day)."""
        now = now or dt.datetime.now(dt.UTC)
        if since is not None and (start is not None or end is not None):
            raise ValueError("use --since or --from/--to, not both")
        if since is not None and not since.strip():
            raise ValueError("--since '': use a number of hours or days, e.g. 36h or 7d")
        if start is not None:
            if start > now.date():
                raise ValueError(f"--from {start} is in the future")
            if start < ARXIV_BEGAN:
                raise ValueError(f"--from {start}: arXiv begins in {ARXIV_BEGAN:%Y}")
            last = end or now.date()
            if last < start:
                raise ValueError(f"--to {last} is before --from {start}")
            begin = dt.datetime.combine(start, dt.time(), dt.UTC)
            finish = dt.datetime.combine(last, dt.time(23, 59, 59), dt.UTC)
            return cls(begin, min(finish, now), dated=True)
        if end is not None:
            raise ValueError("--to needs --from")
        match = _SINCE.match((since or "1d").strip().lower())
        if match is None or int(match.group(1)) == 0:
            raise ValueError(f"--since {since!r}: use a number of hours or days, e.g. 36h or 7d")
        amount = int(match.group(1))
        hours = amount if match.group(2) == "h" else amount * 24
        # Compared as a number: timedelta itself overflows on "99999999999999d".
        if hours > MAX_SPAN.days * 24:
            raise ValueError(f"--since {since}: at most {MAX_SPAN.days} days")
        return cls(now - dt.timedelta(hours=hours), now)

    def describe(self) -> str:
        """How the window reads in a message: "since 2026-11-30 04:00 UTC" (or "from ... to")."""
        if self.dated:
            return f"from {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} (UTC)"
        return f"since {self.start:%Y-%m-%d %H:%M} UTC"

    def has_weekend(self) -> bool:
        """Whether a Saturday or Sunday (UTC) falls in the window."""
        day = self.start.date()
        while day <= self.end.date():
            if day.weekday() >= 5:
                return True
            day += dt.timedelta(days=1)
        return False


@dataclass(frozen=True)
class SourceOptions:
    """Everything a source may need besides its own spec; tests shrink ``arxiv_delay``."""

    window: Window
    max_papers: int = 500
    arxiv_api_url: str = Settings.arxiv_api_url
    arxiv_rss_url: str = Settings.arxiv_rss_url
    hf_api_url: str = Settings.hf_api_url
    arxiv_delay: float = Settings.arxiv_delay  # seconds between two arXiv requests
    announce: frozenset[str] = field(default_factory=lambda: frozenset({"new", "cross"}))


class Source(Protocol):
    """One place papers come from. ``fetch`` returns them in the source's order, each with an
    id (arXiv id without version where there is one), collapsed title and abstract, authors,
    url, categories (primary first), published date and the source's extras as metadata."""

    spec: str  # as the user wrote it, e.g. "arxiv:cs.LG,cs.CL"

    @classmethod
    def from_spec(cls, rest: str, options: SourceOptions) -> Source:
        """The source for the part of the spec after its kind (``cs.LG,cs.CL``), checked
        before any request: a bad spec is an ``InputError``."""
        ...

    async def fetch(self, http: httpx.AsyncClient) -> list[Paper]:
        """Every paper the source has for the options it was built with."""
        ...

    def nothing_new(self) -> str:
        """The one line a run prints when this source had no papers (not an error)."""
        ...


# Far beyond any feed or API page: a bigger body is not one (counted as it is decompressed, so
# a gzip bomb stops here instead of filling memory).
MAX_BODY_BYTES = 50_000_000


def parse_xml(content: bytes) -> ET.Element | None:
    """A feed's root element, or None when it is not one. Feeds never carry a DTD, so
    defusedxml refuses a body with one wherever it stands (after a comment of any length too):
    no entity is ever expanded, whatever expat's version."""
    if len(content) > MAX_BODY_BYTES:
        return None
    try:
        return defused.fromstring(content, forbid_dtd=True)
    except DefusedXmlException:
        log.warning("a feed declared a DTD or an entity; refused unparsed")
        return None
    except (ET.ParseError, LookupError, ValueError):  # bad XML, or an encoding expat lacks
        return None


async def fetch_url(
    http: httpx.AsyncClient,
    url: str,
    spec: str,
    policy: RetryPolicy,
    *,
    params: dict[str, str] | None = None,
    pacer: Pacer | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One GET for source ``spec`` under the one retry policy (paced per attempt when a pacer
    is given; ``headers`` sent with it). A failure after retries is a ``SourceError`` naming
    the source and the host, never the URL (a mirror's may hold a key); a status error keeps
    its response on ``.response`` for a source that reads the body."""

    host = host_of(url)
    # Merged into the URL's own query: a mirror's ?key=... is kept (params= would replace it).
    target = httpx.URL(url).copy_merge_params(params or {})

    async def attempt() -> httpx.Response:
        if pacer is not None:
            await pacer.wait()  # per attempt: a retry keeps its distance too
        async with http.stream("GET", target, headers=headers) as streamed:
            body = bytearray()
            async for chunk in streamed.aiter_bytes():  # decompressed as it arrives
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise SourceError(
                        f"{spec}: {host} sent more than {MAX_BODY_BYTES // 1_000_000} MB; "
                        "that is no feed page"
                    )
        # The body as read: already decompressed, so without its encoding headers.
        kept = [
            (k, v)
            for k, v in streamed.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        response = httpx.Response(
            streamed.status_code, headers=kept, content=bytes(body), request=streamed.request
        )
        response.raise_for_status()  # the error carries .response: Retry-After is read
        return response

    retries = 0

    def waiting(exc: BaseException, wait: float) -> None:
        nonlocal retries
        retries += 1
        if retries == 1:  # once: a cron log should say why a fetch is slow, not every wait
            log.warning("%s: no answer from %s yet (%s); retrying", spec, host, type(exc).__name__)

    try:
        return await call_with_retry(attempt, policy, waiting)
    except httpx.HTTPStatusError as exc:
        error = SourceError(
            f"{spec}: {host} answered HTTP {exc.response.status_code} "
            f"{exc.response.reason_phrase}".rstrip()
        )
        error.response = exc.response  # type: ignore[attr-defined]
        raise error from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise SourceError(f"{spec}: cannot reach {host} ({reason})") from None


def host_of(url: str) -> str:
    """The host of ``url``, for messages (the rest may hold a key)."""
    try:
        return httpx.URL(url).host or url
    except httpx.InvalidURL:
        return "the server"


def utc_iso(when: dt.datetime, raw: str) -> str:
    """``when`` as ``2026-02-26T17:08:18Z``; ``raw`` as given when it cannot be (year 9999
    in a zone east of UTC overflows)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError):
        return raw


# Of an untrusted field only this much is read: a 40 MB title is never split into millions of
# words on the way to its bound (the Paper model then clips each field to its own).
READ_CHARS = 2 * MAX_ABSTRACT_CHARS


def collapse(text: str | None) -> str:
    """``text`` with every run of whitespace (hard wraps included) turned into one space; only
    its first ``READ_CHARS`` characters are read."""
    return " ".join((text or "")[:READ_CHARS].split())


def abs_url(arxiv_id: str) -> str:
    """The canonical https abstract page of an arXiv id."""
    return ARXIV_ABS + arxiv_id
