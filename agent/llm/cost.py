"""What a run costs: list prices per model, the cost of real usage, and the --max-cost budget.

Prices are USD per 1M tokens. A model's dated snapshot ("gpt-4o-mini-2024-07-18") is priced as
its base model. The built-in prices are OpenAI's list prices and apply only to OpenAI's own
endpoint: any other server (a local vLLM, a proxy) is priced only by a ``[prices."MODEL"]``
table in the config file, so a local model that happens to be called "gpt-4o-mini" is never
billed at OpenAI's rates. Without a price the cost is unknown, never a guess.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.models import Usage

MILLION = 1_000_000
BATCH_DISCOUNT = 0.5  # OpenAI's Batch API: half the price of the same requests online
OPENAI_HOST = "api.openai.com"
SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # gpt-4o-mini-2024-07-18 -> gpt-4o-mini


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens for one model, and the share the Batch API takes off."""

    input: float
    cached_input: float
    output: float
    batch_discount: float = BATCH_DISCOUNT

    def cost(self, prompt: int, completion: int, cached: int = 0, batch: bool = False) -> float:
        """USD for these tokens; ``cached`` is the part of ``prompt`` served from the cache."""
        cached = min(cached, prompt)
        usd = (
            (prompt - cached) * self.input + cached * self.cached_input + completion * self.output
        ) / MILLION
        return usd * (1 - self.batch_discount) if batch else usd

    def of(self, usage: Usage, batch: bool = False) -> float:
        """USD for a run's (or a paper's) real usage, cached tokens at the cached input price."""
        return self.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, batch)


# OpenAI's list prices (standard tier), read on 2026-12-01 with the search tool: all nine from
# simonw/llm-prices, data/openai.json (commit 0838d1a); cross-checked, model by model, with
# OpenAI's model page developers.openai.com/api/docs/models/gpt-5-codex (GPT-5 input $1.25,
# GPT-5-Codex $1.25 / $0.125 / $10), the openai_responses package's table from
# platform.openai.com/docs/pricing of 2025-06-03 (gpt-4o, gpt-4.1, -mini, -nano), GitHub's
# docs/data/tables/copilot/models-and-pricing.yml (GPT-4.1, GPT-5 mini), oG-Memory's
# perf/rate_cards.yaml (o4-mini) and cloudprice.net's OpenAI rows for gpt-5-nano (its batch
# prices are half of each: the Batch API's 50% discount).
# Prices change: a [prices."MODEL"] table in the config file overrides any of them.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input=0.15, cached_input=0.075, output=0.60),
    "gpt-4o": Price(input=2.50, cached_input=1.25, output=10.00),
    "gpt-4.1": Price(input=2.00, cached_input=0.50, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, cached_input=0.10, output=1.60),
    "gpt-4.1-nano": Price(input=0.10, cached_input=0.025, output=0.40),
    "o4-mini": Price(input=1.10, cached_input=0.275, output=4.40),
    "gpt-5": Price(input=1.25, cached_input=0.125, output=10.00),
    "gpt-5-mini": Price(input=0.25, cached_input=0.025, output=2.00),
    "gpt-5-nano": Price(input=0.05, cached_input=0.005, output=0.40),
}


class PriceConfig(BaseModel):
    """One ``[prices."MODEL"]`` table of the config file (USD per 1M tokens)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # as the rest of the file

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)  # default: the input price
    batch_discount: float = Field(default=BATCH_DISCOUNT, ge=0, lt=1)


# What the config file's ``prices`` key holds (agent.config names it, lazily).
PriceTables = dict[str, PriceConfig]


def price_for(
    model: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    base_url: str | None = None,
) -> Price | None:
    """The price of ``model`` (or of its base model, for a dated snapshot), or None.

    The config's tables come first; the built-in prices count only on OpenAI's endpoint.
    """
    tables = {name: _from_config(value) for name, value in (overrides or {}).items()}
    known = {**DEFAULT_PRICES, **tables} if _is_openai(base_url) else tables
    for name in (model, SNAPSHOT.sub("", model)):
        if name in known:
            return known[name]
    return None


def settings_price(settings: Settings) -> Price | None:
    """The price of the model ``settings`` name, at their endpoint."""
    return price_for(settings.model, settings.prices, settings.base_url)


def _from_config(value: Mapping[str, Any]) -> Price:
    cached = value.get("cached_input")
    return Price(
        input=value["input"],
        cached_input=value["input"] if cached is None else cached,
        output=value["output"],
        batch_discount=value.get("batch_discount", BATCH_DISCOUNT),
    )


def _is_openai(base_url: str | None) -> bool:
    return base_url is None or urlsplit(base_url).hostname == OPENAI_HOST


def usd(amount: float) -> str:
    """Dollars as a person reads them: cents, or four decimals below a cent."""
    if amount == 0:
        return "$0.00"
    if amount < 0.0001:
        return "<$0.0001"
    if amount < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def usd_exact(amount: float) -> str:
    """Dollars to four decimals, zeros past the cents dropped ($0.02, $0.0194, $1.2345): for
    a line that compares amounts a fraction of a cent apart, as the budget's stop does."""
    if 0 < amount < 0.0001:
        return "<$0.0001"
    whole, _, fraction = f"{amount:,.4f}".partition(".")
    return f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def per_million(price: float) -> str:
    """A list price as price tables show it: $0.60, $0.075, $10.00."""
    return f"${price:.2f}" if round(price, 2) == price else f"${price:g}"


def unknown_price(settings: Settings) -> str:
    """Why a model has no price, and how to give it one."""
    where = "" if _is_openai(settings.base_url) else f" at {settings.base_url}"
    return (
        f"no price for model {settings.model}{where}: "
        f'give one in a [prices."{settings.model}"] table of the config file'
    )


CHARS_PER_TOKEN = 4  # about 4 characters a token for English: every estimate here uses it


def estimated_tokens(chars: int) -> int:
    """Tokens of ``chars`` characters of prompt text, as every estimate counts them."""
    return chars // CHARS_PER_TOKEN


def request_estimate(body: Mapping[str, Any], answer_tokens: int) -> tuple[int, int]:
    """Worst-case (prompt, completion) tokens of one request body.

    Prompt: the characters of its messages and response format over 4 (about 4 characters a
    token for English, and the schema is billed as input too). Completion: the body's token
    limit, else ``answer_tokens`` (a reasoning model sent no limit: set ``max_tokens`` to
    bound it).
    """
    chars = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
    chars += len(json.dumps(body.get("response_format") or {}))
    limit = body.get("max_tokens") or body.get("max_completion_tokens") or answer_tokens
    return estimated_tokens(chars), int(limit)


class OverBudget(Exception):
    """The next request would pass --max-cost: the run launches no more requests."""


class Budget:
    """The run's --max-cost, shared by every request of the run.

    A request is launched when what was spent (real usage), plus the worst-case estimates of
    the requests in flight, plus its own estimate stay within the limit. When only the
    estimates in flight stand in the way, it waits for them to land (their real cost, usually
    far below the worst case, replaces them) and checks again. When what was spent plus its
    own estimate passes the limit, no landing can make room (spending only grows): that
    refusal is final, for it and every later request, and what is in flight finishes.
    """

    def __init__(self, limit: float, price: Price) -> None:
        self.limit = limit
        self.price = price
        self.spent = 0.0
        self.in_flight = 0.0  # the estimates of the requests launched and not landed
        self.refused: str | None = None
        self._launched = 0  # how many: with none, nothing can free room (whatever rounding)
        self._landed = asyncio.Condition()

    def estimate(self, body: Mapping[str, Any], answer_tokens: int, batch: bool = False) -> float:
        """The worst-case USD of one request body; ``batch``: at the Batch API's price."""
        prompt, completion = request_estimate(body, answer_tokens)
        return self.price.cost(prompt, completion, batch=batch)

    async def launch(self, body: Mapping[str, Any], answer_tokens: int) -> float:
        """Reserve the request's estimate and return it, once it fits; raise ``OverBudget``
        when it never will. A waiter cancelled before its turn holds no reservation."""
        estimate = self.estimate(body, answer_tokens)
        async with self._landed:
            try:
                while not self._fits(estimate):
                    await self._landed.wait()
            except OverBudget:
                self._landed.notify_all()  # the waiters are refused too, now
                raise
            self.in_flight += estimate
            self._launched += 1
        return estimate

    async def land(self, estimate: float, spent: float | None) -> None:
        """A launched request is over: free its estimate and count what it cost (None:
        unknown, so its estimate), then let the waiters check again."""
        # The books change before the first await, so a cancel cannot leave them wrong.
        self._launched -= 1
        self.in_flight = max(0.0, self.in_flight - estimate) if self._launched else 0.0
        self.spent += estimate if spent is None else spent
        # Shielded: a cancel of this task while it waits for the lock must not lose the
        # wake-up, or a waiter could sleep with nothing left in flight to wake it.
        await asyncio.shield(self._wake())

    def commit(self, body: Mapping[str, Any], answer_tokens: int) -> float:
        """Count a request's estimate, at Batch API prices, as spent for good and return it,
        or raise ``OverBudget`` (a batch file: nothing is in flight, and the batch may spend
        it all)."""
        estimate = self.estimate(body, answer_tokens, batch=True)
        self._refuse(estimate)
        self.spent += estimate
        return estimate

    def _fits(self, estimate: float) -> bool:
        """Whether it fits now; False when requests in flight hold the room it needs."""
        self._refuse(estimate)
        return not self._launched or self.spent + self.in_flight + estimate <= self.limit

    def _refuse(self, estimate: float) -> None:
        """Raise ``OverBudget`` when this request (or an earlier one) can never fit."""
        if self.refused is None and self.spent + estimate > self.limit:
            self.refused = (
                f"the next request would pass --max-cost {usd_exact(self.limit)}: "
                f"spent {usd_exact(self.spent)} + up to {usd_exact(estimate)} for it"
            )
        if self.refused is not None:
            raise OverBudget(self.refused)

    async def _wake(self) -> None:
        async with self._landed:
            self._landed.notify_all()


def make_budget(settings: Settings) -> Budget | None:
    """The run's budget (None without --max-cost); --max-cost without a price is a config
    error, raised before anything is sent."""
    if settings.max_cost is None:
        return None
    price = settings_price(settings)
    if price is None:
        raise ConfigError(f"--max-cost needs a price: {unknown_price(settings)}")
    return Budget(settings.max_cost, price)
