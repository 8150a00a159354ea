"""``paper-agent fetch``: papers from arXiv (API or RSS) or Hugging Face, as JSONL.

``source_options`` is shared with ``run --source``.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from agent.cli.types import FILE, config_option, iso_date


def _announce(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> frozenset[str] | None:
    # Checked by the RSS source itself (one place); None keeps its default (new, cross).
    return frozenset(v.strip().lower() for v in value.split(",") if v.strip()) if value else None


def source_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a fetch, shared by ``fetch`` and ``run --source``."""
    for option in reversed(
        [
            click.option("--since", metavar="1d|36h|7d", help="How far back.  [default: 1d]"),
            click.option(
                "--from",
                "from_date",
                callback=iso_date,
                metavar="YYYY-MM-DD",
                help="First day (UTC).",
            ),
            click.option(
                "--to", "to_date", callback=iso_date, metavar="YYYY-MM-DD", help="Last day (UTC)."
            ),
            click.option(
                "--max",
                "max_papers",
                type=click.IntRange(1, 50_000),
                default=500,
                show_default=True,
                help="Most papers per source.",
            ),
            click.option(
                "--announce",
                callback=_announce,
                metavar="TYPES",
                help="arxiv-rss announce types: new,cross,replace,replace-cross.  "
                "[default: new,cross]",
            ),
        ]
    ):
        command = option(command)
    return command


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@source_options
@click.option(
    "-o",
    "--output",
    type=FILE,
    default=Path("-"),
    help="Write the papers here (JSONL).  [default: stdout]",
)
@config_option
def fetch(
    sources: tuple[str, ...],
    since: str | None,
    from_date: dt.date | None,
    to_date: dt.date | None,
    max_papers: int,
    announce: frozenset[str] | None,
    output: Path,
    config_path: Path | None,
) -> None:
    """Fetch papers from SOURCE (arxiv:CATS, arxiv-rss:CATS, hf:DATE|today|yesterday)."""
    from agent.config import resolve_settings
    from agent.fresh import fetch_now
    from agent.llm.redact import scrub
    from agent.outputs import check_outputs, output_lock, write_atomic
    from agent.sources.fetching import FetchRequest

    settings = resolve_settings({}, config_path=config_path)
    check_outputs(settings.files_read(config_path), {"-o": output})
    click.get_current_context().with_resource(output_lock(output, "papers"))
    request = FetchRequest(list(sources), since, from_date, to_date, max_papers, announce)
    got = fetch_now(request, settings)
    failed = got.error(len(sources))
    if failed is not None and failed.exit_code == 2:
        raise failed  # every source failed: an earlier output stays as it was
    text = "".join(paper.model_dump_json(exclude_defaults=True) + "\n" for paper in got.papers)
    if str(output) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(output, text)
    for line in got.quiet:
        click.echo(scrub(f"paper-agent: {line}"), err=True)
    where = "stdout" if str(output) == "-" else str(output)
    click.echo(f"paper-agent: fetched {len(got.papers)} paper(s) -> {where}", err=True)
    if failed is not None:
        raise failed
