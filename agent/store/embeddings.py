"""Embeddings in the library: one vector per paper and embedding model, kept as little-endian
float32 bytes, so a paper is embedded once whatever ranks it later."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from agent.store.db import Database, chunks, marks, now
from agent.store.papers import row_ids

if TYPE_CHECKING:  # numpy is imported on first use: opening the library stays fast
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

FLOAT32 = "<f4"


class Embeddings:
    """Vectors per paper and model."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, model: str, vectors: Mapping[str, npt.ArrayLike]) -> int:
        """Store (or replace) each stored paper's vector for ``model`` in one transaction;
        returns how many were stored."""
        import numpy as np

        rows = {key: np.asarray(vector, dtype=FLOAT32).ravel() for key, vector in vectors.items()}
        when = now()

        def write(conn: sqlite3.Connection) -> int:
            ids = row_ids(conn, list(rows))
            missing = [k for k in rows if k not in ids]
            if missing:
                raise KeyError(f"no paper {missing[0]!r} in the library")
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (paper, model, dim, vector, created)"
                " VALUES (?, ?, ?, ?, ?)",
                [(ids[k], model, len(v), v.tobytes(), when) for k, v in rows.items()],
            )
            return len(rows)

        return self._db.write(write) if rows else 0

    def get(self, model: str, keys: Sequence[str]) -> dict[str, Vector]:
        """The stored vectors of these papers for ``model`` (papers without one are left out)."""
        import numpy as np

        def query(conn: sqlite3.Connection) -> dict[str, Vector]:
            found: dict[str, Vector] = {}
            for part in chunks(keys):
                sql = (
                    "SELECT p.key, e.vector FROM embeddings e JOIN papers p ON p.id = e.paper"
                    f" WHERE e.model = ? AND p.key IN ({marks(len(part))})"
                )
                for key, blob in conn.execute(sql, (model, *part)):
                    found[key] = np.frombuffer(blob, dtype=FLOAT32)
            return found

        return self._db.read(query) if keys else {}

    def count(self, model: str | None = None) -> int:
        """How many vectors are stored (for one model, or all)."""
        sql = "SELECT count(*) FROM embeddings" + (" WHERE model = ?" if model else "")
        params = (model,) if model else ()
        return int(self._db.read(lambda conn: conn.execute(sql, params).fetchone()[0]))
