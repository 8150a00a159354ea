"""The seen-store (DESIGN 11): the papers earlier runs annotated, so the next run skips them.

SQLite in the state dir, shared by every process that uses it (several cron jobs may): WAL mode
so readers never wait for a writer, a busy timeout, and one short transaction per call. A paper
is known by its arXiv id without version, else by its normalized title; a paper with an arXiv
id also matches one stored from a source that gave only its title. Like the answer cache, the
store only saves work, so a damaged database is moved aside with one warning and a fresh one
used; one still locked by another process after the busy timeout is a ``ConfigError``.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import logging
import os
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from agent.config import state_dir
from agent.errors import ConfigError
from agent.llm.cache import is_damage
from agent.models import Paper
from agent.sources.files import arxiv_id, is_arxiv_id

log = logging.getLogger(__name__)

DB_NAME = "seen.sqlite3"
BUSY_TIMEOUT = 15.0  # seconds to wait for another process's write; each write takes ms
CHUNK = 400  # papers per query: two parameters each, under SQLite's oldest 999-variable cap
SCHEMA_VERSION = 1
TITLE = "title:"

# One row per paper. ``key`` is key(paper); ``title_key`` is kept for every paper, so a source
# that gives only the title (a saved Hugging Face page) still finds a paper stored by its id.
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS seen (
    key TEXT NOT NULL UNIQUE,
    title_key TEXT,
    has_arxiv INTEGER NOT NULL,
    paper_id TEXT NOT NULL,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    first_seen TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_title ON seen (title_key);
CREATE INDEX IF NOT EXISTS seen_paper ON seen (paper_id);
CREATE INDEX IF NOT EXISTS seen_first ON seen (first_seen);
PRAGMA user_version = {SCHEMA_VERSION};
"""

# The store's sidecar files move with it: a stale WAL must never be replayed into a fresh one.
_SIDECARS = ("", "-wal", "-shm", "-journal")
_VERSION = re.compile(r"v\d+$")
_NON_WORD = re.compile(r"[\W_]+")

T = TypeVar("T")


@dataclass(frozen=True)
class SeenEntry:
    """One seen paper, as ``paper-agent seen list`` shows it."""

    first_seen: dt.datetime
    id: str
    key: str
    title: str
    source: str


def default_path() -> Path:
    """Where the seen-store lives: ``seen.sqlite3`` in the state dir."""
    return state_dir() / DB_NAME


def key(paper: Paper) -> str:
    """The arXiv id without version when the paper has one, else ``title:`` and its title
    normalized (or, with no word in the title, ``id:`` and its id)."""
    return arxiv_key(paper) or title_key(paper.title) or "id:" + paper.id


def arxiv_key(paper: Paper) -> str | None:
    """The paper's arXiv id without version, from its id or else its URL; None without one."""
    return _bare_arxiv(paper.id) or (arxiv_id(paper.url) if paper.url else None)


def title_key(title: str) -> str | None:
    """``title:`` and the title casefolded, its punctuation and whitespace collapsed."""
    words = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", title).casefold()).strip()
    return TITLE + words if words else None


def _bare_arxiv(text: str) -> str | None:
    """``text`` as an arXiv id without version: a bare id, ``arXiv:ID`` or an arXiv URL."""
    text = text.strip()
    if is_arxiv_id(text):
        return _VERSION.sub("", text)
    return arxiv_id(text)  # also finds the id in "arXiv:2401.12345v2"


class SeenStore:
    """The seen papers in one SQLite file; every call is one short transaction."""

    def __init__(self, path: Path | None = None, *, timeout: float | None = None) -> None:
        self.path = path or default_path()
        self.timeout = BUSY_TIMEOUT if timeout is None else timeout
        self.moved_aside: Path | None = None  # where a damaged store went, if one did
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._lock = threading.Lock()  # one connection; the pipeline may call from a thread
        self._run(lambda conn: None, "open")  # open now, so a bad state dir fails here

    def __enter__(self) -> SeenStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (a later call opens it again)."""
        with self._lock:
            self._close()

    def seen(self, papers: Iterable[Paper]) -> set[str]:
        """The ids (``Paper.id``) of the papers already seen, one query per chunk."""
        wanted = [(p.id, key(p), title_key(p.title), arxiv_key(p) is not None) for p in papers]

        def query(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            with _transaction(conn, write=False):  # one snapshot for every chunk
                for start in range(0, len(wanted), CHUNK):
                    found |= _seen_chunk(conn, wanted[start : start + CHUNK])
            return found

        return self._run(query, "read") if wanted else set()

    def mark(self, papers: Iterable[Paper], source: str) -> int:
        """Record the papers as seen now by ``source``, in one transaction; returns how many
        were new (marking a paper again changes nothing)."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        rows = [
            (key(p), title_key(p.title), arxiv_key(p) is not None, p.id, p.title, source, now)
            for p in papers
        ]

        def write(conn: sqlite3.Connection) -> int:
            added = 0
            with _transaction(conn, write=True):
                for row in rows:
                    added += _mark_one(conn, row)
            return added

        return self._run(write, "write") if rows else 0

    def list(self, limit: int | None = None) -> builtins.list[SeenEntry]:
        """The seen papers, newest first (the ``limit`` newest when given)."""
        sql = (
            "SELECT first_seen, paper_id, key, title, source FROM seen"
            " ORDER BY first_seen DESC, rowid DESC"
        )
        params: tuple[int, ...] = ()
        if limit is not None:
            sql, params = sql + " LIMIT ?", (max(limit, 0),)

        def query(conn: sqlite3.Connection) -> builtins.list[SeenEntry]:
            return [
                SeenEntry(dt.datetime.fromisoformat(when), *rest)
                for when, *rest in conn.execute(sql, params)
            ]

        return self._run(query, "read")

    def forget(self, ident: str) -> int:
        """Forget a paper by arXiv id (with or without version), paper id or key; returns
        how many rows went."""
        ident = ident.strip()
        bare = _bare_arxiv(ident) or ident

        def delete(conn: sqlite3.Connection) -> int:
            with _transaction(conn, write=True):
                sql = "DELETE FROM seen WHERE paper_id = ? OR key = ? OR key = ?"
                return conn.execute(sql, (ident, ident, bare)).rowcount

        return self._run(delete, "write")

    def clear(self) -> int:
        """Forget every paper; returns how many rows went."""

        def delete(conn: sqlite3.Connection) -> int:
            with _transaction(conn, write=True):
                return conn.execute("DELETE FROM seen").rowcount

        return self._run(delete, "clear")

    def __len__(self) -> int:
        return self._run(
            lambda conn: conn.execute("SELECT count(*) FROM seen").fetchone()[0], "read"
        )

    def _run(self, op: Callable[[sqlite3.Connection], T], doing: str) -> T:
        """Run ``op`` on the open database; on damage, move it aside and run it on a fresh one."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    return op(self._conn)
                except sqlite3.Error as exc:
                    if attempt == 1 and _damaged(exc):
                        self._move_aside(exc)
                        continue
                    raise self._error(exc, doing) from None
            raise AssertionError("unreachable: the second attempt returns or raises")

    def _connect(self) -> sqlite3.Connection:
        """Open the database in WAL mode and create its table when it is new."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        # Autocommit (isolation_level=None): transactions are explicit, so each is short.
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        self._inode = _inode(self.path)  # the file judged, should it prove damaged
        try:
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")  # a lost mark only redoes a paper
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL (once per file: the mode persists). While another process switches
        the same new file, SQLite answers BUSY at once, without its busy handler, so the
        wait is here."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if not exc.sqlite_errorname.startswith("SQLITE_BUSY"):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _move_aside(self, exc: sqlite3.Error) -> None:
        """Rename the damaged file (and its sidecars) to ``seen.sqlite3.damaged-<time>``,
        unless another process already replaced it (its fresh store is not ours to move)."""
        self._close()
        if self._inode is None or _inode(self.path) != self._inode:
            return
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for n in range(1, 100):
            target = self.path.with_name(f"{self.path.name}.damaged-{stamp}" + f"-{n}" * (n > 1))
            if any(Path(f"{target}{s}").exists() for s in _SIDECARS):
                continue
            try:
                self.path.rename(target)
                for sidecar in _SIDECARS[1:]:
                    with contextlib.suppress(FileNotFoundError):
                        Path(f"{self.path}{sidecar}").rename(f"{target}{sidecar}")
            except FileNotFoundError:
                return  # another process moved it first
            except OSError as err:
                raise ConfigError(
                    f"the seen-store {self.path} is damaged ({exc}) and cannot be moved "
                    f"aside: {err.strerror}"
                ) from None
            self.moved_aside = target
            log.warning(
                "the seen-store %s is damaged (%s); moved it to %s and started a fresh one "
                "(papers seen before may be annotated again)",
                self.path,
                exc,
                target,
            )
            return
        raise ConfigError(f"the seen-store {self.path} is damaged ({exc}); move it aside")

    def _error(self, exc: sqlite3.Error, doing: str) -> ConfigError:
        """The one line a user sees for a store that cannot be used."""
        if exc.sqlite_errorname.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return ConfigError(
                f"the seen-store {self.path} is locked by another process "
                f"(waited {self.timeout:g} s); try again when it finishes"
            )
        return ConfigError(f"cannot {doing} the seen-store {self.path}: {exc}")


def _seen_chunk(
    conn: sqlite3.Connection, chunk: list[tuple[str, str | None, str | None, bool]]
) -> set[str]:
    """The ids in ``chunk`` (id, key, title key, has arXiv id) that one query finds seen."""
    keys = [k for _, k, _, _ in chunk]
    titles = [t for _, _, t, _ in chunk if t is not None]
    sql = (
        f"SELECT key, title_key, has_arxiv FROM seen WHERE key IN ({_marks(len(keys))})"
        f" OR title_key IN ({_marks(len(titles))})"
    )
    found_keys: set[str] = set()
    any_titles: set[str] = set()
    plain_titles: set[str] = set()  # titles of papers stored without an arXiv id
    for found, found_title, has_arxiv in conn.execute(sql, [*keys, *titles]):
        found_keys.add(found)
        if found_title is not None:
            any_titles.add(found_title)
            if not has_arxiv:
                plain_titles.add(found_title)
    # Two arXiv ids are two papers, even with one title ("A Survey of ..."): a paper with an
    # id matches by title only a paper stored without one.
    return {
        pid
        for pid, k, title, has_arxiv in chunk
        if k in found_keys
        or (title is not None and title in (plain_titles if has_arxiv else any_titles))
    }


def _mark_one(
    conn: sqlite3.Connection, row: tuple[str, str | None, bool, str, str, str, str]
) -> int:
    """Record one paper unless it is known; returns 1 when a row was added."""
    paper_key, title, has_arxiv = row[:3]
    if has_arxiv and title is not None:
        # Stored before from a title-only source: the same paper, which now has its id.
        upgraded = conn.execute(
            "UPDATE OR IGNORE seen SET key = ?, has_arxiv = 1 WHERE key = ? AND has_arxiv = 0",
            (paper_key, title),
        )
        if upgraded.rowcount:
            return 0
        sql = "INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?, ?, ?, ?)"
        return conn.execute(sql, row).rowcount
    # A title-only paper is known when any paper, with an id or not, has its title.
    sql = (
        "INSERT OR IGNORE INTO seen SELECT ?, ?, ?, ?, ?, ?, ?"
        " WHERE NOT EXISTS (SELECT 1 FROM seen WHERE title_key = ?)"
    )
    return conn.execute(sql, (*row, title)).rowcount


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[None]:
    """One explicit transaction; a writer takes the lock up front (``BEGIN IMMEDIATE``), so
    two processes wait in the busy handler instead of failing on a lock upgrade."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _damaged(exc: sqlite3.Error) -> bool:
    """Corrupt or not a database; SQLite may name the extended code (SQLITE_CORRUPT_INDEX)."""
    return is_damage(exc) or exc.sqlite_errorname.startswith("SQLITE_CORRUPT")


def _inode(path: Path) -> int | None:
    """The file's inode, to tell whether the database judged is still the one in place."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
