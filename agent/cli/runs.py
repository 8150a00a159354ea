"""``paper-agent runs``: the runs the library remembers, newest first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from agent.cli.types import limit_option

if TYPE_CHECKING:
    from agent.store.runs import RunInfo

HEADER = ("ID", "STARTED (UTC)", "STATUS", "OK", "FAILED", "SKIPPED", "EXIT", "COMMAND")


@click.command()
@limit_option("Show only the N newest (default: 20).")
@click.option("--all", "everything", is_flag=True, help="Show every run.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def runs(limit: int | None, everything: bool, as_json: bool) -> None:
    """The runs recorded in the library, newest first: when, how each ended, its papers."""
    from agent.store import Library

    with Library.open() as library:
        found = library.runs.list(None if everything else limit or 20)
        path = library.path
    if as_json:
        for info in found:
            # ASCII-only JSON: no command line can put a control character on the terminal.
            click.echo(json.dumps(_record(info), sort_keys=True))
    elif found:
        click.echo("\n".join(_table(found)))
    else:
        click.echo(f"no runs yet ({path})")


def _record(info: RunInfo) -> dict[str, Any]:
    """One run as ``--json`` prints it."""
    return {
        "id": info.id,
        "started": info.started.isoformat(),
        "finished": info.finished.isoformat() if info.finished else None,
        "status": info.status,
        "exit_code": info.exit_code,
        "command": info.command,
        "settings": info.settings,
        "ok": info.ok,
        "failed": info.failed,
        "skipped": info.skipped,
        "note": info.note,
    }


def _table(found: list[RunInfo]) -> list[str]:
    """Aligned lines under a header; the command is scrubbed (it holds file names)."""
    from agent.llm.redact import scrub

    rows = [HEADER] + [
        (
            str(r.id),
            f"{r.started:%Y-%m-%d %H:%M}",
            r.status,
            str(r.ok),
            str(r.failed),
            str(r.skipped),
            "-" if r.exit_code is None else str(r.exit_code),
            scrub(r.command),
        )
        for r in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in (0, 3, 4, 5, 6) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines
