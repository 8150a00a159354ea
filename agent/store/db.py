"""The library's SQLite file: one connection, its pragmas, short transactions, and damage.

Several processes share the file (cron jobs on one state dir): WAL so readers never wait for a
writer, a busy timeout, every writer takes the lock up front (``BEGIN IMMEDIATE``) and holds it
for milliseconds. A damaged file is moved aside with its sidecars (as the answer cache is) and
a fresh library takes its place; a lock held past the timeout is one ``ConfigError``. Long
reads stream on a connection of their own, so a loop may write as it reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import ConfigError
from agent.llm.cache import is_damage

log = logging.getLogger(__name__)

DB_NAME = "library.sqlite3"
BUSY_TIMEOUT = 15.0  # seconds to wait for another process's write; each write takes ms
CHUNK = 400  # keys per IN (...): under SQLite's oldest 999-variable cap, twice over
FETCH = 500  # rows a stream holds at once

# A damaged file's sidecars move with it: a stale WAL must never be replayed into a fresh one.
_SIDECARS = ("", "-wal", "-shm", "-journal")
# Errors that are bugs in our SQL, never a state of the file: they are raised as they are.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)

T = TypeVar("T")
Setup = Callable[[sqlite3.Connection], None]


def now() -> str:
    """The current time as the library writes every timestamp."""
    return stamp(dt.datetime.now(dt.UTC))


def stamp(when: dt.datetime) -> str:
    """``when`` in UTC, ISO 8601 to the microsecond: one width, so text order is time order."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)  # a naive time is taken as UTC, never as local
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def day_range(day: dt.date) -> tuple[str, str]:
    """The stamps that bound one UTC day, for an indexed range query."""
    return day.isoformat(), (day + dt.timedelta(days=1)).isoformat()


def to_json(value: Any) -> str:
    """A JSON column's text: compact, keys sorted, so equal values are equal text."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def marks(n: int) -> str:
    """``?, ?, ?`` for ``n`` parameters."""
    return ", ".join("?" * n)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``, one query each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[None]:
    """One explicit transaction; a writer takes the lock up front (``BEGIN IMMEDIATE``), so two
    processes wait in the busy handler instead of failing on a lock upgrade."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Database:
    """The library file behind one lock-guarded connection; ``setup`` runs on every connect."""

    def __init__(self, path: Path, setup: Setup, *, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = BUSY_TIMEOUT if timeout is None else timeout
        self.moved_aside: Path | None = None  # where a damaged library went, if one did
        self._setup = setup
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._lock = threading.RLock()  # one connection; a pipeline may call from a thread

    def read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op`` in one read transaction: every query in it sees one snapshot."""
        return self._run(op, write=False)

    def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op`` in one write transaction: all of it is stored, or none."""
        return self._run(op, write=True)

    def stream(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of one query, fetched a few hundred at a time on a connection of its own
        (one snapshot; the caller may write to the library between rows)."""
        self.open()  # the file exists and has its schema
        try:
            conn = self._connect_plain()
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from None
        try:
            conn.execute("BEGIN")
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(FETCH):
                yield from rows
        except _BUGS:
            raise
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from None
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def open(self) -> None:
        """Open the file now (set up, or moved aside and replaced when damaged), so a bad
        state dir fails here rather than in the middle of a run."""
        self._run(lambda conn: None, write=None)

    def close(self) -> None:
        """Close the connection (a later call opens it again)."""
        with self._lock:
            self._close()

    def _run(self, op: Callable[[sqlite3.Connection], T], *, write: bool | None) -> T:
        """``op`` on the open connection; on damage, move the file aside and run on a fresh one."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    if write is None:
                        return op(self._conn)
                    with transaction(self._conn, write=write):
                        return op(self._conn)
                except _BUGS:
                    raise
                except sqlite3.Error as exc:
                    if attempt == 1 and damaged(exc):
                        self._close()
                        self.moved_aside = move_aside(self.path, self._inode, exc) or (
                            self.moved_aside
                        )
                        continue
                    doing = {True: "write", False: "read", None: "open"}[write]
                    raise self._error(exc, doing) from None
            raise AssertionError("unreachable: the second attempt returns or raises")

    def _connect_plain(self) -> sqlite3.Connection:
        """A connection with the library's pragmas (autocommit: transactions are explicit)."""
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            # WAL: a power cut may lose the last commits, never the file's integrity.
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _connect(self) -> sqlite3.Connection:
        """Open the file in WAL mode and bring it to the current schema."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        self._inode = _inode(self.path)  # the file judged, should it prove damaged
        conn = self._connect_plain()
        self._inode = _inode(self.path)  # (made now, if it was new)
        try:
            self._use_wal(conn)
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL (once per file: the mode persists). While another process switches a
        new file, SQLite answers BUSY at once, without its busy handler, so the wait is here."""
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

    def _error(self, exc: sqlite3.Error, doing: str) -> ConfigError:
        """The one line a user sees for a library that cannot be used."""
        if exc.sqlite_errorname.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return ConfigError(
                f"the library {self.path} is locked by another process "
                f"(waited {self.timeout:g} s); try again when it finishes"
            )
        return ConfigError(f"cannot {doing} the library {self.path}: {exc}")


def damaged(exc: sqlite3.Error) -> bool:
    """Corrupt or not a database; SQLite may name the extended code (SQLITE_CORRUPT_INDEX)."""
    return is_damage(exc) or exc.sqlite_errorname.startswith("SQLITE_CORRUPT")


def move_aside(path: Path, inode: int | None, exc: sqlite3.Error) -> Path | None:
    """Rename the damaged file (and its sidecars) to ``<name>.damaged-<time>``, kept for
    inspection; None when another process already replaced it (its fresh file is not ours)."""
    if inode is None or _inode(path) != inode:
        return None
    stamp_ = time.strftime("%Y%m%dT%H%M%S")
    for n in range(1, 100):
        target = path.with_name(f"{path.name}.damaged-{stamp_}" + f"-{n}" * (n > 1))
        if any(Path(f"{target}{s}").exists() for s in _SIDECARS):
            continue
        try:
            path.rename(target)
            for sidecar in _SIDECARS[1:]:
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{path}{sidecar}").rename(f"{target}{sidecar}")
        except FileNotFoundError:
            return None  # another process moved it first
        except OSError as err:
            raise ConfigError(
                f"the library {path} is damaged ({exc}) and cannot be moved aside: {err.strerror}"
            ) from None
        log.warning(
            "the library %s is damaged (%s); moved it to %s and started a fresh one",
            path,
            exc,
            target,
        )
        return target
    raise ConfigError(f"the library {path} is damaged ({exc}); move it aside")


def _inode(path: Path) -> int | None:
    """The file's inode, to tell whether the database judged is still the one in place."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
