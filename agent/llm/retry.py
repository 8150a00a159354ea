"""The one retry policy for every outbound call (DESIGN 2), built on tenacity."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from agent.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 429})
# How servers say a request is too large for them: OpenAI ("maximum context length",
# context_length_exceeded, "Request too large ... tokens per min" as a 429), vLLM ("maximum
# context length", "maximum model length"), llama.cpp (exceed_context_size_error, "exceeds the
# available context size"), LM Studio ("context length of only"), proxies (413, "Payload Too
# Large").
TOO_LARGE = re.compile(
    r"context[ _-]?(length|window|size)|exceed_context_size|max(imum)?[ _]model[ _]len"
    r"|request (entity )?too large|payload too large|(prompt|input) is too long",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on attempts and on the time one call may take, retries and waits included."""

    max_attempts: int = Settings.max_attempts
    base_delay: float = 0.5
    max_delay: float = 30.0  # the longest wait a server's Retry-After is granted
    max_backoff: float = 8.0  # the longest wait of our own: more tries beat longer naps
    max_total_wait: float = 90.0
    # One attempt, whole: a server that drips a byte now and then never trips httpx's
    # per-read timeout, so each attempt also has a deadline of its own.
    attempt_deadline: float = 120.0


class Deadline(httpx.TimeoutException):
    """An attempt ran past its policy's deadline (retried like any timeout)."""


async def sleep(seconds: float) -> None:
    """The sleep retries use; tests patch this to run instantly."""
    await asyncio.sleep(seconds)


class Pacer:
    """Keeps the starts of any two requests at least ``interval`` seconds apart."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.last: float | None = None

    async def wait(self) -> None:
        """Sleep until the next request may go, then note that it goes now."""
        if self.last is not None:
            gap = self.interval - (self.clock() - self.last)
            if gap > 0:
                await sleep(gap)
        self.last = self.clock()


def status_and_headers(exc: BaseException) -> tuple[int | None, Mapping[str, str]]:
    """The HTTP status and headers an exception carries (None and {} when it has no response)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status, response.headers
    return None, {}


def _error_object(exc: BaseException) -> dict[str, object]:
    """The error object of an HTTP error's JSON body ({} when there is none)."""
    response = getattr(exc, "response", None)
    try:
        body = json.loads(response.content) if response is not None else None
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        return {}
    if not isinstance(body, dict):
        return {}
    error = body.get("error", body)  # vLLM's older errors are flat: {"object": "error", ...}
    return error if isinstance(error, dict) else {"message": error}


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    code = _error_object(exc).get("code")
    return code if isinstance(code, str) else None


def too_large(exc: BaseException) -> bool:
    """Whether an HTTP error says the request can never be answered as it is, however long
    we wait: a 413, or a 4xx whose message, code or type names the context length or a
    request too large. That is the paper's trouble, never the run's nor a server quirk."""
    status, _ = status_and_headers(exc)
    if status == 413:
        return True
    if status is None or not 400 <= status < 500:
        return False
    error = _error_object(exc)
    # Only these fields: a validation error may echo the request, and papers talk about
    # context windows too.
    named = " ".join(str(error.get(key) or "") for key in ("message", "code", "type"))
    return bool(TOO_LARGE.search(named))


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    openai = sys.modules.get("openai")  # only check SDK errors when the SDK is in use
    return openai is not None and isinstance(exc, openai.APIConnectionError)


def is_retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 408/409/429/5xx; never other 4xx, insufficient_quota or a
    request too large (``too_large``)."""
    if _is_connection_error(exc):
        return True
    status, _ = status_and_headers(exc)
    if status is None:
        return False
    if status == 429 and _error_code(exc) == "insufficient_quota":
        return False
    if too_large(exc):  # e.g. a 429 for a request larger than the whole per-minute limit
        return False
    return status in RETRY_STATUSES or status >= 500


def _seconds(value: str, scale: float = 1.0) -> float | None:
    """A number of seconds, or None for text that is no number ("soon", "nan")."""
    try:
        seconds = float(value) / scale
    except ValueError:
        return None
    # NaN says nothing: ignored, so the backoff applies (max(0.0, nan) is 0.0, "retry now");
    # inf is capped by the caller like any long wait.
    return None if math.isnan(seconds) else max(0.0, seconds)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``retry-after``, and Zotero's
    ``backoff``: the longest), or None."""
    told = [t for t in (_retry_after(headers, now), backoff(headers)) if t is not None]
    return max(told, default=None)


def backoff(headers: Mapping[str, str]) -> float | None:
    """Seconds of a ``Backoff`` header (Zotero sends it on any answer, a good one too: no
    request before they pass), or None when absent or not a finite, non-negative number."""
    try:
        seconds = float(headers.get("backoff") or "x")
    except ValueError:
        return None
    return seconds if 0 <= seconds < math.inf else None


def _retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    value = headers.get("retry-after-ms")
    if value and (seconds := _seconds(value, 1000)) is not None:
        return seconds
    value = headers.get("retry-after")
    if not value:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _waiter(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            _, headers = status_and_headers(exc)
            told = retry_after(headers)
            if told is not None:
                return min(told, policy.max_delay)
        backoff = min(policy.max_backoff, policy.base_delay * 2 ** (state.attempt_number - 1))
        return random.uniform(backoff / 2, backoff * 1.5)

    return wait


def _stopper(policy: RetryPolicy, queued: Callable[[], float]) -> Callable[[RetryCallState], bool]:
    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        # Time spent in attempts counts too: a server that hangs until the timeout must not
        # hold a paper for max_attempts x timeout. Time spent waiting for a turn at the rate
        # limiter (``queued``) does not: it is the run's pace, not this paper's failures.
        # (idle_for covers patched sleeps in tests.)
        spent = max(state.idle_for, (state.seconds_since_start or 0.0) - queued())
        return spent + state.upcoming_sleep > policy.max_total_wait

    return stop


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_retry: Callable[[BaseException, float], None] | None = None,
    gate: Callable[[Callable[[], Awaitable[T]]], Awaitable[T]] | None = None,
) -> T:
    """Await ``fn()`` until it succeeds, retrying only what DESIGN 2 allows.

    ``gate`` (a rate limiter's ``run``) runs each attempt when its turn comes: the time spent
    waiting for that turn is not the attempt's, so its deadline starts after it.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        status, _ = status_and_headers(exc) if exc else (None, {})
        log.info(
            "retrying after %s (attempt %d), waiting %.2fs",
            status or type(exc).__name__,
            state.attempt_number,
            state.upcoming_sleep,
        )
        if on_retry is not None and exc is not None:
            on_retry(exc, state.upcoming_sleep)

    async def timed() -> T:
        try:
            async with asyncio.timeout(policy.attempt_deadline):
                return await fn()
        except TimeoutError:
            raise Deadline(f"no complete answer within {policy.attempt_deadline:g}s") from None

    queued = 0.0  # seconds this call's attempts waited for their turn at the gate

    async def bounded() -> T:
        if gate is None:
            return await timed()
        asked = time.monotonic()

        async def turn() -> T:
            nonlocal queued
            queued += time.monotonic() - asked
            return await timed()

        return await gate(turn)

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        wait=_waiter(policy),
        stop=_stopper(policy, lambda: queued),
        before_sleep=before_sleep,
        sleep=lambda seconds: sleep(seconds),
        reraise=True,
    )
    return await retrying(bounded)
