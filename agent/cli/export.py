"""``paper-agent export``: the library's results of a day, a run or a span, as a results file."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from agent.cli.selection import library_options
from agent.cli.types import FILE, iso_date


@click.command()
@click.option(
    "--date",
    callback=iso_date,
    metavar="YYYY-MM-DD",
    help="The results of the papers the library got that day (UTC).",
)
@library_options
@click.option("-o", "--output", type=FILE, help="Write to FILE (default: stdout).")
def export(
    date: dt.date | None, run_id: int | None, since: str | None, output: Path | None
) -> None:
    """Write the library's results of --date, --run or --since as JSONL, each line as
    results.jsonl has it (a paper's latest result, for a day or a span)."""
    from agent.cli.selection import from_library, selection
    from agent.store.results import write_jsonl

    chosen = selection(None, date, run_id, since)
    assert chosen is not None
    records = from_library(chosen)
    if output is None or str(output) == "-":
        write_jsonl(records, sys.stdout)
        return
    from agent.errors import OutputError
    from agent.outputs import commit, output_lock, partial_path

    # Held until the command ends (click closes it): one writer per file.
    click.get_current_context().with_resource(output_lock(output, "the export"))
    partial = partial_path(output)
    try:
        with partial.open("w", encoding="utf-8") as stream:
            count = write_jsonl(records, stream)
        commit(partial, output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {output}: {exc.strerror}; it is unchanged") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    click.echo(f"paper-agent: {count} result(s) -> {output}", err=True)
