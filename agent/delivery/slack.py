"""Slack through an incoming webhook: Block Kit messages sent in order, spaced and retried."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from agent.delivery.journal import Destination, destination_id, digest_hash, fingerprint, paper_key
from agent.delivery.outbox import Outgoing
from agent.errors import ConfigError, DeliveryError
from agent.llm import retry
from agent.llm.redact import redact, register

if TYPE_CHECKING:
    from agent.digest import Digest

log = logging.getLogger(__name__)

# Slack asks incoming webhooks for about one message per second.
MIN_INTERVAL = 1.0
SLACK_POLICY = retry.RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=60.0, max_backoff=30.0)


class SlackHTTPError(Exception):
    """Slack answered with an error status; the message holds Slack's text, never the URL."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response  # read by agent.llm.retry for the status and Retry-After
        self.status = response.status_code
        self.reason = response.text.strip()[:200] or response.reason_phrase
        super().__init__(f"{self.reason} (HTTP {self.status})")


def _reason(exc: BaseException, webhook: str) -> str:
    if isinstance(exc, SlackHTTPError):
        return str(exc)
    # Transport errors rarely name the URL, but a secret must not leak through one that does.
    return redact(f"{type(exc).__name__}: {exc}", [webhook])


def check_webhook(url: str) -> str:
    """The webhook, trimmed and registered as a secret; a malformed one is refused without
    showing it."""
    url = url.strip()
    register(url)
    try:
        parsed = httpx.URL(url)
        urlsplit(url).port  # noqa: B018 (httpx takes port 99999; this raises ValueError)
    except (httpx.InvalidURL, ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError("the Slack webhook must be an http(s) URL (value not shown)")
    return url


def slack_destination(webhook: str) -> Destination:
    """The webhook's destination: the same id however its scheme, host or port are spelled."""
    url = httpx.URL(check_webhook(webhook))
    default = {"http": 80, "https": 443}[url.scheme]
    port = f":{url.port}" if url.port not in (None, default) else ""
    normalised = f"{url.scheme}://{url.host}{port}{url.raw_path.decode('ascii')}"
    return Destination(
        channel="slack",
        id=fingerprint("slack", normalised),
        name="Slack",
        where="Slack",
        aliases=(destination_id(webhook.strip()),),
    )


class SlackChannel:
    """Slack's side of the delivery seam: one screen (or every paper with ``full``) rendered
    as webhook payloads, each sent paced at least ``interval`` apart and retried."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        webhook: str,
        *,
        full: bool = False,
        more_url: str | None = None,
        policy: retry.RetryPolicy = SLACK_POLICY,
        interval: float = MIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.webhook = check_webhook(webhook)
        self.destination = slack_destination(self.webhook)
        self.full = full
        self.more_url = more_url
        self.policy = policy
        self.pacer = retry.Pacer(interval, clock)
        self.retries = 0

    def render(self, digest: Digest) -> list[Outgoing]:
        """The digest's webhook payloads, each with the papers it shows or counts."""
        from agent.digest import slack_posts

        posts = slack_posts(digest, full=self.full, more_url=self.more_url)
        return [Outgoing(p.message, tuple(dict.fromkeys(map(paper_key, p.papers)))) for p in posts]

    def digest_key(self, messages: list[Outgoing]) -> str:
        """The digest's hash: that of its payloads, as version 1 of the journal had it."""
        return digest_hash([m.payload for m in messages])

    async def send(self, payload: Any) -> None:
        """Post one payload; a DeliveryError with Slack's reason (never the URL) if refused."""

        async def attempt() -> httpx.Response:
            # Paced here, per request: a retry is a request too, and its backoff counts.
            await self.pacer.wait()
            response = await self.client.post(self.webhook, json=payload)
            if response.status_code != 200:
                raise SlackHTTPError(response)
            return response

        def count_retry(exc: BaseException, wait: float) -> None:
            self.retries += 1

        try:
            await retry.call_with_retry(attempt, self.policy, count_retry)
        except (SlackHTTPError, httpx.HTTPError) as exc:
            raise DeliveryError(_reason(exc, self.webhook)) from None
