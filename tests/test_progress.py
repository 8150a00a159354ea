"""Warnings during a run are one line each, printed above the progress bar, never over it."""

from __future__ import annotations

import fcntl
import http.server
import json
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pyte
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.taxonomy import load_taxonomy
from tests.llm import API_KEY, BASE_URL, answer, completion

UNKNOWN = "Basket Weaving"  # a tag no taxonomy has: every answer is invalid
TAGS = ", ".join(load_taxonomy(None).names)  # the list an unknown-tag message ends with
COLUMNS = 200  # wide enough for a warning without the tag list, far too narrow for one with it


def papers(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "papers.jsonl"
    rows = [
        {"id": f"p{i}", "title": f"Robots {i}", "abstract": "We build robots."} for i in range(n)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize(("verbosity", "listed"), [((), False), (("-v",), True)])
def test_a_failed_paper_is_one_warning_line_with_the_tag_list_only_at_v(
    tmp_path, caplog, verbosity, listed
) -> None:
    # What -v does to the root logger, which pytest's own log handler keeps basicConfig from
    # doing here (the terminal test below runs the real -v).
    caplog.set_level(logging.INFO if verbosity else logging.WARNING)
    with respx.mock(base_url=BASE_URL) as llm:
        llm.post("/chat/completions").mock(return_value=answer([UNKNOWN]))
        args = [*verbosity, "run", str(papers(tmp_path, 1)), "-o", "out.jsonl"]
        env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL}
        result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 1
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    message = warning.getMessage()
    assert "\n" not in message and f"unknown tag(s) '{UNKNOWN}'" in message
    assert (TAGS in message) is listed
    if not listed:
        assert len(message) < 200 and "-v lists its tags" in message


@pytest.fixture
def llm_server() -> Iterator[str]:
    """A local OpenAI-compatible server whose every answer has a tag no taxonomy has."""
    body = json.dumps(completion({"tags": [UNKNOWN], "summary": "It works."})).encode()

    class Chat(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def terminal_env() -> dict[str, str]:
    """This environment as an ordinary interactive terminal's: no size or terminal overrides
    (rich reads COLUMNS, TTY_INTERACTIVE, ...), so the size is the pty's."""
    overrides = ("COLUMNS", "LINES", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR", "NO_COLOR")
    return {k: v for k, v in os.environ.items() if k not in overrides} | {"TERM": "xterm"}


def on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """The screen rows a user sees after ``paper-agent ARGS`` ran on a terminal (a real pty,
    so the progress bar is live, read through a terminal emulator)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**terminal_env(), **env},
        cwd=cwd,
    )
    os.close(follower)
    output = bytearray()
    try:
        while select.select([leader], [], [], 60)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=60) == 1, bytes(output)
    finally:
        process.kill()
        os.close(leader)
    screen = pyte.Screen(COLUMNS, 2000)  # taller than the output: nothing scrolls away
    pyte.ByteStream(screen).feed(bytes(output))
    return [row.rstrip() for row in screen.display if row.strip()]


def test_warnings_print_above_the_live_progress_bar(tmp_path, llm_server) -> None:
    env = {"OPENAI_BASE_URL": llm_server, "OPENAI_API_KEY": "not-a-real-key"}
    run = ["run", str(papers(tmp_path, 3)), "-o", "out.jsonl"]
    rows = on_a_terminal(run, env, tmp_path)
    warnings = [row for row in rows if "WARNING" in row]
    assert len(warnings) == 3, rows
    for row in warnings:  # each whole on its own row: not glued to the bar, nothing wrapped
        assert row.startswith("WARNING agent.pipeline: paper p"), rows
        assert row.endswith(f"unknown tag(s) '{UNKNOWN}' (not in the taxonomy; -v lists its tags)")
    assert rows[-1].startswith("paper-agent: 0 ok, 3 failed")
    assert not any("━" in row or "papers" in row for row in rows)  # the bar is gone at the end
    assert "use only" not in "".join(rows)

    verbose = on_a_terminal(["-v", *run], env, tmp_path)
    shown = " ".join(verbose)
    listed = f"no valid answer after 3 attempts: unknown tag(s) '{UNKNOWN}'; use only: {TAGS}"
    assert f"failed after 3 request(s): {listed}" in shown
    assert not any("━" in row for row in verbose)
