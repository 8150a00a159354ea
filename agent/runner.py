"""What ``paper-agent run`` does, as plain functions: inputs, backend, pipeline, dry run."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from agent.backends import Backend
from agent.config import Settings
from agent.errors import ConfigError, InputError, Interrupted, OutputError
from agent.llm.cache import MISS, AnswerCache, cache_dir
from agent.llm.cost import (
    Budget,
    estimated_tokens,
    make_budget,
    per_million,
    settings_price,
    unknown_price,
    usd,
)
from agent.llm.limits import request_cost, tpm_too_small
from agent.models import Paper, PaperResult, Usage
from agent.pipeline import RunStats, run_pipeline
from agent.sources import read_papers, unique_papers
from agent.taxonomy import Taxonomy

if TYPE_CHECKING:
    import httpx

    from agent.digest import Digest
    from agent.interests import Interests
    from agent.llm.batch import BatchAnswer
    from agent.prefilter import FilterReport, Filters

T = TypeVar("T")
log = logging.getLogger(__name__)

NOTICE_LOCAL = (
    "paper-agent: no API key or base URL configured: using the offline backend "
    "(set OPENAI_API_KEY or --base-url for an LLM; said once per state dir)"
)
# In the state dir once the notice was shown: a daily cron job says it once, not every day.
NOTICE_SHOWN = "offline-notice-shown"


def offline_notes(settings: Settings) -> list[str]:
    """Lines for a run on the offline backend: the notice when it was chosen for want of an
    LLM (the first time in this state dir), and the LLM settings it ignores."""
    if settings.batch_api or settings.resolved_backend() != "local":
        return []  # --batch-api is the LLM backend whatever --backend says
    notes = []
    if settings.backend == "auto" and _first_time(settings.home / NOTICE_SHOWN):
        notes.append(NOTICE_LOCAL)
    if settings.papers_per_request > 1:
        notes.append(
            "paper-agent: --papers-per-request does not apply to the offline backend (it sends "
            "no requests): ignored"
        )
    return notes


def _first_time(mark: Path) -> bool:
    """True, once: the marker file did not exist and now does (or cannot be written)."""
    if mark.exists():
        return False
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
    except OSError:
        pass  # a read-only state dir: the notice shows every time, which does no harm
    return True


@dataclass
class Inputs:
    """Validated input files: how many unique papers they hold and which ids repeat."""

    sources: list[str]
    count: int
    duplicates: list[str] = field(default_factory=list)
    limit: int | None = None
    fetched: list[Paper] = field(default_factory=list)  # from --source, run before the files
    filters: Filters | None = None  # prefilters: papers they drop never reach a backend
    report: FilterReport | None = None  # what the prefilters kept, counted on the first pass
    # stdin, pipes and process substitutions, saved: the run streams its inputs twice
    spools: dict[str, Path] = field(default_factory=dict)
    # Broken records ("FILE line N: invalid JSON ..."), each skipped alone: the run goes on
    # without them and exits 1.
    unreadable: list[str] = field(default_factory=list)

    def papers(self) -> Iterator[Paper]:
        """Stream the unique papers again, up to the limit."""
        return self._stream([], None, [])

    def _stream(
        self, duplicates: list[str], report: FilterReport | None, unreadable: list[str]
    ) -> Iterator[Paper]:
        papers = unique_papers(self._read(unreadable), duplicates)
        if self.filters is not None:
            from agent.prefilter import apply

            papers = apply(papers, self.filters, report)
        return itertools.islice(papers, self.limit) if self.limit else papers

    def _read(self, unreadable: list[str]) -> Iterator[Paper]:
        yield from self.fetched
        for source in self.sources:
            spool = self.spools.get(source)
            if spool is None:
                yield from read_papers([source], unreadable=unreadable)
                continue
            name = "stdin" if source == "-" else source
            with spool.open(encoding="utf-8-sig") as stream:
                try:
                    yield from read_papers(["-"], stdin=stream, name=name, unreadable=unreadable)
                except UnicodeDecodeError:
                    raise InputError(f"{name} is not UTF-8 text (binary input?)") from None

    def unreadable_notes(self, shown: int = 10) -> list[str]:
        """One line per broken record, the first ``shown`` of them, then how many more."""
        notes = [f"skipped an unreadable record: {why}" for why in self.unreadable[:shown]]
        if len(self.unreadable) > shown:
            notes.append(f"... and {len(self.unreadable) - shown} more unreadable record(s)")
        return notes

    def cleanup(self) -> None:
        """Remove the spool files, if any."""
        for spool in self.spools.values():
            spool.unlink(missing_ok=True)


def open_inputs(
    paths: list[str],
    limit: int | None = None,
    stdin: IO[bytes] | None = None,
    fetched: list[Paper] | None = None,
    filters: Filters | None = None,
) -> Inputs:
    """Read every input once up front so bad input fails before any paper is sent anywhere
    (a broken record only costs itself: it is listed in ``unreadable``)."""
    inputs = Inputs(list(paths), 0, [], limit, list(fetched or []), filters)
    if filters is not None:
        from agent.prefilter import FilterReport

        inputs.report = FilterReport()
    try:
        for source in dict.fromkeys(paths):
            if source == "-":
                inputs.spools[source] = _spool(stdin or sys.stdin.buffer)
            elif _is_stream(source):
                with open(source, "rb") as stream:
                    inputs.spools[source] = _spool(stream)
        # Only duplicates met before the limit matter: later papers are never run.
        count = sum(1 for _ in inputs._stream(inputs.duplicates, inputs.report, inputs.unreadable))
    except BaseException:
        inputs.cleanup()
        raise
    inputs.count = count  # 0 only when prefilters dropped every paper
    return inputs


def _is_stream(source: str) -> bool:
    """A pipe, a process substitution or a device: it can be read only once."""
    try:
        mode = os.stat(source).st_mode
    except OSError:
        return False  # the reader says what is wrong with it
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _spool(stream: IO[bytes]) -> Path:
    with tempfile.NamedTemporaryFile(suffix=".input", delete=False) as tmp:
        shutil.copyfileobj(stream, tmp)
    return Path(tmp.name)


def build_backend(
    settings: Settings,
    taxonomy: Taxonomy,
    http: object,
    interests: Interests | None = None,
    budget: Budget | None = None,
    *,
    batch: bool = False,
) -> Backend:
    """The backend ``settings`` ask for; an LLM backend without credentials is a config error.

    ``batch``: the answers come from batch files, so it is the LLM backend whatever the
    settings say, and it needs a server only to repair invalid answers.
    """
    kind = "openai" if batch else settings.resolved_backend()
    if kind == "local":
        from agent.backends.local import LocalBackend

        semantic = None
        if settings.semantic:
            from agent.backends.local.semantic import SemanticScorer

            semantic = SemanticScorer(taxonomy)  # loads the model: a missing extra fails now
        return LocalBackend(
            taxonomy,
            max_tags=taxonomy.tag_limit(settings.max_tags),
            summary_words=settings.summary_words,
            interests=interests,
            semantic=semantic,
        )
    online = not batch or settings.batch_api or settings.max_repairs > 0
    if online and not settings.api_key and not settings.base_url:
        if batch and settings.batch_api:
            raise ConfigError(
                f"--batch-api needs {settings.api_key_env} (or --base-url for a server with the "
                "Batch API)"
            )
        why = " to repair invalid answers (or pass --no-repair)" if batch else ""
        raise ConfigError(
            f"--backend openai needs {settings.api_key_env} (or --base-url for a local server){why}"
        )
    from agent.backends.openai import OpenAIBackend

    cache = AnswerCache(cache_dir(settings.home)) if settings.use_cache else None
    return OpenAIBackend(settings, taxonomy, http, cache, interests, budget)  # type: ignore[arg-type]


async def execute(
    settings: Settings,
    taxonomy: Taxonomy,
    inputs: Inputs,
    output: Path,
    *,
    stats: RunStats,
    on_result: Callable[[PaperResult], None] | None = None,
    digest: DigestRequest | None = None,
    interests: Interests | None = None,
    answers: dict[str, BatchAnswer] | None = None,
    notify: Callable[[str], None] | None = None,
    track: Callable[[Iterator[Paper]], Iterator[Paper]] | None = None,
) -> str | None:
    """Run the whole batch into ``output``, then the digest; returns digest text for stdout.
    ``track`` sees the papers as the pipeline reads them (the run's record in the library).

    One HTTP client serves the LLM, the highlights and Slack (DESIGN 1). With ``answers``
    (imported batch output), the answers come from there and only repairs go online; with
    ``settings.batch_api``, OpenAI's Batch API answers first.
    """
    from agent.llm.http import make_client
    from agent.llm.recording import recorder_from_env

    budget = None
    batch = answers is not None or settings.batch_api
    stats.batch = batch
    stats.offline = not batch and settings.resolved_backend() == "local"
    if batch or settings.resolved_backend() == "openai":
        # Before anything is sent: --max-cost without a price is a config error.
        budget = make_budget(settings)
        stats.priced = True
        stats.price = budget.price if budget is not None else settings_price(settings)
    recorder = recorder_from_env()
    async with make_client(settings.timeout, max(settings.concurrency, 8), recorder) as http:
        backend = build_backend(settings, taxonomy, http, interests, budget, batch=batch)
        try:
            if batch:
                from agent.llm.batch import BatchAnswers

                imported = answers is not None  # from files: maybe made with other settings
                if answers is None:
                    from agent.llm.batch_api import answer_by_batch

                    answers = await answer_by_batch(backend, inputs.papers(), notify)  # type: ignore[arg-type]
                backend = BatchAnswers(backend, answers)  # type: ignore[arg-type]
                if (
                    imported
                    and answers
                    and not backend.matching(inputs.papers(), settings.max_abstract_chars)
                ):
                    raise InputError(
                        f"none of the {len(answers)} batch answers is for these papers with "
                        "these settings: import with the inputs and settings of the export "
                        "(base URL, model, taxonomy, prompts, limits, interests)"
                    )
            await run_pipeline(
                track(inputs.papers()) if track is not None else inputs.papers(),
                backend,
                output,
                concurrency=settings.concurrency,
                on_result=on_result,
                stats=stats,
                max_failures=settings.max_consecutive_failures,
                max_abstract_chars=settings.max_abstract_chars,
            )
        finally:
            await backend.aclose()
            if recorder is not None:
                recorder.save()
        if digest is not None and digest.webhook and stats.skipped:
            # Posting part of today's digest now would post its papers again tomorrow, in the
            # complete digest of the rerun: Slack waits for that one.
            log.warning(
                "not posting to Slack: %d paper(s) were skipped; the rerun posts the digest",
                stats.skipped,
            )
            digest = dataclasses.replace(digest, webhook=None)
        if digest is None:
            return None
        return await publish(http, settings, output, digest, budget, stats, notify)


def run_job(job: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(job)``, with SIGTERM handled as Ctrl-C is: the job is cancelled, its
    cleanup writes the finished results, and ``Interrupted`` says so (exit 143)."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        terminated: list[bool] = []

        def on_sigterm() -> None:
            terminated.append(True)
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        try:
            return await job
        except asyncio.CancelledError:
            if terminated:
                raise Interrupted("terminated", signal.SIGTERM) from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(main())


def quiet_day(
    settings: Settings,
    output: Path,
    digest: DigestRequest,
    notify: Callable[[str], None] | None = None,
) -> None:
    """A day with no new paper: an empty results file, and the digest only if asked for."""
    from agent.llm.http import make_client
    from agent.outputs import write_atomic

    write_atomic(output, "")
    if digest.fmt is None and digest.webhook is None:
        return

    async def go() -> str | None:
        async with make_client(settings.timeout) as http:
            return await publish(http, settings, output, digest, say=notify)

    text = run_job(go())
    if text is not None:
        sys.stdout.write(text)


def dry_run(
    settings: Settings, taxonomy: Taxonomy, inputs: Inputs, interests: Interests | None = None
) -> str:
    """The first request's prompt, and how many requests and tokens the run would need."""
    from agent.digest.text import plural

    if settings.resolved_backend() == "local":
        return f"offline backend: {plural(inputs.count, 'paper')}, no requests, no tokens"
    from agent.backends.openai import OpenAIBackend

    make_budget(settings)  # --max-cost without a price fails here as it would in the run
    cache = AnswerCache(cache_dir(settings.home)) if settings.use_cache else None
    backend = OpenAIBackend(settings, taxonomy, None, cache, interests)  # type: ignore[arg-type]
    first = single = None
    chars = hits = 0
    skipped = 0
    size = settings.papers_per_request
    group: list[Paper] = []  # papers not cached yet, asked together when size > 1

    def ask(papers: list[Paper]) -> int:
        nonlocal first
        prompts = backend.prompts()
        sent = prompts.messages(papers[0]) if len(papers) == 1 else prompts.group_messages(papers)
        first = first or sent
        return sum(len(m["content"]) for m in sent)

    for paper in inputs.papers():
        if not paper.title and not paper.abstract:
            skipped += 1  # an invalid_input record: never sent
            continue
        messages = backend.prompts().messages(paper)
        single = single or messages  # shown when every paper is cached
        if cache is not None and cache.get(backend.key_for(messages)) is not MISS:
            hits += 1
            continue
        group.append(paper)
        if len(group) == size:
            chars += ask(group)
            group = []
    if group:
        chars += ask(group)
    if cache is not None:
        cache.close()
    answers = inputs.count - hits - skipped
    requests = -(-answers // size)
    # The answer is the summary plus a few tags.
    prompt_tokens = estimated_tokens(chars)
    completion_tokens = answers * (settings.summary_words * 2 + 30)
    lines = [f"--- {m['role']} ---\n{m['content']}" for m in first or single or []]
    lines.append(
        f"\n{plural(inputs.count, 'paper')}: {plural(requests, 'request')} to {backend.base_url} "
        f"(model {settings.model}), {hits} cached; about {prompt_tokens} prompt and "
        f"{completion_tokens} completion tokens. Nothing was sent."
    )
    lines.append(estimate_line(settings, prompt_tokens, completion_tokens))
    if settings.tpm and first:
        question = backend.question() if size == 1 else backend.group_question()
        warning = tpm_too_small(settings.tpm, request_cost(first, question.max_tokens))
        lines += [warning] if warning else []
    return "\n".join(lines)


def estimate_line(settings: Settings, prompt_tokens: int, completion_tokens: int) -> str:
    """The dry run's cost estimate, online and with the Batch API (no prompt cache hits)."""
    price = settings_price(settings)
    if price is None:
        return f"Estimated cost: unknown ({unknown_price(settings)})."
    online = price.cost(prompt_tokens, completion_tokens)
    batch = price.cost(prompt_tokens, completion_tokens, batch=True)
    line = (
        f"Estimated cost: {usd(online)}, or {usd(batch)} with the Batch API "
        f"({settings.model}: {per_million(price.input)} input, {per_million(price.output)} "
        "output per 1M tokens)."
    )
    if settings.max_cost is not None:
        verdict = (
            "within it" if online <= settings.max_cost else "over it, the run would stop early"
        )
        line += f" --max-cost {usd(settings.max_cost)}: {verdict}."
    return line


@dataclass(frozen=True)
class DigestRequest:
    """What to do with the results once the run is over: render, write, post."""

    fmt: str | None = None
    out: Path | None = None
    webhook: str | None = None
    highlights: bool = False
    top: int | None = None  # None: 15 when results have a relevance, else none
    sort: str | None = None  # relevance | tag | upvotes; None: relevance when scored, else tag
    # run posts every paper until its flags are wired; then False gives the one-screen message
    full: bool = True
    more_url: str | None = None  # http(s) link to the full digest, under the one message
    min_relevance: float | None = None  # scored papers below it are left out, and counted


async def publish(
    http: httpx.AsyncClient,
    settings: Settings,
    results_path: Path,
    request: DigestRequest,
    budget: Budget | None = None,
    stats: RunStats | None = None,
    say: Callable[[str], None] | None = None,
) -> str | None:
    """Render the digest (returned when no ``out`` file) and post the papers Slack does not
    have yet, one line per delivery to ``say``; the highlights request counts against the
    run's --max-cost ``budget`` and in ``stats``."""
    from agent.delivery.outbox import Builder
    from agent.digest import SORTS, load_results, make_digest, render
    from agent.outputs import write_atomic

    tell = say or log.info
    sort = next((s for s in SORTS if s == request.sort), None)  # narrowed to the Sort literal

    async def build(results: list[PaperResult]) -> Digest:
        digest = make_digest(
            results,
            taxonomy=settings.taxonomy,
            sort=sort,
            top=request.top,
            min_relevance=request.min_relevance,
        )
        if request.highlights:
            from agent.highlights import with_highlights

            def spent(usage: Usage) -> None:
                if stats is not None:
                    stats.usage = stats.usage + usage

            digest = await with_highlights(digest, settings, http, budget, spent)
        return digest

    results = load_results(results_path)
    digests = Builder(build)  # the file and Slack share a digest when Slack lacks every paper
    text = None
    if request.fmt:
        text = render(
            await digests(results), request.fmt, full=request.full, more_url=request.more_url
        )
    if text is not None and request.out is not None:
        try:
            write_atomic(request.out, text)
        except OutputError as exc:
            raise OutputError(
                f"{exc} (the results are in {results_path}: run paper-agent digest on them)"
            ) from None
        tell(f"{request.out} written")
        text = None
    if request.webhook:
        from agent.delivery.outbox import deliver
        from agent.delivery.slack import SlackChannel

        again = f"paper-agent post {results_path}"
        again += f" --taxonomy {settings.taxonomy}" if settings.taxonomy else ""
        again += " --highlights" if request.highlights else ""
        # The same flags rebuild the same messages: the journal resumes them where they stopped.
        again += f" --top {request.top}" if request.top is not None else ""
        again += f" --sort {sort}" if sort else ""
        again += (
            f" --min-relevance {request.min_relevance}" if request.min_relevance is not None else ""
        )
        again += " --full" if request.full else ""
        again += f" --more-url {request.more_url}" if request.more_url else ""
        slack = SlackChannel(http, request.webhook, full=request.full, more_url=request.more_url)
        # Papers Slack already has (an earlier digest, a partial post) are left out, and a
        # digest stopped part-way resumes: no paper is posted twice.
        await deliver(results, digests, slack, say=tell, again=again, forcing=f"{again} --force")
    return text
