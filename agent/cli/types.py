"""Click parameter callbacks shared by several commands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


class FilePath(click.Path):
    """A file's path (never a directory); an empty one is refused, since it would name the
    working directory and a run would write beside it."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("give a file path, not an empty string", param, ctx)
        return super().convert(value, param, ctx)


FILE = FilePath()
# A count far past any real use, yet small enough for islice and SQLite's INTEGER.
COUNT = click.IntRange(1, 1_000_000_000)


def limit_option(help: str = "Only the first N papers.") -> Callable[..., Any]:
    """``--limit N``: the one declaration of every command's limit."""
    return click.option("--limit", type=COUNT, default=None, help=help)


def iso_date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    """A ``YYYY-MM-DD`` option as a date (None when not given)."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", ctx, param) from None


def config_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE`` (as ``config_path``): the one declaration every command shares."""
    return click.option(
        "--config",
        "config_path",
        type=FILE,
        default=None,
        help="Config file.  [default: ./paper-agent.toml if present]",
    )(command)


def results_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-o/--output`` (as ``output``): the results file of run and batch import."""
    return click.option(
        "-o",
        "--output",
        type=FILE,
        default=Path("results.jsonl"),
        show_default=True,
        help="Results file (JSONL).",
    )(command)
