"""``paper-agent digest`` and ``paper-agent post``: parse flags, call agent.digest / delivery."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.digest_options import digest_shape_options
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
from agent.digest.text import plural
from agent.errors import ConfigError, DeliveryError
from agent.llm.redact import register
from agent.models import PaperResult
from agent.outputs import check_outputs, output_lock, write_atomic

if TYPE_CHECKING:
    from email.message import EmailMessage

    from agent.config import Settings
    from agent.delivery.email import SmtpSettings


def _read_results(source: str) -> list[PaperResult]:
    if source == "-":
        return parse_results(sys.stdin.read(), "<stdin>")
    from agent.digest import load_results

    return load_results(source)


def digest_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a digest, shared by ``digest`` and ``post``."""
    for option in reversed(
        [
            click.argument("results", metavar="RESULTS.jsonl"),
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
                help="Date shown in the header (default: the papers' newest date, else today).",
            ),
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
    results: str,
    settings: Settings,
    group_order: str,
    date: dt.date | None,
    highlights: bool = False,
    top: int | None = None,
    sort: Sort | None = None,
) -> Digest:
    built = make_digest(
        _read_results(results),
        group_order="size" if group_order == "size" else "taxonomy",
        taxonomy=settings.taxonomy,
        date=date,
        top=top,
        sort=sort,
        min_relevance=settings.min_relevance,
    )
    if highlights:
        from agent.highlights import highlight_settings, with_highlights

        built = asyncio.run(with_highlights(built, highlight_settings(settings)))
    return built


@click.command()
@digest_options
@settings_options("digest")
@click.option(
    "-f", "--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True
)
@click.option("-o", "--output", type=FILE, help="Write to FILE.")
def digest(
    results: str,
    group_order: str,
    config_path: Path | None,
    date: dt.date | None,
    highlights: bool,
    top: int | None,
    sort: Sort | None,
    full: bool,
    more_url: str | None,
    fmt: str,
    output: Path | None,
    **flags: Any,
) -> None:
    """Render RESULTS.jsonl as a digest (slack prints a JSON array of webhook payloads)."""
    settings = _settings(flags, config_path)
    if output is not None:
        check_outputs([results, *settings.files_read(config_path)], {"-o": output})
        # Held until the command ends (click closes it): one writer per digest file.
        click.get_current_context().with_resource(output_lock(output, "the digest"))
    built = _build(results, settings, group_order, date, highlights, top, sort)
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
@click.option("--resume", is_flag=True, help="Send only the Slack messages not yet delivered.")
@click.option("--dry-run", is_flag=True, help="Print the payloads instead of sending them.")
def post(
    results: str,
    group_order: str,
    config_path: Path | None,
    date: dt.date | None,
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
    dry_run: bool,
    **flags: Any,
) -> None:
    """Deliver the digest of RESULTS.jsonl to Slack and/or by email."""
    run_settings = _settings(flags, config_path)
    if not slack_webhook and not email_to and not dry_run:
        raise click.UsageError("give --slack-webhook (or set SLACK_WEBHOOK_URL) and/or --email")
    from agent.delivery.email import SmtpSettings, build_email, parse_smtp_address, preview

    settings = None
    if email_to:
        host, port = parse_smtp_address(smtp)
        password = None
        if smtp_password_env:
            password = os.environ.get(smtp_password_env)
            register(password)
            if password is None:
                raise ConfigError(f"--smtp-password-env: ${smtp_password_env} is not set")
        settings = SmtpSettings(host, port, smtp_user, password, starttls)
    if slack_webhook:
        from agent.delivery.slack import check_webhook

        slack_webhook = check_webhook(slack_webhook)

    built = _build(results, run_settings, group_order, date, highlights, top, sort)
    messages = slack_messages(built, full=full, more_url=more_url)
    email = None
    if email_to:
        # The date is the papers' (or the run's) as in the heading, which says which it is.
        subject = f"{built.title} {built.date.isoformat()}: {plural(built.total, 'paper')}"
        text, html = render(built, "text"), render(built, "html")
        email = build_email(
            subject=subject, sender=email_from, recipients=email_to, text=text, html=html
        )

    if dry_run:
        if slack_webhook or not email_to:
            click.echo(f"# Slack: {len(messages)} message(s), not sent", err=True)
            click.echo(json.dumps(messages, ensure_ascii=False, indent=2))
        if email is not None:
            click.echo(f"# Email to {', '.join(email_to)}, not sent", err=True)
            # Readable text, not the wire form (quoted-printable would garble every accent).
            click.echo(preview(email), nl=False)
        return
    asyncio.run(_deliver(slack_webhook, messages, resume, email, settings))


def _progress(number: int, total: int) -> None:
    click.echo(f"Slack: sent message {number}/{total}", err=True)


async def _deliver(
    webhook: str | None,
    messages: list[dict[str, Any]],
    resume: bool,
    email: EmailMessage | None,
    settings: SmtpSettings | None,
) -> None:
    from agent.delivery.email import send_email
    from agent.delivery.journal import DeliveryLog, destination_id, digest_hash
    from agent.delivery.slack import post_to_slack
    from agent.llm.http import make_client

    failures: list[DeliveryError] = []
    if webhook:
        async with make_client() as client:
            try:
                report = await post_to_slack(
                    client,
                    webhook,
                    messages,
                    resume=resume,
                    on_sent=_progress,
                )
            except DeliveryError as exc:
                failures.append(exc)
            else:
                if report.skipped:
                    click.echo(f"Slack: skipped {len(report.skipped)} already delivered", err=True)
                elif resume:  # a digest that changed (its papers, or its date) is a new one
                    click.echo("Slack: --resume found no earlier delivery of this digest", err=True)
                click.echo(f"Slack: {report.total} message(s) delivered", err=True)
    if email is not None and settings is not None:
        # The email is in the delivery log too: --resume after a Slack failure must not send
        # it again (its key is what it says, not its Date or Message-ID).
        journal = DeliveryLog()
        body = email.get_body(("plain",))
        key = digest_hash([email["Subject"], body.get_content() if body else ""])
        where = destination_id(f"mailto:{email['To']}")
        with journal.lock():
            if resume and 0 in journal.delivered(key, where):
                click.echo(f"Email: already sent to {email['To']}, not sent again", err=True)
            else:
                try:
                    await send_email(email, settings)
                except DeliveryError as exc:
                    failures.append(exc)
                else:
                    click.echo(f"Email: sent to {email['To']}", err=True)
                    try:
                        journal.record(key, where, 1, 0)
                    except OSError as exc:
                        click.echo(f"Email: cannot write the delivery log ({exc})", err=True)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise DeliveryError("; ".join(str(f) for f in failures))
