"""BibTeX and BibLaTeX libraries (``.bib``), read with bibtexparser 2.

bibtexparser sets a damaged entry aside as a failed block and reads on, so one broken entry
costs only itself; its ``@string`` macros are resolved and its braces and quotes removed. The
LaTeX left in a field is read by ``latex_to_text``; author lists are split here, as BibTeX
does, because bibtexparser's name middlewares turn an entry with one odd name ("Smith,") into
a failed block: a paper must not be lost to its author list.
"""

from __future__ import annotations

import logging
import re

import bibtexparser
from bibtexparser.model import DuplicateBlockKeyBlock, Entry, ParsingFailedBlock

from agent.sources.refs.entry import (
    REPEATED,
    UNREADABLE,
    Reference,
    Tally,
    date_text,
    iso_date,
    labelled_arxiv,
    person,
    text,
)
from agent.sources.refs.latex import latex_to_text

# Its own log lines say "Parsing of `@misc` block (line 10) aborted ..." for each damaged
# entry: the run counts those in its one line instead (and -v names each one).
logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)

_AND = r"(?i:\s+and\s+)"


def read_bibtex(content: str, where: str, tally: Tally) -> list[Reference]:
    """Every entry of a BibTeX file in order; damaged ones and repeated keys are counted in
    ``tally`` and left out (BibTeX itself uses the first of two entries with one key)."""
    library = bibtexparser.parse_string(content)
    references: list[Reference] = []
    for block in library.blocks:
        line = f"{where} line {(block.start_line or 0) + 1}"
        if isinstance(block, DuplicateBlockKeyBlock):
            tally.read += 1
            tally.skip(REPEATED, line, f"entry key {block.key!r} was used by an earlier entry")
        elif isinstance(block, ParsingFailedBlock):
            tally.read += 1
            reason = getattr(block.error, "abort_reason", None) or str(block.error)
            error = " ".join(reason.split())[:200] or type(block.error).__name__
            tally.skip(UNREADABLE, line, f"not a readable BibTeX entry ({error})")
        elif isinstance(block, Entry):
            tally.read += 1
            references.append(_reference(block, line))
    return references


def _reference(entry: Entry, where: str) -> Reference:
    fields: dict[str, str] = {}
    for item in entry.fields:
        fields.setdefault(item.key.lower(), item.value if isinstance(item.value, str) else "")

    def plain(name: str) -> str:
        return text(latex_to_text(text(fields.get(name))))

    prefix = fields.get("archiveprefix", fields.get("eprinttype", "")).strip().lower()
    eprint = fields.get("eprint", "") if prefix in ("", "arxiv") else ""
    return Reference(
        where=f"{where} ({entry.key})",
        title=plain("title"),
        abstract=plain("abstract"),
        authors=split_names(fields.get("author") or fields.get("editor") or ""),
        doi=text(fields.get("doi")),
        url=text(fields.get("url")),
        arxiv=text(eprint)
        or labelled_arxiv(*(fields.get(k, "") for k in ("journal", "note", "howpublished"))),
        published=date_text(fields.get("date"))
        or iso_date(fields.get("year"), fields.get("month"), fields.get("day")),
        key=entry.key,
    )


def split_names(value: str) -> list[str]:
    """BibTeX's "Last, First and First Last and {Org and Co} and others" as plain names in
    "First Last" order; "others" (BibTeX's "et al.") is no one."""
    names = []
    for name in _split_top(text(value), _AND):
        parts = [p.strip() for p in _split_top(name, ",")]
        if len(parts) == 2:  # Last, First
            name = person(parts[1], parts[0])
        elif len(parts) == 3:  # Last, Jr, First
            name = person(parts[2], f"{parts[0]} {parts[1]}")
        else:  # First Last, or too many commas to tell: the parts as written
            name = " ".join(parts)
        plain = text(latex_to_text(name))
        if plain and plain.lower() != "others":
            names.append(plain)
    return names


def _split_top(value: str, separator: str) -> list[str]:
    """``value`` split at ``separator`` (a pattern) where it stands outside braces ("{Barnes
    and Noble}" is one name)."""
    parts: list[str] = []
    depth = start = 0
    for match in re.finditer(rf"[{{}}]|{separator}", value):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth = max(0, depth - 1)
        elif depth == 0:
            parts.append(value[start : match.start()])
            start = match.end()
    parts.append(value[start:])
    return [p for p in parts if p.strip()]
