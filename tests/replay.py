"""Replay a cassette (see agent/llm/recording.py) through respx: match on method, URL and body."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import respx

from agent.llm.recording import request_key

CASSETTES = Path(__file__).parent.parent / "cassettes"


def load_cassette(name: str) -> list[dict]:
    """The interactions of ``cassettes/NAME.json``."""
    return json.loads((CASSETTES / f"{name}.json").read_text())["interactions"]


def replay(router: respx.MockRouter, interactions: list[dict]) -> None:
    """Answer every request from ``interactions``; an unrecorded request fails the test."""
    table: dict[str, list[dict]] = {}
    for item in interactions:
        req = item["request"]
        body = json.dumps(req["body"]).encode() if req["body"] is not None else b""
        table.setdefault(request_key(req["method"], req["url"], body), []).append(item["response"])

    def respond(request: httpx.Request) -> httpx.Response:
        key = request_key(request.method, str(request.url), request.content)
        if not table.get(key):
            raise AssertionError(
                f"no recorded exchange for {request.method} {request.url} with this body; after "
                "a change to prompts/ or the default taxonomy, re-record (README, 'Tests and "
                "cassettes')"
            )
        recorded = table[key].pop(0)
        body = recorded["body"]
        content = json.dumps(body) if not isinstance(body, str) else body
        return httpx.Response(recorded["status"], headers=recorded["headers"], content=content)

    router.route().mock(side_effect=respond)
