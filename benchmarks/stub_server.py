"""A local OpenAI-compatible server with a fixed delay, for benchmarks (stdlib asyncio only).

    python benchmarks/stub_server.py --port 0 --delay-ms 300
    python benchmarks/stub_server.py --faults issue7 --seed 7 --log requests.jsonl
    python benchmarks/stub_server.py --delay-ms 100 --delay-max-ms 300 --rate-limit 20

Prints the base URL it bound (``http://127.0.0.1:PORT/v1``) as its first stdout line, then
serves until SIGINT/SIGTERM (or ``--lifetime`` seconds) and prints the request counts.
``GET /stats`` returns the counts while it runs. Each chat completion sleeps ``--delay-ms``
without blocking the others, so concurrent requests overlap the way they do against a real
endpoint. ``--faults`` makes a share of the chat completions fail (429, 500, bad JSON, unknown
tags, cut-off answers), drawn per request from an RNG seeded with ``--seed`` and the request.
``--rate-limit R`` answers 429 at once to a request that finds R accepted in the last second
(a sliding window; ``--rate-window S`` makes it the last S seconds, e.g. 600 per 60 s);
``--rate-limit-headers`` adds OpenAI's ``x-ratelimit-*`` headers (and ``retry-after-ms`` on a
429), without them a 429 says nothing about when to come back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import random
import re
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    411: "Length Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
MODEL = "stub-model"
SUMMARY = "The paper proposes a method and reports that it improves on strong baselines."
UNKNOWN_TAG = "Underwater Basket Weaving"
FAULT_KINDS = ("429", "500", "bad_json", "unknown_tags", "length")
# The mix of issue 7's fault benchmark; connection resets come from bench_faults.py's proxy.
PRESETS = {"issue7": "429=0.15,500=0.10,bad_json=0.10,unknown_tags=0.10,length=0.05"}
TAG_LINE = re.compile(r"^- ([^:\n]+):", re.MULTILINE)
TITLE_LINE = re.compile(r"^Title: (.*)$", re.MULTILINE)
# A request for several papers (--papers-per-request): each paper in <paper id="...">.
GROUP_PAPER = re.compile(r'<paper id="([^"]*)">(.*?)</paper>', re.DOTALL)
# The stub's token count: a word or one punctuation mark is a token (BPE tokenizers split
# English prose a little finer, so real counts run somewhat higher), plus 4 per message.
TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_TOKENS = 4
Reply = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON payload, extra headers


@dataclass
class Faults:
    """Per-request fault rates; each request's draw is seeded by ``seed`` and its own body.

    Keying the draw on the body (and how many times that body came before) rather than on
    arrival order makes two runs at any concurrency meet the same faults for the same requests.
    """

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after_max: float = 1.0
    seen: Counter[str] = field(default_factory=Counter)

    @classmethod
    def parse(cls, spec: str, seed: int, retry_after_max: float) -> Faults:
        """``429=0.15,500=0.1,...`` or a preset name; rates must sum to at most 1."""
        spec = PRESETS.get(spec, spec)
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, _, rate = part.partition("=")
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
            rates[kind] = float(rate)
        if any(r < 0 for r in rates.values()) or sum(rates.values()) > 1:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1: {spec}")
        return cls(rates, seed, retry_after_max)

    def draw(self, body: bytes) -> tuple[str | None, random.Random]:
        """The fault for this request (None: answer well) and the RNG for its details."""
        if not self.rates:
            return None, random.Random(self.seed)
        digest = hashlib.sha256(body).hexdigest()
        self.seen[digest] += 1
        rng = random.Random(f"{self.seed}:{digest}:{self.seen[digest]}")
        roll = rng.random()
        for kind, rate in self.rates.items():
            if roll < rate:
                return kind, rng
            roll -= rate
        return None, rng


@dataclass
class RateLimit:
    """At most ``limit`` accepted requests in any sliding window of ``window`` seconds."""

    limit: int
    headers: bool = False
    window: float = 1.0
    accepted: deque[float] = field(default_factory=deque)

    def admit(self, now: float) -> tuple[bool, dict[str, str]]:
        """Whether a request arriving now is accepted, and the headers that say what is left.

        ``x-ratelimit-reset-requests`` is the time until the oldest accepted request leaves
        the window (one more is allowed then); a 429's ``retry-after-ms`` says the same.
        """
        while self.accepted and self.accepted[0] <= now - self.window:
            self.accepted.popleft()
        ok = len(self.accepted) < self.limit
        if ok:
            self.accepted.append(now)
        if not self.headers:
            return ok, {}
        oldest = self.accepted[0] if self.accepted else now - self.window
        reset_ms = max(0, math.ceil((oldest + self.window - now) * 1000))
        headers = {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.limit - len(self.accepted)),
            "x-ratelimit-reset-requests": f"{reset_ms}ms",
        }
        if not ok:
            headers["retry-after-ms"] = str(reset_ms)
        return ok, headers


class StubServer:
    """Answers chat completions with schema-valid tags and a summary after a fixed delay."""

    def __init__(
        self,
        delay: float,
        faults: Faults | None = None,
        log: IO[str] | None = None,
        close_connections: bool = False,
        delay_max: float | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.delay = delay
        self.delay_max = delay_max
        self.delays = random.Random(faults.seed if faults else 0)
        self.rate_limit = rate_limit
        self.started = time.monotonic()
        self.faults = faults or Faults()
        self.log = log
        self.close_connections = close_connections
        self.stats = {"requests": 0, "chat_completions": 0, "in_flight": 0, "max_in_flight": 0}
        self.injected: Counter[str] = Counter()
        self.connections: set[asyncio.StreamWriter] = set()

    def counts(self) -> dict[str, Any]:
        """The request counters and the faults injected so far."""
        return {**self.stats, "faults": dict(self.injected)}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one keep-alive connection: the client reuses it for request after request."""
        self.connections.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line.strip():
                    break
                method, target = request_line.decode("latin-1").split()[:2]
                headers = await read_headers(reader)
                if "chunked" in headers.get("transfer-encoding", ""):
                    await respond(writer, 411, {"error": {"message": "send Content-Length"}})
                    break
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload, extra = await self.route(method, target.split("?")[0], body)
                close = self.close_connections or headers.get("connection", "").lower() == "close"
                await respond(writer, status, payload, extra, close=close)
                if close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that hangs up mid-request is not the server's problem
        finally:
            self.connections.discard(writer)
            writer.close()

    async def route(self, method: str, path: str, body: bytes) -> Reply:
        """The status, JSON payload and extra headers for one request."""
        self.stats["requests"] += 1
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                request = json.loads(body)
            except ValueError:
                error = {"message": "body is not JSON", "type": "invalid_request"}
                return 400, {"error": error}, {}
            self.stats["chat_completions"] += 1
            number = self.stats["chat_completions"]
            limited: dict[str, str] = {}
            if self.rate_limit is not None:
                ok, limited = self.rate_limit.admit(time.monotonic())
                if not ok:
                    self.injected["rate_limit"] += 1
                    self.record(number, request, "rate_limit")
                    return 429, rate_limit_error(self.rate_limit), limited
            fault, rng = self.faults.draw(body)
            self.injected[fault or "none"] += 1
            self.record(number, request, fault)
            self.stats["in_flight"] += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
            delay = self.delay
            if self.delay_max is not None:
                delay = self.delays.uniform(self.delay, self.delay_max)
            try:
                await asyncio.sleep(delay)
            finally:
                self.stats["in_flight"] -= 1
            status, payload, extra = faulty_reply(
                request, number, fault, rng, self.faults.retry_after_max
            )
            return status, payload, {**limited, **extra}
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]}, {}
        if method == "GET" and path == "/stats":
            return 200, self.counts(), {}
        error = {"message": f"no route {method} {path}", "type": "not_found"}
        return 404, {"error": error}, {}

    def record(self, number: int, request: dict[str, Any], fault: str | None) -> None:
        """One ``--log`` line: the paper's title, the fault drawn, and whether it is a re-ask."""
        if self.log is None:
            return
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
        found = TITLE_LINE.search(users[0]) if users else None
        line = {
            "n": number,
            "t": round(time.monotonic() - self.started, 4),  # arrival, seconds since start
            "title": found.group(1).strip() if found else None,
            "fault": fault,
            "repair": any(m.get("role") == "assistant" for m in messages),
        }
        self.log.write(json.dumps(line) + "\n")
        self.log.flush()


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """Header names lower-cased; the blank line that ends them is consumed."""
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


async def respond(
    writer: asyncio.StreamWriter,
    status: int,
    payload: dict[str, Any],
    extra: dict[str, str] | None = None,
    *,
    close: bool = False,
) -> None:
    """Write one JSON response; ``close`` tells the client this connection ends with it."""
    data = json.dumps(payload).encode()
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        f"Connection: {'close' if close else 'keep-alive'}",
        *(f"{name}: {value}" for name, value in (extra or {}).items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    await writer.drain()


def rate_limit_error(limit: RateLimit) -> dict[str, Any]:
    """OpenAI's body for a request-rate 429."""
    per = "second" if limit.window == 1 else f"{limit.window:g} s"
    error = {
        "message": f"Rate limit reached for {MODEL} on requests per {per}: Limit {limit.limit}.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    return {"error": error}


def faulty_reply(
    request: dict[str, Any], number: int, fault: str | None, rng: random.Random, wait_max: float
) -> Reply:
    """A good completion, or the drawn fault in the shape a real server sends it."""
    if fault == "429":
        wait_ms = round(rng.uniform(0, wait_max) * 1000)
        error = {
            "message": f"Rate limit reached for {MODEL}. Please try again in {wait_ms}ms.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        # Both headers, as OpenAI sends them; retry-after is whole seconds, rounded up.
        headers = {"retry-after-ms": str(wait_ms), "retry-after": str(-(-wait_ms // 1000))}
        return 429, {"error": error}, headers
    if fault == "500":
        error = {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        return 500, {"error": error}, {}
    answers = answer_objects(request)
    if fault == "unknown_tags" and answers and not wants_highlights(request):
        # A real model's slip: one invented tag in front of a good one.
        answers[0]["tags"] = [UNKNOWN_TAG, *answers[0]["tags"][:1]]
    content = answer_content(request, answers)
    finish = "stop"
    if fault == "bad_json":
        content = f"Here is the JSON you asked for:\n{content}"
    elif fault == "length":
        content, finish = content[: len(content) // 2], "length"
    return 200, completion(request, number, content, finish), {}


HIGHLIGHTS = [
    "Several papers scale test-time compute instead of parameters.",
    "Parameter-efficient fine-tuning keeps getting cheaper.",
    "Agents that use tools are measured on harder benchmarks.",
]


def answer_objects(request: dict[str, Any]) -> list[dict[str, Any]]:
    """One answer per paper asked: ``{"tags", "summary"}``, with its ``id`` in a group.

    Up to two valid tags, the same for the same paper text every time: from the string enum
    of the json_schema response format, else (json_object mode) from the tag list in the
    system prompt, lines ``- Name: description``.
    """
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    prompt = "".join(str(m.get("content", "")) for m in messages)
    names, max_tags = tag_enum(request.get("response_format") or {})
    if not names:
        system = "".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        names, max_tags = TAG_LINE.findall(system), 2

    def tags(text: str) -> list[str]:
        # Deterministic per text, so a paper gets the same answer on every run.
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
        return [names[(seed + i) % len(names)] for i in range(min(2, max_tags, len(names)))]

    users = "".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    # With --interest the schema (or the prompt) asks for a relevance and a reason as well.
    scored = '"relevance"' in json.dumps(request.get("response_format") or {}) or (
        '"relevance"' in prompt
    )
    extra = {"relevance": 5, "why": ""} if scored else {}
    if "<papers>" in users:
        return [
            {"id": pid, "tags": tags(text), "summary": SUMMARY, **extra}
            for pid, text in GROUP_PAPER.findall(users)
        ]
    return [{"tags": tags(prompt), "summary": SUMMARY, **extra}]


def answer_content(request: dict[str, Any], answers: list[dict[str, Any]]) -> str:
    """The answer text: one object, ``{"answers": [...]}`` for a group request, or three
    bullets for a digest's highlights request."""
    if wants_highlights(request):
        return json.dumps({"highlights": HIGHLIGHTS})
    grouped = answers and "id" in answers[0]
    return json.dumps({"answers": answers} if grouped else answers[0])


def wants_highlights(request: dict[str, Any]) -> bool:
    """A ``--highlights`` request: its schema (or, in json_object mode, its prompt) asks for
    a "highlights" list."""
    schema = ((request.get("response_format") or {}).get("json_schema") or {}).get("schema")
    if isinstance(schema, dict):
        return "highlights" in (schema.get("properties") or {})
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    return any('"highlights"' in str(m.get("content", "")) for m in messages)


def count_tokens(text: str) -> int:
    """The stub's token count of ``text`` (see ``TOKEN``)."""
    return len(TOKEN.findall(text))


def completion(
    request: dict[str, Any], number: int, content: str | None = None, finish: str = "stop"
) -> dict[str, Any]:
    """A chat.completion answering every paper asked, tags from the request's enum."""
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    if content is None:
        content = answer_content(request, answer_objects(request))
    prompt_tokens = sum(count_tokens(str(m.get("content", ""))) for m in messages)
    prompt_tokens += MESSAGE_TOKENS * len(messages)
    completion_tokens = count_tokens(content)
    return {
        "id": f"chatcmpl-stub-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


def tag_enum(response_format: dict[str, Any]) -> tuple[list[str], int]:
    """The tag names in the response schema (an enum under "tags" wins) and their maxItems."""
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    found: list[tuple[bool, list[str], int]] = list(enums(schema, False, 99))
    if not found:
        return [], 0
    _, names, max_items = max(found, key=lambda item: item[0])
    return names, max_items


def enums(node: Any, under_tags: bool, max_items: int) -> Iterator[tuple[bool, list[str], int]]:
    """Every string enum in a schema (including $defs), with whether a "tags" key leads to it."""
    if isinstance(node, dict):
        values = node.get("enum")
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            yield under_tags, values, max_items
        limit = node.get("maxItems", max_items)
        for key, child in node.items():
            yield from enums(child, under_tags or key == "tags", limit)
    elif isinstance(node, list):
        for child in node:
            yield from enums(child, under_tags, max_items)


async def serve(host: str, port: int, stub: StubServer, lifetime: float) -> StubServer:
    """Serve until SIGINT, SIGTERM or ``lifetime`` seconds; return the server with its counts."""
    server = await asyncio.start_server(stub.handle, host, port, backlog=256)
    bound = server.sockets[0].getsockname()
    print(f"http://{bound[0]}:{bound[1]}/v1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        try:
            # Bounded even if whoever started it dies without stopping it.
            await asyncio.wait_for(stop.wait(), lifetime)
        except TimeoutError:
            print(f"stub server: lifetime of {lifetime:g} s reached", file=sys.stderr)
        # Hang up idle keep-alive connections so their handlers end instead of being cancelled.
        for writer in list(stub.connections):
            writer.close()
        await asyncio.sleep(0.05)
    return stub


def main(argv: list[str] | None = None) -> int:
    """Parse flags, serve, print the counts on shutdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=300.0)
    parser.add_argument(
        "--delay-max-ms",
        type=float,
        help="each answer waits a uniform draw from --delay-ms to this (seeded by --seed)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        help="answer 429 to a request that finds this many accepted in the last second",
    )
    parser.add_argument(
        "--rate-window",
        type=float,
        default=1.0,
        help="seconds of the --rate-limit window (60: a limit per minute)",
    )
    parser.add_argument(
        "--rate-limit-headers",
        action="store_true",
        help="send x-ratelimit-limit/remaining/reset-requests, and retry-after-ms on a 429",
    )
    parser.add_argument(
        "--faults",
        default="",
        help=f"e.g. '429=0.15,500=0.1' (kinds: {', '.join(FAULT_KINDS)}), or 'issue7' for "
        f"{PRESETS['issue7']}",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument(
        "--retry-after-max", type=float, default=1.0, help="a 429 asks to wait 0 to this (s)"
    )
    parser.add_argument("--log", help="append one JSON line per chat completion to this file")
    parser.add_argument(
        "--close-connections",
        action="store_true",
        help="answer with Connection: close, so every request comes on a new connection",
    )
    parser.add_argument(
        "--lifetime", type=float, default=3600.0, help="stop by itself after this many seconds"
    )
    args = parser.parse_args(argv)
    try:
        faults = Faults.parse(args.faults, args.seed, args.retry_after_max)
    except ValueError as exc:
        parser.error(str(exc))
    with open(args.log, "a", encoding="utf-8") if args.log else contextlib.nullcontext() as log:
        limit = (
            RateLimit(args.rate_limit, args.rate_limit_headers, args.rate_window)
            if args.rate_limit
            else None
        )
        delay_max = args.delay_max_ms / 1000 if args.delay_max_ms is not None else None
        stub = StubServer(
            args.delay_ms / 1000, faults, log, args.close_connections, delay_max, limit
        )
        asyncio.run(serve(args.host, args.port, stub, args.lifetime))
    print(json.dumps(stub.counts()), flush=True)
    print(f"stub server: {stub.stats['requests']} requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
