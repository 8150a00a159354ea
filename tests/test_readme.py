"""Every ``paper-agent`` command the README shows runs as written (offline: the LLM, Slack and
SMTP it would talk to are mocked or real local stand-ins), so the README cannot drift."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from tests.feeds import atom, paper, rss
from tests.llm import answer
from tests.smtp import PASSWORD

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
FAKE_WEBHOOK = "https://hooks.example.test/services/readme-test"


def shell_lines(kind: str = "sh") -> list[str]:
    """The README's ``kind`` blocks as logical lines (continuations joined, comments dropped)."""
    text = README.read_text(encoding="utf-8")
    lines: list[str] = []
    for block in re.findall(rf"```{kind}\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def paper_agent_commands() -> list[str]:
    """Every line that runs paper-agent (the set-up lines are CI's: .ci/run runs those)."""
    return [
        line
        for line in shell_lines()
        if "paper-agent" in line and "pip install" not in line and not line.startswith("export")
    ]


def reply(request: httpx.Request) -> httpx.Response:
    """A valid answer for any structured request: the first tag its schema allows."""
    body = json.loads(request.content)
    fmt = body.get("response_format", {})
    schema = fmt.get("json_schema", {}).get("schema", {})
    if "highlights" in schema.get("properties", {}):
        return httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "message": {"content": json.dumps({"highlights": ["a.", "b.", "c."]})},
                        "finish_reason": "stop",
                    }
                ]
            },
        )
    if "answers" in schema.get("properties", {}):  # --papers-per-request: one entry per id
        item = schema["properties"]["answers"]["items"]
        tag = item["properties"]["tags"]["items"]["enum"][0]
        ids = re.findall(r'<paper id="([^"]*)">', body["messages"][-1]["content"])
        entries = [{"id": pid, "tags": [tag], "summary": "It works."} for pid in ids]
        return httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "message": {"content": json.dumps({"answers": entries})},
                        "finish_reason": "stop",
                    }
                ]
            },
        )
    return answer([schema["properties"]["tags"]["items"]["enum"][0]])


def fake_run_batch(words: list[str], where: Path) -> None:
    """What ``vllm run-batch -i IN -o OUT`` writes: a completion per request line, any order."""
    source = where / words[words.index("-i") + 1]
    lines = []
    for line in reversed(source.read_text(encoding="utf-8").splitlines()):
        request = json.loads(line)
        response = reply(httpx.Request("POST", request["url"], json=request["body"]))
        body = {"status_code": 200, "request_id": "r", "body": json.loads(response.content)}
        lines.append(
            {"id": "b", "custom_id": request["custom_id"], "response": body, "error": None}
        )
    target = where / words[words.index("-o") + 1]
    target.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory laid out as a checkout: its examples, tests and benchmarks, and a
    cassettes/ of its own (recording must not touch ours). Nothing else: a file a command
    reads must be in the checkout or written by an earlier command, as for a reader."""
    for name in ("examples", "tests", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "cassettes").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


# What a command names as a file, by its suffix; what follows these is written, not read.
FILE_SUFFIXES = {".jsonl", ".json", ".txt", ".toml", ".csv", ".yml", ".yaml", ".md", ".html"}
OUTPUT_FLAGS = {"-o", "--digest-out", ">"}


def missing_inputs(words: list[str]) -> list[str]:
    """The files ``words`` read that do not exist (yet) in the working directory."""
    return [
        word
        for before, word in zip(["", *words], words, strict=False)
        if before not in OUTPUT_FLAGS
        and not re.match(r"^[A-Z_]+=", word)  # an environment variable for the command
        and "://" not in word
        and Path(word).suffix in FILE_SUFFIXES
        and not Path(word).exists()
    ]


def mock_sources(router: respx.MockRouter, papers: list[dict[str, str]]) -> None:
    """arXiv's API and RSS feed, Hugging Face's API and Zotero's, at their default addresses."""
    router.get(url__startswith="https://export.arxiv.org/api/query").respond(
        200, text=atom(papers), headers={"content-type": "application/atom+xml"}
    )
    router.get(url__startswith="https://rss.arxiv.org/rss/").respond(
        200, text=rss(papers), headers={"content-type": "application/rss+xml"}
    )
    item = json.loads((ROOT / "tests" / "fixtures" / "hf-daily-papers-api-item.json").read_text())
    router.get(url__startswith="https://huggingface.co/api/daily_papers").respond(
        200, json=item if isinstance(item, list) else [item]
    )
    # A Zotero collection's one page of top-level items (the README's --liked zotero:...).
    zotero = json.loads(
        (ROOT / "tests" / "fixtures" / "refs" / "zotero" / "page-1.json").read_text()
    )
    router.get(url__startswith="https://api.zotero.org/").respond(200, json=zotero["body"])


def run_line(line: str, env: dict[str, str], tmp: Path) -> None:
    """Run one README line: ``&&``-joined paper-agent commands, env prefixes, a pipe from cat
    and a redirect to a file, each through the real CLI (``cd`` and log redirects are cron's)."""
    line = re.sub(r"\s*>>\s*\S+\s+2>&1\s*$", "", line)
    for part in line.split("&&"):
        words = shlex.split(part.replace("$(mktemp -d)", str(tmp / "mktemp")))
        if words[0] == "cd":
            continue
        if words[0] == "python":  # a benchmark script: its own --help must know these flags
            shown = subprocess.run(
                [sys.executable, str(ROOT / words[1]), "--help"], capture_output=True, text=True
            )
            assert shown.returncode == 0, shown.stderr
            for flag in (w for w in words[2:] if w.startswith("--")):
                assert flag in shown.stdout, f"{words[1]} has no {flag}"
            continue
        missing = ", ".join(missing_inputs(words))
        assert not missing, f"{part.strip()}: no {missing} in the checkout or from a command above"
        stdin = None
        if words[0] == "cat":
            stdin = Path(words[1]).read_bytes()
            words = words[words.index("|") + 1 :]
        local_env = dict(env)
        while "=" in words[0] and not words[0].startswith("-"):
            name, value = words.pop(0).split("=", 1)
            local_env[name] = value
        target = None
        if ">" in words:
            target = Path(words[words.index(">") + 1])
            words = words[: words.index(">")]
        assert words[0].endswith("paper-agent"), part
        result = CliRunner().invoke(cli, words[1:], env=local_env, input=stdin)
        assert result.exit_code == 0, f"{part}\n{result.stderr}\n{result.exception!r}"
        if target is not None:
            target.write_bytes(result.stdout_bytes)


def test_the_readme_shows_commands_at_all() -> None:
    commands = paper_agent_commands()
    assert len(commands) >= 15
    assert any("--post-slack" in c for c in commands)


def test_every_readme_command_runs_as_written(workdir: Path, smtp_server) -> None:
    env: dict[str, str] = {"PAPER_AGENT_HOME": str(workdir / "home")}
    lines = shell_lines()
    with respx.mock(assert_all_called=False) as router:
        router.post(url__regex=r"/v1/chat/completions$").mock(side_effect=reply)
        slack = router.post(FAKE_WEBHOOK).respond(200, text="ok")
        mock_sources(router, [paper(n) for n in range(1, 4)])
        for line in lines:
            if "pip install" in line:
                continue  # .ci/run runs the two set-up lines themselves
            if line.startswith("export "):
                name, value = line.removeprefix("export ").split("=", 1)
                if name == "SLACK_WEBHOOK_URL":
                    value = FAKE_WEBHOOK
                env[name] = value
                continue
            if line.startswith("vllm run-batch"):
                fake_run_batch(shlex.split(line), workdir)
                continue
            if "paper-agent" not in line and not line.startswith("python"):
                continue
            # The one stand-in: a real local SMTP server (without TLS) for the README's host.
            inbox, port = smtp_server
            line = line.replace("smtp.example.org:587", f"127.0.0.1:{port}")
            env["SMTP_PASSWORD"] = PASSWORD
            run_line(line.replace(" --starttls", ""), env, workdir)
        assert slack.call_count >= 1
    assert inbox.envelopes
    assert (workdir / "results.jsonl").read_text().count("\n") >= 1
    assert json.loads((workdir / "cassettes" / "run_hf_sample.json").read_text())["interactions"]


def cron_lines() -> tuple[dict[str, str], list[str]]:
    """The README's crontab: its environment lines, and each job's command."""
    env: dict[str, str] = {}
    commands: list[str] = []
    for line in shell_lines("crontab"):
        if re.match(r"^[A-Z_]+=", line):
            name, value = line.split("=", 1)
            env[name] = value
        else:
            commands.append(line.split(None, 5)[5])  # after minute hour day month weekday
    return env, commands


def workflow_commands() -> list[str]:
    """The paper-agent commands the example GitHub Actions workflow runs."""
    text = (ROOT / "examples" / "daily-digest.yml").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("paper-agent")]


@pytest.mark.parametrize("where", ["crontab", "workflow"])
def test_the_daily_job_runs_as_written_and_twice_is_once(workdir: Path, where: str) -> None:
    """The cron line and the CI workflow, against mock arXiv, LLM and Slack: the first run
    annotates and posts today's papers; the next run has nothing new and posts nothing."""
    if where == "crontab":
        env, commands = cron_lines()
    else:
        env, commands = {"OPENAI_API_KEY": "sk-..."}, workflow_commands()
    runs = [c for c in commands if "paper-agent run" in c]
    assert runs and all("--source arxiv:" in c and "--post-slack" in c for c in runs)
    env = {**env, "PAPER_AGENT_HOME": str(workdir / "state"), "SLACK_WEBHOOK_URL": FAKE_WEBHOOK}
    with respx.mock(assert_all_called=False) as router:
        llm = router.post(url__regex=r"/v1/chat/completions$").mock(side_effect=reply)
        slack = router.post(FAKE_WEBHOOK).respond(200, text="ok")
        mock_sources(router, [paper(n) for n in range(1, 6)])
        for command in commands:
            run_line(command, env, workdir)
        first = (llm.call_count, slack.call_count)
        assert first[0] == 5 and first[1] >= 1
        assert (workdir / "results.jsonl").read_text().count("\n") == 5
        for command in commands:
            run_line(command, env, workdir)
        assert (llm.call_count, slack.call_count) == first  # nothing twice
    assert (workdir / "results.jsonl").read_text() == ""  # a quiet day: an empty results file
    if where == "workflow":  # the archive site it publishes
        assert (workdir / ".paper-agent" / "site" / "index.html").is_file()


def test_the_readme_describes_the_bundled_sample_as_it_is() -> None:
    """Its size, and that it has no links, ids or authors (not one day's papers either)."""
    from agent.sources.files import read_papers

    text = " ".join(README.read_text(encoding="utf-8").split())
    said = re.search(
        r"`examples/hf-daily-papers-sample\.txt` is the titles and abstracts of (\d+) papers", text
    )
    assert said, "the README says what the bundled sample is"
    sample = list(read_papers([str(ROOT / "examples" / "hf-daily-papers-sample.txt")]))
    assert len(sample) == int(said.group(1))
    assert "it has no links, ids or authors" in text and "It is not one day's papers" in text
    assert not any(p.url or p.authors for p in sample)
