"""CSL JSON libraries: the array of items Zotero ("Export Library... > CSL JSON"), Mendeley
and Better BibTeX write, each ``{"id", "type", "title", "author": [...], "issued": {...}}``."""

from __future__ import annotations

from agent.sources.refs.entry import (
    UNREADABLE,
    Reference,
    Tally,
    date_text,
    iso_date,
    labelled_arxiv,
    person,
    text,
)

# Keys that only CSL items carry: the project's own paper files use "authors" and "published".
CSL_KEYS = frozenset({"author", "issued", "container-title", "citation-key", "DOI", "URL"})
PAPER_KEYS = frozenset({"authors", "summary", "published", "paper"})


def is_csl_item(item: object) -> bool:
    """Whether ``item`` is a CSL item (not a paper object of the project's JSON array): a
    ``type`` and a key only CSL uses, and none only paper files use."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("type"), str)
        and bool(CSL_KEYS & item.keys())
        and not PAPER_KEYS & item.keys()
    )


def read_csl(items: list[object], where: str, tally: Tally) -> list[Reference]:
    """Every item of a CSL JSON array in order; one that is no object is counted as unreadable."""
    references: list[Reference] = []
    for number, item in enumerate(items, 1):
        at = f"{where} item {number}"
        tally.read += 1
        if not isinstance(item, dict):
            tally.skip(UNREADABLE, at, f"a {type(item).__name__}, not a CSL item object")
            continue
        references.append(_reference(item, at))
    return references


def _reference(item: dict[str, object], where: str) -> Reference:
    names = item.get("author") or item.get("editor")
    return Reference(
        where=where,
        title=text(item.get("title")),
        abstract=text(item.get("abstract")),
        authors=[_name(n) for n in names] if isinstance(names, list) else [],
        doi=text(item.get("DOI") or item.get("doi")),
        url=text(item.get("URL") or item.get("url")),
        # Zotero puts a preprint's archive id in "number" ("arXiv:2401.00001") and "note".
        arxiv=labelled_arxiv(
            *(text(item.get(k)) for k in ("number", "note", "container-title", "archive_location"))
        ),
        published=_issued(item.get("issued")),
        key=text(item.get("citation-key") or item.get("id")),
    )


def _name(name: object) -> str:
    """A CSL name: ``{"given", "family"}`` (with particles and suffix) or ``{"literal"}``."""
    if not isinstance(name, dict):
        return ""
    if literal := text(name.get("literal")):
        return literal
    given = " ".join(text(name.get(k)) for k in ("given", "dropping-particle"))
    family = " ".join(text(name.get(k)) for k in ("non-dropping-particle", "family", "suffix"))
    return text(person(given, family))


def _issued(value: object) -> str:
    """``{"date-parts": [[2020, 3, 15]]}`` (numbers or strings), else its ``raw`` text."""
    if not isinstance(value, dict):
        return ""
    parts = value.get("date-parts")
    if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
        first = [*parts[0], None, None]
        return iso_date(first[0], first[1], first[2])
    return date_text(value.get("raw") or value.get("literal"))
