"""Measure the offline relevance model on a keyword-labelled set (issue 9).

    python benchmarks/eval_relevance.py [DATA.jsonl] [--interests INTERESTS.json] [--seeds S]
        [--batch-negatives] [--ceiling] [--json]

(a) criteria alone: every interest is a named criterion of one model; each interest ranks all
    papers by ``relevance_by[name]``.
(b) criterion plus liked papers: per interest, a model with that criterion and up to 20 of its
    relevant papers as liked (``random.Random(seed)``; at most half of the relevant ones, so a
    small interest keeps papers to find), ranking the rest by ``relevance``. Negatives for the
    liked model: the background table (the default, as the backend runs) or, with
    ``--batch-negatives``, 300 other papers of the batch as arxiv-sanity does.
(c) with ``--ceiling``: what the same model could reach with far more than 20 liked papers.
    Per interest and seed, the papers of (b)'s ranking are split into five folds; each fold is
    ranked by a model trained on every label outside it (the liked sample plus all relevant
    papers of the other folds as liked, up to 300 of their other papers as negatives). No user
    gives that many labels: it is an upper bound on (b) for this family of models, set by how
    noisy the author keywords are.
Held-out checks: ``--seeds 1,2,3,4,5`` repeats (b) with other liked samples, and
``--interests benchmarks/relevance-heldout-interests.json`` scores ten interests written for
this check before any measurement (none of the model's constants were tuned on them).
Metrics come from ``agent.eval``, the code behind ``paper-agent eval --relevance``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from agent.backends.local.relevance import RelevanceModel
from agent.eval import InterestGold, evaluate_relevance
from agent.interests import Criterion, Interests
from agent.models import Paper

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA = SHARED / "relevance-dev.jsonl"
REFERENCES = "references on relevance-dev: BM25 MAP 0.425, TF-IDF+LinearSVC (20 liked) MAP 0.378"
LIKED = 20
NEGATIVES = 300

Scores = list[tuple[str, float | None, dict[str, float]]]


def read_rows(path: Path) -> tuple[list[Paper], dict[str, frozenset[str]]]:
    """Papers and their lower-cased author keywords."""
    papers: list[Paper] = []
    keywords: dict[str, frozenset[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                papers.append(
                    Paper(id=str(row["id"]), title=row["title"], abstract=row["abstract"])
                )
                keywords[papers[-1].id] = frozenset(k.lower() for k in row.get("keywords", []))
    return papers, keywords


def read_interests(path: Path) -> tuple[list[Criterion], list[InterestGold]]:
    """Criteria and their gold keyword sets."""
    data = json.loads(path.read_text(encoding="utf-8"))
    criteria = [Criterion(d["name"], d["criterion"]) for d in data]
    gold = [InterestGold(d["name"], frozenset(g.lower() for g in d["gold"])) for d in data]
    return criteria, gold


def criteria_alone(papers: list[Paper], criteria: list[Criterion]) -> Scores:
    """One model with every criterion; each paper's per-criterion scores."""
    model = RelevanceModel(Interests(criteria=criteria))
    out: Scores = []
    for p in papers:
        s = model.score(p)
        out.append((p.id, s.relevance, s.by))
    return out


def with_liked(
    papers: list[Paper],
    keywords: dict[str, frozenset[str]],
    criterion: Criterion,
    gold: InterestGold,
    seed: int,
    batch_negatives: bool,
) -> Scores:
    """Rank the papers not liked, for one criterion plus a liked sample of its relevant papers."""
    relevant = [p for p in papers if keywords[p.id] & gold.gold]
    liked = random.Random(seed).sample(relevant, min(LIKED, len(relevant) // 2))
    liked_ids = {p.id for p in liked}
    rest = [p for p in papers if p.id not in liked_ids]
    negatives = random.Random(seed).sample(rest, NEGATIVES) if batch_negatives else []
    model = RelevanceModel(Interests(criteria=[criterion], liked=liked), negatives)
    return [(p.id, model.score(p).relevance, {}) for p in rest]


def ceiling(
    papers: list[Paper],
    keywords: dict[str, frozenset[str]],
    criterion: Criterion,
    gold: InterestGold,
    seed: int,
    folds: int = 5,
) -> Scores:
    """(b)'s ranking, each fold scored by a model trained on every label outside it."""
    relevant = [p for p in papers if keywords[p.id] & gold.gold]
    liked = random.Random(seed).sample(relevant, min(LIKED, len(relevant) // 2))
    liked_ids = {p.id for p in liked}
    rest = [p for p in papers if p.id not in liked_ids]
    out: Scores = []
    for fold in range(folds):
        train = [p for i, p in enumerate(rest) if i % folds != fold]
        positives = liked + [p for p in train if keywords[p.id] & gold.gold]
        others = [p for p in train if not keywords[p.id] & gold.gold]
        negatives = random.Random(seed).sample(others, min(NEGATIVES, len(others)))
        model = RelevanceModel(Interests(criteria=[criterion], liked=positives), negatives)
        held = [p for i, p in enumerate(rest) if i % folds == fold]
        out += [(p.id, model.score(p).relevance, {}) for p in held]
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    """Every protocol's MAP and P@10."""
    papers, keywords = read_rows(args.data)
    criteria, gold = read_interests(args.interests)
    out: dict[str, object] = {"papers": len(papers), "interests": len(gold)}
    start = time.perf_counter()
    alone = evaluate_relevance(criteria_alone(papers, criteria), keywords, gold)
    elapsed = time.perf_counter() - start
    out["criteria_alone"] = {"map": alone.map, "p_at_10": alone.precision_at_10}
    out["criteria_alone_per_interest"] = {r["name"]: r["ap"] for r in alone.interests}
    out["papers_per_second"] = round(len(papers) / elapsed)
    for seed in args.seeds:
        maps, p10s, per = [], [], {}
        for c, g in zip(criteria, gold, strict=True):
            scores = with_liked(papers, keywords, c, g, seed, args.batch_negatives)
            report = evaluate_relevance(scores, keywords, [g])
            maps.append(report.map)
            p10s.append(report.precision_at_10)
            per[g.name] = report.map
        out[f"with_liked_seed_{seed}"] = {
            "map": round(sum(maps) / len(maps), 4),
            "p_at_10": round(sum(p10s) / len(p10s), 4),
            "per_interest": per,
        }
        if args.ceiling:
            maps = []
            for c, g in zip(criteria, gold, strict=True):
                scores = ceiling(papers, keywords, c, g, seed)
                maps.append(evaluate_relevance(scores, keywords, [g]).map)
            out[f"ceiling_seed_{seed}"] = {"map": round(sum(maps) / len(maps), 4)}
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--interests", type=Path, default=None, help="default: DATA's -interests.json")
    ap.add_argument("--seeds", default="7", help="liked-sample seeds, comma-separated")
    ap.add_argument("--batch-negatives", action="store_true", help="300 batch papers as negatives")
    ap.add_argument("--ceiling", action="store_true", help="also (c): trained on every label")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        # The labelled set is not shipped: it comes with the project's shared data.
        ap.exit(
            2,
            f"eval_relevance.py: {args.data} not found; give the path of relevance-dev.jsonl"
            f" from the shared data (e.g. ../shared/data/relevance-dev.jsonl)\n",
        )
    if args.interests is None:
        args.interests = args.data.with_name(args.data.stem + "-interests.json")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['papers']} papers, {result['interests']} interests; {REFERENCES}")
    a = result["criteria_alone"]
    print(f"(a) criteria alone:          MAP {a['map']:.3f}  P@10 {a['p_at_10']:.2f}")
    for seed in args.seeds:
        b = result[f"with_liked_seed_{seed}"]
        print(f"(b) + {LIKED} liked, seed {seed:<4}  MAP {b['map']:.3f}  P@10 {b['p_at_10']:.2f}")
        if args.ceiling:
            c = result[f"ceiling_seed_{seed}"]
            print(f"(c) ceiling, seed {seed:<4}      MAP {c['map']:.3f}  (all labels but a fold)")
    print(f"{result['papers_per_second']} papers/s (criteria alone)", file=sys.stderr)


if __name__ == "__main__":
    main()
