"""Output files: never over an input or each other, one writer at a time, replaced whole."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli import cli
from agent.errors import OutputError
from agent.outputs import check_outputs, lock_path, output_lock, same_file, write_atomic

ROOT = Path(__file__).resolve().parent.parent

# A second process that holds the lock on argv[1] until its stdin closes.
HOLDER = """
import sys
from agent.outputs import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def papers_file(fixtures: Path, tmp_path: Path) -> Path:
    """Five real arXiv papers as JSONL, in the working directory."""
    path = tmp_path / "papers.jsonl"
    path.write_bytes((fixtures / "papers.jsonl").read_bytes())
    return path


@pytest.fixture
def results_file(fixtures: Path, tmp_path: Path) -> Path:
    """A finished results file to render digests from."""
    path = tmp_path / "results.jsonl"
    path.write_bytes((fixtures / "digest" / "results.jsonl").read_bytes())
    return path


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the lock on results.jsonl until it is killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "results.jsonl")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "locked\n"
    yield child
    child.kill()
    child.wait()


def fill(directory: Path) -> None:
    """Write a filler file in ``directory`` until its disk is full."""
    filler = (directory / "filler").open("wb", buffering=0)
    with filler, pytest.raises(OSError, match="No space left"):
        while True:
            filler.write(b"x" * 1024)


# -- same files -----------------------------------------------------------------------------------


def test_same_file_sees_relative_absolute_symlinked_and_hard_linked_names(papers_file: Path):
    (papers_file.parent / "link.jsonl").symlink_to(papers_file)
    os.link(papers_file, papers_file.parent / "hard.jsonl")
    for name in ("papers.jsonl", "./papers.jsonl", str(papers_file), "link.jsonl", "hard.jsonl"):
        assert same_file(name, papers_file), name
    assert not same_file("other.jsonl", papers_file)


def test_same_file_compares_files_not_yet_written_by_where_they_would_be(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    assert same_file("new.jsonl", "sub/../new.jsonl")
    assert not same_file("new.jsonl", "sub/new.jsonl")


def test_stdin_and_stdout_never_conflict_with_anything():
    assert not same_file("-", "-")
    check_outputs(["-"], {"-o": Path("-"), "--digest-out": None})


# -- run and digest refuse an output that is an input ---------------------------------------------


@pytest.mark.parametrize("name", ["papers.jsonl", "./papers.jsonl", "absolute", "link", "hard"])
def test_run_refuses_to_write_its_results_over_an_input(papers_file: Path, name: str):
    before = papers_file.read_bytes()
    if name == "absolute":
        name = str(papers_file)
    elif name in ("link", "hard"):
        target = papers_file.parent / f"{name}.jsonl"
        target.symlink_to(papers_file) if name == "link" else os.link(papers_file, target)
        name = target.name
    # A missing second input proves the refusal comes before any input is read.
    result = invoke("run", "papers.jsonl", "missing.jsonl", "-o", name, "--backend", "local")
    assert result.exit_code == 2
    assert "would overwrite the input papers.jsonl" in result.stderr
    assert "not found" not in result.stderr
    assert papers_file.read_bytes() == before


@pytest.mark.parametrize("results_exist", [False, True])
def test_run_refuses_a_digest_out_that_is_the_results_file(papers_file: Path, results_exist: bool):
    results = papers_file.parent / "results.jsonl"
    if results_exist:
        results.write_text("earlier results\n")
    result = invoke(
        "run", "papers.jsonl", "--backend", "local", "--digest", "markdown",
        "--digest-out", str(results),
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"--digest-out {results} is the same file as -o results.jsonl" in result.stderr
    assert results.read_text() == "earlier results\n" if results_exist else not results.exists()


def test_run_refuses_a_digest_out_that_is_an_input(papers_file: Path):
    before = papers_file.read_bytes()
    result = invoke(
        "run", "papers.jsonl", "--backend", "local", "--digest", "markdown",
        "--digest-out", str(papers_file),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--digest-out" in result.stderr and "would overwrite the input" in result.stderr
    assert papers_file.read_bytes() == before
    assert not (papers_file.parent / "results.jsonl").exists()


def test_run_refuses_to_write_over_the_partial_file_it_reads(papers_file: Path):
    partial = papers_file.rename(papers_file.parent / "results.jsonl.partial")
    before = partial.read_bytes()
    result = invoke("run", partial.name, "--backend", "local")
    assert result.exit_code == 2
    assert "would overwrite the input results.jsonl.partial" in result.stderr
    assert partial.read_bytes() == before


def test_run_reads_stdin_into_a_results_file(papers_file: Path):
    result = invoke("run", "-", "--backend", "local", input=papers_file.read_text())
    assert result.exit_code == 0, result.stderr
    assert len((papers_file.parent / "results.jsonl").read_text().splitlines()) == 5


def test_digest_refuses_to_write_over_its_results(results_file: Path):
    before = results_file.read_bytes()
    result = invoke("digest", "results.jsonl", "-o", str(results_file))
    assert result.exit_code == 2
    assert "would overwrite the input results.jsonl" in result.stderr
    assert results_file.read_bytes() == before


# -- one writer per output ------------------------------------------------------------------------


def test_a_second_run_refuses_while_another_process_writes_the_results(
    papers_file: Path, lock_holder: subprocess.Popen[str]
):
    before = papers_file.read_bytes()
    result = invoke("run", "papers.jsonl", "--backend", "local")
    assert result.exit_code == 2
    assert f"another run (pid {lock_holder.pid}) is writing results.jsonl" in result.stderr
    assert not (papers_file.parent / "results.jsonl").exists()
    assert papers_file.read_bytes() == before


def test_a_lock_left_by_a_killed_run_is_taken_over(
    papers_file: Path, lock_holder: subprocess.Popen[str], caplog: pytest.LogCaptureFixture
):
    lock_holder.kill()  # SIGKILL: the lock file stays behind, the kernel frees its flock
    lock_holder.wait()
    lock = lock_path(papers_file.parent / "results.jsonl")
    assert lock.read_text() == f"{lock_holder.pid}\n"
    caplog.set_level(logging.INFO, logger="agent.outputs")
    result = invoke("run", "papers.jsonl", "--backend", "local")
    assert result.exit_code == 0, result.stderr
    assert f"from pid {lock_holder.pid}, which is no longer running" in caplog.text
    assert len((papers_file.parent / "results.jsonl").read_text().splitlines()) == 5
    assert not lock.exists()


def test_dry_run_takes_no_lock(papers_file: Path, lock_holder: subprocess.Popen[str]):
    result = invoke("run", "papers.jsonl", "--backend", "local", "--dry-run")
    assert result.exit_code == 0, result.stderr


def test_a_lock_is_exclusive_within_one_process_too(tmp_path: Path):
    target = tmp_path / "digest.md"
    with output_lock(target):
        assert lock_path(target).read_text() == f"{os.getpid()}\n"
        taken = rf"another run \(pid {os.getpid()}\) is writing"
        with pytest.raises(OutputError, match=taken), output_lock(target):
            pass
    assert not lock_path(target).exists()
    with output_lock(target):  # released: the next writer gets it
        pass


# -- digests replaced whole -----------------------------------------------------------------------


def test_write_atomic_replaces_the_file_keeping_its_mode_and_symlink(tmp_path: Path):
    target = tmp_path / "served" / "digest.md"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "digest.md"
    link.symlink_to(target)
    write_atomic(link, "new ✓")
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "new ✓"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(target.parent)) == ["digest.md"]


def test_write_atomic_on_a_full_disk_keeps_the_earlier_file(full_disk: Path):
    target = full_disk / "digest.md"
    target.write_text("earlier digest\n")
    with pytest.raises(OutputError) as caught:
        write_atomic(target, "x" * 200_000)
    assert str(caught.value) == f"disk full writing {target}; the earlier {target} is unchanged"
    assert target.read_text() == "earlier digest\n"
    assert os.listdir(full_disk) == ["digest.md"]  # no temp file left behind


def test_digest_command_on_a_full_disk_keeps_the_earlier_digest(
    results_file: Path, full_disk: Path
):
    target = full_disk / "digest.md"
    target.write_text("earlier digest\n")
    fill(full_disk)
    result = invoke("digest", str(results_file), "-o", str(target))
    assert result.exit_code == 2
    assert f"disk full writing {target}; the earlier {target} is unchanged" in result.stderr
    assert target.read_text() == "earlier digest\n"
    assert sorted(os.listdir(full_disk)) == ["digest.md", "filler"]


def test_run_digest_out_on_a_full_disk_keeps_the_earlier_digest_and_the_results(
    papers_file: Path, full_disk: Path
):
    target = full_disk / "digest.md"
    target.write_text("earlier digest\n")
    fill(full_disk)
    result = invoke(
        "run", "papers.jsonl", "--backend", "local", "--digest", "markdown",
        "--digest-out", str(target),
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"disk full writing {target}; the earlier {target} is unchanged" in result.stderr
    assert "the results are in results.jsonl" in result.stderr
    assert target.read_text() == "earlier digest\n"
    assert len((papers_file.parent / "results.jsonl").read_text().splitlines()) == 5
    assert sorted(os.listdir(full_disk)) == ["digest.md", "filler"]


def test_run_writes_its_digest_and_leaves_no_lock(papers_file: Path):
    result = invoke(
        "run", "papers.jsonl", "--backend", "local", "--digest", "markdown",
        "--digest-out", "digest.md",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (papers_file.parent / "digest.md").read_text().startswith("#")
    assert not lock_path(papers_file.parent / "results.jsonl").exists()
