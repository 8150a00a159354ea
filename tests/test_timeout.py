"""The per-request deadline: the `timeout` setting plus the answer's size, against a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from agent.backends.openai import OpenAIBackend
from agent.config import SLOW_TOKENS_PER_SECOND, Settings
from agent.errors import PaperFailed
from agent.llm.http import answer_timeout
from agent.models import Paper
from agent.taxonomy import load_taxonomy
from tests.llm import completion

PAPER = Paper(id="p1", title="A paper", abstract="We train a model and it works.")
ANSWER = completion({"tags": ["LLMs"], "summary": "It trains a model that works."})


@asynccontextmanager
async def slow_server(delay: float | None) -> AsyncIterator[tuple[str, list[float]]]:
    """An OpenAI-compatible server on 127.0.0.1 that writes its answer, whole, ``delay``
    seconds after a request came (None: never), as llama.cpp does when it is slow; yields its
    base URL and the arrival time of each request."""
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            arrivals.append(loop.time())
            await asyncio.sleep(3600 if delay is None else delay)
            body = json.dumps(ANSWER).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: that is the point
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", arrivals
    finally:
        server.close()


def settings(tmp_path, base_url: str, **overrides) -> Settings:
    """An LLM run against ``base_url``; ``timeout`` and ``max_tokens`` set by the test."""
    return Settings(
        backend="openai", base_url=base_url, api_key="local", home=tmp_path, **overrides
    )


def test_the_deadline_is_the_setting_plus_the_answer_at_the_slow_rate():
    deadline = answer_timeout(60.0, 250)
    assert deadline.read == 60.0 + 250 / SLOW_TOKENS_PER_SECOND
    assert deadline.connect == 10.0  # a server that is not there fails fast
    assert answer_timeout(2.0, None).read == 2.0 and answer_timeout(2.0, None).connect == 2.0


async def test_a_slow_server_still_writing_its_answer_is_waited_for(tmp_path, sleeps):
    """0.3 s per request, answers of 5 tokens: 1.3 s to write one. The server takes 0.8 s
    (a CPU still generating); the old fixed deadline of 0.3 s failed the paper after 8 tries."""
    async with slow_server(0.8) as (url, arrivals), httpx.AsyncClient() as http:
        backend = OpenAIBackend(
            settings(tmp_path, url, timeout=0.3, max_tokens=5), load_taxonomy(), http
        )
        result = await backend.annotate(PAPER)
    assert result.tags == ["LLMs"]
    assert len(arrivals) == 1  # answered the first time, not retried


async def test_a_timeout_says_how_long_it_waited_and_which_setting_to_raise(tmp_path, sleeps):
    async with slow_server(None) as (url, arrivals), httpx.AsyncClient() as http:
        run = settings(tmp_path, url, timeout=0.2, max_tokens=1, max_attempts=2)
        backend = OpenAIBackend(run, load_taxonomy(), http)
        with pytest.raises(PaperFailed) as failed:
            await backend.annotate(PAPER)
    assert failed.value.kind == "timeout"
    assert failed.value.message == (
        "timed out after 2 request(s): no answer within 0.4 s; a slow server needs a "
        "higher timeout in paper-agent.toml (now 0.2 s, plus max_tokens at 5 tokens/s)"
    )
    assert len(arrivals) == 2
