"""The options that shape a digest (top picks, order, one message or all), shared by ``digest``,
``post`` and ``run``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from agent.config import DEFAULT_TOP
from agent.config import DIGEST_SORTS as SORTS


def _http_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from agent.digest.text import safe_url

    if safe_url(value) is None:
        raise click.BadParameter("give an http(s) URL", ctx, param)
    return value


def digest_shape_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--top, --sort, --full and --more-url on ``command``."""
    for option in reversed(
        [
            click.option(
                "--top",
                type=click.IntRange(0, 1_000_000),
                metavar="N",
                help=f"Show the N best papers first (default: {DEFAULT_TOP} when results have "
                "a relevance, else none; Slack's one message shows the first "
                f"{DEFAULT_TOP} by --sort).",
            ),
            click.option(
                "--sort",
                type=click.Choice(SORTS),
                help="Order of the top papers (default: relevance when results have one, "
                "else tag).",
            ),
            click.option(
                "--full",
                is_flag=True,
                help="Slack: every paper, split into numbered messages (default: one message).",
            ),
            click.option(
                "--more-url",
                callback=_http_url,
                metavar="URL",
                help="Slack: link the one message to the full digest at this http(s) URL.",
            ),
        ]
    ):
        command = option(command)
    return command
