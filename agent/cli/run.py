"""``paper-agent run``: parse flags, call agent.runner, report."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.digest_options import digest_shape_options
from agent.cli.fetch import source_options
from agent.cli.types import FILE, config_option, limit_option, results_option
from agent.config import settings_options
from agent.errors import Interrupted, OutputError, PaperAgentError

if TYPE_CHECKING:
    from agent.history import Outcome
    from agent.models import PaperResult
    from agent.pipeline import RunStats


# What --digest-out's suffix says when --digest is not given.
DIGEST_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".json": "json"}


@click.command()
@click.argument("inputs", nargs=-1)
@click.option(
    "--source",
    "source_specs",
    multiple=True,
    metavar="SOURCE",
    help="Fetch and run: arxiv:CATS, arxiv-rss:CATS or hf:DATE|today|yesterday (repeatable).",
)
@source_options
@click.option(
    "--include-seen", is_flag=True, help="Also run --source papers that an earlier run annotated."
)
@click.option(
    "--post-empty", is_flag=True, help="Post a digest to Slack even on a day with no new papers."
)
@results_option
@settings_options("run")
@config_option
@limit_option()
@click.option("--dry-run", is_flag=True, help="Show the first prompt and the cost; call nothing.")
@click.option(
    "--digest",
    "digest_format",
    type=click.Choice(["slack", "mrkdwn", "markdown", "html", "json"]),
    default=None,
    help="Also render a digest of the results (to stdout, or --digest-out).",
)
@click.option(
    "--digest-out",
    type=FILE,
    default=None,
    help="Write the digest to this file.",
)
@click.option(
    "--highlights",
    is_flag=True,
    help="Open the digest with 'what stood out today' (one more LLM call).",
)
@click.option(
    "--post-slack", is_flag=True, help="Post the digest to the Slack webhook in $SLACK_WEBHOOK_URL."
)
@digest_shape_options
def run(**options: Any) -> None:
    """Tag and summarize the papers in INPUTS (files, or - for stdin) and from each --source
    into a results file."""
    from agent.history import Outcome

    with Outcome() as outcome:  # the run's record in the library says how it ended
        _run(outcome, **options)


def _run(
    outcome: Outcome,
    inputs: tuple[str, ...],
    source_specs: tuple[str, ...],
    since: str | None,
    from_date: dt.date | None,
    to_date: dt.date | None,
    max_papers: int,
    announce: frozenset[str] | None,
    include_seen: bool,
    post_empty: bool,
    output: Path,
    config_path: Path | None,
    limit: int | None,
    dry_run: bool,
    digest_format: str | None,
    digest_out: Path | None,
    highlights: bool,
    post_slack: bool,
    top: int | None,
    sort: str | None,
    full: bool,
    more_url: str | None,
    **flags: Any,
) -> None:
    """``run``'s body; ``outcome`` records it in the library."""
    if not inputs and not source_specs:
        raise click.UsageError("give INPUTS (files, or - for stdin) and/or --source SOURCE")
    # Imported here, not at the top: `run --help` stays fast.
    from agent import runner
    from agent.config import flag_values, resolve_settings
    from agent.history import command_line
    from agent.interests import interests_of
    from agent.llm.redact import scrub
    from agent.outputs import check_outputs, output_lock
    from agent.pipeline import RunStats
    from agent.taxonomy import load_taxonomy

    settings = resolve_settings(flag_values(flags), config_path=config_path)
    if digest_out is not None and str(digest_out) == "-":
        digest_out = None  # stdout, where a digest goes without --digest-out
    if digest_out is not None and digest_format is None:
        digest_format = DIGEST_SUFFIXES.get(digest_out.suffix.lower())
        if digest_format is None:
            raise click.UsageError(f"--digest-out {digest_out}: give its --digest FORMAT")
    # Before any input is read: an output must never replace an input or another output.
    check_outputs(
        [*inputs, *settings.files_read(config_path)], {"-o": output, "--digest-out": digest_out}
    )
    webhook = os.environ.get("SLACK_WEBHOOK_URL") if post_slack else None
    if post_slack and not webhook:
        raise click.UsageError("--post-slack needs SLACK_WEBHOOK_URL in the environment")
    if webhook:
        from agent.delivery.slack import check_webhook

        webhook = check_webhook(webhook)
    if digest_out is not None and not digest_out.resolve().parent.is_dir():
        raise click.UsageError(f"--digest-out: no such directory: {digest_out.parent}")
    if highlights and not (digest_format or webhook):
        raise click.UsageError("--highlights needs --digest FORMAT or --post-slack")
    if highlights:
        from agent.highlights import highlight_settings

        highlight_settings(settings)  # one message for run and digest: it needs an LLM
    tags = load_taxonomy(settings.taxonomy)  # a bad taxonomy fails before inputs are read
    interests = interests_of(
        settings, lambda line: click.echo(scrub(f"paper-agent: {line}"), err=True)
    )
    to_stdout = str(output) == "-"
    if to_stdout and digest_format and digest_out is None:
        raise click.UsageError("-o - writes the results to stdout: give the digest --digest-out")
    results = output
    if to_stdout:
        # Streamed into a private file, then copied out whole: stdout gets a complete file.
        home = click.get_current_context().with_resource(tempfile.TemporaryDirectory())
        results = Path(home) / "results.jsonl"
    elif not dry_run:
        # Held until the command ends (click closes it), so a second run refuses at once.
        click.get_current_context().with_resource(output_lock(output, "results"))
    wanted = runner.DigestRequest(
        digest_format,
        digest_out,
        webhook,
        highlights,
        top=top,
        sort=sort,
        full=full,
        more_url=more_url,
        min_relevance=settings.min_relevance,
    )
    fresh = None
    if source_specs:
        from agent.fresh import fresh_papers
        from agent.sources.fetching import FetchRequest

        if not dry_run:
            # One run at a time fetches into a state dir, from the fetch to marking the papers
            # seen: a second cron job waits, then finds them seen (no paper annotated or posted
            # twice, and arXiv sees one client pacing its requests).
            click.get_current_context().with_resource(
                output_lock(settings.home / "sources", "papers from sources", wait=True)
            )

        request = FetchRequest(list(source_specs), since, from_date, to_date, max_papers, announce)
        fresh = fresh_papers(request, settings, include_seen=include_seen)
        if fresh.papers or inputs:  # a quiet day says so in one line, below
            for line in fresh.notes():
                click.echo(scrub(f"paper-agent: {line}"), err=True)
        failed = fresh.error()
        if failed is not None and failed.exit_code == 2 and not inputs:
            raise failed  # every source failed and nothing else to run: that is the story
        if not (fresh.papers or inputs):
            if dry_run:
                click.echo(f"paper-agent: {fresh.nothing_new()}; nothing to run")
                return
            outcome.start(settings, tags, command_line(inputs, source_specs, output))
            runner.quiet_day(
                settings,
                results,
                # "0 papers" is only true when every source answered: not posted otherwise.
                dataclasses.replace(
                    wanted,
                    webhook=webhook if post_empty and failed is None else None,
                    highlights=False,
                ),
                notify=_notify,
            )
            click.echo(scrub(f"paper-agent: {fresh.nothing_new()} -> {output}"), err=True)
            _copy_out(to_stdout, results)
            if failed is not None:  # another source was quiet, this one failed: say so
                click.echo(scrub(f"paper-agent: error: {failed}"), err=True)
            sys.exit(failed.exit_code if failed is not None else int(not outcome.recorded))
    papers = runner.open_inputs(
        list(inputs), limit, fetched=fresh.papers if fresh else [], filters=settings.filters()
    )
    done: set[str] = set()
    try:
        if papers.duplicates:
            dups = papers.duplicates
            shown = ", ".join(dups[:5]) + (" ..." if len(dups) > 5 else "")
            click.echo(scrub(f"paper-agent: skipped {len(dups)} duplicate(s): {shown}"), err=True)
        for note in papers.unreadable_notes():
            click.echo(scrub(f"paper-agent: {note}"), err=True)
        if papers.report is not None:
            click.echo(f"paper-agent: prefilters: {papers.report.summary()}", err=True)
        for note in runner.offline_notes(settings):
            click.echo(note, err=True)
        if dry_run:
            click.echo(scrub(runner.dry_run(settings, tags, papers, interests)))
            return
        stats = RunStats(unreadable=len(papers.unreadable))
        recorder = outcome.start(settings, tags, command_line(inputs, source_specs, output))
        try:
            with _progress(papers.count) as advance:

                def finished(result: PaperResult) -> None:
                    advance(result)
                    if result.error is None:
                        done.add(result.id)
                    if recorder is not None:
                        recorder.add(result)

                job = runner.execute(
                    settings,
                    tags,
                    papers,
                    results,
                    stats=stats,
                    on_result=finished,
                    digest=wanted if (digest_format or webhook) else None,
                    interests=interests,
                    notify=_notify,
                    track=recorder.track if recorder is not None else None,
                )
                text = runner.run_job(job)
        except (KeyboardInterrupt, Interrupted) as exc:
            what = "terminated" if isinstance(exc, Interrupted) else "interrupted"
            click.echo(f"paper-agent: {what}: {_kept(stats, output)}", err=True)
            sys.exit(getattr(exc, "exit_code", 130))
        except OutputError:
            raise  # it says itself what was kept, and where
        except PaperAgentError as exc:
            if stats.total:
                exc.args = (f"{exc} ({_kept(stats, output)})",)
            raise
        # Seen only now, and only after a whole run: its results written and its digest
        # delivered. A stopped or failed run marks nothing; its rerun comes from the cache.
        marked = fresh is None or bool(stats.skipped) or fresh.mark_seen(done, settings)
    finally:
        papers.cleanup()
        _copy_out(to_stdout, results)
    if stats.stopped:
        stopped = f"stopped early: {stats.stopped}; {stats.skipped} paper(s) marked skipped"
        click.echo(scrub(f"paper-agent: {stopped}: run again to retry them"), err=True)
    click.echo(scrub(f"paper-agent: {stats.summary()} -> {output}"), err=True)
    if text is not None:
        click.echo(text, nl=False)
    failed = fresh.error() if fresh is not None else None
    if failed is not None:
        click.echo(scrub(f"paper-agent: error: {failed}"), err=True)
    worked = not (stats.failed or stats.skipped or stats.unreadable or failed)
    sys.exit(0 if worked and marked and outcome.recorded else 1)


def _notify(line: str) -> None:
    """A line of the run's story on stderr, as every other: prefixed, secrets scrubbed."""
    from agent.llm.redact import scrub

    click.echo(scrub(f"paper-agent: {line}"), err=True)


def _copy_out(to_stdout: bool, results: Path) -> None:
    """With ``-o -``: the complete file the run wrote (stopped runs too) goes to stdout whole."""
    if to_stdout and results.exists():
        with results.open("rb") as lines:
            shutil.copyfileobj(lines, sys.stdout.buffer)
        sys.stdout.flush()


def _kept(stats: RunStats, output: Path) -> str:
    """What an interrupted or stopped run left in ``output``."""
    if not stats.total:
        return f"no paper had finished; {output} was not written"
    finished = stats.ok + stats.failed
    skipped = f" and {stats.skipped} skipped record(s)" if stats.skipped else ""
    return f"{finished} finished result(s){skipped} written to {output}; run again to finish"


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[PaperResult], None]]:
    """A progress bar on stderr when it is a terminal, with log lines and warnings printed
    above it; otherwise a no-op callback."""
    if not sys.stderr.isatty():
        yield lambda result: None
        return
    from rich.console import Console
    from rich.progress import Progress

    stderr = sys.stderr
    with Progress(console=Console(stderr=True), transient=True) as bar:
        # While the bar is live, rich prints what is written to sys.stderr above it; a log
        # handler still holds the stream it was made with, and would write over the bar.
        handlers = [
            handler
            for handler in logging.getLogger().handlers
            if isinstance(handler, logging.StreamHandler) and handler.stream is stderr
        ]
        for handler in handlers:
            handler.setStream(sys.stderr)
        try:
            task = bar.add_task("papers", total=total)
            yield lambda result: bar.advance(task)
        finally:
            for handler in handlers:
                handler.setStream(stderr)
