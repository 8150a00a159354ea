"""Background document frequencies: how common each term is in research abstracts at large.

A taxonomy of twenty tags is far too small a corpus to tell "model" (in every abstract) from
"robot" (in few), so the tagger weighs terms by IDF from a bundled table built from a thousand
or so unlabelled abstracts (the Hugging Face sample page, SciTLDR and arXiv abstracts; no labels
are used). Rebuild it with ``python -m agent.backends.local.background FILE...``.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING

from agent.backends.local.text import features, stem, term

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

TABLE = Path(__file__).parent / "background_df.json.gz"
MIN_DF = 2  # a term seen once tells nothing beyond "rare"; dropping it keeps the table small


@dataclass(frozen=True)
class DocFreq:
    """Document frequencies over ``n_docs`` documents; unseen terms count as rare."""

    n_docs: int
    df: dict[str, int]

    def idf(self, term: str) -> float:
        """Smoothed IDF: log((N + 1) / (df + 1)) + 1, so every term weighs at least 1."""
        return math.log((self.n_docs + 1) / (self.df.get(term, 0) + 1)) + 1.0

    def idfs(self, terms: Iterable[str]) -> npt.NDArray[np.float64]:
        """``idf`` of many terms at once, as an array."""
        import numpy as np

        df = np.fromiter(map(self.df.get, terms, repeat(0)), np.float64)
        return np.log((self.n_docs + 1) / (df + 1.0)) + 1.0


def count_df(texts: Iterable[str], min_df: int = MIN_DF) -> DocFreq:
    """Count in how many of ``texts`` each unigram and bigram term occurs."""
    counts: Counter[str] = Counter()
    n = 0
    for text in texts:
        n += 1
        counts.update(set(features(text)))
    return DocFreq(n, {t: c for t, c in sorted(counts.items()) if c >= min_df})


@cache
def background() -> DocFreq:
    """The bundled background table (empty when missing: every term is then equally rare)."""
    try:
        with gzip.open(TABLE, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return DocFreq(1, {})
    return DocFreq(int(data["n_docs"]), {str(k): int(v) for k, v in data["df"].items()})


# Two lower-case fragments a line break of the source split one word into ("revo lutionized",
# "tech- nique"); the lookahead lets each word be the first of a pair and the second of another.
_PAIR = re.compile(r"(?<![\w-])([A-Za-z]?[a-z]+)(-?) (?=([a-z]{2,})\b(?!-))")


def split_words(text: str, docfreq: DocFreq | None = None) -> list[str]:
    """Each "revo lutionized" in ``text``: two fragments that are no known words while the two
    joined are one (known: in the background table). After a hyphen ("learn- ing") only the
    second must be unknown; without one, "time stamps" and "speed ups" are two words."""
    known = (docfreq or background()).df
    found = []
    for match in _PAIR.finditer(text):
        head, hyphen, tail = match.groups()
        second = term(tail)  # cached: most words were seen before
        if not second or second in known:
            continue  # a stopword, or a word of its own
        first = term(head.lower())
        if not first or (not hyphen and first in known):
            continue
        if stem(head.lower() + tail) in known:
            found.append(f"{head}{hyphen} {tail}")
    return found


def join_split_words(text: str, docfreq: DocFreq | None = None) -> str:
    """``text`` with each word ``split_words`` finds joined again ("revolutionized")."""
    for split in split_words(text, docfreq):
        head, _, tail = split.partition(" ")
        text = text.replace(split, head.rstrip("-") + tail, 1)
    return text


def _texts_from(path: Path) -> Iterable[str]:
    # JSONL with title/abstract, or the Daily Papers page text (paragraphs of one line each).
    with path.open(encoding="utf-8") as fh:
        if path.suffix == ".jsonl":
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    yield f"{row.get('title', '')} {row.get('abstract', '')}"
        else:
            for para in fh.read().split("\n\n"):
                if len(para.split()) >= 40:  # abstracts, not titles or page chrome
                    yield para


def main(argv: list[str]) -> None:
    """Write the background table from the given JSONL / page-text files."""
    table = count_df(t for arg in argv for t in _texts_from(Path(arg)))
    payload = {"n_docs": table.n_docs, "min_df": MIN_DF, "df": table.df}
    with gzip.open(TABLE, "wt", encoding="utf-8", compresslevel=9) as fh:
        # mtime=0 is not exposed by gzip.open; a fixed key order keeps rebuilds diffable anyway.
        json.dump(payload, fh, separators=(",", ":"), sort_keys=True)
    print(f"{TABLE}: {table.n_docs} documents, {len(table.df)} terms", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
