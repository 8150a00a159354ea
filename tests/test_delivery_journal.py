"""What was delivered is journaled per paper and destination: no paper reaches the same
destination twice, whatever the digest around it (a real local server stands in for Slack)."""

from __future__ import annotations

import collections
import json
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
