"""``paper-agent fetch`` and ``run --source`` end to end: mock arXiv and Hugging Face servers,
the offline backend or a mock LLM, and the seen-store across runs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from tests.feeds import atom, paper, rss
from tests.llm import API_KEY, BASE_URL, answer, error

ARXIV = "http://arxiv.test/api/query"
RSS = "http://rss.test/rss"
HF = "http://hf.test/api/daily_papers"
WEBHOOK = "https://hooks.example.test/services/sources"
MIRRORS = {
    "PAPER_AGENT_ARXIV_API_URL": ARXIV,
    "PAPER_AGENT_ARXIV_RSS_URL": RSS,
    "PAPER_AGENT_HF_API_URL": HF,
}


def invoke(*args: str, llm: bool = False, **env: str):
    """The CLI with the mirrors set; the offline backend unless ``llm``."""
    base = {**MIRRORS, **({"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL} if llm else {})}
    return CliRunner().invoke(cli, list(args), env={**base, **env}, catch_exceptions=False)


def rows(path) -> list[dict]:
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def servers():
    """Mock arXiv (API and RSS) and Hugging Face, plus an LLM and a Slack webhook."""
    with respx.mock(assert_all_called=False) as router:
        router.arxiv = router.get(url__startswith=ARXIV).respond(
            200, text=atom([paper(n) for n in range(1, 4)])
        )
        router.rss = router.get(url__startswith=RSS).respond(
            200, text=rss([paper(n) for n in range(3, 6)])
        )
        router.llm = router.post(f"{BASE_URL}/chat/completions").mock(return_value=answer(["LLMs"]))
        router.slack = router.post(WEBHOOK).respond(200, text="ok")
        yield router


def test_fetch_writes_the_papers_as_jsonl(servers, tmp_path):
    result = invoke("fetch", "arxiv:cs.LG", "-o", "papers.jsonl")
    assert result.exit_code == 0, result.stderr
    papers = rows(tmp_path / "papers.jsonl")
    assert [p["id"] for p in papers] == ["2611.00001", "2611.00002", "2611.00003"]
    assert papers[0]["url"] == "https://arxiv.org/abs/2611.00001"
    assert "fetched 3 paper(s)" in result.stderr


def test_fetch_to_stdout_then_run_keeps_source_and_metadata(servers, tmp_path):
    fetched = invoke("fetch", "arxiv-rss:cs.LG")
    assert fetched.exit_code == 0, fetched.stderr
    (tmp_path / "papers.jsonl").write_text(fetched.stdout)
    result = invoke("run", "papers.jsonl", "--backend", "local", "-o", "r.jsonl")
    assert result.exit_code == 0, result.stderr
    out = rows(tmp_path / "r.jsonl")
    assert [r["id"] for r in out] == ["2611.00003", "2611.00004", "2611.00005"]
    assert {r["source"] for r in out} == {"arxiv-rss:cs.LG"}
    assert out[0]["metadata"]["announce_type"] == "new"


def test_two_runs_of_the_same_source_process_each_paper_once(servers, tmp_path):
    args = ("run", "--source", "arxiv:cs.LG", "--source", "arxiv-rss:cs.LG", "-o", "r.jsonl")
    first = invoke(*args, llm=True)
    assert first.exit_code == 0, first.stderr
    assert [r["id"] for r in rows(tmp_path / "r.jsonl")] == [f"2611.0000{n}" for n in range(1, 6)]
    assert servers.llm.call_count == 5  # paper 3 came from both sources: run once
    second = invoke(*args, llm=True)
    assert second.exit_code == 0, second.stderr
    assert servers.llm.call_count == 5
    assert "no new papers" in second.stderr
    assert (tmp_path / "r.jsonl").read_text() == ""


def test_a_paper_that_failed_is_not_marked_seen(servers, tmp_path, sleeps):
    servers.llm.side_effect = [answer(["LLMs"]), *[error(400, "no")] * 1, answer(["LLMs"])]
    args = ("run", "--source", "arxiv:cs.LG", "--concurrency", "1", "-o", "r.jsonl")
    first = invoke(*args, llm=True)
    assert first.exit_code == 1
    failed = [r["id"] for r in rows(tmp_path / "r.jsonl") if r["error"]]
    assert failed == ["2611.00002"]
    servers.llm.side_effect = None
    servers.llm.return_value = answer(["LLMs"])
    before = servers.llm.call_count
    second = invoke(*args, llm=True)
    assert second.exit_code == 0, second.stderr
    assert servers.llm.call_count - before == 1
    assert [r["id"] for r in rows(tmp_path / "r.jsonl")] == failed


def test_an_interrupted_run_marks_nothing_and_its_rerun_pays_only_for_the_rest(servers, tmp_path):
    calls = 0

    def reply(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return answer(["LLMs"])

    servers.llm.side_effect = reply
    args = ("run", "--source", "arxiv:cs.LG", "--concurrency", "1", "-o", "r.jsonl")
    assert invoke(*args, llm=True).exit_code == 130
    servers.llm.side_effect = None
    servers.llm.return_value = answer(["LLMs"])
    before = servers.llm.call_count
    assert invoke(*args, llm=True).exit_code == 0
    out = rows(tmp_path / "r.jsonl")
    assert [r["id"] for r in out] == ["2611.00001", "2611.00002", "2611.00003"]
    assert out[0]["cached"] and servers.llm.call_count - before == 2


def test_a_failed_slack_post_marks_nothing_so_the_rerun_posts(servers, tmp_path):
    servers.slack.side_effect = [httpx.Response(400, text="invalid_blocks")]
    args = ("run", "--source", "arxiv:cs.LG", "--backend", "local", "-o", "r.jsonl", "--post-slack")
    failed = invoke(*args, SLACK_WEBHOOK_URL=WEBHOOK)
    assert failed.exit_code == 1
    servers.slack.side_effect = None
    servers.slack.return_value = httpx.Response(200, text="ok")
    again = invoke(*args, SLACK_WEBHOOK_URL=WEBHOOK)
    assert again.exit_code == 0, again.stderr
    assert len(rows(tmp_path / "r.jsonl")) == 3  # not a quiet day: the papers come back
    assert servers.slack.call_count == 2


def test_a_quiet_source_beside_a_failing_one_is_exit_1_with_an_empty_results_file(
    servers, tmp_path, sleeps
):
    servers.arxiv.respond(200, text=atom([]))
    servers.rss.respond(503, text="down")
    (tmp_path / "r.jsonl").write_text("yesterday\n")
    args = ("run", "--source", "arxiv:cs.LG", "--source", "arxiv-rss:cs.LG", "--backend", "local")
    result = invoke(*args, "-o", "r.jsonl")
    assert result.exit_code == 1
    assert "arxiv-rss:cs.LG" in result.stderr
    assert (tmp_path / "r.jsonl").read_text() == ""


def test_include_seen_runs_them_again(servers, tmp_path):
    args = ("run", "--source", "arxiv:cs.LG", "--backend", "local", "-o", "r.jsonl")
    assert invoke(*args).exit_code == 0
    again = invoke(*args, "--include-seen")
    assert again.exit_code == 0
    assert len(rows(tmp_path / "r.jsonl")) == 3


def test_a_quiet_day_posts_nothing_unless_asked(servers, tmp_path, sleeps):
    servers.arxiv.respond(200, text=atom([]))
    args = ("run", "--source", "arxiv:cs.LG", "--backend", "local", "-o", "r.jsonl")
    quiet = invoke(*args, "--post-slack", SLACK_WEBHOOK_URL=WEBHOOK)
    assert quiet.exit_code == 0, quiet.stderr
    assert "no new papers from arxiv:cs.LG since" in quiet.stderr
    assert (tmp_path / "r.jsonl").read_text() == ""
    assert servers.slack.call_count == 0
    asked = invoke(*args, "--post-slack", "--post-empty", SLACK_WEBHOOK_URL=WEBHOOK)
    assert asked.exit_code == 0, asked.stderr
    assert servers.slack.call_count == 1
    assert "0 papers" in servers.slack.calls.last.request.content.decode()
    # With another source failing, "0 papers" would be a false all-clear: nothing is posted.
    servers.rss.respond(503, text="down")
    failing = invoke(
        *args,
        "--source",
        "arxiv-rss:cs.LG",
        "--post-slack",
        "--post-empty",
        SLACK_WEBHOOK_URL=WEBHOOK,
    )
    assert failing.exit_code == 1 and "arxiv-rss:cs.LG" in failing.stderr
    assert servers.slack.call_count == 1


def test_a_failing_source_is_exit_2_and_others_still_run(servers, tmp_path, sleeps):
    servers.rss.respond(503, text="down")
    alone = invoke("run", "--source", "arxiv-rss:cs.LG", "--backend", "local", "-o", "r.jsonl")
    assert alone.exit_code == 2
    assert "arxiv-rss:cs.LG" in alone.stderr
    assert not (tmp_path / "r.jsonl").exists()
    both = invoke(
        "run",
        "--source",
        "arxiv-rss:cs.LG",
        "--source",
        "arxiv:cs.LG",
        "--backend",
        "local",
        "-o",
        "r.jsonl",
    )
    assert both.exit_code == 1
    assert [r["id"] for r in rows(tmp_path / "r.jsonl")] == [f"2611.0000{n}" for n in (1, 2, 3)]
    assert "arxiv-rss:cs.LG" in both.stderr


def test_files_and_sources_mix(servers, tmp_path, fixtures):
    papers = fixtures / "papers.jsonl"
    result = invoke(
        "run", str(papers), "--source", "arxiv:cs.LG", "--backend", "local", "-o", "r.jsonl"
    )
    assert result.exit_code == 0, result.stderr
    ids = [r["id"] for r in rows(tmp_path / "r.jsonl")]
    assert ids[:3] == ["2611.00001", "2611.00002", "2611.00003"]
    assert len(ids) == 3 + len(papers.read_text().splitlines())


def test_an_unknown_category_sends_nothing(servers):
    result = invoke("run", "--source", "arxiv:cs.lg", "--backend", "local")
    assert result.exit_code == 2 and "cs.LG" in result.stderr
    assert servers.arxiv.call_count == 0


def test_no_inputs_and_no_source_is_a_usage_error():
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 2 and "--source" in result.stderr


def test_one_paper_from_two_sources_is_run_once(servers, tmp_path):
    """arXiv's 2611.00001, Hugging Face's "arXiv:2611.00001", and a title-only copy."""
    hf_items = [
        {"paper": {"id": "arXiv:2611.00001", "title": "Another title", "summary": "S."}},
        {"paper": {"id": "hf-only-7", "title": paper(2)["title"] + "!", "summary": "S."}},
    ]
    servers.get(url__startswith=HF).respond(200, json=hf_items)
    args = ("run", "--source", "arxiv:cs.LG", "--source", "hf:2026-11-30", "--backend", "local")
    result = invoke(*args, "-o", "r.jsonl")
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in rows(tmp_path / "r.jsonl")] == [f"2611.0000{n}" for n in (1, 2, 3)]


def test_a_file_id_with_version_or_prefix_is_the_bare_arxiv_id(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text(
        '{"id": "arXiv:2611.00001v2", "title": "A", "abstract": "x"}\n'
        '{"id": "2611.00001", "title": "A again", "abstract": "x"}\n'
    )
    result = invoke("run", str(path), "--backend", "local", "-o", "r.jsonl")
    assert result.exit_code == 0
    (row,) = rows(tmp_path / "r.jsonl")
    assert (row["id"], row["url"]) == ("2611.00001", "https://arxiv.org/abs/2611.00001")
    assert "1 duplicate" in result.stderr


def test_a_source_cut_short_runs_what_came_and_exits_1(servers, tmp_path, sleeps):
    servers.arxiv.side_effect = [
        httpx.Response(200, text=atom([paper(1)], total=5)),
        *[httpx.Response(200, text=atom([], total=5))] * 10,
    ]
    result = invoke("run", "--source", "arxiv:cs.LG", "--backend", "local", "-o", "r.jsonl")
    assert result.exit_code == 1
    assert [r["id"] for r in rows(tmp_path / "r.jsonl")] == ["2611.00001"]
    assert "may be missing" in result.stderr


def test_two_cron_runs_at_once_annotate_each_paper_once(tmp_path):
    """Two real processes, one state dir: the second waits for the first, then finds its
    papers seen; arXiv sees one client."""
    import subprocess
    import sys
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = atom([paper(n) for n in range(1, 6)]).encode()
    arrivals: list[float] = []

    class Arxiv(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrivals.append(time.monotonic())
            time.sleep(1.5)  # the first run is still busy when the second starts
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Arxiv)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": "/usr/bin:/bin",
        "PAPER_AGENT_HOME": str(tmp_path / "home"),
        "PAPER_AGENT_ARXIV_API_URL": f"http://127.0.0.1:{server.server_port}/api/query",
    }
    runs = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            command = [sys.executable, "-m", "agent", "run", "--source", "arxiv:cs.LG"]
            command += ["--backend", "local", "-o", "r.jsonl"]
            runs.append(
                subprocess.Popen(
                    command, cwd=tmp_path / name, env=env, stderr=subprocess.PIPE, text=True
                )
            )
            # The second starts once the first is fetching, i.e. holds the state dir.
            deadline = time.monotonic() + 30
            while not arrivals and time.monotonic() < deadline:
                time.sleep(0.05)
        errors = [run.communicate(timeout=60)[1] for run in runs]
    finally:
        server.shutdown()
    assert [run.returncode for run in runs] == [0, 0], errors
    first, second = (rows(tmp_path / name / "r.jsonl") for name in ("a", "b"))
    assert len(first) + len(second) == 5  # each paper annotated once, by one of the runs
    assert "waiting for another run" in errors[1] and "no new papers" in errors[1]
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 1.5  # one client at a time


@pytest.mark.parametrize(
    "feed",
    [
        "<?xml version='1.0' encoding='bogus'?><rss version='2.0'><channel/></rss>",
        "<?xml version='1.0' encoding='shift_jis'?><rss version='2.0'><channel/></rss>",
    ],
)
def test_a_feed_no_parser_can_read_fails_only_its_source(servers, tmp_path, feed):
    servers.rss.respond(200, text=feed)
    args = ["run", "--source", "arxiv-rss:cs.LG", "--source", "arxiv:cs.LG", "--backend", "local"]
    result = invoke(*args, "-o", "r.jsonl")
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.stderr and "arxiv-rss:cs.LG" in result.stderr
    assert len(rows(tmp_path / "r.jsonl")) == 3  # arXiv's papers still ran


@pytest.mark.parametrize(
    "item",
    [
        {"paper": {"id": "2611.00009", "title": "Odd authors", "authors": [{"name": 5}]}},
        {
            "paper": {
                "id": "2611.00009",
                "title": "Far future",
                "publishedAt": "9999-12-31T23:00:00-05:00",
            }
        },
    ],
)
def test_odd_fields_from_hugging_face_cost_nothing(servers, tmp_path, item):
    servers.get(url__startswith=HF).respond(200, json=[item])
    result = invoke("run", "--source", "hf:2026-11-30", "--backend", "local", "-o", "r.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in rows(tmp_path / "r.jsonl")] == ["2611.00009"]


def test_a_gzip_bomb_stops_at_the_size_limit(servers, tmp_path, monkeypatch):
    import gzip

    from agent.sources import base

    monkeypatch.setattr(base, "MAX_BODY_BYTES", 1_000_000)
    bomb = gzip.compress(b" " * 5_000_000)  # 5 KB on the wire, 5 MB unpacked
    servers.arxiv.respond(200, content=bomb, headers={"Content-Encoding": "gzip"})
    result = invoke("fetch", "arxiv:cs.LG", "-o", "out.jsonl")
    assert result.exit_code == 2
    assert "arxiv:cs.LG: arxiv.test sent more than 1 MB" in result.stderr
    assert "no new papers" not in result.stderr


def test_a_mirror_url_keeps_its_own_query(servers, tmp_path):
    result = invoke(
        "fetch", "arxiv:cs.LG", "-o", "out.jsonl", PAPER_AGENT_ARXIV_API_URL=f"{ARXIV}?key=k1"
    )
    assert result.exit_code == 0, result.output
    sent = servers.arxiv.calls.last.request.url
    assert sent.params["key"] == "k1" and "cat:cs.LG" in sent.params["search_query"]
