"""Measure the ranking stage (agent.rank) on a keyword-labelled set, by eval_relevance's protocols.

    python benchmarks/eval_rank.py [DATA.jsonl] [--interests FILE] [--seeds 7,1,2,3,4]
        [--semantic] [--halves] [--json]

(a) criteria alone: one profile holding every interest's criterion; each interest ranks all
    papers by its own ``by_criterion`` score.
(b) criterion + 20 liked papers: per interest and seed, a profile with that criterion and up to
    20 of its relevant papers as liked (``random.Random(seed)``, at most half of the relevant
    ones, exactly as ``eval_relevance.py``), the rest of the papers ranked.
(c) criterion + 20 liked + 20 disliked: (b) plus 20 papers sampled from those with none of
    the interest's gold keywords.
(b0) the criterion alone on (b)'s papers: the paired baseline. "Liked papers never make it
    worse" is (b) >= (b0) and (c) >= (b0) for every seed.
``--semantic`` adds sentence embeddings (the ``semantic`` extra); vectors are cached in
``--cache`` (default: the system's temp dir) by a hash of the text embedded, so only the first
run pays for them. ``--halves`` repeats (a) on the even and the odd lines of DATA (held-out
papers: nothing was tuned on either half). Speed: papers/s of ranking every paper by every
criterion (best of three; tokenising included, paper vectors from the cache), and with
``--semantic`` the papers/s of embedding a sample afresh (the model loaded beforehand).
The old model's figures stay with ``eval_relevance.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_relevance import DEFAULT_DATA, LIKED, read_interests, read_rows

from agent.eval import InterestGold, evaluate_relevance
from agent.interests import Criterion
from agent.models import Paper
from agent.rank import Feedback, Semantic, rank
from agent.rank.semantic import paper_text

DISLIKED = 20
SPEED_SAMPLE = 64  # papers encoded from scratch to time the semantic path

Scores = list[tuple[str, float | None, dict[str, float]]]


class CachedEncoder:
    """all-MiniLM-L6-v2 behind a file cache keyed by the hash of each text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache: dict[str, np.ndarray] = {}
        if path.is_file():
            with np.load(path) as data:
                self.cache = {k: data["vectors"][i] for i, k in enumerate(data["keys"])}
        self._model: object | None = None
        self.dirty = False

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            if self._model is None:
                from agent.backends.local.semantic import MiniLM

                self._model = MiniLM()
            vectors = self._model.encode([texts[i] for i in missing])  # type: ignore[attr-defined]
            for i, v in zip(missing, vectors, strict=True):
                self.cache[keys[i]] = np.asarray(v, dtype=np.float32)
            self.dirty = True
        return np.vstack([self.cache[k] for k in keys])

    def save(self) -> None:
        if self.dirty:
            keys = sorted(self.cache)
            np.savez(
                self.path, keys=np.array(keys), vectors=np.vstack([self.cache[k] for k in keys])
            )
            self.dirty = False


def ranked(
    papers: list[Paper],
    criteria: list[Criterion],
    feedback: Feedback | None,
    encoder: CachedEncoder | None,
    per_criterion: bool,
) -> Scores:
    """(id, relevance, by) per paper; ``by`` is each criterion's score when asked."""
    semantic = Semantic(encoder) if encoder is not None else None
    scores = rank(papers, criteria, feedback, semantic=semantic)
    return [(s.paper_id, s.relevance, s.by_criterion if per_criterion else {}) for s in scores]


def split(
    papers: list[Paper],
    keywords: dict[str, frozenset[str]],
    gold: InterestGold,
    seed: int,
) -> tuple[list[Paper], list[Paper], list[Paper]]:
    """(liked, disliked, rest) for one interest and seed; liked drawn as eval_relevance does."""
    relevant = [p for p in papers if keywords[p.id] & gold.gold]
    liked = random.Random(seed).sample(relevant, min(LIKED, len(relevant) // 2))
    liked_ids = {p.id for p in liked}
    rest = [p for p in papers if p.id not in liked_ids]
    others = [p for p in rest if not keywords[p.id] & gold.gold]
    disliked = random.Random(seed).sample(others, min(DISLIKED, len(others)))
    return liked, disliked, rest


def mean_report(rows: list[tuple[float, float]]) -> dict[str, float]:
    """Mean MAP and P@10 of per-interest (MAP, P@10) pairs."""
    return {
        "map": round(sum(m for m, _ in rows) / len(rows), 4),
        "p_at_10": round(sum(p for _, p in rows) / len(rows), 4),
    }


def speed(
    papers: list[Paper], criteria: list[Criterion], encoder: CachedEncoder | None
) -> dict[str, float]:
    """Papers/s of ranking the whole set by every criterion (best of three, tokenising and the
    criteria's vectors included; paper vectors from the cache), and of embedding papers."""
    out: dict[str, float] = {}
    best = float("inf")
    for _ in range(3):
        semantic = Semantic(encoder) if encoder is not None else None
        start = time.perf_counter()
        rank(papers, criteria, semantic=semantic)
        best = min(best, time.perf_counter() - start)
    out["papers_per_second"] = round(len(papers) / best)
    if encoder is not None:
        fresh = CachedEncoder(Path(tempfile.mkdtemp()) / "none.npz")
        fresh.encode(["load the model before timing"])
        sample = [paper_text(p) + " " for p in papers[:SPEED_SAMPLE]]  # not in any cache
        start = time.perf_counter()
        fresh.encode(sample)
        out["papers_embedded_per_second"] = round(len(sample) / (time.perf_counter() - start), 1)
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    """Every protocol's MAP and P@10, and the speed."""
    papers, keywords = read_rows(args.data)
    criteria, gold = read_interests(args.interests)
    encoder = CachedEncoder(args.cache) if args.semantic else None
    out: dict[str, object] = {"papers": len(papers), "interests": len(gold)}
    alone = evaluate_relevance(ranked(papers, criteria, None, encoder, True), keywords, gold)
    out["criteria_alone"] = {"map": alone.map, "p_at_10": alone.precision_at_10}
    out["criteria_alone_per_interest"] = {r["name"]: r["ap"] for r in alone.interests}
    if args.halves:
        for name, half in (("even", papers[0::2]), ("odd", papers[1::2])):
            report = evaluate_relevance(ranked(half, criteria, None, encoder, True), keywords, gold)
            out[f"criteria_alone_{name}_half"] = {
                "map": report.map,
                "p_at_10": report.precision_at_10,
            }
    for seed in args.seeds:
        rows: dict[str, list[tuple[float, float]]] = {"b0": [], "b": [], "c": []}
        for c, g in zip(criteria, gold, strict=True):
            liked, disliked, rest = split(papers, keywords, g, seed)
            profiles = {
                "b0": None,
                "b": Feedback(liked=liked),
                "c": Feedback(liked=liked, disliked=disliked),
            }
            for key, feedback in profiles.items():
                scores = ranked(rest, [c], feedback, encoder, False)
                report = evaluate_relevance(scores, keywords, [g])
                rows[key].append((report.map, report.precision_at_10))
        for key, values in rows.items():
            out[f"{key}_seed_{seed}"] = mean_report(values)
    if encoder is not None:
        encoder.save()
    out.update(speed(papers, criteria, encoder))
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--interests", type=Path, default=None, help="default: DATA's -interests.json")
    ap.add_argument("--seeds", default="7,1,2,3,4", help="liked-sample seeds, comma-separated")
    ap.add_argument("--semantic", action="store_true", help="add sentence embeddings")
    ap.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "eval-rank-vectors.npz"
    )
    ap.add_argument("--halves", action="store_true", help="(a) on the even and odd halves too")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        ap.exit(2, f"eval_rank.py: {args.data} not found; give the path of relevance-dev.jsonl\n")
    if args.interests is None:
        args.interests = args.data.with_name(args.data.stem + "-interests.json")
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    mode = "semantic" if args.semantic else "default"
    print(f"{result['papers']} papers, {result['interests']} interests, agent.rank ({mode})")
    a = result["criteria_alone"]
    print(f"(a) criteria alone:                 MAP {a['map']:.3f}  P@10 {a['p_at_10']:.2f}")
    for name in ("even", "odd"):
        h = result.get(f"criteria_alone_{name}_half")
        if h:
            print(
                f"(a) {name} half of the papers:       MAP {h['map']:.3f}  P@10 {h['p_at_10']:.2f}"
            )
    print("seed   (b0) criterion   (b) +20 liked    (c) +20 liked +20 disliked   b-b0    c-b0")
    for seed in args.seeds:
        b0, b, c = (result[f"{k}_seed_{seed}"] for k in ("b0", "b", "c"))
        print(
            f"{seed:<6} {b0['map']:.3f} / {b0['p_at_10']:.2f}"
            f"    {b['map']:.3f} / {b['p_at_10']:.2f}"
            f"    {c['map']:.3f} / {c['p_at_10']:.2f}                {b['map'] - b0['map']:+.3f}"
            f"  {c['map'] - b0['map']:+.3f}"
        )
    print(f"{result['papers_per_second']} papers/s ranked (criteria alone)", file=sys.stderr)
    if "papers_embedded_per_second" in result:
        print(f"{result['papers_embedded_per_second']} papers/s embedded", file=sys.stderr)


if __name__ == "__main__":
    main()
