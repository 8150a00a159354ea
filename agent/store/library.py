"""The library (DESIGN 15): one SQLite database in the state dir that remembers papers,
annotations, runs, scores, digests, deliveries, feedback, embeddings and batch jobs.

``Library.open(home)`` opens (or creates) ``library.sqlite3``, brings its schema up to date and
imports the state files of earlier versions; each noun is an attribute with its own small API
(``lib.papers``, ``lib.seen``, ``lib.runs``...). Every call is one short transaction; several
processes may use one state dir at once.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from agent.config import state_dir
from agent.models import ResultRecord
from agent.store import results
from agent.store.annotations import Annotations
from agent.store.batch_jobs import BatchJobs
from agent.store.db import DB_NAME, Database
from agent.store.deliveries import Deliveries
from agent.store.embeddings import Embeddings
from agent.store.feedback import Feedback
from agent.store.legacy import Imported, import_legacy
from agent.store.migrations import migrate
from agent.store.papers import Papers
from agent.store.results import Selection
from agent.store.runs import Runs
from agent.store.scores import Scores
from agent.store.seen import Seen


class Library:
    """The library of one state dir; use it as a context manager, or call ``close()``."""

    def __init__(self, home: Path, *, timeout: float | None = None) -> None:
        self.home = home
        self.imported: list[Imported] = []  # old state files imported on this open
        self._db = Database(home / DB_NAME, self._setup, timeout=timeout)
        self.papers = Papers(self._db)
        self.seen = Seen(self._db)
        self.annotations = Annotations(self._db)
        self.runs = Runs(self._db)
        self.scores = Scores(self._db)
        self.deliveries = Deliveries(self._db)
        self.feedback = Feedback(self._db)
        self.embeddings = Embeddings(self._db)
        self.batch_jobs = BatchJobs(self._db)

    @classmethod
    def open(cls, home: Path | None = None, *, timeout: float | None = None) -> Library:
        """Open the library in ``home`` (default: the state dir) now, so a bad state dir is
        one ``ConfigError`` here rather than in the middle of a run."""
        library = cls(home or state_dir(), timeout=timeout)
        library._db.open()
        return library

    @property
    def path(self) -> Path:
        """The database file."""
        return self._db.path

    @property
    def moved_aside(self) -> Path | None:
        """Where a damaged library was moved, if one was on this open."""
        return self._db.moved_aside

    def results(
        self, selection: Selection, profile: str | None = None, scorer: str | None = None
    ) -> Iterator[ResultRecord]:
        """The results of a run, a day or a span, as ``results.jsonl`` lines, streamed."""
        return results.results(self._db, selection, profile, scorer)

    def keyed_results(
        self, selection: Selection, profile: str | None = None, scorer: str | None = None
    ) -> Iterator[tuple[str, ResultRecord]]:
        """``results``, each as ``(paper key, record)``: the key the library knows it by."""
        return results.keyed_results(self._db, selection, profile, scorer)

    def days(self) -> list[tuple[dt.date, int]]:
        """The UTC days with results (papers by the day first seen), oldest first, with how
        many papers each."""
        return results.days(self._db)

    def close(self) -> None:
        """Close the database (a later call opens it again)."""
        self._db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _setup(self, conn: sqlite3.Connection) -> None:
        """On every connect: the schema brought up to date, then the old state files."""
        migrate(conn)
        self.imported += import_legacy(conn, self.home)
