"""Runs a backend over papers with bounded concurrency; results stream to disk in input order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from agent.backends import Backend
from agent.errors import OutputError, PaperFailed
from agent.models import Paper, PaperResult, Usage

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What the run did, for the final summary line."""

    ok: int = 0
    failed: int = 0
    cache_hits: int = 0
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)

    @property
    def total(self) -> int:
        """Papers finished (ok or failed)."""
        return self.ok + self.failed

    def add(self, result: PaperResult) -> None:
        """Count one finished paper."""
        if result.error is None:
            self.ok += 1
        else:
            self.failed += 1
        self.cache_hits += result.cached
        self.usage = self.usage + result.usage

    def summary(self) -> str:
        """One line for stderr."""
        u = self.usage
        return (
            f"{self.ok} ok, {self.failed} failed; {u.requests} requests, {u.retries} retries, "
            f"{self.cache_hits} cache hits; tokens: {u.prompt_tokens} prompt, "
            f"{u.completion_tokens} completion, {u.cached_tokens} cached; "
            f"{time.monotonic() - self.started:.1f}s"
        )


async def annotate_one(backend: Backend, paper: Paper) -> PaperResult:
    """One paper's result; a per-paper failure becomes an error record, never an exception."""
    try:
        annotation = await backend.annotate(paper)
    except PaperFailed as exc:
        log.warning("paper %s failed after %d attempt(s): %s", paper.id, exc.attempts, exc.message)
        if exc.last_raw is not None:
            log.debug("paper %s: last answer was %r", paper.id, exc.last_raw[:500])
        usage = exc.usage if isinstance(exc.usage, Usage) else None
        return PaperResult.failed(paper, exc.kind, exc.message, backend.name, backend.model, usage)
    return PaperResult.ok(paper, annotation, backend.name, backend.model)


class _OrderedWriter:
    """Writes results in input order as soon as each one's predecessors are written."""

    def __init__(self, stream: IO[str], on_result: Callable[[PaperResult], None]) -> None:
        self.stream = stream
        self.on_result = on_result
        self.pending: dict[int, PaperResult] = {}
        self.next_index = 0

    def put(self, index: int, result: PaperResult) -> int:
        """Buffer ``result``; write every result now in order. Returns how many were written."""
        self.pending[index] = result
        written = 0
        while self.next_index in self.pending:
            self._write(self.pending.pop(self.next_index))
            self.next_index += 1
            written += 1
        if written:
            self.stream.flush()
        return written

    def drain(self) -> None:
        """Write whatever finished out of order (on interrupt), still in input order."""
        for index in sorted(self.pending):
            self._write(self.pending.pop(index))
        self.stream.flush()

    def _write(self, result: PaperResult) -> None:
        self.stream.write(result.model_dump_json() + "\n")
        self.on_result(result)


async def run_pipeline(
    papers: Iterable[Paper],
    backend: Backend,
    output: Path,
    *,
    concurrency: int = 8,
    on_result: Callable[[PaperResult], None] | None = None,
    stats: RunStats | None = None,
) -> RunStats:
    """Annotate ``papers`` into ``output`` (JSONL, input order), replaced atomically at the end.

    At most ``concurrency`` papers are in flight and at most ``4 * concurrency`` finished results
    wait for a slow predecessor, so memory stays bounded however long the input. If the run is
    interrupted or the backend fails for good, every finished result is still written.
    """
    stats = stats if stats is not None else RunStats()

    def counted(result: PaperResult) -> None:
        stats.add(result)
        if on_result is not None:
            on_result(result)

    source = enumerate(papers)
    window = asyncio.Semaphore(max(4 * concurrency, concurrency + 1))
    partial = output.with_name(output.name + ".partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        partial.touch()
    except OSError as exc:
        raise OutputError(f"cannot write results to {output}: {exc.strerror}") from None

    writer: _OrderedWriter | None = None
    try:
        with partial.open("w", encoding="utf-8") as stream:
            writer = _OrderedWriter(stream, counted)

            async def worker() -> None:
                while True:
                    await window.acquire()
                    item = next(source, None)
                    if item is None:
                        window.release()
                        return
                    index, paper = item
                    result = await annotate_one(backend, paper)
                    for _ in range(writer.put(index, result)):
                        window.release()

            try:
                await _gather_or_cancel([asyncio.create_task(worker()) for _ in range(concurrency)])
            finally:
                writer.drain()
                os.fsync(stream.fileno())
    except BaseException:
        # Keep finished work, but never replace an earlier results file with nothing.
        if stats.total:
            os.replace(partial, output)
        else:
            partial.unlink(missing_ok=True)
        raise
    os.replace(partial, output)
    return stats


async def _gather_or_cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for all tasks; on the first error or a cancel, cancel the rest and re-raise."""
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
