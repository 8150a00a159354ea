"""Interests through the LLM backend and the run: relevance and why in the schema, the prompt's
static prefix and the results; liked papers combined with the model's answer; the config."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from tests.llm import API_KEY, BASE_URL, completion, sent_json

CRITERIA = ["Reinforcement learning: agents that learn from rewards", "Agents: LLM agents"]


def answer(relevance: int | None = 7, why: str = "Reinforcement learning") -> httpx.Response:
    body = {"tags": ["LLMs"], "summary": "It works."}
    if relevance is not None:
        body |= {"relevance": relevance, "why": why}
    return httpx.Response(200, json=completion(body))


def invoke(*args: str):
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def papers(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text(
        json.dumps({"id": "2401.00001", "title": "Reward shaping for agents", "abstract": "RL."})
        + "\n"
        + json.dumps({"id": "2401.00002", "title": "Protein folding", "abstract": "Biology."})
        + "\n"
    )
    return path


@pytest.fixture
def mocked_llm():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


def test_relevance_and_why_join_the_one_structured_answer(mocked_llm, papers, tmp_path):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer())
    args = ["run", str(papers), "-o", "out.jsonl", "--concurrency", "1"]
    result = invoke(*args, *[a for c in CRITERIA for a in ("--interest", c)])
    assert result.exit_code == 0, result.stderr
    assert route.call_count == 2  # one request per paper, as without interests
    body = sent_json(route.calls[0])
    schema = body["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == {"tags", "summary", "relevance", "why"}
    assert schema["properties"]["relevance"] == {"type": "integer", "minimum": 0, "maximum": 10}
    system = body["messages"][0]["content"]
    assert "## Relevance" in system and "- Agents: LLM agents" in system
    # The criteria are in the static prefix: both papers share the whole system message.
    assert sent_json(route.calls[1])["messages"][0]["content"] == system
    out = rows(tmp_path / "out.jsonl")
    assert [(r["relevance"], r["why"]) for r in out] == [(7.0, "Reinforcement learning")] * 2


def test_an_answer_without_relevance_is_asked_again(mocked_llm, papers, tmp_path):
    route = mocked_llm.post("/chat/completions").mock(
        side_effect=[answer(relevance=None), answer(3, "")]
    )
    result = invoke("run", str(papers), "--limit", "1", "-o", "out.jsonl", "--interest", "RL")
    assert result.exit_code == 0, result.stderr
    assert route.call_count == 2
    assert "relevance" in sent_json(route.calls[1])["messages"][-1]["content"]
    assert rows(tmp_path / "out.jsonl")[0]["relevance"] == 3.0


def test_liked_papers_raise_the_models_answer(mocked_llm, papers, tmp_path):
    liked = tmp_path / "liked.jsonl"
    liked.write_text(
        json.dumps({"title": "Reward shaping for agents", "abstract": "RL with shaped rewards."})
        + "\n"
    )
    mocked_llm.post("/chat/completions").mock(return_value=answer(2, "weak"))
    args = ["run", str(papers), "-o", "out.jsonl", "--interest", "RL", "--liked", str(liked)]
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    near, far = rows(tmp_path / "out.jsonl")
    assert near["relevance"] > far["relevance"] >= 2.0  # never pushed below the model's answer
    assert "Reward shaping" in near["why"]


def test_without_interests_results_have_no_relevance_fields(mocked_llm, papers, tmp_path):
    route = mocked_llm.post("/chat/completions").mock(return_value=answer(None))
    assert invoke("run", str(papers), "-o", "out.jsonl").exit_code == 0
    assert "relevance" not in json.dumps(sent_json(route.calls[0])["response_format"])
    assert all("relevance" not in r for r in rows(tmp_path / "out.jsonl"))


def test_interests_and_filters_come_from_the_config_file(tmp_path, papers):
    (tmp_path / "paper-agent.toml").write_text(
        'backend = "local"\n'
        "[interests]\n"
        'criteria = ["Reinforcement learning: rewards", {name = "Bio", text = "protein folding"}]\n'
        "min_relevance = 0\n"
        "[filters]\n"
        'exclude = ["biology"]\n'
    )
    result = CliRunner().invoke(cli, ["run", str(papers), "-o", "out.jsonl"])
    assert result.exit_code == 0, result.stderr
    assert "1 of 2 papers kept (1 excluded)" in result.stderr
    (row,) = rows(tmp_path / "out.jsonl")
    assert set(row["relevance_by"]) == {"Reinforcement learning", "Bio"}


def test_a_bad_interests_section_is_one_line(tmp_path, papers):
    (tmp_path / "paper-agent.toml").write_text("[interests]\nmin_relevance = 11\n")
    result = CliRunner().invoke(cli, ["run", str(papers)])
    assert result.exit_code == 2
    assert "interests.min_relevance" in result.stderr and "\n" not in result.stderr.strip()


def test_digest_takes_the_same_llm_settings_as_run(tmp_path, papers):
    """`digest --highlights --base-url URL --model M`: the flags reach the highlights call."""
    assert CliRunner().invoke(cli, ["run", str(papers), "--backend", "local"]).exit_code == 0
    bullets = {"highlights": ["One.", "Two.", "Three."]}
    with respx.mock(assert_all_called=False) as router:
        route = router.post("http://other.test/v1/chat/completions").mock(
            return_value=httpx.Response(200, json=completion(bullets))
        )
        result = CliRunner().invoke(
            cli,
            [
                "digest",
                "results.jsonl",
                "--highlights",
                "--base-url",
                "http://other.test/v1",
                "--model",
                "m-digest",
            ],
        )
    assert result.exit_code == 0, result.stderr
    assert route.call_count == 1 and sent_json(route.calls[0])["model"] == "m-digest"
    assert "Three." in result.stdout


def test_digest_min_relevance_comes_from_the_flag_or_the_config(tmp_path, papers):
    args = ["run", str(papers), "--backend", "local", "--interest", "Reinforcement learning"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    shown = CliRunner().invoke(cli, ["digest", "results.jsonl", "--min-relevance", "9.9"])
    assert shown.exit_code == 0 and "below relevance 9.9 not shown" in shown.stdout
