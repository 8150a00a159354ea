"""``paper-agent eval``: score a results file against gold summaries, tags or interests, and
count summaries with visible defects (which needs no gold)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agent.cli.types import FILE


@click.command("eval")
@click.argument("results", type=FILE)
@click.option(
    "--gold",
    type=FILE,
    help="Gold JSONL: id or paper_id, tldrs and/or summary, tags or categories (keywords with "
    "--relevance). Without it, only the summaries' visible defects are counted. Results whose "
    "inputs showed the model the gold (in 'categories') are refused.",
)
@click.option(
    "--relevance",
    is_flag=True,
    help="Score the relevance ranking instead: MAP and precision@10 over the interests.",
)
@click.option(
    "--interests",
    "interests_path",
    type=FILE,
    help="With --relevance: JSON list of interests (name, criterion, gold keywords).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(
    results: Path, gold: Path | None, relevance: bool, interests_path: Path | None, as_json: bool
) -> None:
    """Score RESULTS.jsonl against gold: ROUGE-1/2/L, tag precision/recall/F1, precision@1,
    summaries with visible defects; with --relevance, the ranking's mean average precision and
    precision@10."""
    if gold is None:
        if relevance or interests_path is not None:
            raise click.UsageError("--relevance needs --gold GOLD.jsonl")
        from agent.eval import defect_report, format_defects, load_results

        defects = defect_report(load_results(results))
        if as_json:
            click.echo(json.dumps({"defects": defects}, indent=2, sort_keys=True))
        else:
            click.echo(format_defects(defects))
        return
    if relevance:
        from agent.eval import evaluate_relevance_files, format_relevance_table

        if interests_path is None:
            raise click.UsageError("--relevance needs --interests INTERESTS.json")
        rel_report = evaluate_relevance_files(results, gold, interests_path)
        if as_json:
            click.echo(json.dumps(rel_report.to_dict(), indent=2, sort_keys=True))
        else:
            click.echo(format_relevance_table(rel_report))
        return
    if interests_path is not None:
        raise click.UsageError("--interests is only used with --relevance")
    from agent.eval import evaluate_files, format_table

    report = evaluate_files(results, gold)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        click.echo(format_table(report))
