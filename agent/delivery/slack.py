"""Post Block Kit messages to a Slack incoming webhook: in order, spaced, retried, resumable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from agent.delivery.journal import DeliveryLog, destination_id, digest_hash
from agent.errors import ConfigError, DeliveryError
from agent.llm import retry
from agent.llm.redact import redact, register

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


class SlackPostError(DeliveryError):
    """Some messages were not delivered; says which ones were."""

    def __init__(
        self,
        number: int,
        total: int,
        delivered: Sequence[int],
        reason: str,
        resume: str = "the same command with --resume",
    ) -> None:
        self.number = number
        self.total = total
        self.delivered = sorted(delivered)
        self.pending = [n for n in range(1, total + 1) if n not in set(delivered)]
        done = ", ".join(map(str, self.delivered)) or "none"
        todo = ", ".join(map(str, self.pending))
        super().__init__(
            f"Slack did not accept message {number} of {total}: {reason.rstrip('.')}. "
            f"Delivered: {done}. Not delivered: {todo}. "
            f"Run {resume} to send only those."
        )


@dataclass
class SlackReport:
    """What a post did; message numbers are 1-based, as shown to users."""

    total: int
    sent: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    retries: int = 0


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


async def post_to_slack(
    client: httpx.AsyncClient,
    webhook: str,
    messages: Sequence[dict[str, Any]],
    *,
    resume: bool = False,
    delivery_log: DeliveryLog | None = None,
    policy: retry.RetryPolicy = SLACK_POLICY,
    interval: float = MIN_INTERVAL,
    on_sent: Callable[[int, int], None] | None = None,
    resume_hint: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SlackReport:
    """Send ``messages`` in order; raise SlackPostError naming what was and wasn't delivered."""
    webhook = check_webhook(webhook)
    journal = delivery_log or DeliveryLog()
    with journal.lock():
        return await _post(
            client,
            webhook,
            messages,
            journal,
            resume,
            policy,
            interval,
            on_sent,
            resume_hint,
            clock,
        )


async def _post(
    client: httpx.AsyncClient,
    webhook: str,
    messages: Sequence[dict[str, Any]],
    journal: DeliveryLog,
    resume: bool,
    policy: retry.RetryPolicy,
    interval: float,
    on_sent: Callable[[int, int], None] | None,
    resume_hint: str | None,
    clock: Callable[[], float],
) -> SlackReport:
    key, where = digest_hash(messages), destination_id(webhook)
    total = len(messages)
    already = journal.delivered(key, where) if resume else set()
    report = SlackReport(total=total, skipped=[i + 1 for i in sorted(already) if i < total])
    if report.skipped:
        log.info(
            "Slack: %d of %d message(s) already delivered, not sent again",
            len(report.skipped),
            total,
        )
    pacer = retry.Pacer(interval, clock)

    def count_retry(exc: BaseException, wait: float) -> None:
        report.retries += 1

    for index, message in enumerate(messages):
        if index in already:
            continue

        async def attempt(message: dict[str, Any] = message) -> httpx.Response:
            # Paced here, per request: a retry is a request too, and its backoff counts.
            await pacer.wait()
            response = await client.post(webhook, json=message)
            if response.status_code != 200:
                raise SlackHTTPError(response)
            return response

        try:
            await retry.call_with_retry(attempt, policy, count_retry)
        except (SlackHTTPError, httpx.HTTPError) as exc:
            delivered = [*report.skipped, *report.sent]
            reason = _reason(exc, webhook)
            hint = {"resume": resume_hint} if resume_hint else {}
            raise SlackPostError(index + 1, total, delivered, reason, **hint) from None
        report.sent.append(index + 1)
        try:
            journal.record(key, where, total, index)
        except OSError as exc:
            # Delivered is delivered: a log we cannot write costs only --resume.
            log.warning("cannot write the delivery log (%s); --resume may resend", exc)
        log.info("Slack message %d of %d delivered", index + 1, total)
        if on_sent is not None:
            on_sent(index + 1, total)
    return report
