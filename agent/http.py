"""The one httpx.AsyncClient a run shares between the LLM, Slack and sources (DESIGN 1)."""

from __future__ import annotations

import httpx

from agent import __version__
from agent.recording import Recorder

USER_AGENT = f"paper-agent/{__version__}"


def make_client(
    timeout: float = 60.0, max_connections: int = 64, recorder: Recorder | None = None
) -> httpx.AsyncClient:
    """A client with sane timeouts and a pool large enough for the run's concurrency."""
    hooks = {"response": [recorder.on_response]} if recorder is not None else {}
    return httpx.AsyncClient(
        event_hooks=hooks,
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"user-agent": USER_AGENT},
        follow_redirects=True,
    )
