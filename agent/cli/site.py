"""``paper-agent site -o DIR``: the archive site, built from the library or brought up to date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from agent.cli.types import config_option, iso_date
from agent.config import settings_options


@click.command()
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder of the site: made when new; a later build rewrites only what changed.",
)
@click.option(
    "--since", callback=iso_date, metavar="YYYY-MM-DD", help="Only the days from this one on."
)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    help="Show this profile's scores (repeatable).  [default: every profile with scores]",
)
@click.option("--title", default="Paper archive", show_default=True, help="The site's name.")
@click.option("--full", is_flag=True, help="Read every day from the library again.")
@settings_options("site")
@config_option
def site(
    out_dir: Path,
    since: dt.date | None,
    profiles: tuple[str, ...],
    title: str,
    full: bool,
    config_path: Path | None,
    **flags: Any,
) -> None:
    """Build the archive site from the library: an index of days, a page per day and per
    tag, search, and an Atom feed (feed.xml). Serve the folder as it is (GitHub Pages...)."""
    from agent.config import flag_values, resolve_settings
    from agent.digest.text import one_line, plural
    from agent.site import update_site
    from agent.store import Library

    if not title.strip():
        raise click.BadParameter("give the site a name", param_hint="--title")
    settings = resolve_settings(flag_values(flags), config_path=config_path)
    with Library.open(settings.home) as library:
        report = update_site(
            library,
            out_dir,
            base_url=settings.site_url,
            profile=list(profiles),
            since=since,
            title=one_line(title),
            full=full,
        )
    done = f"{plural(len(report.written), 'file')} written, {report.unchanged} unchanged"
    if report.removed:
        done += f", {len(report.removed)} removed"
    click.echo(
        f"site: {plural(report.days, 'day')}, {plural(report.papers, 'paper')}"
        f" ({done}) -> {report.index}"
    )
