"""Which results a command works on: a results file, or the library's results of a day
(``--date``), a run (``--run``) or a span (``--since``), shared by ``digest``, ``post`` and
``export``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from agent.models import ResultRecord
    from agent.store import Selection

RUN_HELP = "The results of run ID in the library (see paper-agent runs) instead of a file."
SINCE_HELP = "The results of the papers the library got in the last 1d|36h|7d instead of a file."


def library_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--run ID`` and ``--since 1d|36h|7d`` on ``command`` (``--date`` is its own)."""
    command = click.option("--since", metavar="1d|36h|7d", help=SINCE_HELP)(command)
    return click.option("--run", "run_id", type=click.IntRange(1), metavar="ID", help=RUN_HELP)(
        command
    )


def selection(
    results: str | None, day: dt.date | None, run: int | None, since: str | None
) -> Selection | None:
    """The library's selection, or None for the results file; exactly one of a results file,
    ``--date``, ``--run`` and ``--since`` (with a file, ``--date`` only dates the digest)."""
    chosen = [
        name
        for name, value in (
            ("RESULTS.jsonl", results),
            ("--date", day if results is None else None),
            ("--run", run),
            ("--since", since),
        )
        if value is not None
    ]
    if len(chosen) > 1:
        raise click.UsageError(
            f"{_and(chosen)}: give only one of RESULTS.jsonl, --date, --run and --since"
        )
    if not chosen:
        raise click.UsageError("give RESULTS.jsonl, or --date, --run or --since to use the library")
    if results is not None:
        return None
    from agent.store import Selection

    if run is not None:
        return Selection(run=run)
    if day is not None:
        return Selection(day=day)
    from agent.sources.base import Window

    assert since is not None
    try:
        window = Window.parse(since)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return Selection(since=window.start)


def from_library(chosen: Selection) -> Iterator[ResultRecord]:
    """The chosen results, streamed from the library; a run it lacks is an InputError."""
    from agent.errors import InputError
    from agent.store import Library

    with Library.open() as library:
        if chosen.run is not None and library.runs.get(chosen.run) is None:
            raise InputError(f"no run {chosen.run} in the library (paper-agent runs lists them)")
        count = 0
        for record in library.results(chosen):
            count += 1
            yield record
    if not count:
        click.echo(f"paper-agent: no results in the library {describe(chosen)}", err=True)


def describe(chosen: Selection) -> str:
    """How a selection reads in a message: "for 2026-12-05", "of run 3", "since ..."."""
    if chosen.run is not None:
        return f"of run {chosen.run}"
    if chosen.day is not None:
        return f"for {chosen.day} (UTC)"
    assert chosen.since is not None
    return f"since {chosen.since:%Y-%m-%d %H:%M} UTC"


def _and(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1]
