"""``paper-agent run`` end to end through click, with the LLM mocked by respx."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from tests.llm import API_KEY, BASE_URL, answer, error


@pytest.fixture
def papers_file(fixtures, tmp_path):
    """Five real arXiv papers as JSONL."""
    path = tmp_path / "papers.jsonl"
    path.write_text((fixtures / "papers.jsonl").read_text())
    return path


@pytest.fixture
def llm_env(monkeypatch, sleeps):
    """An API key and base URL in the environment, and instant retries."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)


@pytest.fixture
def mocked_llm(llm_env):
    """A strict respx router for the LLM endpoint."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_results_and_a_rerun_is_served_from_the_cache(mocked_llm, papers_file):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs", "Agents"]))
    first = invoke("run", str(papers_file), "-o", "out.jsonl")
    assert first.exit_code == 0, first.output
    assert route.call_count == 5
    before = rows(papers_file.parent / "out.jsonl")
    assert [r["id"] for r in before] == [
        json.loads(line)["id"] for line in papers_file.read_text().splitlines()
    ]
    assert all(r["tags"] == ["LLMs", "Agents"] and not r["cached"] for r in before)
    assert "5 ok, 0 failed; 5 requests" in first.stderr

    second = invoke("run", str(papers_file), "-o", "out.jsonl")
    assert second.exit_code == 0
    assert route.call_count == 5  # zero new requests
    after = rows(papers_file.parent / "out.jsonl")
    assert all(r["cached"] for r in after)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("cached", "usage")}  # noqa: E731
    assert [strip(r) for r in after] == [strip(r) for r in before]
    assert "0 requests" in second.stderr and "5 cache hits" in second.stderr


def test_no_cache_asks_again(mocked_llm, papers_file):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    invoke("run", str(papers_file), "-o", "out.jsonl")
    invoke("run", str(papers_file), "-o", "out.jsonl", "--no-cache")
    assert route.call_count == 10


def test_a_failing_paper_gives_exit_1_and_an_error_record(mocked_llm, papers_file):
    first_title = json.loads(papers_file.read_text().splitlines()[0])["title"]

    def by_paper(request):
        body = request.content.decode()
        return error(500, "server error") if first_title[:30] in body else answer(["LLMs"])

    mocked_llm.post("/chat/completions").mock(side_effect=by_paper)
    result = invoke("run", str(papers_file), "-o", "out.jsonl")
    assert result.exit_code == 1
    out = rows(papers_file.parent / "out.jsonl")
    assert out[0]["error"]["type"] == "server_error"
    assert all(r["error"] is None for r in out[1:])


def test_401_stops_the_run_after_one_request(mocked_llm, papers_file):
    route = mocked_llm.post("/chat/completions").mock(
        return_value=error(401, f"Incorrect API key provided: {API_KEY}", "invalid_api_key")
    )
    result = invoke("run", str(papers_file), "-o", "out.jsonl", "--concurrency", "1")
    assert result.exit_code == 2
    assert route.call_count == 1
    assert result.stderr.count("\n") <= 2 and "Traceback" not in result.stderr
    assert "rejected the API key (401)" in result.stderr
    assert API_KEY not in result.output + result.stderr


def test_dry_run_calls_nothing(mocked_llm, papers_file):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    result = invoke("run", str(papers_file), "--dry-run")
    assert result.exit_code == 0
    assert route.call_count == 0
    assert "<paper>" in result.stdout
    assert "5 papers: 5 requests" in result.stdout and "Nothing was sent" in result.stdout


def test_limit_and_stdin(mocked_llm, papers_file):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    result = invoke("run", "-", "-o", "out.jsonl", "--limit", "2", input=papers_file.read_text())
    assert result.exit_code == 0, result.stderr
    assert route.call_count == 2
    out = rows(papers_file.parent / "out.jsonl")
    assert len(out) == 2
    assert {r["source"] for r in out} == {"stdin"}


def test_duplicates_are_processed_once_and_reported(mocked_llm, papers_file):
    text = papers_file.read_text()
    papers_file.write_text(text + text.splitlines()[0] + "\n")
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    result = invoke("run", str(papers_file), "-o", "out.jsonl")
    assert route.call_count == 5
    assert "skipped 1 duplicate(s)" in result.stderr


def test_a_broken_line_is_reported_and_the_rest_run_with_exit_1(mocked_llm, papers_file):
    lines = papers_file.read_text().splitlines()
    papers_file.write_text("\n".join([*lines[:2], '{"title": "cut off', *lines[2:]]) + "\n")
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    result = invoke("run", str(papers_file), "-o", "out.jsonl")
    assert result.exit_code == 1, result.output
    assert route.call_count == 5
    written = rows(papers_file.parent / "out.jsonl")
    assert [r["id"] for r in written] == [json.loads(line)["id"] for line in lines]
    assert all(r["error"] is None for r in written)
    said = [line for line in result.stderr.splitlines() if "unreadable" in line]
    assert said[0] == (
        f"paper-agent: skipped an unreadable record: {papers_file} line 3: invalid JSON: "
        "Unterminated string starting at (column 11)"
    )
    assert "5 ok, 0 failed, 1 unreadable input record(s);" in said[1]
    assert len(said) == 2


def test_batch_export_skips_a_broken_line_with_exit_1(llm_env, papers_file):
    lines = papers_file.read_text().splitlines()
    papers_file.write_text("\n".join(["nonsense", *lines]) + "\n")
    result = invoke("batch", "export", str(papers_file), "-o", "requests.jsonl")
    assert result.exit_code == 1, result.output
    assert f"skipped an unreadable record: {papers_file} line 1: invalid JSON" in result.stderr
    sent = (papers_file.parent / "requests.jsonl").read_text().splitlines()
    assert len(sent) == 5


def test_openai_backend_without_key_is_a_clear_error(papers_file):
    result = invoke("run", str(papers_file), "--backend", "openai")
    assert result.exit_code == 2
    assert "needs OPENAI_API_KEY" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), ("", "empty")],
)
def test_missing_or_empty_input_is_exit_2(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    result = invoke("run", str(path))
    assert result.exit_code == 2
    assert message in result.stderr.lower() and "Traceback" not in result.stderr


def test_bad_taxonomy_is_exit_2(mocked_llm, papers_file, tmp_path):
    bad = tmp_path / "tax.toml"
    bad.write_text("[[tags]]\nname = 'x'\n")
    result = invoke("run", str(papers_file), "--taxonomy", str(bad))
    assert result.exit_code == 2
    assert "tags.0.description" in result.stderr


def test_secret_never_reaches_results_cache_or_output(mocked_llm, papers_file, tmp_path, caplog):
    caplog.set_level("DEBUG")
    mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    result = invoke("-vv", "run", str(papers_file), "-o", "out.jsonl")
    assert result.exit_code == 0
    assert API_KEY not in result.output + result.stderr
    assert "chat/completions" in caplog.text  # the logs were captured, and hold no key
    assert API_KEY not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_cassette_replay_of_a_run_on_sample_papers(llm_env, fixtures, tmp_path, monkeypatch):
    """Replays cassettes/run_hf_sample.json: the recorded exchanges of a real run."""
    from tests.replay import load_cassette, replay

    interactions = load_cassette("run_hf_sample")
    base_url = interactions[0]["request"]["url"].rsplit("/chat/completions", 1)[0]
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    with respx.mock(assert_all_called=True) as router:
        replay(router, interactions)
        result = invoke(
            "run",
            str(fixtures / "hf-daily-papers-page.txt"),
            "--limit",
            "3",
            "-o",
            "out.jsonl",
            "--concurrency",
            "3",
        )
    assert result.exit_code == 0, result.stderr
    out = rows(tmp_path / "out.jsonl")
    assert len(out) == 3
    assert out[0]["title"].startswith("TokenFormer")
    assert all(r["tags"] and r["summary"] for r in out)


def test_run_renders_and_posts_the_digest(mocked_llm, papers_file, tmp_path, monkeypatch):
    hook = "https://hooks.example.test/services/T000/B000/secret"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook)
    mocked_llm.post("/chat/completions").mock(return_value=answer(["Agents"]))
    slack = mocked_llm.post(hook).respond(200, text="ok")
    result = invoke(
        "run",
        str(papers_file),
        "-o",
        "out.jsonl",
        "--digest",
        "markdown",
        "--digest-out",
        "digest.md",
        "--post-slack",
    )
    assert result.exit_code == 0, result.stderr
    digest = (tmp_path / "digest.md").read_text()
    assert "## Agents (5)" in digest
    assert slack.call_count == 1
    assert json.loads(slack.calls.last.request.content)["blocks"]
    assert hook not in result.output + result.stderr


def test_readme_main_command_runs_offline_on_the_bundled_sample(tmp_path):
    """The README's first command: no key, no network, the bundled sample, then a digest."""
    from pathlib import Path

    sample = Path(__file__).parent.parent / "examples" / "hf-daily-papers-sample.txt"
    with respx.mock():  # strict: any network request would fail the run
        result = invoke("run", str(sample), "-o", "results.jsonl")
        assert result.exit_code == 0, result.stderr
        assert "using the offline backend" in result.stderr
        out = rows(tmp_path / "results.jsonl")
        assert len(out) == 202
        assert {r["backend"] for r in out} == {"local"}
        assert all(1 <= len(r["tags"]) <= 3 and r["summary"] for r in out)
        assert all(len(r["summary"].split()) <= 40 for r in out)
        digest = invoke("digest", "results.jsonl", "--format", "markdown", "-o", "digest.md")
        assert digest.exit_code == 0
    assert (tmp_path / "digest.md").read_text().count("\n### ") == 202


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            error(404, "The model `gpt-nope` does not exist", "model_not_found"),
            "model 'gpt-nope' not found",
        ),
        (httpx.ConnectError("connection refused"), "cannot reach the LLM server"),
    ],
)
def test_unknown_model_or_unreachable_server_is_exit_2(mocked_llm, papers_file, response, message):
    if isinstance(response, Exception):
        mocked_llm.post("/chat/completions").mock(side_effect=response)
    else:
        mocked_llm.post("/chat/completions").mock(return_value=response)
    result = invoke("run", str(papers_file), "--model", "gpt-nope", "--concurrency", "1")
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cache_info_and_clear(mocked_llm, papers_file):
    mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    invoke("run", str(papers_file), "-o", "out.jsonl")
    assert "answers: 5" in invoke("cache", "info").stdout
    assert "removed 5 cached answer(s)" in invoke("cache", "clear", "--yes").stdout
    assert "answers: 0" in invoke("cache", "info").stdout


def test_unwritable_output_is_exit_2_before_any_request(mocked_llm, papers_file, tmp_path):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("run", str(papers_file), "-o", str(blocker / "out.jsonl"))
    assert result.exit_code == 2
    assert "cannot write results to" in result.stderr
    assert route.call_count == 0


def test_digest_out_in_a_missing_directory_is_refused_before_any_request(mocked_llm, papers_file):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(["LLMs"]))
    result = invoke(
        "run", str(papers_file), "--digest", "markdown", "--digest-out", "nowhere/digest.md"
    )
    assert result.exit_code == 2
    assert "no such directory" in result.stderr
    assert route.call_count == 0


def test_an_internal_error_is_one_line_not_a_traceback(papers_file, monkeypatch):
    from agent import runner

    def broken(*args, **kwargs):
        raise RuntimeError("something we did not expect")

    monkeypatch.setattr(runner, "open_inputs", broken)
    result = invoke("run", str(papers_file))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "paper-agent: internal error: RuntimeError: something we did not expect (-vv shows where)"
    )


def test_a_failed_post_from_run_says_how_to_resume(mocked_llm, papers_file, monkeypatch):
    hook = "https://hooks.example.test/services/T000/B000/secret"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook)
    mocked_llm.post("/chat/completions").mock(return_value=answer(["Agents"]))
    mocked_llm.post(hook).respond(400, text="invalid_blocks")
    result = invoke("run", str(papers_file), "-o", "out.jsonl", "--post-slack")
    assert result.exit_code == 1
    assert "invalid_blocks" in result.stderr
    assert "Run paper-agent post out.jsonl to send only those" in result.stderr
    assert hook not in result.stderr


def test_a_rerun_of_run_post_slack_sends_only_what_was_not_delivered(fixtures, sleeps, monkeypatch):
    hook = "https://hooks.example.test/services/T000/B000/secret"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook)
    # Eighty papers make a digest of several Slack messages (about 24 papers fit in one).
    page = str(fixtures / "hf-daily-papers-page.txt")
    command = [
        "run",
        page,
        "--backend",
        "local",
        "--limit",
        "80",
        "-o",
        "out.jsonl",
        "--post-slack",
        "--full",  # every paper, in numbered messages: a partial post is possible
    ]
    with respx.mock(assert_all_called=False) as router:
        slack = router.post(hook)
        slack.side_effect = [
            httpx.Response(200, text="ok"),
            httpx.Response(200, text="ok"),
            httpx.Response(400, text="invalid_blocks"),
        ]
        first = invoke(*command)
        assert first.exit_code == 1
        texts = [json.loads(call.request.content)["text"] for call in slack.calls]
        total = int(texts[0].rsplit("/", 1)[1].rstrip(")"))
        assert total >= 4 and len(texts) == 3
        assert "Delivered: 1, 2. Not delivered: 3, " in first.stderr

        slack.side_effect = None
        slack.reset()
        slack.respond(200, text="ok")
        second = invoke(*command)
        assert second.exit_code == 0, second.stderr
        resent = [json.loads(call.request.content)["text"] for call in slack.calls]
        assert resent[0] == texts[2]  # the same digest, resumed where it stopped
        assert [t.rsplit("(", 1)[1] for t in resent] == [
            f"{n}/{total})" for n in range(3, total + 1)
        ]

        slack.reset()
        third = invoke(*command)
        assert third.exit_code == 0, third.stderr
        assert slack.call_count == 0  # everything was delivered: nothing is sent twice
    assert hook not in first.stderr + second.stderr + third.stderr


def test_dry_run_prints_no_secret(tmp_path, monkeypatch, fixtures):
    secret = "-".join(["sk", "proj", "DRYRUN0123456789abcdef"])  # fake, built at run time
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    result = invoke(
        "run",
        str(fixtures / "papers.jsonl"),
        "--dry-run",
        "--base-url",
        f"http://user:{secret}@127.0.0.1:9/v1",
    )
    assert result.exit_code == 0, result.output
    assert "Nothing was sent" in result.output
    assert secret not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--max-tags", "0", "papers.jsonl"], "Invalid value for '--max-tags'"),
        (["run", "--no-such-flag"], "No such option '--no-such-flag'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_a_usage_error_is_one_line_with_where_to_find_help(isolated_env, args, message):
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("paper-agent: error: ") and message in lines[0]
    assert lines[0].endswith("--help')")


def test_the_bare_command_still_shows_its_help(isolated_env):
    done = subprocess.run([sys.executable, "-m", "agent"], capture_output=True, text=True)
    assert done.stdout.startswith("Usage: ") or done.stderr.startswith("Usage: ")
    assert "Commands:" in done.stdout + done.stderr


@pytest.mark.parametrize("command", [["run", "papers.jsonl"], ["digest", "papers.jsonl"]])
def test_an_empty_output_path_is_a_usage_error_and_writes_nothing(isolated_env, command):
    (isolated_env / "sub").mkdir()
    before = sorted(p.name for p in isolated_env.iterdir())
    result = CliRunner().invoke(cli, [*command, "-o", ""])
    assert result.exit_code == 2
    assert "give a file path, not an empty string" in result.stderr
    assert sorted(p.name for p in isolated_env.iterdir()) == before


def test_a_webhook_flag_is_secret_even_in_a_usage_error(isolated_env):
    webhook = "https://hooks.example.com/services/T/B/" + "SeCrEt" + "Token123"
    done = subprocess.run(
        [sys.executable, "-m", "agent", "post", "r.jsonl", "--slack-webhook", webhook, webhook],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Token123" not in done.stderr + done.stdout and "[redacted]" in done.stderr


def test_the_missing_key_is_named_by_the_variable_the_config_chose(isolated_env):
    (isolated_env / "k.toml").write_text('api_key_env = "MY_KEY"\nbackend = "openai"\n')
    (isolated_env / "p.jsonl").write_text('{"id": "a", "title": "T", "abstract": "A."}\n')
    result = CliRunner().invoke(cli, ["run", "p.jsonl", "--config", "k.toml"])
    assert result.exit_code == 2 and "needs MY_KEY" in result.stderr


# Issue 16, items 16 and 18: what an offline run says on stderr.
def test_an_offline_run_says_a_short_summary_and_its_notice_once_per_state_dir(
    papers_file, tmp_path, monkeypatch
):
    first = invoke("run", str(papers_file), "-o", "out.jsonl")
    assert first.exit_code == 0, first.stderr
    assert "using the offline backend" in first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("paper-agent: 5 ok, 0 failed (offline); ")
    assert last.endswith("s -> out.jsonl")
    assert "requests" not in first.stderr and "tokens" not in first.stderr

    again = invoke("run", str(papers_file), "-o", "out.jsonl")  # the next cron run
    assert again.exit_code == 0, again.stderr
    assert "offline backend" not in again.stderr
    assert "5 ok, 0 failed (offline)" in again.stderr

    monkeypatch.setenv("PAPER_AGENT_HOME", str(tmp_path / "another-home"))
    fresh = invoke("run", str(papers_file), "-o", "out.jsonl")
    assert "using the offline backend" in fresh.stderr


def test_papers_per_request_with_the_offline_backend_says_it_does_not_apply(papers_file):
    result = invoke(
        "run",
        str(papers_file),
        "-o",
        "out.jsonl",
        "--backend",
        "local",
        "--papers-per-request",
        "5",
    )
    assert result.exit_code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "--papers-per-request" in line]
    assert said == [
        "paper-agent: --papers-per-request does not apply to the offline backend (it sends no "
        "requests): ignored"
    ]
    # Chosen explicitly, the offline backend needs no notice why.
    assert "using the offline backend" not in result.stderr
    assert "--papers-per-request" not in invoke("run", str(papers_file), "-o", "o.jsonl").stderr
