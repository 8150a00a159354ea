"""``paper-agent seen list|forget|clear``: the papers earlier runs annotated, which
``run --source`` skips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli.types import limit_option
from agent.llm.redact import scrub

if TYPE_CHECKING:
    from agent.store.library import Library
    from agent.store.seen import SeenEntry


def _open() -> Library:
    """The state dir's library (imported here, not at the top: ``seen --help`` stays fast)."""
    from agent.store import Library

    return Library.open()


@click.group()
def seen() -> None:
    """List or forget the papers earlier runs annotated (in the library, in the state dir)."""


@seen.command("list")
@limit_option("Show only the N newest.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_cmd(limit: int | None, as_json: bool) -> None:
    """The seen papers, newest first: first-seen date (UTC), id, source, title."""
    with _open() as library:
        entries = library.seen.list(limit)
    if as_json:
        for entry in entries:
            # ASCII-only JSON: no title can put a control character on the terminal.
            click.echo(json.dumps(_record(entry), sort_keys=True))
    elif entries:
        click.echo("\n".join(_table(entries)))
    else:
        click.echo(f"no papers seen yet ({library.path})")
    _report_damage(library.moved_aside)


@seen.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
def forget(ids: tuple[str, ...]) -> None:
    """Forget papers by arXiv id (with or without version) or paper id, so the next run
    annotates them again. Exits 1 when an ID matched nothing."""
    if any(not ident.strip() for ident in ids):
        raise click.UsageError("give paper ids to forget, not an empty one")
    missing = 0
    with _open() as library:
        for ident in ids:
            gone = library.seen.forget(ident)
            if gone:
                click.echo(f"forgot {scrub(ident)}" + (f" ({gone} entries)" if gone > 1 else ""))
            else:
                missing += 1
                click.echo(f"not in the seen-store: {scrub(ident)}", err=True)
    _report_damage(library.moved_aside)
    if missing:
        raise click.exceptions.Exit(1)


@seen.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(yes: bool) -> None:
    """Forget every seen paper (the next run with --source annotates them all again)."""
    from agent.config import state_dir
    from agent.store import DB_NAME

    path = state_dir() / DB_NAME
    if not yes and not click.confirm(f"Forget all seen papers in {path}?", err=True):
        raise click.Abort()
    with _open() as library:
        click.echo(f"forgot {library.seen.clear()} seen paper(s) in {library.path}")
    _report_damage(library.moved_aside)


def _record(entry: SeenEntry) -> dict[str, str]:
    """One entry as ``--json`` prints it."""
    return {
        "first_seen": entry.first_seen.isoformat(),
        "id": entry.id,
        "key": entry.key,
        "source": entry.source,
        "title": entry.title,
    }


def _table(entries: list[SeenEntry]) -> list[str]:
    """Aligned lines: date, id, source, title; every field is untrusted, so all are scrubbed."""
    rows = [
        (f"{e.first_seen:%Y-%m-%d}", scrub(e.id), scrub(e.source), scrub(e.title)) for e in entries
    ]
    id_width = max(len(r[1]) for r in rows)
    source_width = max(len(r[2]) for r in rows)
    return [
        f"{day}  {pid:<{id_width}}  {source:<{source_width}}  {title}".rstrip()
        for day, pid, source, title in rows
    ]


def _report_damage(moved_aside: Path | None) -> None:
    """Say where a damaged library went (on stderr, so ``--json`` stays clean): it is kept
    for inspection, so the user may delete it."""
    if moved_aside is not None:
        click.echo(f"damaged library moved aside to {moved_aside} (delete it when done)", err=True)
