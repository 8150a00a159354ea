"""Time to read a reference library as liked papers (issue 18, item 5), and the LaTeX decoding
choice behind it.

    python benchmarks/bench_refs.py                 # 5,000 entries, 3 rounds: about a minute
    python benchmarks/bench_refs.py --entries 1000 --rounds 5

It writes a BibTeX library of ``--entries`` entries as Zotero exports them (LaTeX accents in the
authors, braces in the title, a 1,700-character abstract with LaTeX in it) and reads it through
``read_liked``, the whole path a run takes, ``--rounds`` times; then the same file as RIS and
as CSL JSON. It prints the median of each, per entry too, and the time to decode one abstract
with ``latex_to_text`` and with pylatexenc (bibtexparser's ``LatexDecodingMiddleware``), which
this project does not use for being that much slower. Exits 1 when an entry is lost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.sources.refs import LikedOptions, read_liked  # noqa: E402
from agent.sources.refs.latex import latex_to_text  # noqa: E402

ABSTRACT = (
    r"We propose a {\em new} method for $\mathbf{x}$-conditioned learning with M{\"u}ller's "
    r"trick --- and show it is 50\% faster. "
) * 14


def bibtex(entries: int) -> str:
    """A library of ``entries`` entries with LaTeX in their fields."""
    return "".join(
        f"@article{{key{i},\n"
        f"  title = {{{{A}} Study of {{Transformers}} number {i}}},\n"
        f'  author = {{Smith, John and M{{\\"u}}ller, J{{\\"o}}rg and Doe, Jane}},\n'
        f"  journal = {{JMLR}},\n  year = {{2020}},\n  month = mar,\n"
        f"  doi = {{10.1000/bench.{i}}},\n"
        f"  abstract = {{{ABSTRACT}}}\n}}\n\n"
        for i in range(entries)
    )


def ris(entries: int) -> str:
    """The same library as RIS (plain text: RIS carries no LaTeX)."""
    abstract = latex_to_text(ABSTRACT)
    return "".join(
        f"TY  - JOUR\nTI  - A Study of Transformers number {i}\nAU  - Smith, John\n"
        f"AU  - Müller, Jörg\nPY  - 2020\nDO  - 10.1000/bench.{i}\nAB  - {abstract}\nER  - \n\n"
        for i in range(entries)
    )


def csl(entries: int) -> str:
    """The same library as CSL JSON."""
    abstract = latex_to_text(ABSTRACT)
    items = [
        {
            "id": f"key{i}",
            "type": "article-journal",
            "title": f"A Study of Transformers number {i}",
            "author": [{"family": "Smith", "given": "John"}, {"family": "Müller", "given": "Jörg"}],
            "issued": {"date-parts": [[2020, 3]]},
            "DOI": f"10.1000/bench.{i}",
            "abstract": abstract,
        }
        for i in range(entries)
    ]
    return json.dumps(items, ensure_ascii=False)


def timed(path: Path, rounds: int, entries: int) -> float:
    """The median seconds ``read_liked`` takes on ``path``; exits 1 if an entry is lost."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        papers = read_liked(str(path), LikedOptions(notify=lambda line: None))
        times.append(time.perf_counter() - start)
        if len(papers) != entries:
            sys.exit(f"{path.name}: {len(papers)} papers from {entries} entries")
    return statistics.median(times)


def decode_ms(decode, runs: int) -> float:
    """Median milliseconds to decode ABSTRACT once."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        decode(ABSTRACT)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    """Write the libraries, read each ``--rounds`` times, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as where:
        files = {
            "library.bib": bibtex(args.entries),
            "library.ris": ris(args.entries),
            "library.json": csl(args.entries),
        }
        print(f"{args.entries} entries, median of {args.rounds} rounds")
        for name, content in files.items():
            path = Path(where) / name
            path.write_text(content, encoding="utf-8")
            seconds = timed(path, args.rounds, args.entries)
            per = seconds / args.entries * 1000
            size = len(content.encode()) / 1e6
            print(f"  {name:13} {size:5.1f} MB  {seconds:6.2f} s  {per:.2f} ms per entry")
    print(f"one {len(ABSTRACT):,}-character abstract with LaTeX, median of 50:")
    print(f"  latex_to_text   {decode_ms(latex_to_text, 50):7.2f} ms")
    try:
        from pylatexenc.latex2text import LatexNodes2Text
    except ImportError:
        print("  pylatexenc      (not installed)")
        return
    decoder = LatexNodes2Text(math_mode="text")
    print(f"  pylatexenc      {decode_ms(decoder.latex_to_text, 50):7.2f} ms")


if __name__ == "__main__":
    main()
