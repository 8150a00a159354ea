"""Speed and memory of the offline backend (a benchmark, not a test).

    python benchmarks/bench_local.py [--papers 100000] [--taxonomy T.toml] [--seed-file F.jsonl]

1. Throughput: papers per second of ``annotate_sync`` on one core, after the backend is built.
2. Streaming: N papers (synthesized by perturbing the seed papers) written to a JSONL file, then
   a child process streams them to results.jsonl one line at a time; its peak RSS is reported
   from ``getrusage(RUSAGE_CHILDREN)``, so the parent's own memory does not count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "arxiv-categories-dev.jsonl"


def seed_papers(path: Path) -> list[dict[str, str]]:
    """Title/abstract rows to perturb."""
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [{"title": r["title"], "abstract": r.get("abstract", "")} for r in rows]


def synthesize(seeds: list[dict[str, str]], n: int, rng: random.Random) -> Iterator[dict[str, str]]:
    """``n`` distinct papers: seed abstracts with shuffled sentences and dropped words."""
    for i in range(n):
        seed = seeds[i % len(seeds)]
        sents = seed["abstract"].split(". ")
        rng.shuffle(sents)
        words = ". ".join(sents).split()
        if len(words) > 10:
            del words[rng.randrange(len(words))]
        yield {"id": f"synth-{i}", "title": seed["title"], "abstract": " ".join(words)}


def throughput(taxonomy: str | None, seeds: list[dict[str, str]], n: int) -> dict[str, float]:
    """Papers per second of annotate_sync on ``n`` synthesized papers, after loading."""
    from agent.backends.local import LocalBackend
    from agent.models import Paper
    from agent.taxonomy import load_taxonomy

    t0 = time.perf_counter()
    backend = LocalBackend(load_taxonomy(taxonomy))
    backend.annotate_sync(Paper(id="warm", title="warm up", abstract="Builds lazy state."))
    load = time.perf_counter() - t0
    papers = [Paper(**row) for row in synthesize(seeds, n, random.Random(1))]
    start = time.perf_counter()
    for paper in papers:
        backend.annotate_sync(paper)
    elapsed = time.perf_counter() - start
    return {"papers": n, "load_s": round(load, 3), "papers_per_s": round(n / elapsed, 1)}


def main() -> None:
    """Run both measurements and print them as JSON lines."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=int, default=100_000, help="papers to stream")
    ap.add_argument("--throughput-papers", type=int, default=5_000)
    ap.add_argument("--taxonomy", default=None, help="taxonomy TOML (default: bundled)")
    ap.add_argument("--seed-file", type=Path, default=SEED)
    args = ap.parse_args()

    seeds = seed_papers(args.seed_file)
    print(json.dumps({"throughput": throughput(args.taxonomy, seeds, args.throughput_papers)}))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "papers.jsonl", Path(tmp) / "results.jsonl"
        with src.open("w", encoding="utf-8") as fh:
            for row in synthesize(seeds, args.papers, random.Random(2)):
                fh.write(json.dumps(row) + "\n")
        # The real command, as a user runs it: readers, dedupe, pipeline, ordered writer.
        cmd = [sys.executable, "-m", "agent", "run", str(src), "-o", str(dst), "--backend", "local"]
        if args.taxonomy:
            cmd += ["--taxonomy", args.taxonomy]
        # One core: no BLAS thread pools in the child.
        env = os.environ | {
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PAPER_AGENT_HOME": tmp,
        }
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        written = sum(1 for _ in dst.open(encoding="utf-8"))
        child = {
            "papers": written,
            "seconds": round(seconds, 1),
            "papers_per_s": round(written / seconds, 1),
            "input_mb": round(src.stat().st_size / 2**20, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        }
        print(json.dumps({"stream": child}))


if __name__ == "__main__":
    main()
