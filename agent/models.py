"""The data that crosses module boundaries: papers in, results out."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class Paper(Record):
    """One input paper, as read from any source."""

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
    # The input's categories, which the prompt shows: how ``eval`` knows whether the model was
    # shown gold labels. Absent from the line when the input had none.
    categories: list[str] = Field(default_factory=list)
    relevance: Score | None = None  # 0-10 when interests are configured, else absent
    why: str | None = None  # one short line: the criterion or liked paper it matches
    relevance_by: dict[str, Score] = Field(default_factory=dict)  # per named criterion

    def to_line(self) -> str:
        """Its line in results.jsonl: the interest fields only when interests were set, the
        categories only when the input had some."""
        unset = self.relevance is None and not self.why and not self.relevance_by
        exclude = set(INTEREST_FIELDS) if unset else set()
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
        "categories": paper.categories,
    }


class ResultRecord(PaperResult):
    """A results line read back: fields a newer version added (relevance, why) are kept."""

    model_config = ConfigDict(extra="allow")
