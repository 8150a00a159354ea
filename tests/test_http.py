"""The shared HTTP client: requests spread over small pools, still seen by respx."""

from __future__ import annotations

import asyncio
import logging
import threading

import httpx
import pytest
import respx

from agent.llm.http import ShardedTransport, make_client


async def test_requests_go_to_the_least_busy_pool():
    client = make_client(max_connections=16)
    transport = client._transport
    assert isinstance(transport, ShardedTransport)
    assert len(transport._pools) == 16
    seen: list[list[int]] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        seen.append(list(transport._busy))
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"ok": True})

    async with client, respx.mock() as router:
        router.get("http://svc.test/x").mock(side_effect=slow)
        responses = await asyncio.gather(*(client.get("http://svc.test/x") for _ in range(8)))
    assert all(r.status_code == 200 for r in responses)
    assert max(seen[-1]) == 1 and sum(seen[-1]) == 8  # 8 in flight, each on its own pool
    assert transport._busy == [0] * 16


async def test_proxy_environment_keeps_httpx_transport(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    client = make_client()
    assert not isinstance(client._transport, ShardedTransport)
    await client.aclose()


@pytest.fixture
def redirecting_server():
    """A local server whose ``/away`` redirects to another host name for itself (localhost)
    with a key in the query, ``/here`` to itself, and ``/end`` answers 200."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirects(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = self.server.server_address[1]
            targets = {
                "/away": f"http://localhost:{port}/end?key=sk-secretsecret123",
                "/here": "/end",
            }
            if self.path in targets:
                self.send_response(302)
                self.send_header("Location", targets[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_a_redirect_to_another_host_is_followed_and_said(redirecting_server, caplog):
    port = redirecting_server.rsplit(":", 1)[1]
    async with make_client() as client:
        response = await client.get(f"{redirecting_server}/away")
    assert response.status_code == 200 and response.text == "ok"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"http://127.0.0.1:{port} redirected a request to another host, "
        f"http://localhost:{port}; following it"
    ]
    assert "secret" not in caplog.text


async def test_a_redirect_on_the_same_host_is_followed_quietly(redirecting_server, caplog):
    async with make_client() as client:
        response = await client.get(f"{redirecting_server}/here")
    assert response.status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
