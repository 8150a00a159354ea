"""What a run costs: list prices per model, the cost of real usage, and the --max-cost budget.

Prices are USD per 1M tokens. A model's dated snapshot ("gpt-4o-mini-2024-07-18") is priced as
its base model. The built-in prices are OpenAI's list prices and apply only to OpenAI's own
endpoint: any other server (a local vLLM, a proxy) is priced only by a ``[prices."MODEL"]``
table in the config file, so a local model that happens to be called "gpt-4o-mini" is never
billed at OpenAI's rates. Without a price the cost is unknown, never a guess.
"""

from __future__ import annotations

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

    model_config = ConfigDict(extra="forbid")

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
    return chars // 4, int(limit)


class OverBudget(Exception):
    """The next request would pass --max-cost: the run launches no more requests."""


class Budget:
    """The run's --max-cost, shared by every request of the run.

    A request is launched only if what was spent (real usage), plus the estimates of the
    requests in flight, plus its own estimate stay within the limit. Once one is refused,
    every later one is too: the run stops launching, and what is in flight finishes.
    """

    def __init__(self, limit: float, price: Price) -> None:
        self.limit = limit
        self.price = price
        self.spent = 0.0
        self.in_flight = 0.0
        self.refused: str | None = None

    def launch(self, body: Mapping[str, Any], answer_tokens: int, batch: bool = False) -> float:
        """Reserve the request's estimate and return it, or raise ``OverBudget``; ``batch``:
        it goes through the Batch API, at its price."""
        prompt, completion = request_estimate(body, answer_tokens)
        estimate = self.price.cost(prompt, completion, batch=batch)
        if self.refused is None and self.spent + self.in_flight + estimate > self.limit:
            self.refused = (
                f"the next request would pass --max-cost {usd(self.limit)} "
                f"(spent {usd(self.spent)})"
            )
        if self.refused is not None:
            raise OverBudget(self.refused)
        self.in_flight += estimate
        return estimate

    def land(self, estimate: float, spent: float | None) -> None:
        """A request is over: free its estimate and count what it cost (None: unknown, so
        its estimate)."""
        self.in_flight = max(0.0, self.in_flight - estimate)
        self.spent += estimate if spent is None else spent


def make_budget(settings: Settings) -> Budget | None:
    """The run's budget (None without --max-cost); --max-cost without a price is a config
    error, raised before anything is sent."""
    if settings.max_cost is None:
        return None
    price = settings_price(settings)
    if price is None:
        raise ConfigError(f"--max-cost needs a price: {unknown_price(settings)}")
    return Budget(settings.max_cost, price)
