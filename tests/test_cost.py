"""What a run costs: the price table, the summary's cost, the dry-run estimate and --max-cost."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.config import resolve_settings
from agent.errors import ConfigError
from agent.llm.cost import (
    DEFAULT_PRICES,
    Budget,
    OverBudget,
    Price,
    price_for,
    usd,
    usd_exact,
)
from agent.models import Usage
from agent.pipeline import RunStats
from tests.llm import API_KEY, BASE_URL, answer, completion

OPENAI = "https://api.openai.com/v1"
GPT_4O_MINI = DEFAULT_PRICES["gpt-4o-mini"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def papers_file(fixtures, tmp_path):
    """Five real arXiv papers as JSONL."""
    path = tmp_path / "papers.jsonl"
    path.write_text((fixtures / "papers.jsonl").read_text())
    return path


# --- the price table ------------------------------------------------------------------------


def test_a_dated_snapshot_is_priced_as_its_base_model():
    assert price_for("gpt-4o-mini") == GPT_4O_MINI
    assert price_for("gpt-4o-mini-2024-07-18") == GPT_4O_MINI
    assert price_for("gpt-4.1-nano-2025-04-14") == DEFAULT_PRICES["gpt-4.1-nano"]
    assert price_for("gpt-4o") != price_for("gpt-4o-mini")  # not a prefix match


def test_an_unknown_model_has_no_price():
    assert price_for("llama3.1:8b") is None
    assert price_for("gpt-4o-mini-preview") is None  # only a date is a snapshot suffix


def test_the_config_table_overrides_and_adds_models():
    tables = {
        "gpt-4o-mini": {"input": 1.0, "output": 2.0, "cached_input": 0.5, "batch_discount": 0.4},
        "my-model": {"input": 3.0, "output": 4.0},
    }
    assert price_for("gpt-4o-mini-2024-07-18", tables) == Price(1.0, 0.5, 2.0, 0.4)
    # cached input defaults to the input price, the batch discount to OpenAI's 50%
    assert price_for("my-model", tables) == Price(3.0, 3.0, 4.0, 0.5)


def test_another_server_is_priced_only_by_the_config_table():
    local = "http://localhost:8000/v1"
    assert price_for("gpt-4o-mini", {}, local) is None  # a local model named like OpenAI's
    assert price_for("gpt-4o-mini", {}, OPENAI) == GPT_4O_MINI
    tables = {"Qwen/Qwen2.5-7B-Instruct": {"input": 0.0, "output": 0.0}}
    assert price_for("Qwen/Qwen2.5-7B-Instruct", tables, local) == Price(0.0, 0.0, 0.0)


def test_cached_tokens_are_priced_as_cached_input_and_the_batch_api_halves_it():
    price = Price(input=2.0, cached_input=0.5, output=8.0)
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=250_000)
    assert price.of(usage) == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.25 * 8.0)
    assert price.of(usage, batch=True) == pytest.approx(price.of(usage) / 2)


def test_the_budget_line_shows_four_decimals_so_amounts_a_cent_apart_differ():
    assert [usd_exact(x) for x in (0, 0.00003, 0.02, 0.0194, 0.12, 0.025, 1234.56789)] == [
        "$0.00",
        "<$0.0001",
        "$0.02",
        "$0.0194",
        "$0.12",
        "$0.025",
        "$1,234.5679",
    ]


def test_dollars_read_as_cents_or_four_decimals():
    assert [usd(x) for x in (0, 0.00001, 0.00042, 0.0123, 1234.5)] == [
        "$0.00",
        "<$0.0001",
        "$0.0004",
        "$0.01",
        "$1,234.50",
    ]


# --- the config file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[prices."m"]\ninput = -1\noutput = 1', r"prices\.m\.input: Input should be greater"),
        ('[prices."m"]\ninput = 1', r"prices\.m\.output: Field required"),
        ('[prices."m"]\ninput = 1\noutput = 1\ninptu = 2', r"prices\.m\.inptu: Extra inputs"),
        ('[prices."m"]\ninput = 1\noutput = 1\nbatch_discount = 1', r"batch_discount: Input sh"),
        ('[prices."m"]\ninput = "cheap"\noutput = 1', r"prices\.m\.input: Input should be a"),
        ("prices = 3", r"prices: Input should be a valid dictionary"),
        ("max_cost = 0", r"max_cost: Input should be greater than 0"),
    ],
)
def test_bad_prices_are_one_line_config_errors(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        resolve_settings({}, env={}, config_path=config)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "flag", [("--max-cost", "nan"), ("--max-cost", "inf"), ("--rpm", "NaN"), ("--tpm", "inf")]
)
def test_a_float_flag_refuses_nan_and_infinity(papers_file, flag):
    # NaN compares false with every bound: --max-cost nan would pass the range and mean no limit
    result = invoke("run", str(papers_file), "--dry-run", *flag)
    assert result.exit_code == 2
    line = f"Error: Invalid value for '{flag[0]}': '{flag[1]}' is not a finite number."
    assert result.output.rstrip().splitlines()[-1] == line


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("max_cost = nan", "max_cost"),
        ("max_cost = inf", "max_cost"),
        ("timeout = nan", "timeout"),
        ("rpm = inf", "rpm"),
        ('[prices."m"]\ninput = inf\noutput = 1', "prices.m.input"),
        ('[prices."m"]\ninput = 1\noutput = nan', "prices.m.output"),
    ],
)
def test_a_float_in_the_config_file_refuses_nan_and_infinity(tmp_path, papers_file, text, where):
    config = tmp_path / "c.toml"
    config.write_text(text + "\n")
    result = invoke("run", str(papers_file), "--dry-run", "--config", str(config))
    assert result.exit_code == 2
    line = f"paper-agent: error: config file {config}: {where}: Input should be a finite number"
    assert result.stderr.strip() == line


def test_prices_and_max_cost_come_from_the_config_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('max_cost = 2.5\n[prices."my-model"]\ninput = 1.5\noutput = 6\n')
    settings = resolve_settings({}, env={}, config_path=config)
    assert settings.max_cost == 2.5
    assert settings.prices == {"my-model": {"input": 1.5, "output": 6.0, "batch_discount": 0.5}}
    flagged = resolve_settings({"max_cost": 0.1}, env={}, config_path=config)
    assert flagged.max_cost == 0.1  # the flag wins


def test_max_cost_without_a_price_is_an_error_before_anything_is_sent(papers_file, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with respx.mock(assert_all_called=False) as router:
        route = router.post(f"{BASE_URL}/chat/completions").mock(return_value=answer(["LLMs"]))
        args = ["run", str(papers_file), "--base-url", BASE_URL, "--max-cost", "1"]
        result = invoke(*args, "-o", "out.jsonl")
        dry = invoke(*args, "--dry-run")
    assert route.call_count == 0
    for done in (result, dry):
        assert done.exit_code == 2
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "--max-cost needs a price: no price for model gpt-4o-mini at " in done.stderr
        assert '[prices."gpt-4o-mini"]' in done.stderr
    assert not (papers_file.parent / "out.jsonl").exists()


# --- the summary ----------------------------------------------------------------------------


def test_the_summary_prices_the_real_usage():
    stats = RunStats(priced=True, price=Price(input=2.0, cached_input=0.5, output=8.0))
    stats.usage = Usage(prompt_tokens=10_000, cached_tokens=4_000, completion_tokens=1_000)
    assert "; cost $0.02; " in stats.summary()  # 6000 x 2 + 4000 x 0.5 + 1000 x 8 per 1M
    stats.price = None
    assert "; cost unknown; " in stats.summary()
    assert "cost" not in RunStats().summary()  # the offline backend: nothing to price


def test_the_run_summary_shows_the_cost_of_the_tokens_used(papers_file, monkeypatch, sleeps):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    body = completion(
        {"tags": ["LLMs"], "summary": "It works."},
        prompt_tokens=2_000,
        cached_tokens=1_024,
        completion_tokens=50,
    )
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{OPENAI}/chat/completions").respond(200, json=body)
        result = invoke("run", str(papers_file), "-o", "out.jsonl")
    assert result.exit_code == 0, result.stderr
    one = (976 * 0.15 + 1_024 * 0.075 + 50 * 0.60) / 1_000_000
    assert f"cost {usd(5 * one)};" in result.stderr
    assert "5 ok, 0 failed; 5 requests" in result.stderr and "1024" not in usd(5 * one)


def test_a_local_server_without_a_price_says_cost_unknown(papers_file, monkeypatch, sleeps):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        router.post("/chat/completions").mock(return_value=answer(["LLMs"]))
        result = invoke("run", str(papers_file), "-o", "out.jsonl", "--base-url", BASE_URL)
    assert result.exit_code == 0, result.stderr
    assert "; cost unknown; " in result.stderr


# --- the dry run ----------------------------------------------------------------------------


def test_the_dry_run_estimates_the_cost_with_and_without_the_batch_api(papers_file, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    result = invoke("run", str(papers_file), "--dry-run", "--model", "gpt-4.1-2025-04-14")
    assert result.exit_code == 0, result.stderr
    *_, tokens, estimate = result.stdout.strip().splitlines()
    prompt, answer_tokens = map(int, re.search(r"about (\d+) prompt and (\d+) c", tokens).groups())
    price = DEFAULT_PRICES["gpt-4.1"]
    online = (prompt * price.input + answer_tokens * price.output) / 1_000_000
    assert estimate == (
        f"Estimated cost: {usd(online)}, or {usd(online / 2)} with the Batch API "
        "(gpt-4.1-2025-04-14: $2.00 input, $8.00 output per 1M tokens)."
    )


def test_the_dry_run_says_whether_max_cost_covers_the_estimate(papers_file, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    over = invoke("run", str(papers_file), "--dry-run", "--max-cost", "0.0001")
    assert over.stdout.rstrip().endswith("--max-cost $0.0001: over it, the run would stop early.")
    within = invoke("run", str(papers_file), "--dry-run", "--max-cost", "5")
    assert within.stdout.rstrip().endswith("--max-cost $5.00: within it.")


def test_the_dry_run_of_an_unpriced_model_says_cost_unknown(papers_file, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    result = invoke("run", str(papers_file), "--dry-run", "--model", "llama3.1")
    assert result.exit_code == 0
    assert result.stdout.rstrip().endswith(
        'Estimated cost: unknown (no price for model llama3.1: give one in a [prices."llama3.1"] '
        "table of the config file)."
    )


# --- the budget -----------------------------------------------------------------------------

# Input is free and output costs $1000 per 1M tokens, so a request's estimate is its max_tokens
# (100) x $0.001 = $0.10 and each real answer (30 completion tokens) costs $0.03.
PRICED = '[prices."gpt-4o-mini"]\ninput = 0\noutput = 1000\n'
ESTIMATE, ANSWER = 0.10, 0.03


@pytest.fixture
def priced_llm(tmp_path, monkeypatch, sleeps):
    """The LLM at BASE_URL with a price in ./paper-agent.toml and answers capped at 100 tokens."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)
    (tmp_path / "paper-agent.toml").write_text("max_tokens = 100\n" + PRICED)
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


def test_max_cost_stops_launching_keeps_finished_and_skips_the_rest(priced_llm, papers_file):
    route = priced_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    result = invoke(
        "run", str(papers_file), "-o", "out.jsonl", "--concurrency", "1", "--max-cost", "0.2"
    )
    # spent + the next estimate: 0.10, 0.13, 0.16, 0.19 go; 0.12 + 0.10 = 0.22 would pass 0.20
    assert route.call_count == 4
    assert all(json.loads(c.request.content)["max_tokens"] == 100 for c in route.calls)
    assert result.exit_code == 1
    out = rows(papers_file.parent / "out.jsonl")
    assert [r["error"] is None for r in out] == [True] * 4 + [False]
    assert out[4]["error"]["type"] == "skipped"
    line = "the next request would pass --max-cost $0.20: spent $0.12 + up to $0.10 for it"
    assert out[4]["error"]["message"] == f"not run: {line}"
    assert f"paper-agent: stopped early: {line}; 1 paper(s) marked skipped" in result.stderr
    assert result.stderr.count("--max-cost") == 1  # one line says it
    assert "; cost $0.12; " in result.stderr and "Traceback" not in result.stderr


def test_a_server_reporting_negative_usage_is_charged_its_estimate(priced_llm, papers_file):
    lying = answer(["LLMs"])
    body = json.loads(lying.content)
    body["usage"] = {"prompt_tokens": -100_000_000, "completion_tokens": -5}
    route = priced_llm.post("/chat/completions").mock(return_value=httpx.Response(200, json=body))
    args = ("run", str(papers_file), "-o", "out.jsonl", "--concurrency", "1", "--max-cost", "0.2")
    result = invoke(*args)
    # No usable figure: each request costs its worst case, 0.10; the third would pass 0.20.
    assert route.call_count == 2
    assert result.exit_code == 1 and "--max-cost" in result.stderr


def test_requests_in_flight_wait_for_room_and_spend_what_one_at_a_time_would(
    priced_llm, papers_file
):
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # still in flight when the next paper would launch
        return answer(["LLMs"])

    route = priced_llm.post("/chat/completions").mock(side_effect=slow)
    args = ("run", str(papers_file), "-o", "out.jsonl", "--concurrency", "4", "--max-cost", "0.2")
    result = invoke(*args)
    # The first request goes alone (0.10 reserved, 0.03 spent). Then 0.03 + 0.10 in flight +
    # the next 0.10 would pass 0.20: that one waits for the one in flight to land (0.06 spent)
    # and goes; so does the fourth (0.09 spent); the fifth: 0.12 + 0.10 passes 0.20 whatever
    # lands. Four requests, as at --concurrency 1: the worst cases in flight stop nothing.
    assert route.call_count == 4
    assert result.exit_code == 1
    out = rows(papers_file.parent / "out.jsonl")
    kinds = [r["error"]["type"] if r["error"] else "ok" for r in out]
    assert kinds[0] == "ok" and sorted(kinds) == ["ok"] * 4 + ["skipped"]
    assert sum(r["usage"]["requests"] for r in out) == 4
    line = "the next request would pass --max-cost $0.20: spent $0.12 + up to $0.10 for it"
    assert f"stopped early: {line}" in result.stderr
    assert "; cost $0.12; " in result.stderr


def test_what_is_in_flight_when_the_budget_stops_finishes(priced_llm, papers_file):
    calls = 0

    async def answers(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        call = calls
        if call == 2:  # slow: still in flight when the budget stops the run
            await asyncio.sleep(0.2)
        tokens = 180 if call == 3 else 30  # the third costs $0.18
        body = completion({"tags": ["LLMs"], "summary": "A summary."}, completion_tokens=tokens)
        return httpx.Response(200, json=body)

    route = priced_llm.post("/chat/completions").mock(side_effect=answers)
    args = ("run", str(papers_file), "-o", "out.jsonl", "--concurrency", "2", "--max-cost", "0.3")
    result = invoke(*args)
    # 0.03 spent by the first; the second and third go (0.03 + 0.20 in flight); the third
    # lands at 0.18: 0.21 + the next 0.10 passes 0.30 while the second is still in flight.
    assert route.call_count == 3
    line = "the next request would pass --max-cost $0.30: spent $0.21 + up to $0.10 for it"
    assert f"stopped early: {line}" in result.stderr
    out = rows(papers_file.parent / "out.jsonl")
    assert (
        sorted(r["error"]["type"] if r["error"] else "ok" for r in out)
        == ["ok"] * 3 + ["skipped"] * 2
    )
    assert "; cost $0.24; " in result.stderr  # the second landed after the stop, and counts
    assert result.exit_code == 1


def test_a_repair_is_a_request_the_budget_checks_too(priced_llm, papers_file):
    route = priced_llm.post("/chat/completions").mock(return_value=answer(["Not A Tag"]))
    args = ("run", str(papers_file), "-o", "out.jsonl", "--concurrency", "1", "--max-cost", "0.12")
    result = invoke(*args)
    assert route.call_count == 1  # the answer cost 0.03: its repair (0.10 more) would pass 0.12
    out = rows(papers_file.parent / "out.jsonl")
    assert {r["error"]["type"] for r in out} == {"skipped"}
    assert out[0]["usage"]["requests"] == 1  # what the first paper did cost is kept
    assert result.exit_code == 1


def test_a_retry_after_an_error_status_spends_nothing(priced_llm, papers_file):
    from tests.llm import error

    route = priced_llm.post("/chat/completions").mock(
        side_effect=[error(429, "slow down"), answer(["LLMs"]), answer(["LLMs"])]
    )
    args = ("run", str(papers_file), "-o", "out.jsonl", "--concurrency", "1", "--max-cost", "0.15")
    result = invoke(*args, "--limit", "2")
    # The 429 is not billed: the retry fits (0 + 0.10), the next paper too (0.03 + 0.10).
    assert route.call_count == 3
    assert result.exit_code == 0, result.stderr


# Input free, output $1000 per 1M tokens: max_tokens 100 is a $0.10 estimate.
BODY = {"messages": [], "max_tokens": 100}


def priced_budget(limit: float) -> Budget:
    return Budget(limit, Price(input=0.0, cached_input=0.0, output=1000.0))


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_budget_counts_in_flight_estimates_and_unknown_costs():
    budget = priced_budget(0.25)
    first = await budget.launch(BODY, answer_tokens=999)
    second = await budget.launch(BODY, answer_tokens=999)
    assert (first, second, budget.in_flight) == (pytest.approx(0.1),) * 2 + (pytest.approx(0.2),)
    await budget.land(first, 0.0)  # an error status: not billed
    await budget.land(second, None)  # a timeout: it may have been billed, so its estimate counts
    assert (budget.spent, budget.in_flight) == (pytest.approx(0.1), 0.0)


async def test_a_request_kept_out_only_by_estimates_in_flight_waits_for_them_to_land():
    budget = priced_budget(0.25)
    first = await budget.launch(BODY, answer_tokens=999)
    second = await budget.launch(BODY, answer_tokens=999)
    third = asyncio.create_task(budget.launch(BODY, answer_tokens=999))
    await settle()
    # 0 spent + 0.20 in flight + 0.10 would pass 0.25, but 0 + 0.10 does not: it waits
    assert not third.done() and budget.refused is None
    await budget.land(first, 0.03)  # the real cost replaces the worst case
    assert await asyncio.wait_for(third, 1) == pytest.approx(0.1)
    assert budget.in_flight == pytest.approx(0.2)
    await budget.land(second, 0.03)
    await budget.land(await third, 0.03)
    assert (budget.spent, budget.in_flight) == (pytest.approx(0.09), 0.0)


async def test_the_refusal_is_final_when_spent_plus_the_estimate_passes_the_limit():
    budget = priced_budget(0.25)
    first = await budget.launch(BODY, answer_tokens=999)
    second = await budget.launch(BODY, answer_tokens=999)
    waiting = asyncio.create_task(budget.launch(BODY, answer_tokens=999))
    await settle()
    await budget.land(first, 0.1834)  # 0.1834 + 0.10 > 0.25: no landing can make room
    line = "the next request would pass --max-cost $0.25: spent $0.1834 + up to $0.10 for it"
    with pytest.raises(OverBudget) as refused:
        await asyncio.wait_for(waiting, 1)  # the waiter is told at once, not left asleep
    assert str(refused.value) == line
    with pytest.raises(OverBudget, match=re.escape(line)):  # and so is every later request
        await budget.launch({"messages": [], "max_tokens": 1}, answer_tokens=1)
    await budget.land(second, 0.03)  # what was in flight lands as usual
    assert (budget.spent, budget.in_flight) == (pytest.approx(0.2134), 0.0)


async def test_a_cancelled_waiter_reserves_nothing():
    budget = priced_budget(0.15)
    first = await budget.launch(BODY, answer_tokens=999)
    waiting = asyncio.create_task(budget.launch(BODY, answer_tokens=999))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await budget.land(first, 0.03)
    assert budget.in_flight == 0.0
    assert await budget.launch(BODY, answer_tokens=999) == pytest.approx(0.1)
    assert budget.in_flight == pytest.approx(0.1)


async def test_a_landing_cancelled_midway_still_wakes_the_waiters():
    budget = priced_budget(0.15)
    first = await budget.launch(BODY, answer_tokens=999)
    waiting = asyncio.create_task(budget.launch(BODY, answer_tokens=999))
    await settle()
    async with budget._landed:  # the lock is busy, so the landing has to wait for it...
        landing = asyncio.create_task(budget.land(first, 0.03))
        await settle()
        landing.cancel()  # ...and its task is cancelled there
        await settle()
    with pytest.raises(asyncio.CancelledError):
        await landing
    assert await asyncio.wait_for(waiting, 1) == pytest.approx(0.1)
    assert (budget.spent, budget.in_flight) == (pytest.approx(0.03), pytest.approx(0.1))


def test_the_batch_export_commits_estimates_for_good():
    budget = priced_budget(0.25)
    assert budget.commit(BODY, answer_tokens=999) == pytest.approx(0.05)  # Batch API: half
    budget.commit(BODY, answer_tokens=999)
    budget.commit({**BODY, "max_tokens": 200}, answer_tokens=999)
    assert budget.in_flight == 0.0 and budget.spent == pytest.approx(0.2)
    with pytest.raises(OverBudget, match=r"spent \$0.20 \+ up to \$0.10 for it"):
        budget.commit({**BODY, "max_tokens": 200}, answer_tokens=999)


def test_a_request_without_a_token_limit_is_estimated_at_the_answer_size():
    from agent.llm.cost import request_estimate

    body = {"messages": [{"role": "user", "content": "x" * 400}], "response_format": {"a": 1}}
    assert request_estimate(body, answer_tokens=321) == ((400 + len('{"a": 1}')) // 4, 321)
    assert request_estimate({**body, "max_completion_tokens": 50}, 321)[1] == 50


def test_the_dry_run_says_when_tpm_is_below_one_request(papers_file, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    small = invoke("run", str(papers_file), "--dry-run", "--tpm", "100")
    assert small.exit_code == 0, small.stderr
    last = small.stdout.rstrip().splitlines()[-1]
    assert re.fullmatch(
        r"--tpm 100 is less than one request \(~[\d,]+ tokens\): each request waits about \d+ min",
        last,
    )
    roomy = invoke("run", str(papers_file), "--dry-run", "--tpm", "100000")
    assert "--tpm" not in roomy.stdout
