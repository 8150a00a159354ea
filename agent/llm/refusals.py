"""What a server's 429s say: its limit is full, or it is busy and refuses some at random.

A limit (requests per second, per minute) refuses only when its window is full; a busy
provider refuses a share of requests whatever the load. ``Record`` keeps every attempt's start
and every 429's, and tells them apart for ``agent.llm.limits.Throttle``:

- A request's load is how many requests the server let through in the window before it. A
  limit that let one request through at some load refuses none at that load or below, so a
  429 there is no limit's (but for timing noise, ``LIMIT_SHARE``).
- More such 429s than that noise explains (at ``EVIDENCE``) are random refusals: their share
  is the background. A 429 is then a limit's only when more 429s come together than the
  background gives (at ``ALPHA``, as it is asked at every 429): in the last second, against
  the requests at handled loads, or since the last success (a window of a minute, used up).
- Until that evidence exists there is no background, and the throttle presumes a limit.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Mapping

SECOND = 1.0  # the window the last-second test looks at
HISTORY = 30.0  # seconds of attempts that say whether 429s are a limit's
MIN_EVIDENCE = 5  # 429s at handled loads (or in a stall) before they say anything
LIMIT_SHARE = 0.02  # a limit refuses at most this share at a load it handled (timing noise)
EVIDENCE = 0.01  # as many 429s at handled loads, from a limit, are this rare: random ones
ALPHA = 1e-4  # more 429s than random ones give this rarely (asked at every 429): a limit


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    # The terms from k up, each from the one before: no factorials of big n.
    term = math.exp(
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
    )  # fmt: skip
    total = 0.0
    for i in range(k, n + 1):
        total += term
        term *= (n - i) / (i + 1) * p / (1 - p)
    return min(1.0, total)


def fewest_chance(k: int, n: int, marked: int, total: int) -> float:
    """Fisher's exact test, one-sided: the chance that ``n`` drawn of ``total`` hold at most
    ``k`` of the ``marked`` ones (how rarely so few fall in that group by chance)."""
    log_all = _log_choose(total, n)
    return min(
        1.0,
        sum(
            math.exp(_log_choose(marked, x) + _log_choose(total - marked, n - x) - log_all)
            for x in range(max(0, n - (total - marked)), k + 1)
        ),
    )


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def used_up(headers: Mapping[str, str], cost: int) -> dict[str, bool]:
    """Per limit that ``x-ratelimit-remaining-*`` reports (requests, tokens), whether fewer
    are left than a request needs (one request; ``cost`` tokens, at least one)."""
    said = {}
    for kind, need in (("requests", 1), ("tokens", max(1, cost))):
        left = headers.get(f"x-ratelimit-remaining-{kind}")
        if left is None:
            continue
        try:
            said[kind] = float(left) < need
        except ValueError:
            continue
    return said


def headers_say(headers: Mapping[str, str], cost: int) -> bool | None:
    """What a 429's rate-limit headers say: True, a limit used up; False, room left on every
    limit they report (the server is busy, the limit is not ours); None, nothing."""
    said = used_up(headers, cost)
    return any(said.values()) if said else None


def between(times: list[float], since: float, until: float, *, closed: bool = False) -> int:
    """How many of the sorted ``times`` fall in (since, until], or [since, until] if closed."""
    first = bisect_left(times, since) if closed else bisect_right(times, since)
    return bisect_right(times, until) - first


class Record:
    """Attempt starts and 429s of the last ``horizon`` seconds, and what the 429s say."""

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self.starts: list[float] = []  # every attempt's start, in order
        self.refused: list[float] = []  # the starts of the 429s among them, in order
        self.background: float | None = None  # the share refused at random, once shown
        self.last_success = -math.inf  # the latest start of a request let through
        # Finished attempts of the last HISTORY seconds, (start, within, refused), and how
        # many of them came at a load the server had handled, and were refused.
        self._outcomes: deque[tuple[float, bool, bool]] = deque()
        self._within = [0, 0]
        # (when, load) of successes of the last HISTORY seconds, loads falling: the first is
        # the highest load the server let a request through at.
        self._handled: deque[tuple[float, int]] = deque()

    def start(self, now: float, window: float) -> tuple[int, bool]:
        """Note an attempt starting now: its load over ``window``, and whether the server let
        a request through at that load or a higher one (then a limit would not refuse it)."""
        self.starts.append(now)
        del self.starts[: bisect_right(self.starts, now - self.horizon)]
        load = between(self.starts, now - window, now) - 1
        load -= between(self.refused, now - window, now)
        while self._handled and self._handled[0][0] <= now - HISTORY:
            self._handled.popleft()
        return load, bool(self._handled) and load <= self._handled[0][1]

    def finish(self, start: float, load: int, within: bool, refused: bool, now: float) -> None:
        """Note how an attempt that started at ``start`` ended."""
        if refused:
            insort(self.refused, start)
            del self.refused[: bisect_right(self.refused, now - self.horizon)]
        else:
            self.last_success = max(self.last_success, start)
            while self._handled and self._handled[-1][1] <= load:
                self._handled.pop()
            self._handled.append((now, load))
        self._outcomes.append((start, within, refused))
        if within:
            self._within[0] += 1
            self._within[1] += refused
        while self._outcomes and self._outcomes[0][0] <= now - HISTORY:
            _, was_within, was_refused = self._outcomes.popleft()
            if was_within:
                self._within[0] -= 1
                self._within[1] -= was_refused

    def limit_shown(self, start: float) -> bool | None:
        """Whether the 429 of the request that started at ``start`` is a limit's: None when
        there is no evidence of random refusals, else whether more 429s came together than
        they give. Updates ``background``."""
        self.background = self._background()
        if self.background is None:
            return None
        started = between(self.starts, start - SECOND, start)
        refused = between(self.refused, start - SECOND, start)
        handled, handled_refused = self._within
        # As many 429s in the last second as this (or more), if it were one more draw from
        # the requests at handled loads, would be rare.
        fewer = fewest_chance(refused - 1, started, refused + handled_refused, started + handled)
        # So would as many since the last success (a window of a minute, used up).
        since = between(self.starts, self.last_success, start)
        refused_since = between(self.refused, self.last_success, start)
        return 1 - fewer < ALPHA or binomial_tail(refused_since, since, self.background) < ALPHA

    def in_a_row(self, count: int) -> bool:
        """Whether ``count`` 429s in a row are more than random refusals would give."""
        return count >= MIN_EVIDENCE and (self.background or 0.0) ** count < ALPHA

    def _background(self) -> float | None:
        """The share of 429s among recent requests sent at a load the server had handled,
        when more of them were refused than a limit would (None: no such evidence)."""
        within, refused = self._within
        if refused < MIN_EVIDENCE or 2 * refused >= within:
            return None
        if binomial_tail(refused, within, LIMIT_SHARE) >= EVIDENCE:
            return None
        return refused / within
