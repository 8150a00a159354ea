"""The one httpx.AsyncClient a run shares between the LLM, Slack and sources (DESIGN 1)."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import httpx

from agent import __version__
from agent.config import SLOW_TOKENS_PER_SECOND
from agent.llm.recording import Recorder
from agent.llm.redact import redact

log = logging.getLogger(__name__)

USER_AGENT = f"paper-agent/{__version__}"

# Set around a request by a caller that needs to know whether it reached the server (the LLM
# client counts a request cancelled in flight only then): called once its body is written.
on_wire: ContextVar[Callable[[], None] | None] = ContextVar("on_wire", default=None)


async def _trace_wire(request: httpx.Request) -> None:
    """Ask httpcore to say when ``request``'s body has left, for the caller that set ``on_wire``."""
    note = on_wire.get()
    if note is None:
        return

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            note()

    request.extensions["trace"] = trace


def answer_timeout(timeout: float, max_tokens: int | None) -> httpx.Timeout:
    """One LLM request's deadlines: ``timeout`` (the setting) to connect and for the server to
    start, plus the answer's ``max_tokens`` at ``SLOW_TOKENS_PER_SECOND`` to have it written."""
    return httpx.Timeout(
        timeout + (max_tokens or 0) / SLOW_TOKENS_PER_SECOND, connect=min(10.0, timeout)
    )


class ShardedTransport(httpx.AsyncBaseTransport):
    """Many one-connection pools used as one, each request going to the least busy.

    httpcore's pool re-scans every queued request against every connection each time a
    request starts or ends: O(in-flight x connections). At 16 requests in flight that
    bookkeeping was a third of the client's CPU per paper (200 papers against the stub
    server at 0 ms, in one process: 6.5 ms per paper with one pool, 2.6 ms like this).
    """

    def __init__(self, max_connections: int) -> None:
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        # One SSL context for all pools: loading the CA bundle costs ~50 ms each time.
        verify = httpx.create_ssl_context()
        self._pools = [
            httpx.AsyncHTTPTransport(limits=one, verify=verify)
            for _ in range(max(1, max_connections))
        ]
        self._busy = [0] * len(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the pool with the fewest requests in flight."""
        shard = self._busy.index(min(self._busy))
        self._busy[shard] += 1
        try:
            return await self._pools[shard].handle_async_request(request)
        finally:
            self._busy[shard] -= 1

    async def aclose(self) -> None:
        """Close every pool."""
        for pool in self._pools:
            await pool.aclose()


def make_client(
    timeout: float = 60.0, max_connections: int = 64, recorder: Recorder | None = None
) -> httpx.AsyncClient:
    """A client with sane timeouts and a pool large enough for the run's concurrency."""
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [_trace_wire]}
    hooks["response"] = [_say_redirect, *([recorder.on_response] if recorder is not None else [])]
    # httpx honours HTTP(S)_PROXY only with its own transport, so proxied users keep it.
    proxied = any(k in ("http", "https", "all") for k in urllib.request.getproxies())
    return httpx.AsyncClient(
        event_hooks=hooks,
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        transport=None if proxied else ShardedTransport(max_connections),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"user-agent": USER_AGENT},
        follow_redirects=True,
    )


async def _say_redirect(response: httpx.Response) -> None:
    """Response hook: a redirect to another host is followed, and said in one warning line.

    Only the origins are shown (scheme, host, port): the rest of a URL may hold a key.
    """
    if not response.has_redirect_location:
        return
    source = response.request.url
    try:
        target = source.join(response.headers["location"])
    except httpx.InvalidURL:
        return  # httpx refuses to follow it, and says so itself
    if target.host and target.host != source.host:  # httpx lower-cases hosts
        log.warning(
            "%s redirected a request to another host, %s; following it",
            redact(_origin(source)),
            redact(_origin(target)),
        )


def _origin(url: httpx.URL) -> str:
    """``https://host:port`` of ``url``, without credentials, path or query."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"
