"""How many human-written summaries the check for empty answers would refuse (a benchmark).

    python benchmarks/summary_refusals.py [examples/scitldr-a-dev.jsonl]

An LLM's summary is refused when it is the prompt's placeholder, a tag name, the title or the
abstract's opening copied word for word (``agent.llm.answers.not_a_summary``). Good summaries
must pass: this counts the gold TLDRs of SciTLDR-A dev (``tldrs``, written by authors and
annotators) that the rule would refuse, by reason, and prints them.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from agent.llm.answers import not_a_summary
from agent.llm.prompts import PromptBuilder
from agent.models import Paper
from agent.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Check every gold summary of the file against its own paper."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", default=ROOT / "examples/scitldr-a-dev.jsonl")
    args = ap.parse_args()
    taxonomy = load_taxonomy()
    placeholders = PromptBuilder(taxonomy, max_tags=3, summary_words=40).placeholders
    total = 0
    reasons: Counter[str] = Counter()
    for line in args.data.open(encoding="utf-8"):
        row = json.loads(line)
        paper = Paper(id=str(row["paper_id"]), title=row["title"], abstract=row["abstract"])
        for tldr in row["tldrs"]:
            total += 1
            why = not_a_summary(tldr, taxonomy, paper, placeholders)
            if why is not None:
                reasons[why.split(";")[0]] += 1
                print(f"{paper.id}: {why.split(';')[0]}: {tldr[:100]!r}")
    refused = sum(reasons.values())
    print(f"{refused} of {total} gold summaries refused ({100 * refused / total:.1f}%)")
    for reason, count in reasons.most_common():
        print(f"  {count}  {reason}")


if __name__ == "__main__":
    main()
