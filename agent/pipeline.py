"""Runs a backend over papers with bounded concurrency; results stream to disk in input order.

The results file is replaced only by a complete one: every input paper has its line, in input
order. A paper that was never run (the circuit breaker tripped, the run was interrupted or
stopped) gets a ``skipped`` error record, so a rerun retries exactly those.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from agent.backends import Backend
from agent.config import Settings
from agent.errors import NOT_RUN, Halt, OutputError, PaperFailed
from agent.llm.answers import without_tag_list
from agent.llm.client import SERVER_TROUBLE, probe_limit
from agent.llm.cost import Price, usd
from agent.llm.prompts import clip_abstract
from agent.models import Paper, PaperResult, Usage
from agent.outputs import commit, partial_path

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What the run did, for the final summary line."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    unreadable: int = 0  # input records that were no paper (broken JSON...): no result line
    cache_hits: int = 0
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)
    stopped: str | None = None  # why the run stopped launching papers, if it did
    priced: bool = False  # an LLM run: the summary says what it cost, or that it is unknown
    price: Price | None = None  # the model's price, when known
    batch: bool = False  # the answers came from a batch: priced at the Batch API's rate
    # What papers cancelled in flight had spent (the backend's, updated in place): no result
    # line carries it, but the server received those requests, so the summary counts it.
    unfinished: Usage = field(default_factory=Usage)
    offline: bool = False  # the offline backend: no requests, tokens or cache to count

    @property
    def total(self) -> int:
        """Papers with a result line (ok, failed or skipped)."""
        return self.ok + self.failed + self.skipped

    def add(self, result: PaperResult) -> None:
        """Count one finished paper."""
        if result.error is None:
            self.ok += 1
        elif result.error.type == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
        self.cache_hits += result.cached
        self.usage = self.usage + result.usage

    def spent(self) -> Usage:
        """Everything the run sent: the results' usage and that of papers cancelled in flight."""
        return self.usage + self.unfinished

    def summary(self) -> str:
        """One line for stderr."""
        u = self.spent()
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        if self.unreadable:
            skipped += f", {self.unreadable} unreadable input record(s)"
        seconds = f"{time.monotonic() - self.started:.1f}s"
        if self.offline:
            return f"{self.ok} ok, {self.failed} failed{skipped} (offline); {seconds}"
        return (
            f"{self.ok} ok, {self.failed} failed{skipped}; {u.requests} requests, "
            f"{u.retries} retries, {self.cache_hits} cache hits; tokens: {u.prompt_tokens} "
            f"prompt, {u.completion_tokens} completion, {u.cached_tokens} cached; "
            f"{self.cost()}{seconds}"
        )

    def cost(self) -> str:
        """What the real usage cost ("cost unknown" without a price), for the summary."""
        if not self.priced:
            return ""
        if self.price is None:
            return "cost unknown; "
        rate = " at Batch API prices" if self.batch else ""
        return f"cost {usd(self.price.of(self.spent(), self.batch))}{rate}; "


class CircuitBreaker:
    """Trips after ``limit`` papers in a row failed for the server's sake (0: never), or when a
    paper's failure halts the run (see ``Halt``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0
        self.reason: str | None = None
        self.drain = False  # papers in flight finish (the run stopped, not the server)

    def record(self, result: PaperResult, halt: Halt | None) -> None:
        """Count one finished paper; a cache hit says nothing about the server."""
        error = result.error
        if self.reason is not None:
            return  # tripped already: papers still finishing do not change why
        if error is not None and halt is not None:
            # A paper left waiting by the halt says what the paper that halted said, so which
            # of them is recorded first does not matter.
            cause = error.message.removeprefix(NOT_RUN)
            if halt is Halt.DRAIN:  # e.g. --max-cost, which its message names
                self.reason = cause
                self.drain = True  # what is in flight is paid for already: let it finish
            else:
                alone = probe_limit(self.limit)
                self.reason = (
                    f"the LLM server failed {alone} paper(s) in a row, each sent alone ({cause})"
                )
        elif error is not None and error.type in SERVER_TROUBLE:
            self.streak += 1
            if self.limit and self.streak >= self.limit:
                self.reason = f"{self.streak} papers in a row failed (last: {error.message})"
        elif result.usage.requests:
            self.streak = 0  # the server answered (a cache hit or bad input says nothing)


async def annotate_one(
    backend: Backend, paper: Paper, max_abstract_chars: int = Settings.max_abstract_chars
) -> tuple[PaperResult, Halt | None]:
    """One paper's result, and whether its failure halts the run; never an exception."""
    if not paper.title and not paper.abstract:
        message = "the record has neither a title nor an abstract"
        return _failed(backend, paper, "invalid_input", message), None
    try:
        annotation = await backend.annotate(clip_abstract(paper, max_abstract_chars))
    except PaperFailed as exc:
        usage = exc.usage if isinstance(exc.usage, Usage) else None
        requests = usage.requests if usage else 0
        # A paper the run did not get to is not a failure: the run's own line says why.
        level = logging.INFO if exc.kind == "skipped" else logging.WARNING
        # One line by default: an unknown-tag message lists every tag, which -v shows.
        full = log.isEnabledFor(logging.INFO)
        message = exc.message if full else without_tag_list(exc.message)
        log.log(level, "paper %s failed after %d request(s): %s", paper.id, requests, message)
        if exc.last_raw is not None:
            log.debug("paper %s: last answer was %r", paper.id, exc.last_raw[:500])
        return _failed(backend, paper, exc.kind, exc.message, usage), exc.halt
    return PaperResult.ok(paper, annotation, backend.name, backend.model), None


def _failed(
    backend: Backend, paper: Paper, kind: str, message: str, usage: Usage | None = None
) -> PaperResult:
    return PaperResult.failed(paper, kind, message, backend.name, backend.model, usage)


class _WriteFailed(Exception):
    """The results could not be written (a full disk, most often)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _OrderedWriter:
    """Writes results in input order as soon as each one's predecessors are written."""

    def __init__(self, stream: IO[str], on_result: Callable[[PaperResult], None]) -> None:
        self.stream = stream
        self.on_result = on_result
        self.pending: dict[int, PaperResult] = {}
        self.next_index = 0
        self.written = 0  # lines safely on disk (flushed)
        self.flushed = 0  # their size in bytes

    def put(self, index: int, result: PaperResult) -> int:
        """Buffer ``result``; write every result now in order. Returns how many were written."""
        self.pending[index] = result
        written = size = 0
        try:
            while self.next_index in self.pending:
                line = self.pending[self.next_index].to_line() + "\n"
                self.stream.write(line)
                size += len(line.encode("utf-8"))
                self.on_result(self.pending.pop(self.next_index))
                self.next_index += 1
                written += 1
            if written:
                self.stream.flush()
        except OSError as exc:
            raise _WriteFailed(exc) from None
        self.written += written
        self.flushed += size
        return written


async def run_pipeline(
    papers: Iterable[Paper],
    backend: Backend,
    output: Path,
    *,
    concurrency: int = 8,
    on_result: Callable[[PaperResult], None] | None = None,
    stats: RunStats | None = None,
    max_failures: int = Settings.max_consecutive_failures,
    max_abstract_chars: int = Settings.max_abstract_chars,
) -> RunStats:
    """Annotate ``papers`` into ``output`` (JSONL, input order), replaced atomically at the end.

    At most ``concurrency * backend.papers_per_request`` papers are in flight (a backend that
    asks for several papers in one request needs that many to fill its ``concurrency``) and at
    most four times that many finished results wait for a slow predecessor, so memory stays
    bounded however long the input. When the circuit breaker trips, the run stops launching
    papers and the rest get ``skipped`` records (for --max-cost, papers in flight finish first:
    their requests are paid for);
    when it is interrupted or the backend fails for good, the same happens before the error
    goes up, so a rerun retries exactly the papers that did not finish.
    """
    stats = stats if stats is not None else RunStats()
    concurrency *= backend.papers_per_request
    # Only the LLM backends spend anything on papers they never finish.
    stats.unfinished = getattr(backend, "unfinished", stats.unfinished)

    def counted(result: PaperResult) -> None:
        stats.add(result)
        if on_result is not None:
            on_result(result)

    source = enumerate(papers)
    window = asyncio.Semaphore(max(4 * concurrency, concurrency + 1))
    breaker = CircuitBreaker(max_failures)
    in_flight: dict[int, Paper] = {}
    partial = partial_path(output)
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
        stream = partial.open("w", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write results to {output}: {exc.strerror}") from None

    writer = _OrderedWriter(stream, counted)

    async def worker() -> None:
        while breaker.reason is None:
            await window.acquire()
            item = next(source, None)
            if item is None:
                window.release()
                return
            index, paper = item
            in_flight[index] = paper
            result, halt = await annotate_one(backend, paper, max_abstract_chars)
            del in_flight[index]
            breaker.record(result, halt)
            for _ in range(writer.put(index, result)):
                window.release()
        if not breaker.drain:
            raise _Tripped

    def skip_the_rest(reason: str) -> None:
        """Give every paper that did not finish a ``skipped`` record."""
        for index, paper in _unfinished(in_flight, source):
            message = f"{NOT_RUN}{reason}; run again to retry it"
            writer.put(index, _failed(backend, paper, "skipped", message))

    def finish() -> None:
        try:
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
        except OSError as exc:
            raise _WriteFailed(exc) from None

    try:
        try:
            await _gather_or_cancel([asyncio.create_task(worker()) for _ in range(concurrency)])
        except _Tripped:
            pass  # the breaker says why, below
        except _WriteFailed:
            raise
        except BaseException as exc:
            # Interrupted, or the backend cannot work: keep finished work, but never replace
            # an earlier results file with nothing.
            if stats.total or writer.pending:
                skip_the_rest(_why(exc))
                finish()
                _replace(partial, output)
            raise
        if breaker.reason is not None:
            stats.stopped = breaker.reason
            log.info("stopped launching papers: %s", breaker.reason)  # the caller says it
            skip_the_rest(f"the run stopped: {breaker.reason}")
        finish()
    except _WriteFailed as exc:
        with contextlib.suppress(OSError):
            stream.close()
        with contextlib.suppress(OSError):
            os.truncate(partial, writer.flushed)  # no cut-off last line; frees space too
        raise _write_error(exc.error, output, partial, writer.written) from None
    except BaseException:
        with contextlib.suppress(OSError):
            stream.close()
        if not (stats.total or writer.pending):
            partial.unlink(missing_ok=True)
        raise
    _replace(partial, output)
    return stats


class _Tripped(Exception):
    """The circuit breaker tripped: stop every worker."""


def _unfinished(
    in_flight: dict[int, Paper], source: Iterator[tuple[int, Paper]]
) -> Iterator[tuple[int, Paper]]:
    yield from sorted(in_flight.items())
    in_flight.clear()
    yield from source


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "the run was interrupted"
    return f"the run stopped: {exc}"


def _replace(partial: Path, output: Path) -> None:
    try:
        commit(partial, output)
    except OSError as exc:
        raise OutputError(
            f"cannot replace {output}: {exc.strerror}; the results are in {partial}"
        ) from None


def _write_error(error: OSError, output: Path, partial: Path, written: int) -> OutputError:
    """One line on a results write that failed: the earlier file is intact, the rest is kept."""
    what = "the disk is full" if error.errno == errno.ENOSPC else error.strerror
    return OutputError(
        f"cannot write results to {output}: {what}; {output} is unchanged; the {written} "
        f"result(s) written before that are in {partial} (answers are cached: a rerun pays "
        "only for the rest)"
    )


async def _gather_or_cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for all tasks; on the first error or a cancel, cancel the rest and re-raise."""
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
    finally:
        for task in tasks:
            task.cancel()
        # Wait for them to unwind; a cancel of this task meanwhile still goes up.
        await asyncio.wait(tasks)
