"""A local OpenAI-compatible server with a fixed delay, for benchmarks (stdlib asyncio only).

    python benchmarks/stub_server.py --port 0 --delay-ms 300

Prints the base URL it bound (``http://127.0.0.1:PORT/v1``) as its first stdout line, then
serves until SIGINT/SIGTERM and prints the request counts. ``GET /stats`` returns the counts
while it runs. Each chat completion sleeps ``--delay-ms`` without blocking the others, so
concurrent requests overlap the way they do against a real endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required"}
MODEL = "stub-model"
SUMMARY = "The paper proposes a method and reports that it improves on strong baselines."


class StubServer:
    """Answers chat completions with schema-valid tags and a summary after a fixed delay."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.stats = {"requests": 0, "chat_completions": 0, "in_flight": 0, "max_in_flight": 0}
        self.connections: set[asyncio.StreamWriter] = set()

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
                status, payload = await self.route(method, target.split("?")[0], body)
                await respond(writer, status, payload)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that hangs up mid-request is not the server's problem
        finally:
            self.connections.discard(writer)
            writer.close()

    async def route(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The status and JSON payload for one request."""
        self.stats["requests"] += 1
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                request = json.loads(body)
            except ValueError:
                return 400, {"error": {"message": "body is not JSON", "type": "invalid_request"}}
            self.stats["chat_completions"] += 1
            self.stats["in_flight"] += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.stats["in_flight"] -= 1
            return 200, completion(request, self.stats["chat_completions"])
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
        if method == "GET" and path == "/stats":
            return 200, dict(self.stats)
        return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """Header names lower-cased; the blank line that ends them is consumed."""
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


async def respond(writer: asyncio.StreamWriter, status: int, payload: dict[str, Any]) -> None:
    """Write one JSON response and keep the connection open."""
    data = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    writer.write(head.encode() + data)
    await writer.drain()


def completion(request: dict[str, Any], number: int) -> dict[str, Any]:
    """A chat.completion whose content is {"tags", "summary"}, tags from the request's enum."""
    messages = request.get("messages") or []
    prompt = "".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    names, max_tags = tag_enum(request.get("response_format") or {})
    # Deterministic per prompt, so a paper gets the same answer on every run.
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
    tags = [names[(seed + i) % len(names)] for i in range(min(2, max_tags, len(names)))]
    content = json.dumps({"tags": tags, "summary": SUMMARY})
    prompt_tokens, completion_tokens = len(prompt) // 4 + len(messages) * 4, len(content) // 4
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
                "finish_reason": "stop",
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


async def serve(host: str, port: int, delay: float) -> StubServer:
    """Serve until SIGINT or SIGTERM; return the server with its final counts."""
    stub = StubServer(delay)
    server = await asyncio.start_server(stub.handle, host, port, backlog=256)
    bound = server.sockets[0].getsockname()
    print(f"http://{bound[0]}:{bound[1]}/v1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
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
    args = parser.parse_args(argv)
    stub = asyncio.run(serve(args.host, args.port, args.delay_ms / 1000))
    print(json.dumps(stub.stats), flush=True)
    print(f"stub server: {stub.stats['requests']} requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
