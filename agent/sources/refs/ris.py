"""RIS libraries (``.ris``: Zotero, Mendeley, EndNote, Web of Science), read with rispy.

The file is cut into records here, ``TY`` to ``ER``, and rispy reads each one on its own: a
record that never ends (cut short, or run into the next ``TY``) costs only itself, where
rispy on the whole file would merge it into its neighbour or drop it silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import rispy

from agent.sources.refs.entry import (
    UNREADABLE,
    Reference,
    Tally,
    date_text,
    labelled_arxiv,
    person,
    text,
)

_TAG = re.compile(r"^(?P<tag>[A-Z][A-Z0-9])  -(?: |$)")


def read_ris(content: str, where: str, tally: Tally) -> list[Reference]:
    """Every complete record of a RIS file in order; a damaged one is counted in ``tally``."""
    references: list[Reference] = []
    for line, lines, ended in _records(content):
        at = f"{where} line {line}"
        tally.read += 1
        if not ended:
            tally.skip(UNREADABLE, at, "a RIS record without its closing ER line")
            continue
        try:
            (record,) = rispy.loads("\n".join(lines))
        # What rispy raises on a record it cannot read (none known for one TY..ER record).
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            tally.skip(UNREADABLE, at, f"not a readable RIS record ({type(exc).__name__})")
            continue
        references.append(_reference(record, at))
    return references


def _records(content: str) -> Iterator[tuple[int, list[str], bool]]:
    """Each record's first line number, its lines and whether its ER line ended it."""
    lines: list[str] = []
    first = 0
    for number, line in enumerate(content.splitlines(), 1):
        match = _TAG.match(line)
        tag = match.group("tag") if match else None
        if tag == "TY":
            if lines:
                yield first, lines, False  # a new record began before this one ended
            lines, first = [line], number
        elif lines:
            lines.append(line)
            if tag == "ER":
                yield first, lines, True
                lines = []
    if lines:
        yield first, lines, False


def _reference(record: dict[str, object], where: str) -> Reference:
    def first(*keys: str) -> str:
        for key in keys:
            value = record.get(key)
            if isinstance(value, list):
                value = next((v for v in value if isinstance(v, str) and v.strip()), "")
            if found := text(value):
                return found
        return ""

    def many(*keys: str) -> list[str]:
        for key in keys:
            value = record.get(key)
            if isinstance(value, list) and value:
                return [text(v) for v in value if text(v)]
        return []

    notes = [*many("notes"), first("note"), first("accession_number")]
    urls = many("urls")
    return Reference(
        where=where,
        title=first("title", "primary_title"),
        abstract=first("abstract", "notes_abstract"),
        authors=[_name(a) for a in many("authors", "first_authors")],
        doi=first("doi"),
        url=next((u for u in urls if u.lower().startswith(("http://", "https://"))), ""),
        # Zotero writes a preprint's archive id ("arXiv:2401.00001") among its notes.
        arxiv=labelled_arxiv(*notes, first("journal_name"), first("secondary_title")),
        published=date_text(first("date")) or date_text(first("year", "publication_year")),
        key=first("id"),
    )


def _name(value: str) -> str:
    """RIS names are "Last, First" (sometimes "Last, First, Suffix"): "First Last"."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 2:
        return person(parts[1], parts[0])
    if len(parts) == 3:
        return person(parts[1], f"{parts[0]} {parts[2]}")
    return value
