"""The data that crosses module boundaries: papers in, results out."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)

# A lone UTF-16 surrogate ("\ud800" in JSON) is a str in Python but no UTF-8 can hold it: one
# in a title would stop the results file being written at all.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def plain_text(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (in lists and dicts too) as U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, list):
        return [plain_text(v) for v in value]
    if isinstance(value, dict):
        return {plain_text(k): plain_text(v) for k, v in value.items()}
    return value


# A relevance score: 0 to 10, never NaN or infinite (a results file may be edited by hand).
Score = Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)]


class Record(BaseModel):
    """A model whose text can always be written as UTF-8, whatever the source sent."""

    @model_validator(mode="before")
    @classmethod
    def _writable(cls, data: Any) -> Any:
        return plain_text(data) if isinstance(data, dict) else data


# Bounds on a paper's text, applied on the way in whatever the source (README, "Reliability"):
# far above any real paper, far below what would make one request, one result line or one run's
# memory unmanageable. A 40 MB title must cost its paper a cut, never the run.
MAX_ID_CHARS = 200  # a longer id keeps its start and gains a hash of the whole (still unique)
MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 100_000  # the run then cuts to max_abstract_chars (12,000 by default)
MAX_AUTHORS = 10_000  # the longest real author lists (collider physics) hold about 5,000
MAX_CATEGORIES = 100
MAX_METADATA = 200  # metadata entries
MAX_NAME_CHARS = 200  # one author, one category, one metadata key
MAX_VALUE_CHARS = 10_000  # one metadata value; the published date and the source label too
MAX_URL_CHARS = 2_000  # a longer URL is dropped, not cut: a cut link leads nowhere
ELLIPSIS = "\u2026"


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else cut to fit, at a space when one is
    near the end, marked with an ellipsis (so a second clip changes nothing)."""
    if len(text) <= limit:
        return text
    space = text.rfind(" ", limit * 3 // 4, limit)
    return text[: space if space > 0 else limit - 1].rstrip() + ELLIPSIS


class Paper(Record):
    """One input paper, as read from any source; every text field within its bound."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    abstract: str
    authors: list[str] = Field(default_factory=list)
    url: str | None = None
    published: str | None = None
    categories: list[str] = Field(default_factory=list)
    source: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self._fits():
            return self  # nearly every paper: checked in C, nothing rebuilt
        cut: list[str] = []

        def bound(name: str, text: str, limit: int) -> str:
            if len(text) > limit:
                cut.append(f"{name} to {limit:,} characters")
            return clip(text, limit)

        def first(name: str, items: list[Any], limit: int) -> list[Any]:
            if len(items) > limit:
                cut.append(f"{name} to the first {limit:,}")
            return items[:limit]

        if len(self.id) > MAX_ID_CHARS:
            digest = hashlib.sha256(self.id.encode("utf-8", "replace")).hexdigest()[:12]
            self.id = f"{self.id[: MAX_ID_CHARS - 13]}-{digest}"
            cut.append(f"id to {MAX_ID_CHARS} characters")
        self.title = bound("title", self.title, MAX_TITLE_CHARS)
        self.abstract = bound("abstract", self.abstract, MAX_ABSTRACT_CHARS)
        authors = first("authors", self.authors, MAX_AUTHORS)
        self.authors = [bound("an author", name, MAX_NAME_CHARS) for name in authors]
        categories = first("categories", self.categories, MAX_CATEGORIES)
        self.categories = [bound("a category", c, MAX_NAME_CHARS) for c in categories]
        if self.url is not None and len(self.url) > MAX_URL_CHARS:
            self.url = None
            cut.append(f"a url over {MAX_URL_CHARS:,} characters dropped")
        if self.published is not None:
            self.published = bound("published", self.published, MAX_VALUE_CHARS)
        self.source = bound("source", self.source, MAX_VALUE_CHARS)
        entries = first("metadata", list(self.metadata.items()), MAX_METADATA)
        self.metadata = {
            bound("a metadata key", k, MAX_NAME_CHARS): bound(
                f"metadata {k[:40]!r}", v, MAX_VALUE_CHARS
            )
            for k, v in entries
        }
        if cut:
            # One line per paper; info, like the run's abstract cut (-v shows it).
            log.info("paper %s: cut on the way in: %s", self.id, ", ".join(dict.fromkeys(cut)))
        return self

    def _fits(self) -> bool:
        """Whether every field is already within its bound."""
        return (
            len(self.id) <= MAX_ID_CHARS
            and len(self.title) <= MAX_TITLE_CHARS
            and len(self.abstract) <= MAX_ABSTRACT_CHARS
            and len(self.authors) <= MAX_AUTHORS
            and max(map(len, self.authors), default=0) <= MAX_NAME_CHARS
            and len(self.categories) <= MAX_CATEGORIES
            and max(map(len, self.categories), default=0) <= MAX_NAME_CHARS
            and len(self.url or "") <= MAX_URL_CHARS
            and len(self.published or "") <= MAX_VALUE_CHARS
            and len(self.source) <= MAX_VALUE_CHARS
            and len(self.metadata) <= MAX_METADATA
            and max(map(len, self.metadata), default=0) <= MAX_NAME_CHARS
            and max(map(len, self.metadata.values()), default=0) <= MAX_VALUE_CHARS
        )


class Usage(BaseModel):
    """Token and request counts for one paper (zero for cache hits and the local backend)."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0
    retries: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{k: getattr(self, k) + getattr(other, k) for k in Usage.model_fields})

    def split(self, parts: int) -> list[Usage]:
        """This usage shared by ``parts`` papers (one request for several): whole numbers that
        add up to it, so a run's totals stay exact; remainders go to the first papers."""
        shares: list[dict[str, int]] = [{} for _ in range(parts)]
        for name in Usage.model_fields:
            each, left = divmod(getattr(self, name), parts)
            for i, share in enumerate(shares):
                share[name] = each + (i < left)
        return [Usage(**share) for share in shares]


class ErrorInfo(Record):
    """Why a paper has no annotation."""

    model_config = ConfigDict(extra="forbid")

    type: str
    message: str


class Annotation(Record):
    """What a backend returns for one paper."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str]
    summary: str
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
    relevance: Score | None = None  # 0-10 when interests are configured
    why: str | None = None  # the criterion or liked paper it matches; "" when none
    relevance_by: dict[str, Score] = Field(default_factory=dict)  # per named criterion


INTEREST_FIELDS = frozenset({"relevance", "why", "relevance_by"})


class PaperResult(Record):
    """One line of results.jsonl (DESIGN: never rename these fields, only add)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    url: str | None = None
    authors: list[str] = Field(default_factory=list)
    source: str = ""
    tags: list[str] = Field(default_factory=list)
    summary: str | None = None
    backend: str
    model: str | None = None
    cached: bool = False
    usage: Usage = Field(default_factory=Usage)
    error: ErrorInfo | None = None
    metadata: dict[str, str] = Field(default_factory=dict)  # the input's other fields, kept
    published: str | None = None  # the paper's date as its source gave it; absent when none
    # The input's categories, which the prompt shows: how ``eval`` knows whether the model was
    # shown gold labels. Absent from the line when the input had none.
    categories: list[str] = Field(default_factory=list)
    relevance: Score | None = None  # 0-10 when interests are configured, else absent
    why: str | None = None  # one short line: the criterion or liked paper it matches
    relevance_by: dict[str, Score] = Field(default_factory=dict)  # per named criterion

    def to_line(self) -> str:
        """Its line in results.jsonl: the interest fields only when interests were set, the
        published date only when the source gave one, categories only when the input had some."""
        unset = self.relevance is None and not self.why and not self.relevance_by
        exclude = set(INTEREST_FIELDS) if unset else set()
        if self.published is None:
            exclude.add("published")
        if not self.categories:
            exclude.add("categories")
        return self.model_dump_json(exclude=exclude or None)

    @classmethod
    def ok(cls, paper: Paper, ann: Annotation, backend: str, model: str | None) -> PaperResult:
        """A successful result for ``paper``."""
        return cls(
            **_carried(paper),
            tags=ann.tags,
            summary=ann.summary,
            backend=backend,
            model=model,
            cached=ann.cached,
            usage=ann.usage,
            relevance=ann.relevance,
            why=ann.why,
            relevance_by=ann.relevance_by,
        )

    @classmethod
    def failed(
        cls,
        paper: Paper,
        kind: str,
        message: str,
        backend: str,
        model: str | None,
        usage: Usage | None = None,
    ) -> PaperResult:
        """An error record for ``paper``."""
        return cls(
            **_carried(paper),
            backend=backend,
            model=model,
            usage=usage or Usage(),
            error=ErrorInfo(type=kind, message=message),
        )


def _carried(paper: Paper) -> dict[str, object]:
    """The fields every result carries over from its paper, ok or failed."""
    return {
        "id": paper.id,
        "title": paper.title,
        "url": paper.url,
        "authors": paper.authors,
        "source": paper.source,
        "metadata": paper.metadata,
        "published": paper.published,  # the digest is dated by its papers
        "categories": paper.categories,
    }


class ResultRecord(PaperResult):
    """A results line read back: fields a newer version added (relevance, why) are kept."""

    model_config = ConfigDict(extra="allow")
