"""The shared HTTP client: requests spread over small pools, still seen by respx."""

from __future__ import annotations

import asyncio

import httpx
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
