"""The pipeline: input order under concurrency, per-paper isolation, flush on interrupt."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from agent.errors import BackendError, PaperFailed
from agent.models import Annotation, Paper
from agent.pipeline import run_pipeline


def papers(n: int) -> list[Paper]:
    """``n`` distinct papers."""
    return [Paper(id=f"p{i}", title=f"Paper {i}", abstract="An abstract.") for i in range(n)]


class ScriptedBackend:
    """A backend with random latencies whose behaviour per paper id is scripted."""

    name = "scripted"
    papers_per_request = 1
    model = "m"

    def __init__(
        self, fail: set[str] = frozenset(), fatal: str | None = None, seed: int = 7
    ) -> None:
        self.fail = fail
        self.fatal = fatal
        self.random = random.Random(seed)
        self.in_flight = 0
        self.peak = 0

    async def annotate(self, paper: Paper) -> Annotation:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.random.uniform(0, 0.01))
            if paper.id == self.fatal:
                raise BackendError("bad key")
            if paper.id in self.fail:
                raise PaperFailed("server_error", "HTTP 500")
            return Annotation(tags=["LLMs"], summary=f"summary of {paper.id}")
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        pass


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_results_come_out_in_input_order_under_concurrency(tmp_path):
    out = tmp_path / "results.jsonl"
    backend = ScriptedBackend()
    stats = await run_pipeline(papers(120), backend, out, concurrency=16)
    assert [r["id"] for r in read(out)] == [f"p{i}" for i in range(120)]
    assert stats.ok == 120
    assert 1 < backend.peak <= 16
    assert not (tmp_path / "results.jsonl.partial").exists()


async def test_a_failed_paper_gets_an_error_record_and_the_rest_go_on(tmp_path):
    out = tmp_path / "results.jsonl"
    stats = await run_pipeline(papers(10), ScriptedBackend(fail={"p3"}), out, concurrency=4)
    rows = read(out)
    assert len(rows) == 10
    assert rows[3]["error"] == {"type": "server_error", "message": "HTTP 500"}
    assert rows[3]["tags"] == [] and rows[3]["summary"] is None
    assert all(r["error"] is None for i, r in enumerate(rows) if i != 3)
    assert (stats.ok, stats.failed) == (9, 1)


async def test_fatal_error_keeps_finished_results_and_skips_the_rest(tmp_path):
    out = tmp_path / "results.jsonl"
    with pytest.raises(BackendError):
        await run_pipeline(papers(50), ScriptedBackend(fatal="p20"), out, concurrency=2)
    rows = read(out)
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(50)]  # complete, input order
    assert rows[0]["error"] is None
    assert rows[20]["error"]["type"] == "skipped"
    # The other worker's paper may have finished first; everything after it was never run.
    assert all(r["error"] is None or r["error"]["type"] == "skipped" for r in rows[21:])
    assert all(r["error"]["type"] == "skipped" for r in rows[23:])
    assert "bad key" in rows[49]["error"]["message"]
    assert not (tmp_path / "results.jsonl.partial").exists()


async def test_fatal_error_before_any_result_leaves_the_old_file(tmp_path):
    out = tmp_path / "results.jsonl"
    out.write_text("earlier results\n")
    with pytest.raises(BackendError):
        await run_pipeline(papers(1), ScriptedBackend(fatal="p0"), out, concurrency=1)
    assert out.read_text() == "earlier results\n"


async def test_cancel_flushes_finished_results_and_marks_the_rest_skipped(tmp_path):
    out = tmp_path / "results.jsonl"
    task = asyncio.create_task(run_pipeline(papers(500), ScriptedBackend(), out, concurrency=4))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = read(out)
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(500)]
    done = [r for r in rows if r["error"] is None]
    assert 0 < len(done) < 500
    assert {r["error"]["type"] for r in rows if r not in done} == {"skipped"}
    assert "interrupted" in rows[-1]["error"]["message"]


async def test_memory_window_is_bounded(tmp_path):
    """A slow first paper must not let the rest pile up without limit."""

    class SlowFirst(ScriptedBackend):
        started = 0

        async def annotate(self, paper: Paper) -> Annotation:
            SlowFirst.started += 1
            if paper.id == "p0":
                await asyncio.sleep(0.3)
            return Annotation(tags=["LLMs"], summary="s")

    out = tmp_path / "results.jsonl"
    task = asyncio.create_task(run_pipeline(papers(1000), SlowFirst(), out, concurrency=4))
    await asyncio.sleep(0.15)
    assert SlowFirst.started <= 16 + 1
    await task
    assert len(read(out)) == 1000
