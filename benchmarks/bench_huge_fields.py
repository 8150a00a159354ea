"""Memory to read one paper with huge fields, from a JSONL file and from an RSS feed (issue 16,
item 2).

    python benchmarks/bench_huge_fields.py            # a few seconds
    python benchmarks/bench_huge_fields.py --mb 16

Each input holds one paper whose title, author list and one more field (a metadata value in the
file, the abstract in the feed) are ``--mb`` million characters each, made of short words and
names, the worst case for splitting. The figure is Python's peak allocation (tracemalloc)
while the source turns it into a Paper, the bounded fields printed beside it. Exits 1 when a
field is not within its bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.models import MAX_AUTHORS, MAX_TITLE_CHARS, Paper  # noqa: E402
from agent.sources import SourceOptions, Window, parse_source, read_papers  # noqa: E402
from tests.feeds import paper, rss  # noqa: E402


def huge(chars: int) -> dict[str, str]:
    """The huge fields: ``chars`` characters each."""
    return {
        "title": "word " * (chars // 5),
        "authors": "Ada Lovelace, " * (chars // 14),
        "other": "word " * (chars // 5),
    }


def from_file(chars: int) -> tuple[Paper, int]:
    fields = huge(chars)
    row = {"id": "p1", "title": fields["title"], "abstract": "We study a thing. It works."}
    row |= {"authors": fields["authors"], "venue": fields["other"]}
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / "huge.jsonl"
        path.write_text(json.dumps(row) + "\n", encoding="utf-8")
        tracemalloc.start()
        [got] = read_papers([str(path)])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return got, peak


def from_feed(chars: int) -> tuple[Paper, int]:
    fields = huge(chars)
    item = {**paper(1), "title": fields["title"], "abstract": fields["other"]}
    body = rss([item]).replace("Ada Lovelace, Alan Turing", fields["authors"]).encode()
    url = "http://127.0.0.1:9/rss"  # never reached: the transport answers in process

    async def fetch() -> tuple[Any, int]:
        options = SourceOptions(window=Window.parse(), arxiv_delay=0, arxiv_rss_url=url)
        source = parse_source("arxiv-rss:cs.LG", options)
        transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
        async with httpx.AsyncClient(transport=transport) as http:
            tracemalloc.start()
            papers = await source.fetch(http)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return papers[0], peak

    return asyncio.run(fetch())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="millions of characters a field")
    args = parser.parse_args()
    chars = int(args.mb * 1_000_000)
    bounded = True
    for name, read in (("JSONL file", from_file), ("RSS feed", from_feed)):
        got, peak = read(chars)
        print(
            f"{name}: 3 fields of {args.mb:g}M characters -> peak {peak / 1e6:.0f} MB; "
            f"title {len(got.title):,} characters, {len(got.authors):,} authors"
        )
        bounded &= len(got.title) <= MAX_TITLE_CHARS and len(got.authors) <= MAX_AUTHORS
    return 0 if bounded else 1


if __name__ == "__main__":
    sys.exit(main())
