"""``paper-agent eval``: score a results file against gold summaries and tags."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("eval")
@click.argument("results", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--gold",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Gold JSONL: id or paper_id, tldrs and/or summary, tags or categories.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(results: Path, gold: Path, as_json: bool) -> None:
    """Score RESULTS.jsonl against gold: ROUGE-1/2/L, tag precision/recall/F1, precision@1."""
    from agent.eval import evaluate_files, format_table

    report = evaluate_files(results, gold)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        click.echo(format_table(report))
