"""The answer cache (DESIGN 4): validated answers as JSON text in diskcache, keyed by sha256.

The cache only saves money, so damage never stops a run (DESIGN 13): a damaged database is
moved aside (kept for inspection, never deleted) and a fresh one takes its place; a bad entry
is a miss.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent.errors import ConfigError

if TYPE_CHECKING:
    import diskcache

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
MISS = object()  # a miss is a sentinel, never None
DB_NAME = "cache.db"  # diskcache's database file inside the cache directory

# SQLite's codes for a file that is not (or no longer) a sound database.
_DAMAGE = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


def cache_key(
    *,
    server: str,
    model: str,
    messages: list[dict[str, str]],
    schema: Any,
    params: dict[str, Any],
) -> str:
    """sha256 of the canonical JSON of everything that shapes the answer (never the API key).

    ``server`` is the endpoint (``server_id``): "gpt-4o-mini" on a local test server is not
    OpenAI's, so an answer from one is never served as the other's.
    """
    payload = {
        "v": CACHE_FORMAT,
        "server": server,
        "model": model,
        "messages": messages,
        "schema": schema,
        "params": params,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def server_id(base_url: str) -> str:
    """The endpoint a base URL names: scheme, host (lower case), port and path, without any
    credentials, query or trailing slash, so spellings of one server share a cache."""
    parts = urlsplit(base_url.strip())
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}{parts.path.rstrip('/')}"


def is_damage(exc: BaseException) -> bool:
    """True when SQLite says the file is corrupt or not a database (not locked, not full)."""
    return isinstance(exc, sqlite3.Error) and exc.sqlite_errorname in _DAMAGE


@functools.cache
def _text_disk() -> type[diskcache.Disk]:
    """A diskcache ``Disk`` that reads back text only: it never unpickles what it finds."""
    import diskcache

    class TextDisk(diskcache.Disk):
        def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
            # We only ever store str; anything else in the file (a pickle above all, which
            # would run code on load) is not ours, so it reads back as None: a miss.
            if mode == diskcache.core.MODE_RAW:
                return value if isinstance(value, str) else None
            if mode != diskcache.core.MODE_TEXT:
                return None
            try:
                return super().fetch(mode, filename, value, read)
            except UnicodeDecodeError:
                return None

    return TextDisk


class AnswerCache:
    """A thin, synchronous wrapper over ``diskcache.Cache``; every call is short."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.moved_aside: Path | None = None  # where a damaged cache went, if one did
        self._cache: diskcache.Cache | None = None
        self._db_inode: int | None = None
        self._open()

    def get(self, key: str) -> dict[str, Any] | object:
        """The stored answer for ``key``, or ``MISS`` (also for a bad entry or a failing cache)."""
        if self._cache is None:
            return MISS
        try:
            text = self._cache.get(key, default=MISS)
        except _faults() as exc:
            self._fault(exc, "read")
            return MISS
        if text is MISS:
            return MISS
        try:
            answer = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            # The next valid answer for this key replaces it.
            log.warning("cache entry %s is not a stored answer; asking again", key[:12])
            return MISS
        return answer

    def set(self, key: str, answer: dict[str, Any]) -> None:
        """Store a validated answer as JSON text; a failing cache skips the store."""
        if self._cache is None:
            return
        text = json.dumps(answer, ensure_ascii=False, sort_keys=True)
        try:
            self._cache.set(key, text)
        except _faults() as exc:
            self._fault(exc, "write")

    def __len__(self) -> int:
        return self._count("count", len)

    def volume(self) -> int:
        """Bytes used on disk."""
        return self._count("measure", lambda cache: cache.volume())

    def clear(self) -> int:
        """Remove every entry; returns how many were removed (damage found here is moved
        aside, which leaves an empty cache: cleared)."""
        return self._count("clear", lambda cache: cache.clear())

    def _count(self, doing: str, call: Callable[[diskcache.Cache], int]) -> int:
        """``call(cache)``, or 0 with the fault handled (there is no cache, or it failed)."""
        if self._cache is None:
            return 0
        try:
            return call(self._cache)
        except _faults() as exc:
            self._fault(exc, doing, strict=True)
            return 0

    def close(self) -> None:
        """Close the underlying database."""
        if self._cache is not None:
            with contextlib.suppress(sqlite3.Error):
                self._cache.close()
            self._cache = None

    def _open(self) -> None:
        """Open the cache; a damaged one is moved aside once and a fresh one opened.

        Under a lock beside the directory: a database that another process is creating is
        empty for a moment, and only an empty one that nobody is creating is damaged.
        """
        import diskcache

        db = self.directory / DB_NAME
        with _opening(self.directory):
            for attempt in (1, 2):
                inode = _inode(db)
                if attempt == 1 and _is_empty(db):
                    # SQLite would take it for a new database: the answers are gone unsaid.
                    self._move_aside(inode, f"{DB_NAME} is empty: 0 bytes")
                    continue
                try:
                    self._cache = diskcache.Cache(str(self.directory), disk=_text_disk())
                except sqlite3.Error as exc:
                    if attempt == 1 and is_damage(exc):
                        self._move_aside(inode, exc)
                        continue
                    raise ConfigError(f"cannot open the cache at {self.directory}: {exc}") from None
                except (OSError, diskcache.Timeout) as exc:
                    raise ConfigError(f"cannot open the cache at {self.directory}: {exc}") from None
                self._db_inode = _inode(db)
                return

    def _move_aside(self, inode: int | None, exc: Exception | str) -> None:
        """Rename the damaged directory to ``<name>.damaged-<time>``, unless another process
        already replaced it (then its fresh database is not ours to move)."""
        if inode is None or _inode(self.directory / DB_NAME) != inode:
            return
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for n in range(1, 100):
            suffix = "" if n == 1 else f"-{n}"
            target = self.directory.with_name(f"{self.directory.name}.damaged-{stamp}{suffix}")
            if target.exists():
                continue
            try:
                self.directory.rename(target)
            except FileNotFoundError:
                return  # another process moved it first
            except OSError as err:
                raise ConfigError(
                    f"the cache at {self.directory} is damaged ({exc}) and cannot be moved "
                    f"aside: {err}"
                ) from None
            self.moved_aside = target
            log.warning(
                "the answer cache at %s is damaged (%s); moved it to %s and started a fresh one",
                self.directory,
                exc,
                target,
            )
            return
        raise ConfigError(f"the cache at {self.directory} is damaged ({exc}); move it aside")

    def _fault(self, exc: Exception, doing: str, *, strict: bool = False) -> None:
        """Handle a failure met after opening: damage is moved aside and a fresh cache opened;
        anything else turns the cache off for this run (or, when ``strict``, is an error)."""
        self.close()
        if is_damage(exc):
            try:
                self._move_aside(self._db_inode, exc)
                self._open()
            except ConfigError as err:
                log.warning("answers are no longer cached in this run: %s", err)
                self._cache = None
            return
        if strict:
            raise ConfigError(f"cannot {doing} the cache at {self.directory}: {exc}") from None
        log.warning(
            "cannot %s the answer cache at %s (%s); answers are no longer cached in this run",
            doing,
            self.directory,
            exc,
        )


@functools.cache
def _faults() -> tuple[type[Exception], ...]:
    """What a cache call can raise when the database or the disk fails under us."""
    import diskcache

    return (sqlite3.Error, OSError, diskcache.Timeout)


@contextlib.contextmanager
def _opening(directory: Path) -> Iterator[None]:
    """Hold ``<directory>.lock`` (beside the directory, which may be moved aside) while the
    cache is opened, so two processes never judge or create it at the same time."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        lock = open(directory.with_name(f"{directory.name}.lock"), "a+")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot open the cache at {directory}: {exc}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _is_empty(path: Path) -> bool:
    """Whether ``path`` is a file of 0 bytes (a database SQLite would start afresh)."""
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _inode(path: Path) -> int | None:
    """The file's inode, to tell whether the database we judged is still the one in place."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def cache_dir(home: Path) -> Path:
    """Where the answer cache lives inside the state dir."""
    return home / "cache"
