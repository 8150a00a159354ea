"""A tag model learned from labelled example papers: softmax regression over TF-IDF features.

Training runs in the dual (kernel) form: with n examples and a vocabulary of tens of thousands
of terms, the n x n Gram matrix is far smaller than the n x V design matrix, and an L2-penalised
linear model is exactly a combination of its training vectors (the representer theorem). The
primal weights ``W = X^T A`` are formed once at the end, so scoring a paper is one small sparse
dot product.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent.backends.local.tagger import paper_terms
from agent.errors import ConfigError
from agent.taxonomy import Taxonomy

if TYPE_CHECKING:
    import numpy as np

MIN_DF = 2  # terms in a single example only memorise that example
MAX_EXAMPLES = 4000  # the Gram matrix grows as n^2: 4,000 examples is 64 MB of float32
# Weak L2 with a fixed number of gradient steps: on a few hundred examples the early stop does
# most of the regularising (5-fold CV on the arXiv dev set was flat from 1e-3 to 1e-5).
L2 = 1e-4
EPOCHS = 1000
SECONDARY_WEIGHT = 0.5  # a paper's later categories count half as much as its first one


def read_examples(path: Path) -> bytes:
    """The examples file's bytes (what the model cache keys on); unreadable is a ConfigError."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read taxonomy examples {path}: {exc}") from None


def load_examples(
    path: Path, taxonomy: Taxonomy, data: bytes | None = None
) -> list[tuple[Counter[str], list[int]]]:
    """Read labelled papers (JSONL: title, abstract, tags or categories) as (terms, tag indices).

    ``data`` is the file's content when the caller has already read it (the model cache does,
    so the model it stores is trained on exactly the bytes its key names).
    """
    position = {name: i for i, name in enumerate(taxonomy.names)}
    examples: list[tuple[Counter[str], list[int]]] = []
    raw = read_examples(path) if data is None else data
    try:
        lines = raw.decode("utf-8").split("\n")  # not at U+2028 inside a JSON string
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read taxonomy examples {path}: {exc}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            labels = row.get("tags") or row.get("categories") or []
            text = (str(row.get("title", "")), str(row.get("abstract") or row.get("summary", "")))
        except (json.JSONDecodeError, AttributeError):
            raise ConfigError(f"taxonomy examples {path}:{lineno}: not a JSON object") from None
        tags: list[int] = []
        for label in labels:
            name = taxonomy.resolve(str(label))
            if name is not None and position[name] not in tags:
                tags.append(position[name])
        if tags:  # papers with none of our tags teach nothing about them
            examples.append((paper_terms(*text), tags))
    return examples[:MAX_EXAMPLES]


class ExampleModel:
    """Per-tag linear scores over TF-IDF features, trained on labelled examples."""

    def __init__(self, examples: Sequence[tuple[Counter[str], list[int]]], n_tags: int) -> None:
        import numpy as np

        self.n_tags = n_tags
        df: Counter[str] = Counter()
        for counts, _ in examples:
            df.update(counts.keys())
        vocab = sorted(t for t, c in df.items() if c >= MIN_DF)
        n = len(examples)
        self._index(vocab, [math.log((n + 1) / (df[t] + 1)) + 1.0 for t in vocab])
        rows = [self._vector(counts) for counts, _ in examples]
        targets = np.zeros((n, n_tags))
        for i, (_, tags) in enumerate(examples):
            for rank, tag in enumerate(tags):
                targets[i, tag] = 1.0 if rank == 0 else SECONDARY_WEIGHT
        targets /= targets.sum(axis=1, keepdims=True)
        gram = _gram(rows, n) + 1.0  # + 1: the constant feature, i.e. a per-tag bias
        alpha = _train_dual(gram, targets)
        # Primal weights W = X^T A, accumulated sparsely; bias = column sums of A.
        weights = np.zeros((len(vocab), n_tags), dtype=np.float32)
        for (idx, vals), a in zip(rows, alpha, strict=True):
            weights[idx] += np.outer(vals, a).astype(np.float32)
        self.weights = weights
        self.bias = alpha.sum(axis=0)

    @classmethod
    def from_arrays(
        cls, terms: list[str], idf: np.ndarray, weights: np.ndarray, bias: np.ndarray
    ) -> ExampleModel:
        """A trained model rebuilt from what ``arrays`` gave (no training)."""
        model = cls.__new__(cls)
        model.n_tags = len(bias)
        model._index(terms, idf.tolist())
        model.weights = weights
        model.bias = bias
        return model

    def arrays(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Everything a trained model is: vocabulary, idf, weights (terms x tags) and bias."""
        import numpy as np

        terms = list(self.vocab)  # in column order: the dict was built that way
        return terms, np.asarray([self.idf[t] for t in terms]), self.weights, self.bias

    def _index(self, vocab: list[str], idf: list[float]) -> None:
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.idf = dict(zip(vocab, idf, strict=True))
        # term -> (column, idf) in one dict: one lookup per term on the per-paper hot path.
        self._features = {t: (i, w) for i, (t, w) in enumerate(zip(vocab, idf, strict=True))}

    def _vector(self, counts: Counter[str]) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        idx, vals = [], []
        features = self._features
        log = math.log
        for term, tf in counts.items():
            feature = features.get(term)
            if feature is not None:
                idx.append(feature[0])
                vals.append((1.0 + log(tf)) * feature[1])  # sublinear TF
        v = np.asarray(vals, dtype=np.float64)
        norm = float(np.sqrt(v @ v)) if len(v) else 0.0
        return np.asarray(idx, dtype=np.int64), (v / norm if norm else v)

    def probabilities(self, counts: Counter[str]) -> list[float]:
        """A distribution over tags for one paper's term counts."""
        import numpy as np

        idx, vals = self._vector(counts)
        logits = vals @ self.weights[idx] + self.bias if len(idx) else self.bias.copy()
        logits = logits - logits.max()
        exps = np.exp(logits)
        return (exps / exps.sum()).tolist()


def _gram(rows: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """X X^T for sparse rows, via a dense block of the used columns only."""
    import numpy as np

    used = np.unique(np.concatenate([idx for idx, _ in rows])) if rows else np.zeros(0, int)
    remap = np.full(int(used.max()) + 1 if len(used) else 1, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    dense = np.zeros((n, len(used)), dtype=np.float32)
    for i, (idx, vals) in enumerate(rows):
        dense[i, remap[idx]] = vals
    return (dense @ dense.T).astype(np.float64)


def _train_dual(gram: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Coefficients A of L2-regularised softmax regression, logits = gram @ A."""
    import numpy as np

    n = gram.shape[0]
    # The largest eigenvalue bounds how far one step moves the logits; stepping n / lam_max
    # keeps gradient descent stable without a line search.
    lam_max = float(np.linalg.eigvalsh(gram)[-1]) if n <= 1500 else float(gram.sum(1).max())
    step = 2.0 * n / lam_max
    alpha = np.zeros_like(targets)
    for _ in range(EPOCHS):
        logits = gram @ alpha
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        # Functional gradient of mean cross-entropy + L2/2 ||W||^2 with respect to A.
        alpha -= step * ((probs - targets) / n + L2 * alpha)
    return alpha
