"""Whose trouble is it: a paper that cannot be sent (too long, too slow) fails alone, a server
quirk is learned only from an error that names it, and a server that is down stops the run
within 100 requests, every one of which the summary counts. Real sockets for the outages."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.models import Paper
from tests.llm import API_KEY, BASE_URL, answer, completion

TOO_LARGE = json.loads(
    (Path(__file__).parent / "fixtures" / "openai" / "too_large_errors.json").read_text()
)
TOO_LARGE.pop("_note")


def papers_file(tmp_path: Path, n: int) -> str:
    path = tmp_path / "papers.jsonl"
    rows = [
        {"id": f"2401.{i:05d}", "title": f"Paper number {i}", "abstract": f"Abstract {i}."}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def invoke(*args: str, base_url: str = BASE_URL):
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": base_url}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def kinds(path: Path) -> list[str | None]:
    return [r["error"]["type"] if r["error"] else None for r in rows(path)]


def reported_requests(stderr: str) -> int:
    """The request count of the run's summary line."""
    found = re.search(r"; (\d+) requests, ", stderr)
    assert found, stderr
    return int(found.group(1))


@pytest.fixture
def mocked_llm():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


def fixture_response(name: str) -> httpx.Response:
    entry = TOO_LARGE[name]
    if "text" in entry:
        return httpx.Response(entry["status"], text=entry["text"])
    return httpx.Response(entry["status"], json=entry["body"])


def first_paper_gets(
    outcome: Callable[[], httpx.Response],
) -> Callable[[httpx.Request], httpx.Response]:
    """A server that answers every paper but the first ("Paper number 0") with ``outcome``."""

    def reply(request: httpx.Request) -> httpx.Response:
        if "Paper number 0\\n" in request.content.decode():
            return outcome()
        return answer(["LLMs"])

    return reply


# A paper too large for the context: that paper's error, never a quirk, never the run's.


@pytest.mark.parametrize("name", list(TOO_LARGE))
def test_a_first_paper_too_large_for_the_server_fails_alone_and_teaches_no_quirk(
    mocked_llm, tmp_path, sleeps, name
):
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=first_paper_gets(lambda: fixture_response(name))
    )
    result = invoke("run", papers_file(tmp_path, 6), "--concurrency", "2", "-o", "out.jsonl")
    assert result.exit_code == 1, result.stderr
    out = rows(tmp_path / "out.jsonl")
    assert kinds(tmp_path / "out.jsonl") == ["too_large"] + [None] * 5
    assert "too large for the server" in out[0]["error"]["message"]
    assert out[0]["usage"]["requests"] == 1  # neither retried nor asked again in another form
    assert "stopped early" not in result.stderr
    assert "refuses size bounds" not in result.stderr + str(result.stdout)
    for call in route.calls:  # every request in the form of the first: nothing was learned
        body = json.loads(call.request.content)
        assert body["response_format"]["type"] == "json_schema"
        assert "maxItems" in json.dumps(body["response_format"])
        assert "max_tokens" in body and "max_completion_tokens" not in body
        assert "temperature" in body


def test_papers_too_large_in_a_row_never_stop_the_run(mocked_llm, tmp_path):
    """A proxy's identical 413 for every paper is each paper's error, not a refused request
    form (five identical other 400s in a row stop a run)."""
    mocked_llm.post("/chat/completions").mock(return_value=fixture_response("nginx_413"))
    result = invoke("run", papers_file(tmp_path, 8), "--concurrency", "2", "-o", "out.jsonl")
    assert result.exit_code == 1, result.stderr
    assert kinds(tmp_path / "out.jsonl") == ["too_large"] * 8


def test_a_quirk_named_by_its_error_is_still_learned(mocked_llm, tmp_path):
    """OpenAI's real refusal of a schema (errors.json) names response_format: json_object."""
    refusal = json.loads(
        (Path(__file__).parent / "fixtures" / "openai" / "errors.json").read_text()
    )["400_invalid_json_schema"]

    def reply(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["response_format"]["type"] == "json_schema":
            return httpx.Response(refusal["status"], json=refusal["body"])
        return answer(["LLMs"])

    mocked_llm.post("/chat/completions").mock(side_effect=reply)
    result = invoke("run", papers_file(tmp_path, 3), "-o", "out.jsonl")
    assert result.exit_code == 0, result.stderr
    assert kinds(tmp_path / "out.jsonl") == [None] * 3


# A first paper that times out: its own error; the next paper is sent alone, then the rest.


def test_a_first_paper_that_times_out_fails_alone_on_every_run(mocked_llm, tmp_path, sleeps):
    def slow() -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    route = mocked_llm.post("/chat/completions").mock(side_effect=first_paper_gets(slow))
    source = papers_file(tmp_path, 10)
    for run in range(2):
        before = route.call_count
        result = invoke("run", source, "--concurrency", "4", "-o", "out.jsonl")
        assert result.exit_code == 1, result.stderr
        assert "stopped early" not in result.stderr
        assert kinds(tmp_path / "out.jsonl") == ["timeout"] + [None] * 9
        # The rerun asks only for the paper that failed; the others come from the cache.
        sent = route.call_count - before
        first = rows(tmp_path / "out.jsonl")[0]["usage"]["requests"]
        assert sent == (first + 9 if run == 0 else first)


# A server that is down: a real one, on 127.0.0.1, counting what it receives.


class DownServer(socketserver.ThreadingTCPServer):
    """An OpenAI-compatible server that answers its first ``answers`` requests and then fails
    every one: HTTP 500, or a reset connection. Counts the requests it received."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, failure: str, answers: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failure = failure
        self.answers = answers
        self.received = 0
        self.connections = 0  # open now
        self.changed = threading.Condition()

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a client that drops a connection mid-reply is what these tests do."""

    def count(self) -> int:
        with self.changed:
            self.received += 1
            return self.received

    def open(self, change: int) -> None:
        with self.changed:
            self.connections += change
            self.changed.notify_all()

    def idle(self) -> int:
        """The requests received, once the client has closed every connection (its run is
        over, so nothing it sent is still being read)."""
        with self.changed:
            assert self.changed.wait_for(lambda: self.connections == 0, timeout=10)
            return self.received


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: DownServer = self.server  # type: ignore[assignment]
        server.open(1)
        try:
            self._serve(server)
        finally:
            server.open(-1)

    def _serve(self, server: DownServer) -> None:
        while True:  # keep-alive: several requests per connection
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                head += line
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            if len(self.rfile.read(length)) < length:
                return  # cut short: not a request received
            number = server.count()
            if number <= server.answers:
                body = json.dumps(completion({"tags": ["LLMs"], "summary": "It works."}))
                self._reply(200, body.encode())
            elif server.failure == "reset":
                # Linger 0: close() sends a TCP RST, the client sees ECONNRESET.
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                return
            else:
                error = {"error": {"message": "boom", "type": "server_error", "code": None}}
                self._reply(500, json.dumps(error).encode())

    def _reply(self, status: int, body: bytes) -> None:
        reason = "OK" if status == 200 else "Internal Server Error"
        self.wfile.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.wfile.flush()


@pytest.fixture
def down_server() -> Iterator[Callable[..., tuple[DownServer, str]]]:
    servers: list[DownServer] = []

    def start(failure: str, answers: int = 0) -> tuple[DownServer, str]:
        server = DownServer(failure, answers)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_server_answering_500_to_everything_stops_within_100_requests_all_counted(
    down_server, tmp_path, sleeps
):
    server, url = down_server("500")
    source = papers_file(tmp_path, 200)
    result = invoke("run", source, "--concurrency", "8", "-o", "out.jsonl", base_url=url)
    assert result.exit_code == 1, result.stderr
    assert "stopped early: the LLM server failed 3 paper(s) in a row, each sent alone" in (
        result.stderr
    )
    assert server.idle() <= 100  # was about 130
    assert reported_requests(result.stderr) == server.received
    found = kinds(tmp_path / "out.jsonl")
    assert found == ["server_error"] * 3 + ["skipped"] * 197


def test_a_server_resetting_everything_stops_at_the_first_paper(down_server, tmp_path, sleeps):
    server, url = down_server("reset")
    source = papers_file(tmp_path, 200)
    result = invoke("run", source, "--concurrency", "8", "-o", "out.jsonl", base_url=url)
    assert result.exit_code == 2, result.stderr
    assert "cannot reach the LLM server" in result.stderr
    assert server.idle() <= 100


@pytest.mark.parametrize("failure", ["500", "reset"])
def test_an_outage_mid_run_stops_within_100_requests_and_the_summary_counts_them_all(
    down_server, tmp_path, sleeps, failure
):
    """Papers in flight when the run stops are cancelled: their requests reached the server
    all the same, so the summary counts them (it said 80 where the server had 129)."""
    server, url = down_server(failure, answers=30)
    source = papers_file(tmp_path, 200)
    result = invoke("run", source, "--concurrency", "8", "-o", "out.jsonl", base_url=url)
    assert result.exit_code == 1, result.stderr
    assert "stopped early" in result.stderr
    assert server.idle() - 30 <= 100
    assert reported_requests(result.stderr) == server.received
    found = kinds(tmp_path / "out.jsonl")
    assert found[:20].count(None) >= 20 and found[-1] == "skipped"


async def test_a_group_request_too_large_asks_each_paper_alone_as_it_was(mocked_llm, make_backend):
    """Several papers in one request overflow the context: each is asked alone, in the same
    form (nothing learned from the overflow)."""
    papers = [
        Paper(id=f"2401.0000{i}", title=f"Paper number {i}", abstract=f"We sort {i} lists.")
        for i in range(3)
    ]

    def reply(request: httpx.Request) -> httpx.Response:
        if "<papers>" in json.loads(request.content)["messages"][1]["content"]:
            return fixture_response("vllm_max_tokens_too_large")
        return answer(["LLMs"], "Transformers sort lists.")

    route = mocked_llm.post("/chat/completions").mock(side_effect=reply)
    backend = make_backend(papers_per_request=3)
    try:
        results = await asyncio.gather(*(backend.annotate(p) for p in papers))
    finally:
        await backend.aclose()
    assert [r.tags for r in results] == [["LLMs"]] * 3
    assert route.call_count == 1 + 3
    for call in route.calls[1:]:
        body = json.loads(call.request.content)
        assert "maxItems" in json.dumps(body["response_format"]) and "max_tokens" in body
