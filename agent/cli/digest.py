"""``paper-agent digest`` and ``paper-agent post``: parse flags, call agent.digest / delivery."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.digest_options import digest_shape_options
from agent.cli.selection import library_options
from agent.cli.types import FILE, config_option, iso_date
from agent.config import settings_options
from agent.delivery.email import DEFAULT_SENDER
from agent.digest import (
    FORMATS,
    Digest,
    Sort,
    make_digest,
    parse_results,
    render,
    slack_messages,
)
from agent.errors import ConfigError, DeliveryError
from agent.llm.redact import register
from agent.models import PaperResult
from agent.outputs import check_outputs, output_lock, write_atomic

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.delivery.email import EmailChannel
    from agent.delivery.outbox import Builder


def _read_results(
    source: str | None, date: dt.date | None, run: int | None, since: str | None
) -> list[PaperResult]:
    """The results file (``-``: stdin), or the library's results that the flags choose."""
    from agent.cli.selection import from_library, selection

    chosen = selection(source, date, run, since)
    if chosen is not None:
        return list(from_library(chosen))
    assert source is not None
    if source == "-":
        return parse_results(sys.stdin.read(), "<stdin>")
    from agent.digest import load_results

    return load_results(source)


def digest_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a digest, shared by ``digest`` and ``post``."""
    for option in reversed(
        [
            click.argument("results", metavar="[RESULTS.jsonl]", required=False),
            click.option(
                "--group-order",
                type=click.Choice(["taxonomy", "size"]),
                default="taxonomy",
                show_default=True,
                help="Order tag groups as in the taxonomy, or largest first.",
            ),
            config_option,
            click.option(
                "--date",
                callback=iso_date,
                metavar="YYYY-MM-DD",
                help="Date shown in the header (default: the papers' newest date, else today); "
                "without RESULTS.jsonl, the papers the library got that day (UTC).",
            ),
            library_options,
            click.option(
                "--highlights",
                is_flag=True,
                help="Add 'what stood out today' (one LLM call; needs an API key or base URL).",
            ),
        ]
    ):
        command = option(command)
    return digest_shape_options(command)


def _settings(flags: dict[str, Any], config_path: Path | None) -> Settings:
    from agent.config import flag_values, resolve_settings

    return resolve_settings(flag_values(flags), config_path=config_path)


def _build(
    results: list[PaperResult],
    settings: Settings,
    group_order: str,
    date: dt.date | None,
    highlights: bool = False,
    top: int | None = None,
    sort: Sort | None = None,
) -> Digest:
    maker = _maker(settings, group_order, date, highlights, top, sort)
    return asyncio.run(maker(results))


def _maker(
    settings: Settings,
    group_order: str,
    date: dt.date | None,
    highlights: bool = False,
    top: int | None = None,
    sort: Sort | None = None,
) -> Callable[[list[PaperResult]], Awaitable[Digest]]:
    """How ``digest`` and ``post`` turn results into a digest, as one async function."""

    async def make(results: list[PaperResult]) -> Digest:
        built = make_digest(
            results,
            group_order="size" if group_order == "size" else "taxonomy",
            taxonomy=settings.taxonomy,
            date=date,
            top=top,
            sort=sort,
            min_relevance=settings.min_relevance,
        )
        if highlights:
            from agent.highlights import highlight_settings, with_highlights

            built = await with_highlights(built, highlight_settings(settings))
        return built

    return make


@click.command()
@digest_options
@settings_options("digest")
@click.option(
    "-f", "--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True
)
@click.option("-o", "--output", type=FILE, help="Write to FILE.")
def digest(
    results: str | None,
    group_order: str,
    config_path: Path | None,
    date: dt.date | None,
    run_id: int | None,
    since: str | None,
    highlights: bool,
    top: int | None,
    sort: Sort | None,
    full: bool,
    more_url: str | None,
    fmt: str,
    output: Path | None,
    **flags: Any,
) -> None:
    """Render RESULTS.jsonl (or the library's results of --date, --run or --since) as a
    digest (slack prints a JSON array of webhook payloads)."""
    settings = _settings(flags, config_path)
    papers = _read_results(results, date, run_id, since)  # a usage error before any output
    if output is not None:
        inputs = [results] if results is not None else []
        check_outputs([*inputs, *settings.files_read(config_path)], {"-o": output})
        # Held until the command ends (click closes it): one writer per digest file.
        click.get_current_context().with_resource(output_lock(output, "the digest"))
    built = _build(papers, settings, group_order, date, highlights, top, sort)
    text = render(built, fmt, full=full, more_url=more_url)
    if output is None or str(output) == "-":
        click.echo(text, nl=False)
        return
    write_atomic(output, text)
    click.echo(f"wrote {fmt} digest to {output}", err=True)


@click.command()
@digest_options
@settings_options("post")
@click.option(
    "--slack-webhook",
    envvar="SLACK_WEBHOOK_URL",
    metavar="URL",
    help="Slack incoming webhook (default: $SLACK_WEBHOOK_URL). Never printed.",
)
@click.option("--email", "email_to", multiple=True, metavar="TO", help="Email the digest to TO.")
@click.option("--email-from", default=DEFAULT_SENDER, show_default=True, metavar="FROM")
@click.option("--smtp", default="localhost:25", show_default=True, metavar="HOST:PORT")
@click.option("--smtp-user", metavar="USER", help="Log in to the SMTP server as USER.")
@click.option("--smtp-password-env", metavar="VAR", help="Read the SMTP password from $VAR.")
@click.option("--starttls", is_flag=True, help="Upgrade the SMTP connection with STARTTLS.")
@click.option(
    "--resume",
    is_flag=True,
    help="Kept for old scripts: every post resumes, sending only what was not delivered.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Send every paper again, even those the destination already has.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would be sent (the payloads) instead of sending."
)
def post(
    results: str | None,
    group_order: str,
    config_path: Path | None,
    date: dt.date | None,
    run_id: int | None,
    since: str | None,
    highlights: bool,
    top: int | None,
    sort: Sort | None,
    full: bool,
    more_url: str | None,
    slack_webhook: str | None,
    email_to: tuple[str, ...],
    email_from: str,
    smtp: str,
    smtp_user: str | None,
    smtp_password_env: str | None,
    starttls: bool,
    resume: bool,
    force: bool,
    dry_run: bool,
    **flags: Any,
) -> None:
    """Deliver the digest of RESULTS.jsonl (or the library's results of --date, --run or
    --since) to Slack and/or by email; papers a destination already has are left out (see
    --force)."""
    run_settings = _settings(flags, config_path)
    if not slack_webhook and not email_to and not dry_run:
        raise click.UsageError("give --slack-webhook (or set SLACK_WEBHOOK_URL) and/or --email")
    from agent.delivery.email import EmailChannel, SmtpSettings, parse_smtp_address
    from agent.delivery.outbox import Builder

    email = None
    if email_to:
        host, port = parse_smtp_address(smtp)
        password = None
        if smtp_password_env:
            password = os.environ.get(smtp_password_env)
            register(password)
            if password is None:
                raise ConfigError(f"--smtp-password-env: ${smtp_password_env} is not set")
        smtp_settings = SmtpSettings(host, port, smtp_user, password, starttls)
        email = EmailChannel(smtp_settings, email_from, email_to)
    if slack_webhook:
        from agent.delivery.slack import check_webhook

        slack_webhook = check_webhook(slack_webhook)

    papers = _read_results(results, date, run_id, since)
    build = Builder(_maker(run_settings, group_order, date, highlights, top, sort))
    job = _dry_run if dry_run else _deliver
    asyncio.run(job(papers, build, slack_webhook, full, more_url, email, force))


def _progress(number: int, total: int) -> None:
    click.echo(f"Slack: sent message {number}/{total}", err=True)


def _say(line: str) -> None:
    click.echo(line, err=True)


async def _deliver(
    papers: list[PaperResult],
    build: Builder,
    webhook: str | None,
    full: bool,
    more_url: str | None,
    email: EmailChannel | None,
    force: bool,
) -> None:
    from agent.delivery.outbox import deliver
    from agent.delivery.slack import SlackChannel
    from agent.llm.http import make_client

    failures: list[DeliveryError] = []
    if webhook:
        async with make_client() as client:
            slack = SlackChannel(client, webhook, full=full, more_url=more_url)
            try:
                await deliver(papers, build, slack, force=force, say=_say, on_sent=_progress)
            except DeliveryError as exc:
                failures.append(exc)
    if email is not None:
        # In the journal too: a rerun after a Slack failure does not send it again.
        try:
            await deliver(papers, build, email, force=force, say=_say)
        except DeliveryError as exc:
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise DeliveryError("; ".join(str(f) for f in failures))


async def _dry_run(
    papers: list[PaperResult],
    build: Builder,
    webhook: str | None,
    full: bool,
    more_url: str | None,
    email: EmailChannel | None,
    force: bool,
) -> None:
    """What ``_deliver`` would send, printed: for a destination given, less what it has."""
    from agent.delivery.email import preview
    from agent.delivery.journal import DeliveryLog
    from agent.delivery.outbox import plan

    payloads: list[dict[str, Any]] = []
    journal = click.get_current_context().with_resource(DeliveryLog())
    if webhook:
        from agent.delivery.slack import SlackChannel
        from agent.llm.http import make_client

        async with make_client() as client:  # never used: nothing is sent
            slack = SlackChannel(client, webhook, full=full, more_url=more_url)
            todo = await plan(papers, build, slack, journal, force=force)
        for line in todo.notes(slack.destination):
            click.echo(f"# {line}", err=True)
        payloads = todo.payloads if todo.sends else []
    elif email is None:
        payloads = slack_messages(await build(papers), full=full, more_url=more_url)
    if payloads:
        click.echo(f"# Slack: {len(payloads)} message(s), not sent", err=True)
        click.echo(json.dumps(payloads, ensure_ascii=False, indent=2))
    if email is not None:
        todo = await plan(papers, build, email, journal, force=force)
        for line in todo.notes(email.destination):
            click.echo(f"# {line}", err=True)
        if todo.sends:
            click.echo(f"# {email.destination.name}, not sent", err=True)
            # Readable text, not the wire form (quoted-printable would garble every accent).
            click.echo(preview(todo.messages[0].payload), nl=False)
