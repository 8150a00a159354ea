"""Posting to a Slack incoming webhook (respx, strict): order, spacing, retries, errors, resume."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.delivery.journal import DeliveryLog, digest_hash
from agent.delivery.slack import SlackPostError, post_to_slack

WEBHOOK = "https://hooks.slack.com/services/test-team/test-hook/s3cretT0kenXYZ"


def ok() -> httpx.Response:
    return httpx.Response(200, text="ok")


def slack_error(status: int, text: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, text=text, headers=headers)


@pytest.fixture
def webhook_route(sleeps):
    """The webhook, mocked by a strict router: any other request fails the test."""
    with respx.mock(assert_all_called=False) as router:
        yield router.post(WEBHOOK)


class FakeClock:
    """A monotonic clock that moves only when the patched retry sleep or a request moves it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.requests: list[float] = []  # the clock reading at each request Slack receives

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def replies(self, *responses: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
        """A respx side effect answering ``responses`` in turn, each request taking a moment."""
        queue = iter(responses)

        def reply(request: httpx.Request) -> httpx.Response:
            self.requests.append(self.now)
            self.now += 2**-7  # a power of two keeps every reading exact in floating point
            return next(queue)

        return reply

    def gaps(self) -> list[float]:
        """Seconds between the starts of consecutive requests."""
        return [b - a for a, b in zip(self.requests, self.requests[1:], strict=False)]


@pytest.fixture
def clock(sleeps, monkeypatch) -> FakeClock:
    """A fake clock that the retry sleep advances (after ``sleeps``, so this patch wins)."""
    from agent.llm import retry

    fake = FakeClock()
    monkeypatch.setattr(retry, "sleep", fake.sleep)
    return fake


def messages(count: int) -> list[dict]:
    return [{"text": f"message {i}", "blocks": []} for i in range(1, count + 1)]


def sent_bodies(route) -> list[dict]:
    return [json.loads(call.request.content) for call in route.calls]


async def post(payloads: list[dict], **options):
    async with httpx.AsyncClient() as client:
        return await post_to_slack(client, WEBHOOK, payloads, **options)


async def test_messages_go_in_order_a_second_apart(webhook_route, clock):
    webhook_route.side_effect = clock.replies(ok(), ok(), ok())
    report = await post(messages(3), clock=clock)
    assert report.sent == [1, 2, 3] and report.skipped == []
    assert sent_bodies(webhook_route) == messages(3)
    assert clock.gaps() == [1.0, 1.0]
    assert clock.slept == [1.0 - 2**-7] * 2  # the time a request takes counts toward the gap


async def test_any_two_requests_are_a_second_apart_retries_included(webhook_route, clock):
    rate_limited = slack_error(429, "rate_limited", **{"Retry-After": "0"})
    webhook_route.side_effect = clock.replies(ok(), rate_limited, ok(), ok())
    report = await post(messages(3), clock=clock)
    assert report.sent == [1, 2, 3] and report.retries == 1
    assert len(clock.requests) == 4
    assert all(gap >= 1.0 for gap in clock.gaps()), clock.gaps()


async def test_a_429_waits_as_told_by_retry_after_then_succeeds(webhook_route, clock):
    rate_limited = slack_error(429, "rate_limited", **{"Retry-After": "7"})
    webhook_route.side_effect = clock.replies(rate_limited, ok())
    report = await post(messages(1), clock=clock)
    assert webhook_route.call_count == 2
    # Retry-After already spaces the retry: no pacing wait on top of it.
    assert clock.slept == [7.0]
    assert report.sent == [1] and report.retries == 1


async def test_a_5xx_is_retried(webhook_route, sleeps):
    webhook_route.side_effect = [slack_error(503, "service_unavailable"), ok()]
    report = await post(messages(1))
    assert webhook_route.call_count == 2 and report.sent == [1]


async def test_a_400_stops_at_once_with_slacks_error_text(webhook_route, sleeps):
    webhook_route.mock(return_value=slack_error(400, "invalid_blocks"))
    with pytest.raises(SlackPostError) as caught:
        await post(messages(2))
    assert webhook_route.call_count == 1
    assert sleeps == []
    message = str(caught.value)
    assert "invalid_blocks (HTTP 400)" in message
    assert "message 1 of 2" in message and "Delivered: none." in message
    assert WEBHOOK not in message


async def test_partial_failure_says_what_was_delivered_and_resume_sends_the_rest(webhook_route):
    payloads = messages(5)
    webhook_route.side_effect = [ok(), ok(), slack_error(404, "channel_not_found")]
    with pytest.raises(SlackPostError) as caught:
        await post(payloads)
    assert caught.value.delivered == [1, 2] and caught.value.pending == [3, 4, 5]
    assert "Delivered: 1, 2. Not delivered: 3, 4, 5." in str(caught.value)

    webhook_route.side_effect = None
    webhook_route.reset()
    webhook_route.mock(return_value=ok())
    report = await post(payloads, resume=True)
    assert report.skipped == [1, 2] and report.sent == [3, 4, 5]
    assert sent_bodies(webhook_route) == payloads[2:]

    webhook_route.reset()
    again = await post(payloads, resume=True)
    assert again.sent == [] and again.skipped == [1, 2, 3, 4, 5]
    assert webhook_route.call_count == 0


async def test_without_resume_everything_is_sent_again(webhook_route):
    webhook_route.mock(return_value=ok())
    await post(messages(2))
    webhook_route.reset()
    await post(messages(2))
    assert webhook_route.call_count == 2


async def test_the_log_is_keyed_by_digest_and_never_holds_the_webhook(webhook_route, tmp_path):
    webhook_route.mock(return_value=ok())
    log = DeliveryLog(tmp_path / "log.json")
    await post(messages(2), delivery_log=log)
    text = (tmp_path / "log.json").read_text()
    assert digest_hash(messages(2)) in text
    assert WEBHOOK not in text and "s3cret" not in text
    # A different digest does not resume from this one's progress.
    webhook_route.reset()
    await post(messages(3), delivery_log=log, resume=True)
    assert webhook_route.call_count == 3


async def test_a_damaged_log_is_ignored(webhook_route, tmp_path):
    webhook_route.mock(return_value=ok())
    path = tmp_path / "log.json"
    path.write_text("{not json")
    report = await post(messages(1), delivery_log=DeliveryLog(path), resume=True)
    assert report.sent == [1]


async def test_the_webhook_never_reaches_logs_or_errors(webhook_route, caplog):
    caplog.set_level(logging.DEBUG)
    refused = httpx.ConnectError(f"cannot connect to {WEBHOOK}")
    webhook_route.side_effect = [ok(), *[refused] * 5]
    with pytest.raises(SlackPostError) as caught:
        await post(messages(2))
    assert "ConnectError" in str(caught.value) and "[redacted]" in str(caught.value)
    assert caught.value.delivered == [1] and caught.value.pending == [2]
    assert WEBHOOK not in str(caught.value)
    assert caught.value.__suppress_context__
    assert "HTTP Request: POST" in caplog.text  # httpx did log the request...
    assert WEBHOOK not in caplog.text and "s3cret" not in caplog.text  # ...without the URL


# The post command, through click.


@pytest.fixture
def results_file(fixtures, tmp_path):
    """The fixed ten-paper results file."""
    path = tmp_path / "results.jsonl"
    path.write_text((fixtures / "digest" / "results.jsonl").read_text())
    return path


@pytest.fixture
def many_results(fixtures, tmp_path):
    """Seventy results: enough for three Slack messages."""
    line = json.loads((fixtures / "digest" / "results.jsonl").read_text().splitlines()[1])
    path = tmp_path / "many.jsonl"
    rows = [{**line, "id": f"p{i}", "title": f"Paper {i}"} for i in range(70)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def invoke(*args: str, **env: str):
    return CliRunner().invoke(cli, ["-vv", *args], env=env or None, catch_exceptions=False)


def test_post_sends_the_digest_to_the_webhook_from_the_environment(webhook_route, results_file):
    webhook_route.mock(return_value=ok())
    done = invoke("post", str(results_file), SLACK_WEBHOOK_URL=WEBHOOK)
    assert done.exit_code == 0, done.output
    body = sent_bodies(webhook_route)[0]
    assert body["blocks"][0]["type"] == "header"
    assert "Slack: 1 message(s) delivered" in done.stderr
    assert WEBHOOK not in done.output


def test_post_partial_failure_then_resume(webhook_route, many_results, caplog):
    caplog.set_level(logging.DEBUG)
    webhook_route.side_effect = [ok(), ok(), slack_error(400, "invalid_blocks")]
    failed = invoke(
        "post", str(many_results), "--slack-webhook", WEBHOOK, "--date", "2026-03-06", "--full"
    )
    assert failed.exit_code == 1
    assert "message 3 of 3: invalid_blocks (HTTP 400)" in failed.stderr
    assert "Delivered: 1, 2. Not delivered: 3." in failed.stderr
    assert "--resume" in failed.stderr

    webhook_route.side_effect = None
    webhook_route.reset()
    webhook_route.mock(return_value=ok())
    resumed = invoke(
        "post",
        str(many_results),
        "--slack-webhook",
        WEBHOOK,
        "--date",
        "2026-03-06",
        "--resume",
        "--full",
    )
    assert resumed.exit_code == 0, resumed.output
    assert webhook_route.call_count == 1
    assert sent_bodies(webhook_route)[0]["text"].endswith("(3/3)")
    for output in (failed.output, resumed.output, caplog.text):
        assert WEBHOOK not in output and "s3cret" not in output
    # The next day's date makes another digest: --resume says it found nothing to resume.
    next_day = invoke(
        "post", str(many_results), "--slack-webhook", WEBHOOK, "--date", "2026-03-07",
        "--resume", "--full",
    )  # fmt: skip
    assert next_day.exit_code == 0
    assert "--resume found no earlier delivery of this digest" in next_day.stderr


def test_post_dry_run_prints_payloads_and_sends_nothing(webhook_route, results_file):
    done = invoke("post", str(results_file), "--slack-webhook", WEBHOOK, "--dry-run")
    assert done.exit_code == 0, done.output
    assert webhook_route.call_count == 0
    payloads = json.loads(done.stdout)
    assert payloads[0]["blocks"][0]["type"] == "header"
    assert WEBHOOK not in done.output


def test_post_needs_a_destination(results_file):
    done = invoke("post", str(results_file))
    assert done.exit_code == 2
    assert "--slack-webhook" in done.output


def test_a_malformed_webhook_is_rejected_without_echoing_it(results_file):
    secret = "hooks.slack.com/services/T/B/n0-scheme-s3cret"
    done = invoke("post", str(results_file), "--slack-webhook", secret)
    assert done.exit_code == 2
    assert "http(s) URL" in done.stderr and "s3cret" not in done.output


async def test_an_unwritable_delivery_log_does_not_undo_a_delivery(webhook_route, tmp_path, caplog):
    webhook_route.mock(return_value=ok())
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the state dir should be")
    report = await post(messages(2), delivery_log=DeliveryLog(blocked / "deliveries.json"))
    assert report.sent == [1, 2]
    assert "cannot write the delivery log" in caplog.text


def test_run_refuses_a_malformed_webhook_before_running(fixtures, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example.test:abc/secret-part")
    result = CliRunner().invoke(
        cli, ["run", str(fixtures / "papers.jsonl"), "--backend", "local", "--post-slack"]
    )
    assert result.exit_code == 2
    assert "must be an http(s) URL" in result.stderr
    assert "secret-part" not in result.output + result.stderr


@pytest.mark.parametrize(
    "entry",
    [[], {"delivered": 7}, "x", {"delivered": {"a": 1}}, {"delivered": [0, "1", True, None]}],
)
async def test_a_damaged_delivery_log_entry_never_stops_a_post(webhook_route, tmp_path, entry):
    from agent.delivery.journal import destination_id, digest_hash

    payloads = messages(2)
    path = tmp_path / "deliveries.json"
    dest = {destination_id(WEBHOOK): entry, "other": {"updated": "9999"}}
    body = {"version": 1, "digests": {digest_hash(payloads): dest if entry != [] else []}}
    path.write_text(json.dumps(body))
    webhook_route.mock(return_value=ok())
    report = await post(payloads, resume=True, delivery_log=DeliveryLog(path))
    # A valid index in the damaged entry still counts; every other shape is ignored.
    assert sorted(report.skipped + report.sent) == [1, 2]
    saved = json.loads(path.read_text())["digests"][digest_hash(payloads)]
    assert 1 in saved[destination_id(WEBHOOK)]["delivered"]  # what it sent is recorded


def test_two_posts_at_once_deliver_each_message_once(tmp_path):
    """Two real processes post one digest with --resume: the second waits for the first."""
    import subprocess
    import sys
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[bytes] = []

    class Slack(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(0.3)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slack)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    results = Path(__file__).parent / "fixtures" / "digest" / "results.jsonl"
    env = {
        "PATH": "/usr/bin:/bin",
        "PAPER_AGENT_HOME": str(tmp_path / "home"),
        "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/services/T/B/x",
    }
    command = [sys.executable, "-m", "agent", "post", str(results), "--full", "--resume"]
    command += ["--date", "2026-03-06"]
    try:
        runs = [
            subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)
        ]
        errors = [run.communicate(timeout=60)[1] for run in runs]
    finally:
        server.shutdown()
    assert [run.returncode for run in runs] == [0, 0], errors
    assert len(received) == len(set(received))  # no message twice
    assert any("already delivered" in e for e in errors)
