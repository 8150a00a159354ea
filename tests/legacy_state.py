"""A state dir as paper-agent 0.1.0 leaves it, made by that code itself: a run of two sources
posted to Slack (the seen-store and the delivery log), an emailed digest, a paper seen only by
its title, and batch jobs. ``python -m tests.legacy_state DIR`` writes one (how
``tests/fixtures/legacy-home`` was made)."""

from __future__ import annotations

import atexit
import functools
import shutil
import sys
import tempfile
from pathlib import Path

import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.delivery.journal import DeliveryLog, destination_id, digest_hash
from agent.llm.batch_api import Job, Jobs
from agent.models import Paper
from agent.sources.seen import SeenStore
from tests.feeds import atom, paper, rss

ARXIV = "http://arxiv.test/api/query"
RSS = "http://rss.test/rss"
WEBHOOK = "https://hooks.example.test/services/legacy"
FILES = ("seen.sqlite3", "deliveries.json", "batches/jobs.json")
TITLE_ONLY = Paper(id="hf-77", title="A Paper Known Only By Its Title", abstract="", source="hf")


def make_legacy_home(home: Path) -> None:
    """Fill ``home`` with the state files today's code writes, through that code."""
    env = {
        "PAPER_AGENT_HOME": str(home),
        "PAPER_AGENT_ARXIV_API_URL": ARXIV,
        "PAPER_AGENT_ARXIV_RSS_URL": RSS,
        "SLACK_WEBHOOK_URL": WEBHOOK,
    }
    args = ["run", "--source", "arxiv:cs.LG", "--source", "arxiv-rss:cs.LG", "--backend"]
    args += ["local", "-o", str(home / "results.jsonl"), "--post-slack"]
    with respx.mock(assert_all_called=True) as router:
        router.get(url__startswith=ARXIV).respond(200, text=atom([paper(n) for n in range(1, 4)]))
        router.get(url__startswith=RSS).respond(200, text=rss([paper(n) for n in range(3, 6)]))
        router.post(WEBHOOK).respond(200, text="ok")
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(f"paper-agent run failed: {result.stderr}")
    with SeenStore(home / "seen.sqlite3") as store:
        store.mark([TITLE_ONLY], TITLE_ONLY.source)
    # What `post --email` records once the message is sent.
    DeliveryLog(home / "deliveries.json").record(
        digest_hash(["Research digest", "body"]), destination_id("mailto:team@example.test"), 1, 0
    )
    jobs = Jobs(home)
    jobs.save(Job("a" * 64, str(jobs.directory / "requests-a.jsonl"), 3, created=1764547200.5))
    jobs.save(
        Job(
            "b" * 64,
            str(jobs.directory / "requests-b.jsonl"),
            2,
            input_file_id="file-b",
            batch_id="batch_b",
            status="completed",
            completed=2,
            output_file_id="file-b-out",
            created=1764547300.25,
        )
    )


def copy_legacy_home(home: Path) -> Path:
    """``home`` with the state files of one ``make_legacy_home`` (made once per test session:
    a run takes seconds), each copied with its modification time."""
    home.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(_made() / name, home / name)
    return home


@functools.cache
def _made() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="legacy-home-"))
    atexit.register(shutil.rmtree, scratch, True)
    make_legacy_home(scratch)
    return scratch


if __name__ == "__main__":
    target = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as scratch:
        make_legacy_home(Path(scratch))
        for name in FILES:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(scratch) / name, target / name)
