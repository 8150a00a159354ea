"""One entry of a reference library, as any format gives it, and what reading a library counts.

Every reader (BibTeX, RIS, CSL JSON, Zotero) fills a ``Reference`` with plain text; one function
makes a ``Paper`` of it, so each library format names papers, links and arXiv ids the same way.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from agent.models import Paper
from agent.sources.base import READ_CHARS, abs_url, collapse
from agent.sources.files import arxiv_id, canonical_arxiv_id, paper_id

log = logging.getLogger(__name__)

# Why an entry read is not used, as the run's line counts them.
WITHOUT_TITLE = "without title"
UNREADABLE = "unreadable"
REPEATED = "repeated"
NOT_PAPERS = "notes or attachments"

# arXiv's DOIs: 10.48550/arXiv.2401.00001 names arXiv paper 2401.00001.
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(?P<id>.+)$", re.IGNORECASE)
# "arXiv:2401.00001", "arXiv preprint arXiv:2401.00001" (Google Scholar's journal field),
# "arXiv: 2401.00001 [cs]" (Zotero's extra and notes): an id named as arXiv's.
_LABELLED = re.compile(r"\barxiv\s*(?:preprint\s+arxiv)?\s*:\s*(?P<id>[\w./-]+)", re.IGNORECASE)
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_DATE = re.compile(r"^\s*(?P<year>\d{4})(?:[-/](?P<month>\d{1,2}))?(?:[-/](?P<day>\d{1,2}))?")
MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        1,
    )
    for name in names
}


@dataclass
class Reference:
    """What a library says about one paper, as plain text; ``where`` names it in messages."""

    where: str
    title: str = ""
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    doi: str = ""
    url: str = ""
    arxiv: str = ""  # an arXiv id the entry names as such (eprint, archive id, "arXiv:...")
    published: str = ""
    key: str = ""  # the library's own key (citation key, item key), kept as metadata

    def paper(self, label: str) -> Paper:
        """The Paper of this entry, its source ``label``: id the arXiv id (from the entry's
        eprint, its URL or an arXiv DOI), else the DOI, else a hash of the title."""
        doi = _DOI_PREFIX.sub("", self.doi.strip())
        url = (
            self.url.strip() if self.url.strip().lower().startswith(("http://", "https://")) else ""
        )
        found = (
            canonical_arxiv_id(self.arxiv) or (arxiv_id(url) if url else None) or _arxiv_doi(doi)
        )
        pid = found or doi.lower() or paper_id(None, url or None, self.title)
        if not url:
            url = abs_url(found) if found else (f"https://doi.org/{doi}" if doi else "")
        metadata = {"doi": doi, "key": self.key.strip()}
        return Paper(
            id=pid,
            title=self.title,
            abstract=self.abstract,
            authors=[a for a in self.authors if a],
            url=url or None,
            published=self.published or None,
            source=label,
            metadata={k: v for k, v in metadata.items() if v},
        )


def _arxiv_doi(doi: str) -> str | None:
    match = _ARXIV_DOI.match(doi)
    return canonical_arxiv_id(match.group("id")) if match else None


def labelled_arxiv(*texts: str) -> str:
    """The first arXiv id one of ``texts`` names as arXiv's ("arXiv:2401.00001"), or ""."""
    for text in texts:
        for match in _LABELLED.finditer(text[:READ_CHARS]):
            found = canonical_arxiv_id(match.group("id").rstrip("."))
            if found:
                return found
    return ""


def text(value: object) -> str:
    """A field's text with whitespace collapsed; "" for anything that is not a string or a
    number (a hostile file may put a list or a table where a title goes)."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return str(value)
    return collapse(value) if isinstance(value, str) else ""


def iso_date(year: object, month: object = None, day: object = None) -> str:
    """``2020``, ``2020-03`` or ``2020-03-15`` from parts as libraries give them (a month may be
    ``3``, ``"mar"`` or ``"March"``); "" without a four-digit year."""
    found = re.fullmatch(r"\d{4}", text(year))
    if found is None:
        return ""
    out = found.group()
    number = _month(month)
    if number is None:
        return out
    out += f"-{number:02d}"
    day_text = text(day)
    if day_text.isdigit() and 1 <= int(day_text) <= 31:
        out += f"-{int(day_text):02d}"
    return out


def _month(value: object) -> int | None:
    word = text(value).lower().rstrip(".")
    if word.isdigit():
        return int(word) if 1 <= int(word) <= 12 else None
    return MONTHS.get(word)


def date_text(value: object) -> str:
    """A date written out ("2020-03-15", "2020/03/15/", "2020///") as ``iso_date`` gives it."""
    match = _DATE.match(text(value))
    if match is None:
        return ""
    return iso_date(match.group("year"), match.group("month"), match.group("day"))


def person(first: str, last: str) -> str:
    """ "First Last" from its parts, either of them possibly empty."""
    return " ".join(part for part in (first.strip(), last.strip()) if part)


@dataclass
class Tally:
    """What reading one library found: entries read, and why each unused one was not used."""

    read: int = 0
    unused: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str, where: str, why: str) -> None:
        """Count an entry that is not used (``reason``); ``where: why`` shows with -v."""
        self.unused[reason] += 1
        log.info("%s: %s; not used", where, why)

    @property
    def usable(self) -> int:
        """Entries read and used."""
        return self.read - sum(self.unused.values())

    def why(self) -> str:
        """ "5 without title, 2 unreadable": the unused entries by reason, most first."""
        return ", ".join(f"{count} {reason}" for reason, count in self.unused.most_common())

    def summary(self, label: str) -> str:
        """The run's one line: "liked: read 57 entries from library.bib, 52 usable (5 without
        title)"."""
        entries = "entry" if self.read == 1 else "entries"
        line = f"liked: read {self.read} {entries} from {label}, {self.usable} usable"
        return f"{line} ({self.why()})" if self.unused else line
