"""Files and stdin: HF Daily Papers page text, JSONL, JSON array, CSV."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from agent.errors import InputError
from agent.models import MAX_ABSTRACT_CHARS, MAX_AUTHORS, MAX_CATEGORIES, Paper
from agent.sources.base import READ_CHARS, abs_url, collapse

# Record keys with a meaning of their own; every other key goes to Paper.metadata.
ID_KEYS = ("id", "paper_id", "arxiv_id")
ABSTRACT_KEYS = ("abstract", "summary")
URL_KEYS = ("url", "link")
PUBLISHED_KEYS = ("published", "publishedAt", "date")
KNOWN_KEYS = frozenset(
    (
        "title",
        "authors",
        "categories",
        "source",
        "metadata",
        *ID_KEYS,
        *ABSTRACT_KEYS,
        *URL_KEYS,
        *PUBLISHED_KEYS,
    )
)
SKIP_WITH_ABSTRACT = KNOWN_KEYS - {"summary"}

# Page text: a title fits on a line; an abstract is real prose. Chrome ("Subscribe", a date)
# is short, so a title candidate only counts once an abstract follows it.
TITLE_MAX_CHARS = 300
TITLE_MAX_WORDS = 40
ABSTRACT_MIN_WORDS = 20

HEAD_BYTES = 8192
CSV_FIELD_MAX = 64 * 1024 * 1024  # characters in one CSV field
HEAD_CHARS = 4096
JSON_CHUNK = 1 << 16

# arXiv ids: new style YYMM.NNNNN (month checked, so most dotted numbers do not match) and
# old style archive(.SUBJ)/YYMMNNN; a version suffix is not part of the id.
_ARXIV_NEW = re.compile(r"(?<!\d)(?<!\d\.)(\d{2}(?:0[1-9]|1[0-2])\.\d{4,5})(?:v\d+)?(?!\d)")
_ARXIV_OLD = re.compile(r"(?<![\w.-])([a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?(?!\d)")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+")
TITLE = "title:"  # the prefix of a key made from a title
_LIST_SPLIT = re.compile(r"[,\s]+")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def read_papers(
    sources: Sequence[str],
    stdin: TextIO | None = None,
    name: str = "stdin",
    unreadable: list[str] | None = None,
) -> Iterator[Paper]:
    """Yield the papers of each source in order; ``-`` reads ``stdin`` (shown as ``name``).

    With ``unreadable``, a broken record (a JSONL line, a CSV row, an array item) costs only
    itself: its one-line reason ("FILE line N: ...") is appended there and reading goes on.
    Without it, the first one is an ``InputError``.
    """
    for source in sources:
        if source == "-":
            yield from _read_stdin(stdin, name, unreadable)
        elif _URL.match(source):
            raise InputError(f"{source} is a URL: inputs are files; download it first")
        else:
            yield from _read_file(Path(source), unreadable)


def unique_papers(papers: Iterable[Paper], duplicates: list[str]) -> Iterator[Paper]:
    """Yield each id once (first wins); append the ids of dropped repeats to ``duplicates``."""
    seen: set[str] = set()
    for paper in papers:
        if paper.id in seen:
            duplicates.append(paper.id)
            continue
        seen.add(paper.id)
        yield paper


def paper_id(given: object, url: str | None, title: str) -> str:
    """The given id (an arXiv id without version or ``arXiv:``), else an arXiv id in the URL,
    else ``t-`` and a hash of the title."""
    if given is not None and (text := str(given).strip()):
        return canonical_arxiv_id(text) or text
    if url and (found := arxiv_id(url)):
        return found
    normalized = _NON_WORD.sub(" ", title.casefold()).strip()
    return "t-" + hashlib.sha256(normalized.encode("utf-8")).hexdigest()[:12]


def canonical_arxiv_id(text: str) -> str | None:
    """``2401.00001`` for ``2401.00001v2``, ``arXiv:2401.00001`` or ``arxiv:2401.00001v1``;
    None when ``text`` is not an arXiv id."""
    bare = text.strip()
    if bare[:6].lower() == "arxiv:":
        bare = bare[6:].strip()
    match = _ARXIV_NEW.fullmatch(bare) or _ARXIV_OLD.fullmatch(bare)
    return match.group(1) if match else None


def is_arxiv_id(text: str) -> bool:
    """Whether ``text`` is an arXiv id (new or old style, with or without a version)."""
    return bool(_ARXIV_NEW.fullmatch(text) or _ARXIV_OLD.fullmatch(text))


def arxiv_id(url: str) -> str | None:
    """The arXiv id in an arXiv (or Hugging Face papers) URL, without version; else None."""
    lowered = url.lower()
    if "arxiv" not in lowered and "huggingface.co/papers" not in lowered:
        return None
    match = _ARXIV_NEW.search(url) or _ARXIV_OLD.search(url)
    return match.group(1) if match else None


def title_key(title: str) -> str | None:
    """``title:`` and the title casefolded, its punctuation and whitespace collapsed: how a
    paper without an arXiv id is known (None for a title without a word)."""
    words = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", title).casefold()).strip()
    return TITLE + words if words else None


@dataclass
class _Where:
    """The stream being read: its name in messages, its label as a paper's source, and where
    a broken record goes (None: it stops the input)."""

    name: str
    label: str
    unreadable: list[str] | None
    skipped: int = 0  # broken records of this stream
    first: str = ""  # why the first of them was

    def skip(self, message: str) -> None:
        """Set a broken record aside (``message`` names it), or refuse the input."""
        if self.unreadable is None:
            raise InputError(message)
        self.unreadable.append(message)
        self.skipped += 1
        self.first = self.first or message


def _read_stdin(stdin: TextIO | None, name: str, unreadable: list[str] | None) -> Iterator[Paper]:
    buffer = getattr(sys.stdin, "buffer", None) if stdin is None else None
    if buffer is None:
        yield from _read_stream(stdin or sys.stdin, _Where(name, name, unreadable), "")
        return
    # The locale's encoding is not the input's: papers are UTF-8, with or without a BOM.
    text = io.TextIOWrapper(buffer, encoding="utf-8-sig", newline="")
    try:
        yield from _read_stream(text, _Where(name, name, unreadable), "")
    finally:
        text.detach()  # closing the wrapper would close the process's stdin


def _read_file(path: Path, unreadable: list[str] | None) -> Iterator[Paper]:
    where = str(path)
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"input file not found: {where}") from None
    except IsADirectoryError:
        raise InputError(f"{where} is a directory, not a file of papers") from None
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc.strerror}") from None
    with raw:
        _check_text(raw.read(HEAD_BYTES), where)
        raw.seek(0)
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        yield from _read_stream(text, _Where(where, path.name, unreadable), path.suffix.lower())


def _check_text(head: bytes, where: str) -> None:
    """Refuse binary input before parsing it as text gives a confusing error."""
    if b"\x00" in head:
        raise InputError(f"{where} is a binary file, not UTF-8 text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The head may cut a multi-byte character at its end; that is not an error.
        if exc.start < len(head) - 3:
            raise InputError(f"{where} is not UTF-8 text (a binary file?)") from None


def _read_stream(text: TextIO, source: _Where, ext: str) -> Iterator[Paper]:
    """Sniff the format from the first characters, then parse the rest without reading it all."""
    where = source.name
    head = ""
    found = False
    try:
        while not head.strip():
            chunk = text.read(HEAD_CHARS)
            if not chunk:
                raise InputError(f"{where} is empty")
            head += chunk
        head = head.removeprefix("\ufeff")
        if "\x00" in head:
            raise InputError(f"{where} is a binary file, not UTF-8 text")
        start = head.lstrip()[:1]
        kind = EXTENSIONS.get(ext) or ("json-array" if start == "[" or ext == ".json" else "")
        if kind == "json-array" and start != "{":
            # Not line by line: a minified array is one line, as long as the file.
            parsed = _parse_json_array(head, text, source)
        else:
            # Complete the head's last line, so line-based parsers see whole lines.
            if not head.endswith("\n"):
                head += text.readline()
            lines = itertools.chain(_lines(head), text)
            parse = PARSERS[_sniff(head.lstrip().splitlines()[0], ext, kind)]
            parsed = parse(lines, source)
        for paper in parsed:
            found = True
            yield paper
    except UnicodeDecodeError:
        raise InputError(f"{where} is not UTF-8 text (a binary file?)") from None
    if not found and source.skipped:
        # Nothing to run: the input is refused, saying why (its first broken record).
        more = f" (and {source.skipped - 1} more unreadable)" if source.skipped > 1 else ""
        raise InputError(f"no papers found in {where}: {source.first}{more}")
    if not found:
        raise InputError(f"no papers found in {where}")


def _lines(text: str) -> Iterator[str]:
    """``text`` as lines with their endings, split as a file opened with ``newline=""`` is
    (not through StringIO: it holds four bytes a character, 48 MB for a 12 MB line)."""
    return (match.group() for match in _LINE.finditer(text))


def _sniff(first: str, ext: str, kind: str) -> str:
    """The line-based format of a file whose extension does not settle it."""
    if kind and kind != "json-array":
        return kind
    if first.startswith("{"):
        return "jsonl"  # a lone pretty-printed object fails on line 1, which says enough
    if ext != ".json" and _is_csv_header(next(csv.reader([first]))):
        return "csv"
    return "page"


def _parse_jsonl(lines: Iterable[str], source: _Where) -> Iterator[Paper]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        at = f"{source.name} line {number}"
        try:
            # Without its line break: a line cut short reads "Unterminated string", not
            # "Invalid control character".
            record = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            source.skip(f"{at}: invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            source.skip(f"{at}: invalid JSON: nested too deeply")
            continue
        if (paper := _record_or_skip(record, at, source)) is not None:
            yield paper


def _parse_json_array(head: str, text: TextIO, source: _Where) -> Iterator[Paper]:
    """Decode the items of a top-level array one at a time, so a big file is never held whole.
    Broken JSON stops the file (no item after it can be found); an item that is no paper is
    skipped alone."""
    where = source.name
    decoder = json.JSONDecoder()
    buf, pos, eof = head, 0, False
    line, counted = 1, 0  # the line number at buf[counted], counted forward only

    def fill() -> None:
        nonlocal buf, pos, line, counted, eof
        line += buf.count("\n", counted, pos)
        counted = 0
        # Read at least as much as is buffered, so retrying a large item is not quadratic.
        chunk = text.read(max(JSON_CHUNK, len(buf) - pos))
        eof = not chunk
        buf, pos = buf[pos:] + chunk, 0

    def peek() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if eof:
                return ""
            fill()

    def where_at(at: int) -> str:
        nonlocal line, counted
        line += buf.count("\n", counted, at)
        counted = at
        return f"{where} line {line}"

    if peek() != "[":
        raise InputError(f"{where_at(pos)}: expected a JSON array of paper objects")
    pos += 1
    first = True
    while True:
        char = peek()
        if char == "]":
            pos += 1
            if peek():
                raise InputError(f"{where_at(pos)}: invalid JSON: extra data after the array")
            return
        if not first:
            if char != ",":
                raise InputError(f"{where_at(pos)}: invalid JSON: expected ',' or ']'")
            pos += 1
            peek()
        while True:
            try:
                record, end = decoder.raw_decode(buf, pos)
                break
            except RecursionError:
                raise InputError(f"{where_at(pos)}: invalid JSON: nested too deeply") from None
            except json.JSONDecodeError as exc:
                if eof:
                    raise InputError(f"{where_at(exc.pos)}: invalid JSON: {exc.msg}") from None
                # The item may only be cut by the buffer's end: read more and retry. (A truly
                # bad item is reported once the rest of the file is read: that is rare.)
                fill()
        at = where_at(pos)
        pos, first = end, False
        if (paper := _record_or_skip(record, at, source)) is not None:
            yield paper


def _is_csv_header(header: Sequence[str]) -> bool:
    names = {name.strip().lower() for name in header}
    return "title" in names and any(key in names for key in ABSTRACT_KEYS)


def _parse_csv(lines: Iterable[str], source: _Where) -> Iterator[Paper]:
    # csv's default cap (128 KiB a field) is below a long abstract, which the run then clips.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_MAX))
    try:
        yield from _csv_papers(csv.reader(lines), source)
    except csv.Error as exc:
        raise InputError(f"{source.name}: not a readable CSV file ({exc})") from None


def _csv_papers(reader: Any, source: _Where) -> Iterator[Paper]:
    where = source.name
    header = next(reader, [])
    if not _is_csv_header(header):
        shown = ", ".join(h.strip() for h in header) or "none"
        raise InputError(
            f"{where}: a CSV file needs 'title' and 'abstract' columns (found: {shown})"
        )
    # Known columns match case-insensitively; the others keep their name as metadata keys.
    keys = [h.strip().lower() if h.strip().lower() in KNOWN_KEYS else h.strip() for h in header]
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        at = f"{where} line {reader.line_num}"
        if len(row) > len(keys):
            source.skip(f"{at}: {len(row)} fields but the header has {len(keys)}")
            continue
        if (paper := _record_or_skip(dict(zip(keys, row, strict=False)), at, source)) is not None:
            yield paper


def _parse_page(lines: Iterable[str], source: _Where) -> Iterator[Paper]:
    """Title / abstract paragraph pairs, skipping page chrome before, between and after."""
    title: str | None = None
    last: tuple[str, list[str]] | None = None  # the latest paper: its title and paragraphs
    size = 0  # characters in those paragraphs: past what a paper keeps, more are not kept
    for block in _blocks(lines):
        if title is not None and _is_abstract(block):
            if last is not None:
                yield _build(last[0], "\n\n".join(last[1]), source.label)
            last, size = (title, [block]), len(block)
            title = None
        elif _is_title(block):
            title = block  # an earlier unmatched candidate was chrome
        elif last is not None and title is None:
            # Prose right after an abstract is its next paragraph.
            if size <= MAX_ABSTRACT_CHARS:
                last[1].append(block)
                size += len(block)
        else:
            title = None
    if last is not None:
        yield _build(last[0], "\n\n".join(last[1]), source.label)


def _blocks(lines: Iterable[str]) -> Iterator[str]:
    """Paragraphs: runs of non-blank lines joined by spaces (wrapped text is one paragraph)."""
    parts: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped:
            parts.append(stripped)
        elif parts:
            yield " ".join(parts)
            parts = []
    if parts:
        yield " ".join(parts)


def _is_title(block: str) -> bool:
    return len(block) <= TITLE_MAX_CHARS and block.count(" ") < TITLE_MAX_WORDS


def _is_abstract(block: str) -> bool:
    if block.count(" ") + 1 < ABSTRACT_MIN_WORDS:
        return False
    # A long title has many words too, but it neither runs past a line nor ends a sentence.
    return len(block) > TITLE_MAX_CHARS or block.endswith((".", "!"))


def _build(title: str, abstract: str, label: str) -> Paper:
    return Paper(id=paper_id(None, None, title), title=title, abstract=abstract, source=label)


def _record_or_skip(record: object, at: str, source: _Where) -> Paper | None:
    """The paper of one record, or None when it is broken (set aside by ``source.skip``)."""
    try:
        return _paper_from_record(record, at, source.label)
    except InputError as exc:
        source.skip(str(exc))
        return None


def _paper_from_record(record: object, at: str, label: str) -> Paper:
    """A Paper from one JSON object or CSV row; ``at`` names the file and line for errors."""
    if not isinstance(record, dict):
        raise InputError(f"{at}: expected a JSON object, got {type(record).__name__}")
    inner = record.get("paper")
    if isinstance(inner, dict) and "title" in inner:
        # Hugging Face's daily_papers API wraps each paper (and its id) in {"paper": {...}}.
        record = {**{k: v for k, v in record.items() if k != "paper"}, **inner}
    title = collapse(_text(record.get("title")))
    # A missing abstract is not the whole input's fault: the paper is annotated from its
    # title, and a record with neither becomes an invalid_input error record in the run.
    abstract_key = next((k for k in ABSTRACT_KEYS if _text(record.get(k))), "abstract")
    abstract = _text(record.get(abstract_key))
    url = _first(record, URL_KEYS)
    given = next((record[k] for k in ID_KEYS if record.get(k) not in (None, "")), None)
    # A summary next to an abstract is kept: it may be a human-written TLDR.
    used = SKIP_WITH_ABSTRACT if abstract_key == "abstract" else KNOWN_KEYS
    pid = paper_id(given, url, title or abstract or at)
    if url is None and is_arxiv_id(pid):
        url = abs_url(pid)  # every arXiv paper links, even when its input gave no URL
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors=split_authors(record.get("authors"), at),
        url=url,
        published=_first(record, PUBLISHED_KEYS),
        categories=_categories(record.get("categories")),
        # What `paper-agent fetch` wrote comes back as it was: its source and metadata.
        source=_text(record.get("source")) or label,
        metadata={
            k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            for k, v in _extras(record, used)
            if v not in (None, "")
        },
    )


def _extras(record: dict[str, object], used: frozenset[str]) -> Iterator[tuple[str, object]]:
    """The record's fields without a meaning of their own, a ``metadata`` object unpacked."""
    nested = record.get("metadata")
    if isinstance(nested, dict):
        yield from nested.items()
    yield from ((k, v) for k, v in record.items() if k not in used)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _first(record: dict[str, object], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = record.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return None


def split_authors(value: object, at: str) -> list[str]:
    """Author names from a list (of names or {"name": ...}) or a "A, B; C" string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value[:READ_CHARS]  # a huge field is not split into a million names first
        # "A, B and C" is common, but "Smith, J." is too: ';' wins when present.
        parts = value.split(";") if ";" in value else value.split(",")
        names = [p.strip() for p in parts if p.strip()]
        if len(names) > 1 and " and " in names[-1]:  # "A, B and C": the last two
            names[-1:] = [n.strip() for n in names[-1].split(" and ") if n.strip()]
        return [n.removeprefix("and ").strip() for n in names]
    if isinstance(value, list):
        names = [a.get("name") if isinstance(a, dict) else a for a in value[:MAX_AUTHORS]]
        if all(isinstance(n, str) for n in names):
            return [n.strip() for n in names if n.strip()]  # type: ignore[union-attr]
    raise InputError(f"{at}: authors must be a list of names or a comma-separated string")


def _categories(value: object) -> list[str]:
    if isinstance(value, str):
        return [c for c in _LIST_SPLIT.split(value[:READ_CHARS]) if c]
    if isinstance(value, list):
        return [str(c).strip() for c in value[:MAX_CATEGORIES] if str(c).strip()]
    return []


PARSERS: dict[str, Callable[[Iterable[str], _Where], Iterator[Paper]]] = {
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
    "page": _parse_page,
}
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "page", ".md": "page"}
