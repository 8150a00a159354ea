"""Cassettes: HTTP exchanges recorded to JSON (no headers but content-type, secrets scrubbed).

Record mode is switched on with ``PAPER_AGENT_RECORD=cassettes/NAME.json``; tests replay the
file through respx, matching on method, URL and JSON body (so order under concurrency does
not matter).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from agent.llm.redact import redact

RECORD_ENV = "PAPER_AGENT_RECORD"


def _body(content: bytes) -> Any:
    text = redact(content.decode("utf-8", errors="replace"))
    try:
        return json.loads(text)
    except ValueError:
        return text


class Recorder:
    """Collects every exchange of one client and writes them as a cassette."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.interactions: list[dict[str, Any]] = []

    async def on_response(self, response: httpx.Response) -> None:
        """httpx response hook: store the exchange (the request's headers are never stored)."""
        await response.aread()
        request = response.request
        self.interactions.append(
            {
                "request": {
                    "method": request.method,
                    "url": redact(str(request.url)),
                    "body": _body(request.content),
                },
                "response": {
                    "status": response.status_code,
                    "headers": {"content-type": response.headers.get("content-type", "")},
                    "body": _body(response.content),
                },
            }
        )

    def save(self) -> None:
        """Write the cassette, sorted so re-recording gives a stable diff."""
        self.interactions.sort(key=lambda i: json.dumps(i["request"], sort_keys=True))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cassette = {"interactions": self.interactions}
        self.path.write_text(json.dumps(cassette, indent=1, ensure_ascii=False) + "\n")


def recorder_from_env() -> Recorder | None:
    """A recorder when ``PAPER_AGENT_RECORD`` names a cassette file."""
    target = os.environ.get(RECORD_ENV)
    return Recorder(Path(target)) if target else None


def request_key(method: str, url: str, content: bytes) -> str:
    """What a replayed request is matched on: method, URL and canonical JSON body."""
    body = _body(content) if content else None
    return json.dumps([method.upper(), url, body], sort_keys=True)
