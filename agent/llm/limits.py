"""Adaptive concurrency and client-side rate limits for LLM requests (issue 11 item 5, issue 16).

One ``Throttle`` per LLM client gates every HTTP attempt, retries included:

- **A limit or not.** A busy provider refuses a share of requests at random, whatever the
  load; slowing down for those only slows the run (6x at 15% of requests). So a 429 slows the
  run only when a limit is behind it: its ``x-ratelimit-remaining-*`` headers say a limit is
  used up (room left: not ours), or, without them, the statistics of ``agent.llm.refusals``
  say so. Until they can tell, a 429 is presumed a limit's; once they show random refusals,
  the cuts presumed so far are undone.
- **In flight (AIMD).** The limit starts at ``--concurrency``. A limit's 429 cuts it to half the
  requests then in flight, at most once per round trip: a 429 to a request sent before the
  last cut, or within a round trip of it, is the same congestion, not a new one. Each success
  adds one back up to the limit before the cut (fast recovery), then one per round trip
  (additive increase), never above the maximum.
- **Pacing.** A limit of requests per second shows as 429s however few are in flight, and
  halving alone then oscillates around 75% of it. So a limit's 429 also measures the rate the
  server accepted: requests started in the last window, less those refused. Requests are then
  paced just under it, and the pace grows back like CUBIC's window: quickly at first, flat near
  the rate that was refused, faster again once that rate passes without a 429.
- **The window.** The rate is measured over one second until the server shows its window is
  longer: when it refuses everything for longer than a second (a per-minute limit, used up),
  each refused probe halves the pace (down to one per ``PROBE`` seconds), the first success
  ends the stall, and the window becomes the time since the server last had room (at most
  ``MAX_WINDOW``), its rate what it let through in it. A longer window is then gated by count:
  as many requests in any window as it let through, at once as it frees (a pace would waste
  its first minute); the quota grows back like the pace, in proportion to the window.
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
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from agent.llm.cost import estimated_tokens
from agent.llm.refusals import Record, between, headers_say, used_up
from agent.llm.retry import RetryPolicy, status_and_headers

T = TypeVar("T")
log = logging.getLogger(__name__)

WINDOW = 1.0  # seconds over which the accepted rate is measured at first
MAX_WINDOW = 120.0  # the longest window learned: a per-minute limit, found a little late
DECREASE = 0.5  # a 429 leaves this share of the requests in flight
PACE = 0.95  # pace at this share of the rate the server accepted
PLATEAU = 2.0  # windows for the pace to climb back near the refused rate
PROBE = 4.0  # most seconds between requests while a used-up longer window frees
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

    __slots__ = ("cost", "headers", "load", "start", "throttle", "within")

    def __init__(self, throttle: Throttle, cost: int) -> None:
        self.throttle = throttle
        self.cost = cost
        self.start = 0.0
        self.load = 0  # requests let through in the window before it (as far as known)
        self.within = False  # at a load the server had let a request through at
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
        self.ceiling: float | None = None  # requests/s the server accepted at the last cut
        self.window = WINDOW  # seconds over which the server's limit counts, as learned
        self.cuts = 0  # congestion events: 429s that cut the limit
        self.rejected = 0  # every 429
        self.sporadic = 0  # 429s judged random refusals: retried, not slowed for
        self._presumed = False  # cuts were made on no evidence but a 429 (undone if disproved)
        self._cut_at = -math.inf
        self._cut_start = -math.inf  # when the request whose 429 cut last started
        self.round_trip = 0.0  # smoothed seconds from start to success
        self._recover_to = 0.0  # the limit before the cuts: one back per success up to it
        self._stalled_since: float | None = None  # start of the first cut's request since a success
        self._run_start: float | None = None  # the first start since the last stall ended
        self._hold_until = -math.inf
        self._long_reset_said = False  # a reset past MAX_HOLD is said once per run
        self._next_start = -math.inf  # the paced start of the next attempt
        # Starts and 429s: a 429 looks back one window, a stall's end up to MAX_WINDOW.
        self.record = Record(horizon=2 * MAX_WINDOW)
        self._gate = asyncio.Lock()
        self._warned_tpm = False  # said once that --tpm is below one request
        self._freed: asyncio.Future[None] | None = None

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
        # CUBIC's curve, in units of the window: a longer window takes longer to probe.
        plateau = PLATEAU * self.window
        return self.ceiling * (1 + (1 - PACE) * ((now - self._cut_at - plateau) / plateau) ** 3)

    def _wait(self, now: float, cost: int) -> float:
        """Seconds until an attempt of ``cost`` may start, by every gate but the in-flight one."""
        wait = self._hold_until - now
        rate = self.rate(now)
        if rate is not None and self.window > WINDOW:
            # A longer window lets its quota through at any pace, a burst as it frees: as
            # many requests in any window as it let through, not one every 1 / rate seconds.
            quota = max(1, int(rate * self.window))
            if between(self.record.starts, now - self.window, now) >= quota:
                wait = max(wait, self.record.starts[-quota] + self.window - now)
        elif rate is not None:
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
            if self._run_start is None:
                self._run_start = now
            attempt.load, attempt.within = self.record.start(now, self.window)

    def _exit(self, attempt: Attempt, status: int | None, headers: Mapping[str, str]) -> None:
        self.in_flight -= 1
        if self._freed is not None and not self._freed.done():
            self._freed.set_result(None)
        if status is not None:
            refused = status == 429
            self.record.finish(attempt.start, attempt.load, attempt.within, refused, self.clock())
        if headers:
            self._read_headers(attempt, headers)
        if status == 429:
            self._on_429(attempt, headers)
        elif status is not None and status < 400:
            if self._stalled_since is not None and attempt.start > self._stalled_since:
                self._end_stall(attempt.start)
            took = self.clock() - attempt.start
            self.round_trip += (took - self.round_trip) / 8 if self.round_trip else took
            if self.limit >= self.max_in_flight:
                return
            step = 1.0 if self.limit < self._recover_to else 1 / self.limit
            self.limit = min(float(self.max_in_flight), self.limit + step)

    def _on_429(self, attempt: Attempt, headers: Mapping[str, str]) -> None:
        self.rejected += 1
        now = self.clock()
        if attempt.start <= self._cut_at or now < self._cut_at + self.round_trip:
            # Sent before the cut, or within a round trip of it: the same congestion (a full
            # window at the server takes a while to drain). It only refines the measured rate.
            if self.ceiling is not None and attempt.start <= self._cut_start:
                self.ceiling = self._accepted_rate(self._cut_start) or self.ceiling
            return
        if not self._is_limit(attempt, headers):
            self.sporadic += 1
            return
        self.cuts += 1
        in_flight = self.in_flight + 1  # this attempt was in flight until just now
        if self._stalled_since is None:
            # The first cut since a success: fast recovery aims back at the limit before it.
            self._stalled_since = attempt.start
            self._recover_to = self.limit
        self.limit = max(1.0, DECREASE * min(self.limit, in_flight))
        self._cut_at, self._cut_start = now, attempt.start
        # What the server let through of what was sent in the window up to this request; the
        # 429s of requests sent before it that come later revise it.
        rate = self._accepted_rate(attempt.start) or self.ceiling
        if rate is not None and self.ceiling is not None and self._stalled(attempt.start):
            # Nothing let through for longer than the window: a longer one is used up. Each
            # refused probe halves the pace, so waiting for it to free costs few attempts.
            rate = max(1 / PROBE, min(rate, DECREASE * self.ceiling))
        self.ceiling = rate
        log.debug(
            "429: at most %d in flight now; the server accepted %s requests/s",
            int(self.limit),
            "?" if self.ceiling is None else f"{self.ceiling:g}",
        )

    def _is_limit(self, attempt: Attempt, headers: Mapping[str, str]) -> bool:
        """Whether this 429 shows a limit to slow down for, or a random refusal."""
        said = headers_say(headers, attempt.cost)
        if said is not None:
            return said
        shown = self.record.limit_shown(attempt.start)
        if shown is None:
            self._presumed = True  # no evidence either way: presumed a limit, as the safe side
            return True
        if not shown and self._presumed:
            # The cuts presumed for a limit only slowed the run: undo them.
            self._presumed = False
            self.limit, self.ceiling = float(self.max_in_flight), None
            log.info(
                "429s come at loads the server handled: %.0f%% of requests, retried, "
                "not slowed for",
                100 * (self.record.background or 0.0),
            )
        return shown

    def _stalled(self, until: float) -> bool:
        """Whether the server let nothing through from the first cut since a success to
        ``until``: for longer than the window, with more 429s in a row than chance gives."""
        if self._stalled_since is None or until - self._stalled_since <= self.window:
            return False
        if self._hold_until > self._stalled_since:
            return True  # the server's headers said its limit was used up
        return self.record.in_a_row(
            between(self.record.refused, self._stalled_since, until, closed=True)
        )

    def _end_stall(self, start: float) -> None:
        """A success after a stall: the server's window is longer than it was taken to be;
        measure it, and the rate it let through over it."""
        stalled = self._stalled(start)
        self._stalled_since = None
        if not stalled or self._run_start is None:
            return
        # It freed between the last refused request and this one: when its reset header said
        # (this one waited for it), else half way. A sliding window frees its first request a
        # window after it was let through: the window is about the time since the server
        # last had room, and its limit what it let through since.
        refused = self.record.refused
        last = refused[max(0, bisect_left(refused, start) - 1)]
        end = start if self._hold_until >= last else (last + start) / 2
        window = min(MAX_WINDOW, end - self._run_start)
        self._run_start = start
        rate = self._accepted_rate(end, end - window)
        if window <= self.window or rate is None:
            return
        log.info("the server's limit counts over about %.0f s: %.3g requests/s", window, rate)
        self.window, self.ceiling, self._cut_at = window, rate, self.clock()

    def _accepted_rate(self, end: float, since: float | None = None) -> float | None:
        """Requests/s started in the window up to ``end`` (or from ``since`` on) and not
        refused (None: too few)."""
        closed = since is not None  # from a start on, it included; else as the window slides
        since = end - self.window if since is None else since
        started = between(self.record.starts, since, end, closed=closed)
        if started < MIN_SAMPLES:
            return None
        refused = between(self.record.refused, since, end, closed=closed)
        return max(1, started - refused) / (end - since)

    def _read_headers(self, attempt: Attempt, headers: Mapping[str, str]) -> None:
        """Hold new attempts until the reset when the server says nothing is left."""
        for kind, exhausted in used_up(headers, attempt.cost).items():
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
