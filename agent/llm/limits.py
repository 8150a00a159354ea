"""Adaptive concurrency and client-side rate limits for LLM requests (issue 11 item 5).

One ``Throttle`` per LLM client gates every HTTP attempt, retries included:

- **In flight (AIMD).** The limit starts at ``--concurrency``. A 429 cuts it to half the
  requests then in flight, at most once per round trip: a 429 to a request sent before the
  last cut, or within a round trip of it, is the same congestion, not a new one. Each success
  adds one back up to the limit before the cut (fast recovery), then one per round trip
  (additive increase), never above the maximum.
- **Pacing.** A limit of requests per second shows as 429s however few are in flight, and
  halving alone then oscillates around 75% of it. So a 429 also measures the rate the server
  accepted: requests started in the last second, less those rejected. Requests are then paced
  just under it, and the pace grows back like CUBIC's window: quickly at first, flat near the
  rate that was refused, faster again once that rate passes without a 429.
- **Headers.** ``x-ratelimit-remaining-requests: 0`` (or fewer tokens left than a request
  costs) holds new requests until ``x-ratelimit-reset-*`` says the limit resets.
- **Token buckets.** ``--rpm`` and ``--tpm``, each holding one second's worth, so a client-side
  limit is a steady pace, not a burst every minute.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from agent.llm.cost import estimated_tokens
from agent.llm.retry import RetryPolicy, status_and_headers

T = TypeVar("T")
log = logging.getLogger(__name__)

WINDOW = 1.0  # seconds over which the accepted rate is measured at a 429
DECREASE = 0.5  # a 429 leaves this share of the requests in flight
PACE = 0.95  # pace at this share of the rate the server accepted
PLATEAU = 2.0  # seconds for the pace to climb back near the refused rate
# The pace after t seconds: rate * (1 + GROWTH * (t - PLATEAU)^3), from PACE * rate at t = 0.
GROWTH = (1 - PACE) / PLATEAU**3
MIN_SAMPLES = 4  # a rate measured from fewer requests than this is noise: no pacing
DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# The longest hold a reset header is granted, as a Retry-After is (RetryPolicy.max_delay).
MAX_HOLD = RetryPolicy.max_delay


def parse_duration(text: str) -> float | None:
    """Seconds in a reset header: ``1s``, ``6m0s``, ``20ms``, ``1.146s`` or bare seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * UNITS[unit] for number, unit in parts)


def request_cost(messages: list[dict[str, str]], max_tokens: int | None) -> int:
    """A request's tokens as ``--tpm`` counts them: prompt characters / 4, plus its max_tokens."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return estimated_tokens(chars) + (max_tokens or 0)


def tpm_too_small(tpm: float, cost: int) -> str | None:
    """The warning for a ``--tpm`` below one request's ``cost`` (None when one fits a minute)."""
    if cost <= tpm:
        return None
    return (
        f"--tpm {tpm:g} is less than one request (~{cost:,} tokens): "
        f"each request waits about {cost / tpm:.0f} min"
    )


class TokenBucket:
    """``per_minute`` units a minute, holding one second's worth (at least one unit)."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.rate = per_minute / 60
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def delay(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` may be taken (a cost above the capacity waits for a full one)."""
        self._refill(now)
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, cost: float, now: float) -> None:
        """Spend ``cost`` (the level may go below zero: the next request waits longer)."""
        self._refill(now)
        self.level -= cost


class Attempt:
    """One HTTP attempt's place in the throttle: ``async with throttle.attempt(cost) as a``."""

    __slots__ = ("cost", "headers", "start", "throttle")

    def __init__(self, throttle: Throttle, cost: int) -> None:
        self.throttle = throttle
        self.cost = cost
        self.start = 0.0
        self.headers: Mapping[str, str] | None = None

    def answered(self, response: Any) -> None:
        """Note a successful response (its rate-limit headers are read on exit)."""
        self.headers = getattr(response, "headers", None)

    async def __aenter__(self) -> Attempt:
        await self.throttle._enter(self)
        return self

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            status, headers = 200, self.headers
        else:
            status, headers = status_and_headers(exc)
        self.throttle._exit(self, status, headers or {})


class Throttle:
    """Decides when each HTTP attempt may start; fed every attempt's status and headers."""

    def __init__(
        self,
        max_in_flight: int,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.limit = float(max_in_flight)  # requests in flight allowed now
        self.in_flight = 0
        self.clock = clock
        self.sleep = sleep
        now = clock()
        self.rpm = TokenBucket(rpm, now) if rpm else None
        self.tpm = TokenBucket(tpm, now) if tpm else None
        self.ceiling: float | None = None  # requests/s the server accepted at the last 429
        self.cuts = 0  # congestion events: 429s that cut the limit
        self.rejected = 0  # every 429
        self._cut_at = -math.inf
        self._cut_start = -math.inf  # when the request whose 429 cut last started
        self.round_trip = 0.0  # smoothed seconds from start to success
        self._recover_to = 0.0  # the limit before the last cut: one back per success up to it
        self._hold_until = -math.inf
        self._long_reset_said = False  # a reset past MAX_HOLD is said once per run
        self._next_start = -math.inf  # the paced start of the next attempt
        self._starts: deque[float] = deque()  # attempt starts, the last 2 WINDOWs
        self._refused: deque[float] = deque()  # starts of the 429s among them
        self._gate = asyncio.Lock()
        self._warned_tpm = False  # said once that --tpm is below one request
        self._freed: asyncio.Future[None] | None = None

    @property
    def counts_tokens(self) -> bool:
        """Whether attempts need a token cost (only ``--tpm`` uses it)."""
        return self.tpm is not None

    def attempt(self, cost: int = 0) -> Attempt:
        """The async context manager one HTTP attempt runs in."""
        return Attempt(self, cost)

    async def run(self, send: Callable[[], Awaitable[T]], cost: int = 0) -> T:
        """``await send()`` as one attempt: waits its turn, then feeds back what came of it."""
        async with self.attempt(cost) as attempt:
            response = await send()
            attempt.answered(response)
            return response

    def rate(self, now: float) -> float | None:
        """Requests per second to pace at now (None: no pacing)."""
        if self.ceiling is None:
            return None
        return self.ceiling * (1 + GROWTH * (now - self._cut_at - PLATEAU) ** 3)

    def _wait(self, now: float, cost: int) -> float:
        """Seconds until an attempt of ``cost`` may start, by every gate but the in-flight one."""
        wait = self._hold_until - now
        rate = self.rate(now)
        if rate is not None:
            wait = max(wait, self._next_start - now)
        if self.rpm is not None:
            wait = max(wait, self.rpm.delay(1, now))
        if self.tpm is not None:
            wait = max(wait, self.tpm.delay(cost, now))
        return wait

    async def _enter(self, attempt: Attempt) -> None:
        if self.tpm is not None and not self._warned_tpm:
            warning = tpm_too_small(self.tpm.rate * 60, attempt.cost)
            if warning:
                self._warned_tpm = True
                log.warning(warning)
        # One attempt at a time passes the gate, in arrival order; it waits here for a free
        # slot and for its start time, then starts.
        async with self._gate:
            while True:
                if self.in_flight >= max(1, int(self.limit)):
                    self._freed = asyncio.get_running_loop().create_future()
                    await self._freed
                    continue
                now = self.clock()
                wait = self._wait(now, attempt.cost)
                if wait <= 0:
                    break
                await self.sleep(wait)
            self.in_flight += 1
            attempt.start = now
            rate = self.rate(now)
            if rate is not None:
                # Paced from its scheduled time, not from a late wake-up (a busy event loop),
                # unless that was over half an interval ago: then from now.
                late = self._next_start < now - 0.5 / rate
                self._next_start = (now if late else self._next_start) + 1 / rate
            if self.rpm is not None:
                self.rpm.take(1, now)
            if self.tpm is not None:
                self.tpm.take(attempt.cost, now)
            self._starts.append(now)
            horizon = now - 2 * WINDOW  # a 429 looks back one WINDOW from its own start
            while self._starts[0] <= horizon:
                self._starts.popleft()

    def _exit(self, attempt: Attempt, status: int | None, headers: Mapping[str, str]) -> None:
        self.in_flight -= 1
        if self._freed is not None and not self._freed.done():
            self._freed.set_result(None)
        if headers:
            self._read_headers(attempt, headers)
        if status == 429:
            self._on_429(attempt)
        elif status is not None and status < 400:
            took = self.clock() - attempt.start
            self.round_trip += (took - self.round_trip) / 8 if self.round_trip else took
            if self.limit >= self.max_in_flight:
                return
            step = 1.0 if self.limit < self._recover_to else 1 / self.limit
            self.limit = min(float(self.max_in_flight), self.limit + step)

    def _on_429(self, attempt: Attempt) -> None:
        self.rejected += 1
        now = self.clock()
        self._refused = deque(t for t in (*self._refused, attempt.start) if t > now - 2 * WINDOW)
        if attempt.start <= self._cut_at or now < self._cut_at + self.round_trip:
            # Sent before the cut, or within a round trip of it: the same congestion (a full
            # window at the server takes a while to drain). It only refines the measured rate.
            if self.ceiling is not None and attempt.start <= self._cut_start:
                self.ceiling = self._accepted_rate(self._cut_start) or self.ceiling
            return
        self.cuts += 1
        in_flight = self.in_flight + 1  # this attempt was in flight until just now
        self._recover_to = self.limit
        self.limit = max(1.0, DECREASE * min(self.limit, in_flight))
        self._cut_at, self._cut_start = now, attempt.start
        # What the server let through of what was sent in the WINDOW up to this request; the
        # 429s of requests sent before it that come later revise it.
        self.ceiling = self._accepted_rate(attempt.start) or self.ceiling
        log.debug(
            "429: at most %d in flight now; the server accepted %s requests/s",
            int(self.limit),
            "?" if self.ceiling is None else f"{self.ceiling:g}",
        )

    def _accepted_rate(self, end: float) -> float | None:
        """Requests/s started in the WINDOW up to ``end`` and not refused (None: too few)."""
        horizon = end - WINDOW
        started = sum(1 for t in self._starts if horizon < t <= end)
        if started < MIN_SAMPLES:
            return None
        refused = sum(1 for t in self._refused if horizon < t <= end)
        return max(1, started - refused) / WINDOW

    def _read_headers(self, attempt: Attempt, headers: Mapping[str, str]) -> None:
        """Hold new attempts until the reset when the server says nothing is left."""
        for kind, short in (("requests", 1), ("tokens", max(1, attempt.cost))):
            left = headers.get(f"x-ratelimit-remaining-{kind}")
            if left is None:
                continue
            try:
                exhausted = float(left) < short
            except ValueError:
                continue
            reset = headers.get(f"x-ratelimit-reset-{kind}")
            seconds = parse_duration(reset) if reset else None
            if exhausted and seconds is not None:
                if seconds > MAX_HOLD and not self._long_reset_said:
                    # A daily quota ("23h59m59s") or a bogus value: hold no longer than a
                    # Retry-After would; later 429s then fail the papers, bounded, with a reason.
                    self._long_reset_said = True
                    log.warning(
                        "the server's %s limit resets in %s; waiting at most %.0f s at a time",
                        kind,
                        reset,
                        MAX_HOLD,
                    )
                # The server counted this request when it arrived, about when it started.
                hold = min(seconds, MAX_HOLD)
                self._hold_until = max(self._hold_until, attempt.start + hold)
