"""``paper-agent cache info|clear``: look at or empty the answer cache."""

from __future__ import annotations

import click

from agent.config import state_dir
from agent.llm.cache import AnswerCache, cache_dir


@click.group()
def cache() -> None:
    """Inspect or clear the answer cache (in $PAPER_AGENT_HOME/cache)."""


@cache.command()
def info() -> None:
    """Where the cache is, how many answers it holds and its size on disk."""
    directory = cache_dir(state_dir())
    store = AnswerCache(directory)
    try:
        click.echo(f"path: {directory}\nanswers: {len(store)}\nsize: {store.volume()} bytes")
        _report_damage(store)
    finally:
        store.close()


@cache.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(yes: bool) -> None:
    """Delete every cached answer (the next run pays for each answer again)."""
    directory = cache_dir(state_dir())
    if not yes and not click.confirm(f"Delete all cached answers in {directory}?", err=True):
        raise click.Abort()
    store = AnswerCache(directory)
    try:
        click.echo(f"removed {store.clear()} cached answer(s) from {directory}")
        _report_damage(store)
    finally:
        store.close()


def _report_damage(store: AnswerCache) -> None:
    """Say where a damaged cache went: it is kept for inspection, so the user may delete it."""
    if store.moved_aside is not None:
        click.echo(f"damaged cache moved aside to {store.moved_aside} (delete it when done)")
