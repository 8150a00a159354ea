"""Every ``run`` is recorded in the library as it goes: its command and settings (no secret),
its papers and results (read back line for line), how it ended; and a library that cannot be
written never costs a result."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
from pathlib import Path

import pytest
import respx
from click.testing import CliRunner

from agent import history
from agent.cli import cli
from agent.config import Settings
from agent.models import Annotation, Paper, PaperResult
from agent.store import DB_NAME, Library, Selection
from agent.store import db as db_module
from agent.store.runs import Runs
from agent.taxonomy import load_taxonomy
from tests.llm import API_KEY, BASE_URL, answer


def invoke(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env=env or None, catch_exceptions=False)


@pytest.fixture
def home(isolated_env: Path) -> Path:
    return isolated_env / "home"


def papers_file(path: Path, count: int) -> Path:
    """``count`` papers as JSONL, each with an abstract and categories."""
    rows = [
        {
            "id": f"2612.{n:05d}",
            "title": f"Paper number {n} on language models",
            "abstract": f"We study language model {n} and its scaling laws.",
            "categories": ["cs.CL"],
        }
        for n in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_run_is_recorded_with_its_papers_and_reads_back_as_its_results_file(fixtures, home):
    done = invoke("run", str(fixtures / "papers.jsonl"), "--backend", "local", "-o", "r.jsonl")
    assert done.exit_code == 0, done.stderr
    with Library.open(home) as lib:
        [info] = lib.runs.list()
        lines = [r.to_line() + "\n" for r in lib.results(Selection(run=info.id))]
        first = lib.papers.get("2511.02818")
        [annotation] = lib.annotations.of_paper("2511.02818")
    assert (info.status, info.exit_code, info.ok, info.failed, info.skipped) == ("ok", 0, 5, 0, 0)
    assert info.command == f"run {fixtures / 'papers.jsonl'} -o r.jsonl"
    assert info.finished is not None and info.finished >= info.started
    assert info.settings["backend"] == "local" and info.settings["taxonomy"] == "bundled"
    assert lines == Path("r.jsonl").read_text().splitlines(keepends=True)
    assert first is not None and first.abstract.startswith("Tabular data remain")
    assert first.sources == ["papers.jsonl"] and first.seen is None  # a file run marks nothing
    assert annotation.settings == info.settings["settings_key"]


def test_an_llm_run_records_its_settings_and_no_secret(tmp_path, home):
    papers = papers_file(tmp_path / "papers.jsonl", 3)
    base = BASE_URL.replace("http://", "http://bot:pa55-SECRET-word@")  # credentials in it
    with respx.mock(assert_all_called=False) as router:
        router.post(host="llm.test", path="/v1/chat/completions").mock(
            return_value=answer(["LLMs"])
        )
        done = invoke(
            "run", str(papers), "-o", "r.jsonl", OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base
        )
    assert done.exit_code == 0, done.stderr
    with Library.open(home) as lib:
        [info] = lib.runs.list()
        [annotation] = lib.annotations.of_paper("2612.00001")
    assert info.settings["backend"] == "openai" and info.settings["model"] == "gpt-4o-mini"
    assert info.settings["server"] == "http://llm.test/v1"  # no user or password
    assert annotation.settings == info.settings["settings_key"]
    assert annotation.usage.prompt_tokens == 120 and annotation.model == "gpt-4o-mini"
    stored = b"".join(path.read_bytes() for path in home.glob(f"{DB_NAME}*"))
    assert API_KEY.encode() not in stored and b"pa55" not in stored and b"SECRET" not in stored


def test_the_settings_key_changes_with_what_makes_an_annotation_only(tmp_path):
    taxonomy = load_taxonomy()
    llm = Settings(backend="openai", api_key="k", home=tmp_path)
    key = history.settings_key(llm, taxonomy)
    same = [
        dataclasses.replace(llm, concurrency=64),
        dataclasses.replace(llm, max_cost=3.0),
        dataclasses.replace(llm, api_key="another key"),
    ]
    assert {history.settings_key(s, taxonomy) for s in same} == {key}
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "system.j2").write_text("Tag it.")
    other = [
        dataclasses.replace(llm, model="gpt-4o"),
        dataclasses.replace(llm, base_url="http://localhost:8000/v1"),
        dataclasses.replace(llm, summary_words=60),
        dataclasses.replace(llm, max_tags=1),
        dataclasses.replace(llm, prompts_dir=prompts),
        dataclasses.replace(llm, papers_per_request=4),
        dataclasses.replace(llm, criteria=["Agents: tools"]),
        dataclasses.replace(llm, backend="local"),
    ]
    keys = [history.settings_key(s, taxonomy) for s in other]
    assert len({key, *keys}) == len(other) + 1
    fewer_tags = taxonomy.model_copy(update={"tags": taxonomy.tags[:5]})
    assert history.settings_key(llm, fewer_tags) != key
    # The offline backend has no model or server: those do not change its key.
    local = dataclasses.replace(llm, backend="local")
    assert history.settings_key(dataclasses.replace(local, model="x"), taxonomy) == keys[-1]


def test_results_are_recorded_as_they_come_not_at_the_end(tmp_path):
    papers = [Paper(id=f"2612.{n:05d}", title=f"P {n}", abstract="A.") for n in range(450)]
    with Library.open(tmp_path) as lib:
        recorder = history.RunRecorder(lib, lib.runs.start("run"), "s")
        for paper in recorder.track(papers):
            recorder.add(PaperResult.ok(paper, Annotation(tags=["a"], summary="S."), "local", None))
        with Library.open(tmp_path) as other:  # another process, while the run goes on
            info = other.runs.get(recorder.run)
            assert info is not None and (info.status, info.ok) == ("running", 400)
        recorder.finish(0)
    with Library.open(tmp_path) as lib:
        info = lib.runs.get(recorder.run)
        assert info is not None and (info.status, info.exit_code, info.ok) == ("ok", 0, 450)
        assert [r.id for r in lib.results(Selection(run=recorder.run))] == [p.id for p in papers]


def test_a_library_that_cannot_be_opened_costs_a_warning_and_exit_1_never_a_result(
    fixtures, home, caplog
):
    home.mkdir(parents=True)
    (home / DB_NAME).mkdir()  # where the file should be: SQLite cannot open it
    done = invoke("run", str(fixtures / "papers.jsonl"), "--backend", "local", "-o", "r.jsonl")
    assert done.exit_code == 1
    assert len(Path("r.jsonl").read_text().splitlines()) == 5  # every result written
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(
        f"cannot record this run in the library (cannot open the library {home / DB_NAME}"
    )
    assert warning.endswith("; its results file is whole")
    assert "5 ok, 0 failed" in done.stderr


def test_a_damaged_library_is_moved_aside_and_the_run_recorded_in_a_fresh_one(
    fixtures, home, caplog
):
    home.mkdir(parents=True)
    (home / DB_NAME).write_bytes(b"not a database at all " * 500)
    done = invoke("run", str(fixtures / "papers.jsonl"), "--backend", "local", "-o", "r.jsonl")
    assert done.exit_code == 0, done.stderr
    [aside] = home.glob(f"{DB_NAME}.damaged-*")
    assert aside.read_bytes() == b"not a database at all " * 500  # kept for inspection
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"moved it to {aside}" in warning
    with Library.open(home) as lib:
        assert [(r.status, r.ok) for r in lib.runs.list()] == [("ok", 5)]


def test_a_library_locked_mid_run_costs_the_rest_of_its_record_never_a_result(
    tmp_path, home, monkeypatch, caplog
):
    """Another process takes the library's write lock after the run's first batch and holds
    it past the timeout: the run warns once, writes every result, and exits 1."""
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT", 0.2)
    monkeypatch.setattr(history, "BATCH", 10)
    holder: list[sqlite3.Connection] = []
    record = Runs.record

    def then_locked(self: Runs, *args: object, **kwargs: object) -> None:
        record(self, *args, **kwargs)  # type: ignore[arg-type]
        if not holder:  # a real second connection, as another process would hold it
            conn = sqlite3.connect(home / DB_NAME, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            holder.append(conn)

    monkeypatch.setattr(Runs, "record", then_locked)
    papers = papers_file(tmp_path / "papers.jsonl", 25)
    try:
        done = invoke("run", str(papers), "--backend", "local", "-o", "r.jsonl")
    finally:
        for conn in holder:
            conn.close()
    assert done.exit_code == 1, done.stderr
    assert len(Path("r.jsonl").read_text().splitlines()) == 25
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is locked by another process" in warnings[0]
    with Library.open(home) as lib:
        [info] = lib.runs.list()
    assert (info.ok, info.status) == (10, "running")  # the first batch; how it ended is lost


def test_an_interrupted_run_is_recorded_as_such(tmp_path, home, monkeypatch):
    from agent import pipeline

    papers = papers_file(tmp_path / "papers.jsonl", 12)
    annotate = pipeline.annotate_one

    async def interrupted(backend, paper, *args):  # type: ignore[no-untyped-def]
        if paper.id == "2612.00005":
            raise KeyboardInterrupt
        return await annotate(backend, paper, *args)

    monkeypatch.setattr(pipeline, "annotate_one", interrupted)
    done = CliRunner().invoke(
        cli, ["run", str(papers), "--backend", "local", "--concurrency", "1", "-o", "r.jsonl"]
    )
    assert done.exit_code == 130
    with Library.open(home) as lib:
        [info] = lib.runs.list()
        written = [r.to_line() for r in lib.results(Selection(run=info.id))]
    assert (info.status, info.exit_code, info.ok, info.skipped) == ("interrupted", 130, 5, 7)
    assert [line + "\n" for line in written] == Path("r.jsonl").read_text().splitlines(True)
