"""Posting to a Slack incoming webhook (respx, strict): order, spacing, retries, errors, resume."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.delivery.journal import DeliveryLog, digest_hash, paper_key
from agent.delivery.outbox import Report, deliver
from agent.delivery.slack import SlackChannel
from agent.digest import make_digest, parse_results
from agent.errors import DeliveryError, PartialDeliveryError
from agent.store import DB_NAME, Library

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


async def send(payloads: list[dict], **options) -> SlackChannel:
    """Send ``payloads`` one after another through one channel (as a delivery does)."""
    async with httpx.AsyncClient() as client:
        channel = SlackChannel(client, WEBHOOK, **options)
        for payload in payloads:
            await channel.send(payload)
    return channel


DAY = dt.date(2026, 3, 6)


async def build(results: list) -> object:
    return make_digest(results, date=DAY)


async def post(results: list, **options) -> Report:
    """Deliver the digest of ``results`` to the webhook, every paper (--full)."""
    async with httpx.AsyncClient() as client:
        channel = SlackChannel(client, WEBHOOK, full=True)
        return await deliver(results, build, channel, **options)


@pytest.fixture
def seventy(fixtures) -> list:
    """Seventy annotated results: three Slack messages with --full."""
    line = json.loads((fixtures / "digest" / "results.jsonl").read_text().splitlines()[1])
    rows = [{**line, "id": f"2603.{i:05d}", "title": f"Paper {i}"} for i in range(70)]
    return parse_results("".join(json.dumps(row) + "\n" for row in rows))


async def test_messages_go_in_order_a_second_apart(webhook_route, clock):
    webhook_route.side_effect = clock.replies(ok(), ok(), ok())
    await send(messages(3), clock=clock)
    assert sent_bodies(webhook_route) == messages(3)
    assert clock.gaps() == [1.0, 1.0]
    assert clock.slept == [1.0 - 2**-7] * 2  # the time a request takes counts toward the gap


async def test_any_two_requests_are_a_second_apart_retries_included(webhook_route, clock):
    rate_limited = slack_error(429, "rate_limited", **{"Retry-After": "0"})
    webhook_route.side_effect = clock.replies(ok(), rate_limited, ok(), ok())
    channel = await send(messages(3), clock=clock)
    assert channel.retries == 1
    assert len(clock.requests) == 4
    assert all(gap >= 1.0 for gap in clock.gaps()), clock.gaps()


async def test_a_429_waits_as_told_by_retry_after_then_succeeds(webhook_route, clock):
    rate_limited = slack_error(429, "rate_limited", **{"Retry-After": "7"})
    webhook_route.side_effect = clock.replies(rate_limited, ok())
    channel = await send(messages(1), clock=clock)
    assert webhook_route.call_count == 2
    # Retry-After already spaces the retry: no pacing wait on top of it.
    assert clock.slept == [7.0]
    assert channel.retries == 1


async def test_a_5xx_is_retried(webhook_route, sleeps):
    webhook_route.side_effect = [slack_error(503, "service_unavailable"), ok()]
    await send(messages(1))
    assert webhook_route.call_count == 2


async def test_a_400_stops_at_once_with_slacks_error_text(webhook_route, sleeps):
    webhook_route.mock(return_value=slack_error(400, "invalid_blocks"))
    with pytest.raises(DeliveryError) as caught:
        await send(messages(2))
    assert webhook_route.call_count == 1
    assert sleeps == []
    assert str(caught.value) == "invalid_blocks (HTTP 400)"


async def test_partial_failure_says_what_was_delivered_and_the_next_post_sends_the_rest(
    webhook_route, seventy
):
    webhook_route.side_effect = [ok(), ok(), slack_error(404, "channel_not_found")]
    with pytest.raises(PartialDeliveryError) as caught:
        await post(seventy)
    assert caught.value.delivered == [1, 2] and caught.value.pending == [3]
    assert str(caught.value) == (
        "Slack: message 3 of 3 not delivered: channel_not_found (HTTP 404). "
        "Delivered: 1, 2. Not delivered: 3. Run the same command again to send only those."
    )
    sent = sent_bodies(webhook_route)

    webhook_route.side_effect = None
    webhook_route.reset()
    webhook_route.mock(return_value=ok())
    report = await post(seventy)
    assert report.skipped == [1, 2] and report.sent == [3]
    assert sent_bodies(webhook_route) == sent[2:]  # the same message 3 of 3, resumed

    webhook_route.reset()
    again = await post(seventy)
    assert again.sent == [] and again.left_out == 70
    assert webhook_route.call_count == 0


async def test_the_same_digest_again_sends_nothing_unless_forced(webhook_route, seventy, caplog):
    caplog.set_level(logging.INFO)
    webhook_route.mock(return_value=ok())
    lines: list[str] = []
    await post(seventy, say=lines.append)
    webhook_route.reset()
    await post(seventy, say=lines.append)
    assert webhook_route.call_count == 0
    assert lines == [
        "Slack: 3 messages delivered",
        "Slack: nothing new to send: 70 papers already delivered there (--force sends them again)",
    ]
    forced = await post(seventy, force=True)
    assert forced.sent == [1, 2, 3] and webhook_route.call_count == 3


async def test_the_journal_holds_papers_per_message_and_never_the_webhook(
    webhook_route, seventy, tmp_path
):
    from agent.delivery.slack import slack_destination

    webhook_route.mock(return_value=ok())
    with DeliveryLog(tmp_path) as journal:
        await post(seventy, journal=journal)
    data = b"".join(path.read_bytes() for path in tmp_path.glob(f"{DB_NAME}*"))
    assert WEBHOOK.encode() not in data and b"s3cret" not in data
    payloads = [json.loads(call.request.content) for call in webhook_route.calls]
    destination = slack_destination(WEBHOOK)
    with Library.open(tmp_path) as lib:
        records = lib.deliveries.of_digest(destination.ids, digest_hash(payloads))
    assert [r.message for r in records] == [0, 1, 2]
    assert {r.channel for r in records} == {"slack"} and {r.day for r in records} == {"2026-03-06"}
    assert {r.destination for r in records} == {destination.id}
    assert destination.id.startswith("slack:")
    carried = [key for r in records for key in r.papers]
    assert sorted(carried) == sorted(paper_key(r) for r in seventy)  # each paper once
    for record, payload in zip(records, payloads, strict=True):
        shown = json.dumps(payload)
        assert all(f"Paper {int(key[5:])}" in shown for key in record.papers)


async def test_the_same_webhook_spelled_otherwise_is_the_same_destination():
    from agent.delivery.slack import slack_destination

    plain = slack_destination(WEBHOOK)
    loud = WEBHOOK.replace("https://hooks.slack.com", "HTTPS://Hooks.Slack.COM:443")
    assert slack_destination(f"  {loud}  ").id == plain.id
    assert slack_destination(WEBHOOK + "x").id != plain.id
    assert "s3cret" not in plain.id + "".join(plain.aliases)


async def test_a_damaged_log_is_ignored(webhook_route, tmp_path, seventy):
    webhook_route.mock(return_value=ok())
    (tmp_path / DB_NAME).write_text("{not a database" * 1000)
    with DeliveryLog(tmp_path) as journal:
        report = await post(seventy, journal=journal)
    assert report.sent == [1, 2, 3]
    with DeliveryLog(tmp_path) as journal:  # moved aside; the fresh library has the post
        assert (await post(seventy, journal=journal)).sent == []


async def test_the_webhook_never_reaches_logs_or_errors(webhook_route, caplog, seventy):
    caplog.set_level(logging.DEBUG)
    refused = httpx.ConnectError(f"cannot connect to {WEBHOOK}")
    webhook_route.side_effect = [ok(), *[refused] * 5]
    with pytest.raises(PartialDeliveryError) as caught:
        await post(seventy)
    assert "ConnectError" in str(caught.value) and "[redacted]" in str(caught.value)
    assert caught.value.delivered == [1] and caught.value.pending == [2, 3]
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
    assert done.stderr == "Slack: sent message 1/1\nSlack: 1 message delivered\n"
    assert WEBHOOK not in done.output


def test_post_partial_failure_then_the_same_command_sends_the_rest(
    webhook_route, many_results, caplog
):
    caplog.set_level(logging.DEBUG)
    webhook_route.side_effect = [ok(), ok(), slack_error(400, "invalid_blocks")]
    command = ["post", str(many_results), "--slack-webhook", WEBHOOK, "--date", "2026-03-06"]
    failed = invoke(*command, "--full")
    assert failed.exit_code == 1
    assert (
        "Slack: message 3 of 3 not delivered: invalid_blocks (HTTP 400). Delivered: 1, 2. "
        "Not delivered: 3. Run the same command again to send only those."
    ) in failed.stderr

    webhook_route.side_effect = None
    webhook_route.reset()
    webhook_route.mock(return_value=ok())
    resumed = invoke(*command, "--full")
    assert resumed.exit_code == 0, resumed.output
    assert webhook_route.call_count == 1
    assert sent_bodies(webhook_route)[0]["text"].endswith("(3/3)")
    assert resumed.stderr.splitlines() == [
        "Slack: 2 of 3 messages already delivered, not sent again",
        "Slack: sent message 3/3",
        "Slack: 1 message delivered",
    ]
    for output in (failed.output, resumed.output, caplog.text):
        assert WEBHOOK not in output and "s3cret" not in output
    # The next day's digest of the same papers (--resume is still accepted): nothing new.
    webhook_route.reset()
    next_day = invoke(*command[:-1], "2026-03-07", "--resume", "--full")
    assert next_day.exit_code == 0
    assert webhook_route.call_count == 0
    assert next_day.stderr == (
        "Slack: nothing new to send: 70 papers already delivered there (--force sends them again)\n"
    )
    forced = invoke(*command, "--force")  # the one-screen message, all seventy again
    assert forced.exit_code == 0 and webhook_route.call_count == 1


def test_post_dry_run_prints_payloads_and_sends_nothing(webhook_route, results_file):
    done = invoke("post", str(results_file), "--slack-webhook", WEBHOOK, "--dry-run")
    assert done.exit_code == 0, done.output
    assert webhook_route.call_count == 0
    payloads = json.loads(done.stdout)
    assert payloads[0]["blocks"][0]["type"] == "header"
    assert done.stderr == "# Slack: 1 message(s), not sent\n"
    assert WEBHOOK not in done.output


def test_post_dry_run_leaves_out_what_the_webhook_already_has(webhook_route, many_results):
    webhook_route.mock(return_value=ok())
    command = ["post", str(many_results), "--slack-webhook", WEBHOOK, "--full"]
    assert invoke(*command).exit_code == 0
    webhook_route.reset()
    again = invoke(*command, "--dry-run")
    assert again.exit_code == 0 and again.stdout == ""
    assert again.stderr == (
        "# Slack: nothing new to send: 70 papers already delivered there "
        "(--force sends them again)\n"
    )
    forced = invoke(*command, "--dry-run", "--force")
    assert len(json.loads(forced.stdout)) == 3
    assert webhook_route.call_count == 0


def test_post_needs_a_destination(results_file):
    done = invoke("post", str(results_file))
    assert done.exit_code == 2
    assert "--slack-webhook" in done.output


def test_a_malformed_webhook_is_rejected_without_echoing_it(results_file):
    secret = "hooks.slack.com/services/T/B/n0-scheme-s3cret"
    done = invoke("post", str(results_file), "--slack-webhook", secret)
    assert done.exit_code == 2
    assert "http(s) URL" in done.stderr and "s3cret" not in done.output


async def test_an_unwritable_delivery_log_does_not_undo_a_delivery(
    webhook_route, tmp_path, caplog, seventy
):
    webhook_route.mock(return_value=ok())
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the state dir should be")
    report = await post(seventy, journal=DeliveryLog(blocked))
    assert report.sent == [1, 2, 3]
    assert "cannot read the delivery log" in caplog.text
    assert "cannot write the delivery log" in caplog.text


def test_run_refuses_a_malformed_webhook_before_running(fixtures, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example.test:abc/secret-part")
    result = CliRunner().invoke(
        cli, ["run", str(fixtures / "papers.jsonl"), "--backend", "local", "--post-slack"]
    )
    assert result.exit_code == 2
    assert "must be an http(s) URL" in result.stderr
    assert "secret-part" not in result.output + result.stderr


def version_1_log(path: Path, digests: dict) -> None:
    """A delivery log as version 1 (today's main before the journal) wrote it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "digests": digests}, indent=1, sort_keys=True))


def seventy_hash(seventy: list) -> str:
    from agent.digest import slack_messages

    return digest_hash(slack_messages(make_digest(seventy, date=DAY), full=True))


@pytest.mark.parametrize(
    "entry",
    [[], {"delivered": 7}, "x", {"delivered": {"a": 1}}, {"delivered": [0, "1", True, None]}],
)
async def test_a_damaged_delivery_log_entry_never_stops_a_post(
    webhook_route, tmp_path, entry, seventy
):
    from agent.delivery.journal import destination_id
    from agent.delivery.slack import slack_destination

    dest = {destination_id(WEBHOOK): entry, "other": {"updated": "9999"}}
    version_1_log(
        tmp_path / "deliveries.json", {seventy_hash(seventy): dest if entry != [] else []}
    )
    webhook_route.mock(return_value=ok())
    with DeliveryLog(tmp_path) as journal:
        report = await post(seventy, journal=journal)
    # A valid index in the damaged entry still counts; every other shape is ignored.
    assert sorted(report.skipped + report.sent) == [1, 2, 3]
    with Library.open(tmp_path) as lib:
        saved = lib.deliveries.of_digest(slack_destination(WEBHOOK).ids, seventy_hash(seventy))
    assert 1 in {r.message for r in saved}


async def test_a_version_1_log_resumes_and_is_migrated(webhook_route, tmp_path, seventy):
    from agent.delivery.journal import destination_id
    from agent.delivery.slack import slack_destination

    now = dt.datetime.now(dt.UTC)
    stamp = now.isoformat()
    others = {"sha256:0123456789abcdef": {"delivered": [0], "total": 1, "updated": stamp}}
    mine = {destination_id(WEBHOOK): {"delivered": [0, 1], "total": 3, "updated": stamp}}
    version_1_log(tmp_path / "deliveries.json", {seventy_hash(seventy): mine, "a" * 24: others})
    webhook_route.mock(return_value=ok())
    with DeliveryLog(tmp_path) as journal:
        report = await post(seventy, journal=journal)
    assert report.skipped == [1, 2] and report.sent == [3]
    assert sent_bodies(webhook_route)[0]["text"].endswith("(3/3)")
    new_id = slack_destination(WEBHOOK).id
    with Library.open(tmp_path) as lib:
        [other] = lib.deliveries.of_digest(["sha256:0123456789abcdef"], "a" * 24)
        ours = lib.deliveries.of_digest([new_id], seventy_hash(seventy))
    assert other.message == 0  # another destination's record is kept as it was
    # Ours are migrated: the new id, and the papers the rebuilt messages 1 and 2 carried.
    assert [r.message for r in ours] == [0, 1, 2]
    assert [dt.datetime.fromisoformat(r.at) for r in ours[:2]] == [now, now]
    assert sorted(k for r in ours for k in r.papers) == sorted(map(paper_key, seventy))
    webhook_route.reset()
    with DeliveryLog(tmp_path) as journal:
        again = await post(seventy, journal=journal)
    assert again.sent == [] and webhook_route.call_count == 0


def test_two_posts_at_once_deliver_each_message_once(tmp_path):
    """Two real processes post one digest: the second waits for the first, then finds every
    paper delivered (--resume, an old script's flag, is accepted)."""
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
