"""Term counts of many papers as one sparse matrix (numpy only), read by rows and by columns.

A day's ranking touches every paper once per signal, so each signal is a few whole-array
operations over the non-zero entries instead of a Python loop per paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class TermMatrix:
    """Rows are papers, columns terms; compressed sparse rows plus a column index."""

    def __init__(self, rows: Sequence[Mapping[str, float]]) -> None:
        # Built by C-level passes (chain, dict.fromkeys, map): no Python loop per entry.
        terms = list(chain.from_iterable(rows))
        vocab = {t: i for i, t in enumerate(dict.fromkeys(terms))}
        self.vocab = vocab
        self.n_rows = len(rows)
        self.indices = np.fromiter(map(vocab.__getitem__, terms), np.int64, len(terms))
        values = chain.from_iterable(r.values() for r in rows)
        self.data = np.fromiter(values, np.float64, len(terms))
        self.row_of = np.repeat(np.arange(self.n_rows), [len(r) for r in rows])
        # Column access: the entries sorted by column, and where each column starts.
        self._by_column = np.argsort(self.indices, kind="stable")
        columns = np.arange(len(vocab) + 1)
        self._column_start = np.searchsorted(self.indices[self._by_column], columns)

    def with_data(self, data: Array) -> TermMatrix:
        """The same sparsity pattern holding other values (a transform of ``data``)."""
        out = object.__new__(TermMatrix)
        out.__dict__.update(self.__dict__)
        out.data = data
        return out

    def terms(self) -> list[str]:
        """The column terms, in column order."""
        return list(self.vocab)

    def column(self, term: str) -> tuple[npt.NDArray[np.int64], Array]:
        """The rows holding ``term`` and their values (empty when no row does)."""
        col = self.vocab.get(term)
        if col is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        entries = self._by_column[self._column_start[col] : self._column_start[col + 1]]
        return self.row_of[entries], self.data[entries]

    def row_sums(self, values: Array | None = None) -> Array:
        """Per row, the sum of its entries (or of ``values``, one per entry)."""
        data = self.data if values is None else values
        return np.bincount(self.row_of, weights=data, minlength=self.n_rows)

    def dot(self, weights: Array) -> Array:
        """Per row, the dot product with a dense vector over the columns."""
        return self.row_sums(self.data * weights[self.indices])

    def row(self, r: int) -> Array:
        """Row ``r`` as a dense vector over the columns."""
        out = np.zeros(len(self.vocab))
        entries = self.row_of == r
        out[self.indices[entries]] = self.data[entries]
        return out

    def weighted_rows(self, row_weights: Array) -> Array:
        """The dense sum over rows of ``row_weights[r] * row r`` (a weighted centroid)."""
        return np.bincount(
            self.indices, weights=self.data * row_weights[self.row_of], minlength=len(self.vocab)
        )
