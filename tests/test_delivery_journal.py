"""What was delivered is journaled per paper and destination: no paper reaches the same
destination twice, whatever the digest around it (a real local server stands in for Slack)."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from tests.slack import SlackStandIn

TITLE = re.compile(r"Paper #(\d{3})")


@pytest.fixture
def slack(sleeps):
    """The stand-in webhook; pacing and retry waits are recorded, not slept."""
    with SlackStandIn() as server:
        yield server


def results(fixtures: Path, path: Path, numbers: range) -> Path:
    """A results file of annotated papers "Paper #NNN", with arXiv ids, in ``numbers``."""
    line = json.loads((fixtures / "digest" / "results.jsonl").read_text().splitlines()[1])
    rows = [
        {
            **line,
            "id": f"2603.{n:05d}",
            "url": f"https://arxiv.org/abs/2603.{n:05d}",
            "title": f"Paper #{n:03d}",
        }
        for n in numbers
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def papers_shown(server: SlackStandIn) -> collections.Counter[int]:
    """How many accepted messages showed each paper."""
    return collections.Counter(
        int(n) for text in server.texts() for n in dict.fromkeys(TITLE.findall(text))
    )


def invoke(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env=env or None, catch_exceptions=False)


def test_a_partial_post_then_the_next_days_digest_sends_no_paper_twice(slack, fixtures, tmp_path):
    day1 = results(fixtures, tmp_path / "day1.jsonl", range(70))  # three messages with --full
    slack.answer(200, 400)  # message 1 accepted, message 2 refused
    first = invoke("post", str(day1), "--full", "--date", "2026-03-06", SLACK_WEBHOOK_URL=slack.url)
    assert first.exit_code == 1
    assert "Delivered: 1. Not delivered: 2, 3." in first.stderr
    in_first = set(papers_shown(slack))
    assert 0 in in_first and 69 not in in_first

    # The next day's window overlaps: yesterday's papers again, and twenty new ones.
    day2 = results(fixtures, tmp_path / "day2.jsonl", range(90))
    second = invoke(
        "post", str(day2), "--full", "--date", "2026-03-07", SLACK_WEBHOOK_URL=slack.url
    )
    assert second.exit_code == 0, second.stderr
    shown = papers_shown(slack)
    assert sorted(shown) == list(range(90))  # every paper reached Slack...
    assert {n for n, times in shown.items() if times > 1} == set()  # ...once
    left_out = f"{len(in_first)} papers already delivered to Slack left out"
    assert left_out in second.stderr


def test_the_next_cron_run_after_a_partial_post_sends_no_paper_twice(slack, fixtures, tmp_path):
    def papers(numbers: range) -> Path:
        path = tmp_path / f"papers-{numbers.start}-{numbers.stop}.jsonl"
        rows = [
            {
                "id": f"2603.{n:05d}",
                "title": f"Paper #{n:03d}",
                "abstract": f"We study scaling laws of language model number {n} on benchmarks.",
            }
            for n in numbers
        ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path

    command = ["run", "--backend", "local", "-o", "results.jsonl", "--post-slack", "--full"]
    slack.answer(200, 400)
    first = invoke(*command, str(papers(range(70))), SLACK_WEBHOOK_URL=slack.url)
    assert first.exit_code == 1
    assert len(slack.accepted) == 1
    second = invoke(*command, str(papers(range(20, 90))), SLACK_WEBHOOK_URL=slack.url)
    assert second.exit_code == 0, second.stderr
    shown = papers_shown(slack)
    assert sorted(shown) == list(range(90))
    assert {n for n, times in shown.items() if times > 1} == set()


SUMMARY = re.compile(r"paper-agent: 5 ok, 0 failed \(offline\); [0-9.]+s -> r\.jsonl")


def test_run_says_what_it_delivered(slack, fixtures):
    command = ["run", str(fixtures / "papers.jsonl"), "--backend", "local", "-o", "r.jsonl"]
    command += ["--digest-out", "digest.md", "--post-slack"]
    done = invoke(*command, SLACK_WEBHOOK_URL=slack.url)
    assert done.exit_code == 0, done.stderr
    first, second, summary = done.stderr.splitlines()
    assert [first, second] == [
        "paper-agent: digest.md written",
        "paper-agent: Slack: 1 message delivered",
    ]
    assert SUMMARY.fullmatch(summary), summary
    assert Path("digest.md").read_text().startswith("#")

    again = invoke(*command, SLACK_WEBHOOK_URL=slack.url)
    assert again.exit_code == 0, again.stderr
    assert again.stderr.splitlines()[:2] == [
        "paper-agent: digest.md written",
        "paper-agent: Slack: nothing new to send: 5 papers already delivered there "
        "(paper-agent post r.jsonl --force sends them again)",
    ]
    assert len(slack.received) == 1


def test_run_says_which_papers_it_left_out(slack, fixtures, tmp_path):
    lines = (fixtures / "papers.jsonl").read_text().splitlines()
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(lines[:3]) + "\n")
    command = ["run", "--backend", "local", "-o", "r.jsonl", "--post-slack"]
    assert invoke(*command, str(first), SLACK_WEBHOOK_URL=slack.url).exit_code == 0
    done = invoke(*command, str(fixtures / "papers.jsonl"), SLACK_WEBHOOK_URL=slack.url)
    assert done.exit_code == 0, done.stderr
    *delivery, summary = done.stderr.splitlines()
    assert delivery == [
        "paper-agent: 3 papers already delivered to Slack left out",
        "paper-agent: Slack: 1 message delivered",
    ]
    assert SUMMARY.fullmatch(summary), summary
    assert "*2 papers*" in json.dumps(slack.accepted[1])  # the one screen counts only the new


def test_the_one_screen_message_delivers_every_paper_it_counts(slack, fixtures, tmp_path):
    day1 = results(fixtures, tmp_path / "day1.jsonl", range(70))
    args = ["post", str(day1), "--date", "2026-03-06"]
    assert invoke(*args, SLACK_WEBHOOK_URL=slack.url).exit_code == 0
    assert len(papers_shown(slack)) == 15  # fifteen picks shown, the other 55 counted
    # Every paper of that message was delivered, picks or counted: --full has nothing new.
    full = invoke(*args, "--full", SLACK_WEBHOOK_URL=slack.url)
    assert full.exit_code == 0 and len(slack.received) == 1
    assert "nothing new to send: 70 papers already delivered there" in full.stderr

    day2 = results(fixtures, tmp_path / "day2.jsonl", range(90))
    later = invoke("post", str(day2), "--date", "2026-03-07", SLACK_WEBHOOK_URL=slack.url)
    assert later.exit_code == 0
    assert slack.accepted[-1]["text"] == "Research digest — 2026-03-07: 20 papers"
    assert set(papers_shown(slack)) == set(range(15)) | set(range(70, 85))


def test_failed_papers_are_not_delivered_so_they_go_once_annotated(slack, fixtures, tmp_path):
    path = results(fixtures, tmp_path / "r.jsonl", range(3))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    failed = {**rows[2], "tags": [], "summary": None}
    failed["error"] = {"type": "bad_response", "message": "no answer"}
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows[:2], failed]))
    assert invoke("post", str(path), SLACK_WEBHOOK_URL=slack.url).exit_code == 0
    assert "paper failed" in json.dumps(slack.accepted[0])

    # The rerun annotated it: that paper, and only it, goes out.
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = invoke("post", str(path), "--full", SLACK_WEBHOOK_URL=slack.url)
    assert again.exit_code == 0, again.stderr
    assert "2 papers already delivered to Slack left out" in again.stderr
    assert sorted(TITLE.findall(json.dumps(slack.accepted[-1]))) == ["002"]


def test_a_paper_is_known_by_its_arxiv_id_without_version_or_its_title(slack, fixtures, tmp_path):
    path = results(fixtures, tmp_path / "r.jsonl", range(2))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1] = {**rows[1], "id": "t-0001", "url": None, "title": "A Study: of Things"}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert invoke("post", str(path), SLACK_WEBHOOK_URL=slack.url).exit_code == 0
    # The same papers from other sources: a new arXiv version, the title spelled otherwise.
    rows[0] = {**rows[0], "id": "2603.00000v2", "url": None}
    rows[1] = {**rows[1], "id": "t-0002", "title": "a study of things"}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = invoke("post", str(path), SLACK_WEBHOOK_URL=slack.url)
    assert again.exit_code == 0 and len(slack.received) == 1
    assert "nothing new to send: 2 papers already delivered there" in again.stderr


def test_a_quiet_day_is_posted_once(slack, fixtures, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = ["post", str(empty), "--date", "2026-03-06"]
    assert invoke(*args, SLACK_WEBHOOK_URL=slack.url).exit_code == 0
    again = invoke(*args, SLACK_WEBHOOK_URL=slack.url)
    assert again.exit_code == 0 and len(slack.received) == 1
    assert again.stderr == (
        "Slack: nothing sent: this digest was already delivered (--force sends it again)\n"
    )
    next_day = invoke("post", str(empty), "--date", "2026-03-07", SLACK_WEBHOOK_URL=slack.url)
    assert next_day.exit_code == 0 and len(slack.received) == 2


def test_email_is_journaled_per_paper_and_recipients(slack, smtp_server, fixtures, tmp_path):
    inbox, port = smtp_server
    email = ["--email", "team@example.org", "--smtp", f"127.0.0.1:{port}"]
    day1 = results(fixtures, tmp_path / "day1.jsonl", range(70))
    # Slack has them: a different destination, so the email still carries every paper.
    assert invoke("post", str(day1), SLACK_WEBHOOK_URL=slack.url).exit_code == 0
    first = invoke("post", str(day1), "--date", "2026-03-06", *email)
    assert first.exit_code == 0, first.stderr
    assert inbox.message(0)["Subject"] == "Research digest 2026-03-06: 70 papers"

    day2 = results(fixtures, tmp_path / "day2.jsonl", range(90))
    second = invoke("post", str(day2), "--date", "2026-03-07", *email)
    assert second.exit_code == 0, second.stderr
    assert second.stderr.splitlines() == [
        "70 papers already delivered to team@example.org left out",
        "Email to team@example.org: 1 message delivered",
    ]
    assert inbox.message(1)["Subject"] == "Research digest 2026-03-07: 20 papers"
    # Other recipients are another destination; the same ones in another case are not.
    others = invoke("post", str(day2), "--email", "boss@example.org", *email[2:])
    assert others.exit_code == 0 and len(inbox.envelopes) == 3
    loud = invoke("post", str(day2), "--email", "TEAM@example.org", *email[2:])
    assert loud.exit_code == 0 and len(inbox.envelopes) == 3
    assert "nothing new to send: 90 papers already delivered there" in loud.stderr


def test_an_email_sent_by_version_1_is_not_sent_again(smtp_server, fixtures, tmp_path):
    from agent.delivery.email import EmailChannel, SmtpSettings
    from agent.delivery.journal import destination_id
    from agent.digest import load_results, make_digest

    inbox, port = smtp_server
    day1 = results(fixtures, tmp_path / "day1.jsonl", range(5))
    channel = EmailChannel(SmtpSettings("127.0.0.1", port), "bot@example.org", ["team@example.org"])
    digest = make_digest(load_results(day1), date=dt.date(2026, 3, 6))
    key = channel.digest_key(channel.render(digest))  # version 1's: subject and plain text
    now = dt.datetime.now(dt.UTC).isoformat()
    entry = {
        destination_id("mailto:team@example.org"): {"delivered": [0], "total": 1, "updated": now}
    }
    home = Path(os.environ["PAPER_AGENT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "deliveries.json").write_text(json.dumps({"version": 1, "digests": {key: entry}}))
    args = ["post", str(day1), "--date", "2026-03-06", "--email", "team@example.org"]
    args += ["--email-from", "bot@example.org", "--smtp", f"127.0.0.1:{port}"]
    done = invoke(*args)
    assert done.exit_code == 0, done.stderr
    assert inbox.envelopes == []
    assert "this digest was already delivered" in done.stderr
    # Migrated with its papers: the next day's digest of the same papers sends nothing either.
    next_day = invoke(*[a if a != "2026-03-06" else "2026-03-07" for a in args])
    assert next_day.exit_code == 0 and inbox.envelopes == []
    assert "nothing new to send: 5 papers already delivered there" in next_day.stderr


@pytest.mark.parametrize(
    "damage",
    [
        "x",
        {"digest": 1},
        {"papers": "2603.00000"},
        {"message": -1},
        {"message": True},
        {"papers": [1]},
    ],
)
def test_a_damaged_journal_record_is_ignored_not_fatal(slack, fixtures, tmp_path, damage):
    """A delivery log of version 2 (before the library), imported on first use: a record
    of another shape is left out, the good one still counts."""
    from agent.delivery.slack import slack_destination

    path = results(fixtures, tmp_path / "r.jsonl", range(2))
    good = {
        "digest": "a" * 24,
        "channel": "slack",
        "destination": slack_destination(slack.url).id,
        "message": 0,
        "total": 1,
        "papers": ["2603.00000", "2603.00001"],
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
    bad = {**good, **damage} if isinstance(damage, dict) else damage
    home = Path(os.environ["PAPER_AGENT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    log = {"version": 2, "deliveries": [good, bad]}
    (home / "deliveries.json").write_text(json.dumps(log))
    again = invoke("post", str(path), SLACK_WEBHOOK_URL=slack.url)
    assert again.exit_code == 0 and len(slack.received) == 0  # the good record still counts
    assert "nothing new to send: 2 papers already delivered there" in again.stderr
