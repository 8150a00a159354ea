"""--highlights: one validated, cached LLM call that opens the digest."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from tests.llm import API_KEY, BASE_URL, completion, sent_json

BULLETS = [
    "TokenFormer scales a transformer by adding parameter tokens instead of retraining.",
    "Several papers push <!channel> agents toward longer tool use.",
    "A diffusion model edits video & keeps identity.",
]


def reply(bullets: list[str]) -> httpx.Response:
    return httpx.Response(200, json=completion({"highlights": bullets}))


@pytest.fixture
def results_file(fixtures):
    return fixtures / "digest" / "results.jsonl"


@pytest.fixture
def mocked_llm(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


def digest(*args: str):
    return CliRunner().invoke(cli, ["digest", *args, "--date", "2026-11-27"])


def test_highlights_open_the_digest_and_are_cached(mocked_llm, results_file):
    route = mocked_llm.post("/chat/completions").mock(return_value=reply(BULLETS))
    first = digest(str(results_file), "--format", "markdown", "--highlights")
    assert first.exit_code == 0, first.output
    assert "**What stood out today**" in first.stdout
    assert "- TokenFormer scales a transformer" in first.stdout
    body = sent_json(route.calls.last)
    assert body["response_format"]["json_schema"]["name"] == "digest_highlights"
    user = body["messages"][-1]["content"]
    assert user.startswith("<papers>") and user.endswith("</papers>")
    second = digest(str(results_file), "--format", "markdown", "--highlights")
    assert second.stdout == first.stdout
    assert route.call_count == 1


def test_highlights_are_escaped_in_slack(mocked_llm, results_file):
    mocked_llm.post("/chat/completions").mock(return_value=reply(BULLETS))
    result = digest(str(results_file), "--format", "slack", "--highlights")
    assert result.exit_code == 0
    blocks = json.loads(result.stdout)[0]["blocks"]
    text = next(
        b["text"]["text"] for b in blocks if "stood out" in b.get("text", {}).get("text", "")
    )
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "video &amp; keeps" in text


def test_wrong_number_of_bullets_is_re_asked(mocked_llm, results_file):
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=[reply(BULLETS[:2]), reply(BULLETS)]
    )
    result = digest(str(results_file), "--format", "markdown", "--highlights")
    assert result.exit_code == 0
    assert route.call_count == 2
    assert "exactly 3" in sent_json(route.calls[1])["messages"][-1]["content"]


def test_failed_highlights_still_give_the_digest(mocked_llm, results_file, caplog):
    refusal = completion(None, refusal="I can't help with that.")
    mocked_llm.post("/chat/completions").respond(200, json=refusal)
    result = digest(str(results_file), "--format", "markdown", "--highlights")
    assert result.exit_code == 0
    assert "What stood out" not in result.stdout
    assert "## " in result.stdout
    assert "no highlights today: the model refused" in caplog.text


def test_highlights_need_an_llm(results_file):
    result = digest(str(results_file), "--highlights")
    assert result.exit_code == 2
    assert "--highlights needs an LLM" in result.stderr


def test_run_with_highlights_opens_its_digest(mocked_llm, fixtures, tmp_path):
    def by_schema(request: httpx.Request) -> httpx.Response:
        schema = json.loads(request.content)["response_format"]["json_schema"]["name"]
        if schema == "digest_highlights":
            return reply(BULLETS)
        return httpx.Response(200, json=completion({"tags": ["LLMs"], "summary": "Short."}))

    route = mocked_llm.post("/chat/completions").mock(side_effect=by_schema)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(fixtures / "papers.jsonl"),
            "-o",
            "out.jsonl",
            "--digest",
            "markdown",
            "--highlights",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert route.call_count == 6  # five papers, one highlights call
    assert "**What stood out today**" in result.stdout
    assert "5 ok, 0 failed; 6 requests" in result.stderr  # the summary counts the highlights


def test_unreachable_llm_still_gives_the_digest(mocked_llm, results_file, caplog, sleeps):
    route = mocked_llm.post("/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    result = digest(str(results_file), "--format", "markdown", "--highlights")
    assert result.exit_code == 0
    # Retried with backoff, every wait recorded instead of slept.
    assert route.call_count > 1 and len(sleeps) == route.call_count - 1
    assert "## " in result.stdout and "What stood out" not in result.stdout
    assert "no highlights today: cannot reach the LLM server" in caplog.text


async def test_highlights_that_would_pass_the_runs_budget_are_not_asked(
    mocked_llm, results_file, caplog, tmp_path
):
    from agent.config import Settings
    from agent.highlights import write_highlights
    from agent.llm.cost import Budget, Price
    from agent.models import PaperResult

    route = mocked_llm.post("/chat/completions").mock(return_value=reply(["a.", "b.", "c."]))
    settings = Settings(
        backend="openai", base_url=BASE_URL, api_key=API_KEY, home=tmp_path / "home"
    )
    lines = results_file.read_text().splitlines()
    results = [PaperResult.model_validate(json.loads(line)) for line in lines]
    spent = Budget(0.01, Price(input=1000, cached_input=1000, output=1000))  # $1 per 1k tokens
    assert await write_highlights(results, settings, budget=spent) == []
    assert route.call_count == 0
    assert "no highlights today: not run: the next request would pass --max-cost" in caplog.text
    roomy = Budget(100.0, Price(input=1000, cached_input=1000, output=1000))
    assert await write_highlights(results, settings, budget=roomy) == ["a.", "b.", "c."]
    assert route.call_count == 1
