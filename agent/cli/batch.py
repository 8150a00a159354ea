"""``paper-agent batch``: batch files for OpenAI's Batch API or ``vllm run-batch``, and the
Batch API jobs a ``run --batch-api`` started."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.types import FILE, config_option, limit_option, results_option
from agent.config import settings_options

if TYPE_CHECKING:
    from agent.history import Outcome


@click.group()
def batch() -> None:
    """Batch files (OpenAI Batch API, vllm run-batch) and Batch API jobs."""


def _settings(flags: dict[str, Any], config_path: Path | None) -> Any:
    from agent.config import flag_values, resolve_settings

    return resolve_settings(flag_values(flags), config_path=config_path)


def _echo(line: str) -> None:
    from agent.llm.redact import scrub

    click.echo(scrub(f"paper-agent: {line}"), err=True)


@batch.command("export")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=FILE,
    required=True,
    help="Request file (JSONL; - for stdout); split into NAME-0001.jsonl, ... past 50,000 lines "
    "or 200 MB.",
)
@settings_options("run")
@config_option
@limit_option()
def export_cmd(
    inputs: tuple[str, ...], output: Path, config_path: Path | None, limit: int | None, **flags: Any
) -> None:
    """Write one Batch API request per paper in INPUTS whose answer is not cached."""
    from agent import runner
    from agent.backends.openai import OpenAIBackend
    from agent.interests import interests_of
    from agent.llm.batch import Exported, batch_requests, export_requests
    from agent.llm.cache import AnswerCache, cache_dir
    from agent.llm.cost import make_budget, usd_exact
    from agent.outputs import check_outputs, write_atomic
    from agent.taxonomy import load_taxonomy

    settings = _settings(flags, config_path)
    check_outputs([*inputs, *settings.files_read(config_path)], {"-o": output})
    taxonomy = load_taxonomy(settings.taxonomy)
    interests = interests_of(settings, _echo)
    if settings.papers_per_request > 1:
        _echo("a batch line is one paper's request: --papers-per-request applies to live runs")
    papers = runner.open_inputs(list(inputs), limit, filters=settings.filters())
    for note in papers.unreadable_notes():
        _echo(note)
    budget = make_budget(settings)  # --max-cost: only the requests it covers are written
    cache = AnswerCache(cache_dir(settings.home)) if settings.use_cache else None
    backend = OpenAIBackend(settings, taxonomy, None, cache, interests, budget)  # type: ignore[arg-type]
    to_stdout = str(output) == "-"
    try:
        if to_stdout:  # one stream, never split: the reader decides what to do with it
            exported = Exported()
            for line in batch_requests(backend, papers.papers(), exported):
                click.echo(line)
            exported.files = [output] if exported.requests else []
        else:
            exported = export_requests(backend, papers.papers(), output)
    finally:
        papers.cleanup()
        if cache is not None:
            cache.close()
    left = f"{exported.cached} cached"
    left += f", {exported.invalid} with neither title nor abstract" if exported.invalid else ""
    if budget is not None and exported.over_budget:
        # An export sends nothing: its budget is spoken of as estimates, never as spending.
        limit = f"--max-cost {usd_exact(budget.limit)}"
        left += f", {len(exported.over_budget)} left out: with them the estimate would pass {limit}"
    if not exported.files:
        if not to_stdout:
            write_atomic(output, "")  # never an earlier file's requests sent again
        _echo(f"nothing to export: no request written to {output} ({left})")
    else:
        names = ", ".join("stdout" if to_stdout else str(p) for p in exported.files)
        cost = (
            f"; at most {usd_exact(exported.estimate)} estimated at Batch API prices, "
            "charged only when the batch runs"
            if budget
            else ""
        )
        _echo(f"{exported.requests} request(s) -> {names} ({left}){cost}")
        _echo(
            "run them (OpenAI Batch API, or: vllm run-batch -i FILE -o OUTPUT.jsonl), then: "
            "paper-agent batch import INPUTS --output-file OUTPUT.jsonl -o results.jsonl"
        )
    sys.exit(1 if exported.over_budget or papers.unreadable else 0)


@batch.command("import")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--output-file",
    "output_files",
    type=FILE,
    multiple=True,
    required=True,
    help="A batch output file (repeatable; lines in any order).",
)
@click.option(
    "--error-file",
    "error_files",
    type=FILE,
    multiple=True,
    help="A batch error file (repeatable): its papers get error records.",
)
@results_option
@click.option(
    "--no-repair", is_flag=True, help="Report invalid answers instead of re-asking them online."
)
@settings_options("run")
@config_option
@limit_option()
def import_cmd(
    inputs: tuple[str, ...],
    output_files: tuple[Path, ...],
    error_files: tuple[Path, ...],
    output: Path,
    no_repair: bool,
    config_path: Path | None,
    limit: int | None,
    **flags: Any,
) -> None:
    """Validate the answers of a batch output file, cache them, and write the results of the
    papers in INPUTS (the same inputs and settings the export had)."""
    from agent.history import Outcome

    with Outcome() as outcome:  # the import's record in the library says how it ended
        _import(
            outcome, inputs, output_files, error_files, output, no_repair, config_path, limit, flags
        )


def _import(
    outcome: Outcome,
    inputs: tuple[str, ...],
    output_files: tuple[Path, ...],
    error_files: tuple[Path, ...],
    output: Path,
    no_repair: bool,
    config_path: Path | None,
    limit: int | None,
    flags: dict[str, Any],
) -> None:
    """``batch import``'s body; ``outcome`` records it in the library."""
    from agent import runner
    from agent.history import command_line
    from agent.interests import interests_of
    from agent.llm.batch import read_batch_output
    from agent.outputs import check_outputs, output_lock
    from agent.pipeline import RunStats
    from agent.taxonomy import load_taxonomy

    settings = _settings(flags, config_path)
    if no_repair:
        settings = dataclasses.replace(settings, max_repairs=0)
    read = [*inputs, *output_files, *error_files, *settings.files_read(config_path)]
    check_outputs(read, {"-o": output})
    taxonomy = load_taxonomy(settings.taxonomy)
    interests = interests_of(settings, _echo)
    answers = read_batch_output([*output_files, *error_files])
    click.get_current_context().with_resource(output_lock(output, "results"))
    papers = runner.open_inputs(list(inputs), limit, filters=settings.filters())
    for note in papers.unreadable_notes():
        _echo(note)
    stats = RunStats(unreadable=len(papers.unreadable))
    files = [str(f) for f in output_files]
    command = command_line(inputs, files, output, verb="batch import")
    recorder = outcome.start(settings, taxonomy, command, batch=True)
    try:
        job = runner.execute(
            settings,
            taxonomy,
            papers,
            output,
            stats=stats,
            interests=interests,
            answers=answers,
            on_result=recorder.add if recorder is not None else None,
            track=recorder.track if recorder is not None else None,
        )
        runner.run_job(job)
    finally:
        papers.cleanup()
    _echo(f"{stats.summary()} -> {output}")
    failed = stats.failed or stats.skipped or stats.unreadable or not outcome.recorded
    sys.exit(1 if failed else 0)


def _jobs_command(name: str, help_text: str) -> Any:
    """A ``batch`` subcommand over saved jobs: the optional ID, the config and API settings."""

    def decorate(function: Any) -> Any:
        function = config_option(function)
        function = click.argument("batch_id", metavar="[ID]", required=False)(function)
        return batch.command(name, help=help_text)(function)

    return decorate


def _running(batch_id: str | None, config_path: Path | None) -> tuple[Any, list[Any]]:
    """The settings, and the job ``batch_id`` or every running one; none: say so, exit 0."""
    from agent.llm.batch_api import Jobs

    settings = _settings({}, config_path)
    pending = Jobs(settings.home).pick(batch_id)
    if not pending:
        click.echo("no running Batch API job")
        sys.exit(0)
    return settings, pending


def _run(settings: Any, work: Any) -> Any:
    from agent import runner
    from agent.llm.batch_api import batch_api

    async def go() -> Any:
        async with batch_api(settings, _echo) as (api, jobs):
            return await work(api, jobs)

    return runner.run_job(go())


@_jobs_command("status", "Show the Batch API jobs (ID, or all) and their progress.")
def status_cmd(batch_id: str | None, config_path: Path | None) -> None:
    from agent.llm.batch_api import ENDED, Jobs

    settings = _settings({}, config_path)
    saved = Jobs(settings.home).load() if batch_id is None else Jobs(settings.home).pick(batch_id)
    if not saved:
        click.echo("no Batch API jobs")
        return

    async def work(api: Any, jobs: Any) -> None:
        for job in saved:
            if job.batch_id and job.status not in ENDED:
                await api.refresh(job, jobs)

    if not settings.api_key and not settings.base_url:
        _echo("no OPENAI_API_KEY: the saved status is shown, not checked with the API")
    elif any(job.batch_id and job.status not in ENDED for job in saved):
        _run(settings, work)
    for job in saved:
        failed = f", {job.failed} failed" if job.failed else ""
        problem = f" ({job.problem})" if job.problem else ""
        click.echo(
            f"{job.label()}  {job.status}{problem}  {job.completed}/{job.requests} done{failed}"
            f"  {job.requests_file}"
        )


@_jobs_command("resume", "Wait for Batch API jobs (ID, or all running) and download them.")
def resume_cmd(batch_id: str | None, config_path: Path | None) -> None:
    from agent.llm.batch_api import DONE

    settings, pending = _running(batch_id, config_path)

    async def work(api: Any, jobs: Any) -> list[Path]:
        await api.wait(pending, jobs)
        paths: list[Path] = []
        for job in pending:
            if job.status in DONE:
                paths += await api.download(job, jobs.directory)
        return paths

    for path in _run(settings, work):
        click.echo(str(path))
    _echo(
        "import them with: paper-agent batch import INPUTS --output-file FILE ... -o results.jsonl"
    )


@_jobs_command("cancel", "Cancel Batch API jobs (ID, or all running).")
def cancel_cmd(batch_id: str | None, config_path: Path | None) -> None:
    settings, pending = _running(batch_id, config_path)

    async def work(api: Any, jobs: Any) -> None:
        for job in pending:
            await api.cancel(job, jobs)
            click.echo(f"{job.label()}  {job.status}")

    _run(settings, work)
