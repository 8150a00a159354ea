"""Run the offline backend over a labelled JSONL, write results.jsonl, and score it.

    python benchmarks/eval_local.py DATA.jsonl -o results.jsonl [--taxonomy T.toml] [--cv K]

With ``--cv K`` the taxonomy's tags are learned from DATA itself, K-fold: each paper is tagged
by a model trained on the other folds only, so the score is an honest estimate of how the
examples-trained tagger does on papers it has never seen. The results file is the same format
``paper-agent run`` writes, so ``paper-agent eval results.jsonl --gold DATA.jsonl`` re-scores it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.backends.local import LocalBackend
from agent.eval import evaluate_files, format_table
from agent.models import Paper, PaperResult
from agent.taxonomy import Taxonomy, load_taxonomy


def read_jsonl(path: Path) -> Iterator[tuple[Paper, dict[str, object]]]:
    """Papers from a JSONL file (id or paper_id, title, abstract), with their raw rows."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                pid = str(row.get("id") or row.get("paper_id"))
                paper = Paper(id=pid, title=row.get("title", ""), abstract=row.get("abstract", ""))
                yield paper, row


def annotate_all(backend: LocalBackend, papers: list[Paper]) -> list[PaperResult]:
    """One result per paper, in input order."""
    return [
        PaperResult.ok(p, backend.annotate_sync(p), backend.name, backend.model) for p in papers
    ]


def cross_validated(
    taxonomy: Taxonomy, rows: list[tuple[Paper, dict[str, object]]], k: int, **kw: Any
) -> list[PaperResult]:
    """Results where each paper is tagged by a model that never saw it (K-fold)."""
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)  # fixed seed: the same folds every run
    fold_of = {idx: pos % k for pos, idx in enumerate(order)}
    results: list[PaperResult | None] = [None] * len(rows)
    with tempfile.TemporaryDirectory() as tmp:
        for fold in range(k):
            train = Path(tmp) / f"train-{fold}.jsonl"
            with train.open("w", encoding="utf-8") as fh:
                for i, (_, row) in enumerate(rows):
                    if fold_of[i] != fold:
                        fh.write(json.dumps(row) + "\n")
            backend = LocalBackend(taxonomy.model_copy(update={"examples": train}), **kw)
            for i, (paper, _) in enumerate(rows):
                if fold_of[i] == fold:
                    ann = backend.annotate_sync(paper)
                    results[i] = PaperResult.ok(paper, ann, backend.name, backend.model)
    return [r for r in results if r is not None]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, annotate, write results and print the eval table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="labelled JSONL (also the gold file)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="results.jsonl to write")
    ap.add_argument("--taxonomy", type=Path, default=None, help="taxonomy TOML (default: bundled)")
    ap.add_argument("--cv", type=int, default=0, help="K-fold cross-validation, learning from DATA")
    ap.add_argument("--max-tags", type=int, default=3)
    ap.add_argument("--summary-words", type=int, default=40)
    ap.add_argument("--json", action="store_true", help="print metrics as JSON")
    ap.add_argument(
        "--semantic", action="store_true", help="as run --semantic (needs the semantic extra)"
    )
    args = ap.parse_args(argv)

    taxonomy = load_taxonomy(args.taxonomy)
    rows = list(read_jsonl(args.data))
    kw: dict[str, Any] = {"max_tags": args.max_tags, "summary_words": args.summary_words}
    if args.semantic:
        from agent.backends.local.semantic import SemanticScorer

        kw["semantic"] = SemanticScorer(taxonomy)  # the taxonomy's tag texts, embedded once
    start = time.perf_counter()
    if args.cv > 1:
        results = cross_validated(taxonomy, rows, args.cv, **kw)
    else:
        results = annotate_all(LocalBackend(taxonomy, **kw), [p for p, _ in rows])
    elapsed = time.perf_counter() - start
    with args.output.open("w", encoding="utf-8") as fh:
        for result in results:
            fh.write(result.to_line() + "\n")
    print(f"{len(results)} papers in {elapsed:.2f}s -> {args.output}", file=sys.stderr)
    report = evaluate_files(args.output, args.data)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_table(report))


if __name__ == "__main__":
    main()
