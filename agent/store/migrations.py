"""The library's schema, as numbered migrations run once each on ``PRAGMA user_version``.

A migration is a function ``mNNN_name(conn)``; the file's ``user_version`` is the number of the
last one applied. Each runs in its own write transaction that also sets the version, so two
processes opening an old file apply it once: the second finds the version already moved on.
Never edit a released migration: add the next one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from agent.errors import ConfigError
from agent.store.db import transaction

Migration = Callable[[sqlite3.Connection], None]


def m001_initial(conn: sqlite3.Connection) -> None:
    """Papers, annotations, runs, scores, digests, deliveries, feedback, batch jobs."""
    # Papers are joined by their integer id; ``key`` is the seen-store's key (arXiv id without
    # version, else normalized title), ``title_key`` lets a title-only source find a paper
    # stored by its id. ``seen`` is when a run's result for it was written (NULL: not seen).
    _script(
        conn,
        """
        CREATE TABLE papers (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            title_key TEXT,
            arxiv_id TEXT,
            paper_id TEXT NOT NULL,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL DEFAULT '',
            authors TEXT NOT NULL DEFAULT '[]',
            url TEXT,
            categories TEXT NOT NULL DEFAULT '[]',
            published TEXT,
            sources TEXT NOT NULL DEFAULT '[]',
            metadata TEXT NOT NULL DEFAULT '{}',
            first_seen TEXT NOT NULL,
            updated TEXT NOT NULL,
            seen TEXT,
            seen_source TEXT
        );
        CREATE INDEX papers_title ON papers (title_key);
        CREATE INDEX papers_paper_id ON papers (paper_id);
        CREATE INDEX papers_first_seen ON papers (first_seen);
        CREATE INDEX papers_published ON papers (published);
        CREATE INDEX papers_updated ON papers (updated);
        CREATE INDEX papers_seen ON papers (seen) WHERE seen IS NOT NULL;

        CREATE TABLE annotations (
            id INTEGER PRIMARY KEY,
            paper INTEGER NOT NULL REFERENCES papers (id),
            settings TEXT NOT NULL,
            tags TEXT NOT NULL,
            summary TEXT NOT NULL,
            backend TEXT NOT NULL,
            model TEXT,
            usage TEXT NOT NULL,
            created TEXT NOT NULL,
            UNIQUE (paper, settings)
        );
        CREATE INDEX annotations_created ON annotations (created);

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started TEXT NOT NULL,
            finished TEXT,
            status TEXT NOT NULL,
            command TEXT NOT NULL,
            settings TEXT NOT NULL,
            pid INTEGER,
            exit_code INTEGER,
            note TEXT
        );
        CREATE INDEX runs_started ON runs (started);

        CREATE TABLE run_papers (
            run INTEGER NOT NULL REFERENCES runs (id),
            position INTEGER NOT NULL,
            paper INTEGER NOT NULL REFERENCES papers (id),
            paper_id TEXT NOT NULL,
            source TEXT NOT NULL,
            status TEXT NOT NULL,
            annotation INTEGER REFERENCES annotations (id),
            backend TEXT NOT NULL,
            model TEXT,
            cached INTEGER NOT NULL,
            usage TEXT NOT NULL,
            error_type TEXT,
            error_message TEXT,
            updated TEXT NOT NULL,
            PRIMARY KEY (run, position)
        );
        CREATE INDEX run_papers_paper ON run_papers (paper, run, position);

        CREATE TABLE scores (
            id INTEGER PRIMARY KEY,
            paper INTEGER NOT NULL REFERENCES papers (id),
            profile TEXT NOT NULL,
            scorer TEXT NOT NULL,
            relevance REAL NOT NULL,
            why TEXT,
            updated TEXT NOT NULL,
            UNIQUE (paper, profile, scorer)
        );
        CREATE INDEX scores_updated ON scores (updated);

        CREATE TABLE digests (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            day TEXT NOT NULL,
            profile TEXT NOT NULL,
            created TEXT NOT NULL,
            UNIQUE (hash, day, profile)
        );
        CREATE INDEX digests_day ON digests (day);

        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            digest INTEGER NOT NULL REFERENCES digests (id),
            channel TEXT NOT NULL,
            destination TEXT NOT NULL,
            message INTEGER NOT NULL,
            total INTEGER NOT NULL,
            at TEXT NOT NULL,
            UNIQUE (digest, destination, message)
        );
        CREATE INDEX deliveries_destination ON deliveries (destination);

        CREATE TABLE delivered_papers (
            destination TEXT NOT NULL,
            paper INTEGER NOT NULL REFERENCES papers (id),
            delivery INTEGER NOT NULL REFERENCES deliveries (id),
            PRIMARY KEY (destination, paper)
        ) WITHOUT ROWID;

        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            paper INTEGER NOT NULL REFERENCES papers (id),
            profile TEXT NOT NULL,
            vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
            origin TEXT NOT NULL,
            at TEXT NOT NULL,
            UNIQUE (paper, profile)
        );
        CREATE INDEX feedback_profile ON feedback (profile, at);

        CREATE TABLE batch_jobs (
            sha256 TEXT NOT NULL,
            created REAL NOT NULL,
            batch_id TEXT,
            status TEXT NOT NULL,
            job TEXT NOT NULL,
            updated TEXT NOT NULL,
            PRIMARY KEY (sha256, created)
        );
        CREATE INDEX batch_jobs_batch ON batch_jobs (batch_id);

        CREATE TABLE legacy_imports (
            name TEXT PRIMARY KEY,
            signature TEXT NOT NULL,
            imported TEXT NOT NULL,
            rows INTEGER NOT NULL,
            problem TEXT
        );
        """,
    )


def m002_embeddings(conn: sqlite3.Connection) -> None:
    """One vector per paper and embedding model, as little-endian float32 bytes."""
    _script(
        conn,
        """
        CREATE TABLE embeddings (
            paper INTEGER NOT NULL REFERENCES papers (id),
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (paper, model)
        );
        """,
    )


def m003_delivery_papers(conn: sqlite3.Connection) -> None:
    """Every paper each delivered message carried (``delivered_papers`` keeps only the first
    message that brought a paper to a destination), filled from what is already recorded."""
    _script(
        conn,
        """
        CREATE TABLE delivery_papers (
            delivery INTEGER NOT NULL REFERENCES deliveries (id),
            paper INTEGER NOT NULL REFERENCES papers (id),
            PRIMARY KEY (delivery, paper)
        ) WITHOUT ROWID;
        INSERT INTO delivery_papers (delivery, paper) SELECT delivery, paper FROM delivered_papers;
        """,
    )


def m004_result_fields(conn: sqlite3.Connection) -> None:
    """The fields of a results line that no other column holds (``published``,
    ``categories``, ``relevance``, ``why``, ``relevance_by``: ``agent.store.runs.FIELDS``), as
    JSON, so a run reads back line for line (NULL: none)."""
    _script(conn, "ALTER TABLE run_papers ADD COLUMN fields TEXT;")


MIGRATIONS: tuple[Migration, ...] = (
    m001_initial,
    m002_embeddings,
    m003_delivery_papers,
    m004_result_fields,
)
LATEST = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    """The number of the last migration applied to the file (0: a new file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, upto: int = LATEST) -> int:
    """Apply the migrations the file lacks, up to ``upto``; returns how many ran here."""
    found = version(conn)
    if found > LATEST:
        raise ConfigError(
            f"the library was written by a newer paper-agent (schema {found}, this one knows "
            f"{LATEST}); upgrade paper-agent"
        )
    ran = 0
    for number in range(found + 1, upto + 1):
        with transaction(conn, write=True):
            if version(conn) >= number:
                continue  # another process applied it while this one waited for the lock
            MIGRATIONS[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {number}")
            ran += 1
    return ran


def _script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``script`` statement by statement inside the caller's transaction
    (``executescript`` would commit it first)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement.strip()[:60]}")
