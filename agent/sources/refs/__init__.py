"""Reference libraries as liked papers: ``--liked`` takes a BibTeX, RIS or CSL JSON library, a
Zotero library on the web (``zotero:users/ID``), or a file of papers in any input format.

The format is told by the file's suffix (``.bib``, ``.ris``), else by its content: a CSL JSON
array is told from the project's own JSON array of papers by its first item. Each entry
becomes a ``Paper`` (``entry.Reference.paper``); an entry without a title, a damaged one or a
repeat is left out and counted, and the run says so in one line: "liked: read 57 entries from
library.bib, 52 usable (5 without title)". An entry without an abstract is used by its title.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import Settings
from agent.errors import InputError
from agent.llm.redact import register
from agent.models import Paper
from agent.sources.files import read_papers
from agent.sources.refs.entry import REPEATED, UNREADABLE, WITHOUT_TITLE, Reference, Tally
from agent.sources.refs.zotero import KEY_ENV, ZoteroLibrary

__all__ = ["LikedOptions", "library_kind", "read_liked"]

log = logging.getLogger(__name__)

ZOTERO = "zotero:"
# A library file is read whole: 100 MB is some 50,000 entries with their abstracts, far beyond
# a reading list; past it the file is refused rather than filling memory.
MAX_LIBRARY_BYTES = 100_000_000
HEAD_BYTES = 1 << 20  # what the format is told by: a CSL array's first item fits in it
SUFFIXES = {".bib": "bibtex", ".bibtex": "bibtex", ".biblatex": "bibtex", ".ris": "ris"}
PAPER_SUFFIXES = frozenset({".jsonl", ".ndjson", ".csv"})
_BIBTEX_ENTRY = re.compile(r"^[ \t]*@[A-Za-z]+[ \t]*[{(]", re.MULTILINE)
_RIS_START = re.compile(r"^TY  -")


@dataclass(frozen=True)
class LikedOptions:
    """What reading liked papers may need besides their spec: the Zotero API and its key,
    the HTTP timeout, and where the run's one line about them goes (the log without it)."""

    zotero_api_url: str = Settings.zotero_api_url
    zotero_api_key: str | None = field(default=None, repr=False)
    timeout: float = Settings.timeout
    notify: Callable[[str], None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        notify: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LikedOptions:
        """The options of a run: its settings, and the key from ``ZOTERO_API_KEY`` (a secret
        from now on, whether or not a Zotero library is read)."""
        env = os.environ if env is None else env
        key = (env.get(KEY_ENV) or "").strip() or None
        register(key)
        return cls(settings.zotero_api_url, key, settings.timeout, notify)


def read_liked(spec: str, options: LikedOptions | None = None) -> list[Paper]:
    """The usable papers of a library file or a ``zotero:`` library, each id once, after one
    line saying how many entries were read and used; none usable is an ``InputError``."""
    options = options or LikedOptions()
    tally = Tally()
    label = spec.strip()
    if label[: len(ZOTERO)].lower() == ZOTERO:
        found = _keep(_zotero(label[len(ZOTERO) :], options, tally), tally)
    else:
        found = _keep(_file(Path(spec), tally), tally)
    line = tally.summary(label)
    if not found:  # nothing to rank by: the run stops, and this one line says why
        raise InputError(line if tally.read else f"liked: no entries in {label}")
    if options.notify is not None:
        options.notify(line)
    else:
        log.info("%s", line)
    return found


def library_kind(path: Path, head: str) -> str:
    """How to read ``path``, whose text starts with ``head``: "bibtex", "ris", "csl", or
    "papers" (the input formats of ``read_papers``)."""
    suffix = path.suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix in PAPER_SUFFIXES:
        return "papers"
    start = head.lstrip("\ufeff \t\r\n")
    if _RIS_START.match(start):
        return "ris"
    if start.startswith("["):
        from agent.sources.refs.csl import is_csl_item

        return "csl" if is_csl_item(_first_item(start)) else "papers"
    if not start.startswith("{") and _BIBTEX_ENTRY.search(head):
        return "bibtex"
    return "papers"


def _first_item(text: str) -> object:
    """The first item of the JSON array ``text`` starts, or None when it is not in ``text``."""
    position = 1
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    try:
        return json.JSONDecoder().raw_decode(text, position)[0]
    except (ValueError, RecursionError):
        return None


def _file(path: Path, tally: Tally) -> Iterable[tuple[str, Paper]]:
    """The papers of a library file (each with where it is, for messages), in file order."""
    if not path.is_file():
        raise InputError(f"liked papers file not found: {path}")
    try:
        with path.open("rb") as raw:
            head = raw.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    kind = library_kind(path, head.decode("utf-8", "ignore"))
    if kind == "papers":
        return _papers(path, tally)
    references = _read_library(kind, _text(path), str(path), tally)
    return ((r.where, r.paper(str(path))) for r in references)


def _read_library(kind: str, content: str, where: str, tally: Tally) -> list[Reference]:
    if kind == "bibtex":
        from agent.sources.refs.bibtex import read_bibtex

        return read_bibtex(content, where, tally)
    if kind == "ris":
        from agent.sources.refs.ris import read_ris

        return read_ris(content, where, tally)
    from agent.sources.refs.csl import read_csl

    try:
        items = json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where}: not a readable CSL JSON file ({exc})") from None
    if not isinstance(items, list):
        raise InputError(f"{where}: a CSL JSON file is an array of items")
    return read_csl(items, where, tally)


def _text(path: Path) -> str:
    """The whole text of a library file: UTF-8 (a BOM allowed), within its bound."""
    try:
        size = path.stat().st_size
        if size > MAX_LIBRARY_BYTES:
            raise InputError(
                f"{path} is {size / 1e6:.1f} MB: a library file is read whole, up to "
                f"{MAX_LIBRARY_BYTES // 1_000_000} MB"
            )
        content = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text (save the library as UTF-8)") from None
    if "\x00" in content:
        raise InputError(f"{path} is a binary file, not a reference library")
    return content


def _papers(path: Path, tally: Tally) -> Iterable[tuple[str, Paper]]:
    """A file in one of the run's input formats; a broken record costs only itself."""
    unreadable: list[str] = []
    papers = list(read_papers([str(path)], unreadable=unreadable))
    tally.read += len(papers) + len(unreadable)
    for message in unreadable:
        where, _, why = message.partition(": ")
        tally.skip(UNREADABLE, where, why)
    return ((f"{path}: paper {p.id}", p) for p in papers)


def _zotero(rest: str, options: LikedOptions, tally: Tally) -> Iterable[tuple[str, Paper]]:
    """A Zotero library's papers, fetched on a client of its own (no run has one yet)."""
    from agent.llm.http import make_client

    library = ZoteroLibrary.from_spec(rest, options.zotero_api_url, options.zotero_api_key)

    async def fetch() -> list[Reference]:
        async with make_client(options.timeout) as http:
            return await library.read(http, tally)

    return ((r.where, r.paper(library.spec)) for r in asyncio.run(fetch()))


def _keep(found: Iterable[tuple[str, Paper]], tally: Tally) -> list[Paper]:
    """The papers with a title, each id once (the first kept); the rest counted in ``tally``."""
    kept: dict[str, Paper] = {}
    for where, paper in found:
        if not paper.title:
            tally.skip(WITHOUT_TITLE, where, "no title")
        elif paper.id in kept:
            tally.skip(REPEATED, where, f"the same paper as an earlier entry ({paper.id})")
        else:
            kept[paper.id] = paper
    return list(kept.values())
