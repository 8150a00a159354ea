"""The retry policy's rules, and config precedence."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from agent.config import resolve_settings
from agent.errors import ConfigError
from agent.llm import retry


def status_error(status: int, body: dict | None = None, **headers: str) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://x.test/")
    response = httpx.Response(status, json=body or {}, headers=headers, request=request)
    return httpx.HTTPStatusError("err", request=request, response=response)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status):
    assert retry.is_retryable(status_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status):
    assert not retry.is_retryable(status_error(status))


def test_insufficient_quota_is_not_retried():
    exc = status_error(429, {"error": {"code": "insufficient_quota", "message": "quota"}})
    assert not retry.is_retryable(exc)


def test_connection_errors_are_retried():
    assert retry.is_retryable(httpx.ConnectError("refused"))
    assert retry.is_retryable(httpx.ReadTimeout("slow"))
    assert not retry.is_retryable(ValueError("bug"))


def test_retry_after_forms():
    assert retry.retry_after({"retry-after": "3"}) == 3.0
    assert retry.retry_after({"retry-after-ms": "1500"}) == 1.5
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry.retry_after({"retry-after": date}, now=1_000_000) == pytest.approx(30, abs=1)
    assert retry.retry_after({"retry-after": "soon"}) is None


def test_a_backoff_header_counts_as_a_wait_the_server_asked_for():
    """Zotero's ``Backoff`` (seconds, on any answer): the longest of it and Retry-After wins."""
    assert retry.retry_after({"backoff": "7"}) == 7.0
    assert retry.retry_after({"retry-after": "3", "backoff": "10"}) == 10.0
    assert retry.retry_after({"retry-after": "30", "backoff": "10"}) == 30.0
    for bad in ("soon", "-5", "nan", "inf", ""):
        assert retry.backoff({"backoff": bad}) is None
        assert retry.retry_after({"backoff": bad}) is None
    assert retry.retry_after({}) is None


@pytest.mark.parametrize("header", ["retry-after", "retry-after-ms"])
@pytest.mark.parametrize("value", ["nan", "NaN", "-nan"])
async def test_a_retry_after_that_is_not_a_number_is_ignored_not_read_as_now(sleeps, header, value):
    assert retry.retry_after({header: value}) is None
    outcomes = [status_error(503, **{header: value}), "ok"]

    async def flaky():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = retry.RetryPolicy(base_delay=0.5)
    assert await retry.call_with_retry(flaky, policy) == "ok"
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.75  # the first backoff, not 0 s


async def test_total_wait_is_bounded(sleeps):
    calls = 0

    async def always_429():
        nonlocal calls
        calls += 1
        raise status_error(429, **{"retry-after": "20"})

    policy = retry.RetryPolicy(max_attempts=10, max_delay=30, max_total_wait=45)
    with pytest.raises(httpx.HTTPStatusError):
        await retry.call_with_retry(always_429, policy)
    assert sleeps == [20, 20]
    assert calls == 3


async def test_waiting_for_a_turn_at_the_rate_limiter_is_not_retry_time(sleeps):
    """A paper that queued behind a slow pace still gets its retries: the total-wait bound
    counts its attempts and backoffs, not the run's pace."""
    import asyncio

    outcomes = [status_error(500), "ok"]

    async def flaky():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def slow_gate(send):
        await asyncio.sleep(0.3)  # a real wait for the turn, longer than the whole budget
        return await send()

    policy = retry.RetryPolicy(base_delay=0.01, max_backoff=0.01, max_total_wait=0.2)
    assert await retry.call_with_retry(flaky, policy, gate=slow_gate) == "ok"
    assert len(sleeps) == 1


async def test_retry_after_is_capped(sleeps):
    outcomes = [status_error(503, **{"retry-after": "3600"}), "ok"]

    async def flaky():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await retry.call_with_retry(flaky, retry.RetryPolicy(max_delay=5)) == "ok"
    assert sleeps == [5]


def test_precedence_flag_over_env_over_file(tmp_path):
    config = tmp_path / "paper-agent.toml"
    config.write_text('model = "from-file"\nconcurrency = 3\nbase_url = "http://file.test/v1"\n')
    env = {"PAPER_AGENT_MODEL": "from-env", "OPENAI_API_KEY": "sk-x"}
    settings = resolve_settings({"model": None}, env=env, config_path=config)
    assert (settings.model, settings.concurrency) == ("from-env", 3)
    assert settings.base_url == "http://file.test/v1"
    settings = resolve_settings({"model": "from-flag"}, env=env, config_path=config)
    assert settings.model == "from-flag"
    assert settings.api_key == "sk-x"


def test_defaults_and_auto_backend(tmp_path):
    settings = resolve_settings({}, env={})
    assert settings.model == "gpt-4o-mini"
    assert settings.concurrency == 8
    assert settings.resolved_backend() == "local"
    assert resolve_settings({}, env={"OPENAI_API_KEY": "k"}).resolved_backend() == "openai"
    assert resolve_settings({"base_url": "http://h/v1"}, env={}).resolved_backend() == "openai"


def test_config_file_reads_working_directory_by_default(tmp_path):
    (tmp_path / "paper-agent.toml").write_text('model = "local-llama"\n')
    assert resolve_settings({}, env={}).model == "local-llama"


def test_api_key_env_names_the_variable(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('api_key_env = "MY_KEY"\n')
    assert resolve_settings({}, env={"MY_KEY": "k2"}, config_path=config).api_key == "k2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("modle = 'x'", "modle: Extra inputs are not permitted"),
        ("concurrency = 0", "concurrency"),
        ("model = ", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        resolve_settings({}, env={}, config_path=config)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_settings({}, env={}, config_path=tmp_path / "nope.toml")


def test_the_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "paper-agent.toml"
    settings = resolve_settings({}, env={}, config_path=example)
    assert settings.max_tags == 2
    assert settings.taxonomy.is_file()


def test_the_readme_settings_table_is_made_from_the_declarations():
    """One declaration per setting: the README's table is exactly what the code declares."""
    from pathlib import Path

    from agent.config import settings_table

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert settings_table() + "\n\n" in readme, "regenerate it with: python -m agent.config"
    assert all(readme.count(row) == 1 for row in settings_table().splitlines()[2:]), "twice"


def test_every_flag_and_key_comes_from_the_one_declaration(tmp_path):
    from agent.config import file_config, specs

    model = file_config()
    for name, spec, _ in specs():
        assert (name in model.model_fields) == spec.config or spec.section is not None
    (tmp_path / "bad.toml").write_text("concurrency = 0\n")
    with pytest.raises(ConfigError, match="concurrency"):
        resolve_settings({}, config_path=tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text("concurency = 3\n")
    with pytest.raises(ConfigError, match="concurency"):
        resolve_settings({}, config_path=tmp_path / "typo.toml")


async def test_a_server_that_drips_bytes_is_cut_off_by_the_attempt_deadline():
    """httpx's read timeout restarts with every byte; the attempt's deadline does not."""
    import asyncio
    import time

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
        try:
            for _ in range(100):  # bounded: 10 s at most
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    policy = retry.RetryPolicy(max_attempts=2, base_delay=0.01, attempt_deadline=0.5)
    started = time.monotonic()
    async with server, httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(retry.Deadline):
            await retry.call_with_retry(lambda: client.get(url), policy)
    assert time.monotonic() - started < 3  # two half-second attempts, not 2 x 10 s
