"""Text no UTF-8 can hold, a key echoed back, a wall of characters, a broken webhook: each
costs at most its own paper, and never a traceback or the results already written."""

from __future__ import annotations

import json

import httpx
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.llm.cache import cache_dir
from tests.llm import API_KEY, BASE_URL, answer, completion

LONE = "\ud800"  # a lone surrogate: a str in Python, but not encodable as UTF-8


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def write_papers(path, titles: list[str]) -> str:
    rows = [
        {"id": f"p{i}", "title": t, "abstract": f"We propose method {i}. It works well."}
        for i, t in enumerate(titles)
    ]
    # json.dumps escapes the surrogate as \ud800, exactly as a hostile source would send it.
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def run_against(isolated_env, content: str, *flags: str):
    """``run`` on one paper against an LLM whose every answer's content is ``content``."""
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL}
    with respx.mock(base_url=BASE_URL) as router:
        router.post("/chat/completions").mock(
            return_value=httpx.Response(200, json=completion(content))
        )
        return invoke("run", papers, "-o", "out.jsonl", *flags, env=env)


def cached_bytes(isolated_env) -> bytes:
    """Everything the answer cache holds on disk."""
    files = cache_dir(isolated_env / "home").rglob("*")
    return b"".join(f.read_bytes() for f in files if f.is_file())


def test_a_lone_surrogate_in_an_input_costs_nothing(isolated_env):
    good = write_papers(isolated_env / "good.jsonl", ["One", "Two", "Three"])
    assert invoke("run", good, "--backend", "local", "-o", "out.jsonl").exit_code == 0
    bad = write_papers(isolated_env / "bad.jsonl", ["One", f"Bad {LONE} title", "Two", "Three"])
    result = invoke("run", bad, "--backend", "local", "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    lines = (isolated_env / "out.jsonl").read_text(encoding="utf-8").split("\n")
    rows = [json.loads(line) for line in lines if line]
    assert [r["error"] for r in rows] == [None] * 4
    assert rows[1]["title"] == "Bad \ufffd title"


def test_an_llm_answer_with_a_lone_surrogate_is_cached_and_written(isolated_env, sleeps):
    content = json.dumps({"tags": ["LLMs"], "summary": f"It {LONE} works."})
    result = run_against(isolated_env, content)
    assert result.exit_code == 0, result.output
    row = json.loads((isolated_env / "out.jsonl").read_text(encoding="utf-8"))
    assert row["summary"] == "It \ufffd works."


def test_an_echoed_api_key_never_reaches_results_cache_or_digest(isolated_env, sleeps):
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL}
    echo = answer(["LLMs"], f"The key is {API_KEY.upper()} indeed.")  # in any case
    with respx.mock(base_url=BASE_URL) as router:
        router.post("/chat/completions").mock(return_value=echo)
        result = invoke("run", papers, "-o", "out.jsonl", "--digest", "markdown", env=env)
    assert result.exit_code == 0, result.output
    written = (isolated_env / "out.jsonl").read_text(encoding="utf-8")
    assert "The key is [redacted] indeed." in written
    stored = cached_bytes(isolated_env)
    assert b"[redacted]" in stored and API_KEY.lower().encode() not in stored.lower()
    assert API_KEY.lower() not in (result.output + written).lower()


def test_a_summary_that_is_a_wall_of_characters_is_reasked_then_clipped(isolated_env, sleeps):
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL}
    wall = answer(["LLMs"], "x" * 50_000)  # one "word": the word limit alone would pass it
    with respx.mock(base_url=BASE_URL) as router:
        route = router.post("/chat/completions").mock(return_value=wall)
        result = invoke("run", papers, "-o", "out.jsonl", env=env)
    assert result.exit_code == 0, result.output
    assert route.call_count == 3  # asked, then re-asked with the limit, then clipped
    repair = json.loads(route.calls[1].request.content)["messages"][-1]["content"]
    assert "the summary has 50000 characters; the limit is 480" in repair
    row = json.loads((isolated_env / "out.jsonl").read_text(encoding="utf-8"))
    assert len(row["summary"]) <= 40 * 12 and row["summary"].endswith("…")


def test_a_malformed_webhook_in_the_environment_is_one_line_only_when_used(isolated_env):
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    env = {"SLACK_WEBHOOK_URL": "http://[::1/services/T0/B0/SECRETPATH"}
    result = invoke("run", papers, "--backend", "local", "-o", "out.jsonl", env=env)
    assert result.exit_code == 0, result.output  # not posting: nothing to complain about
    posted = invoke("run", papers, "--backend", "local", "-o", "o2.jsonl", "--post-slack", env=env)
    assert posted.exit_code == 2
    assert posted.stderr.strip() == (
        "paper-agent: error: the Slack webhook must be an http(s) URL (value not shown)"
    )
    bad_port = invoke("post", "out.jsonl", "--slack-webhook", "http://127.0.0.1:99999/s/X")
    assert bad_port.exit_code == 2 and "must be an http(s) URL" in bad_port.stderr
    assert "SECRETPATH" not in result.output + posted.output


def test_line_separators_inside_fields_keep_the_results_file_readable(isolated_env):
    row = {
        "id": "a",
        "title": "T\u2028x",
        "abstract": "We propose A.\x85 It works.",
        "note": "x\u2029y",
    }
    (isolated_env / "p.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n", "utf-8")
    result = invoke("run", "p.jsonl", "--backend", "local", "-o", "r.jsonl", "--digest", "markdown")
    assert result.exit_code == 0, result.output
    assert invoke("digest", "r.jsonl").exit_code == 0
    assert invoke("eval", "r.jsonl").exit_code == 0


def copy_prompts(tmp_path):
    import shutil
    from pathlib import Path

    target = tmp_path / "prompts"
    shutil.copytree(Path(__file__).resolve().parents[1] / "prompts", target)
    return target


def test_a_binary_template_is_one_line(isolated_env):
    prompts = copy_prompts(isolated_env)
    (prompts / "system.j2").write_bytes(b"\xff\xfe\x00binary")
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    args = ["run", papers, "--dry-run", "--prompts-dir", str(prompts), "--base-url", BASE_URL]
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"paper-agent: error: prompt template system.j2 in {prompts} is not UTF-8 text"
    )


def test_a_template_cannot_reach_the_environment(isolated_env, monkeypatch):
    monkeypatch.setenv("PAPER_AGENT_PROBE", "visible-to-python-only")
    prompts = copy_prompts(isolated_env)
    with (prompts / "user.j2").open("a", encoding="utf-8") as fh:
        fh.write("{{ cycler.__init__.__globals__.os.environ }}\n")
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    args = ["run", papers, "--dry-run", "--prompts-dir", str(prompts), "--base-url", BASE_URL]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "not allowed" in result.stderr and "visible-to-python-only" not in result.output


def test_deep_nesting_and_huge_fields_are_one_line_or_read(isolated_env):
    (isolated_env / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (isolated_env / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    for args in (
        ["run", "deep.json", "--backend", "local", "-o", "x.jsonl"],
        ["digest", "deep.jsonl"],
        ["eval", "deep.jsonl"],
    ):
        result = invoke(*args)
        assert result.exit_code == 2 and "nested too deeply" in result.stderr, args
    abstract = "We propose a method for long inputs. " * 5_000  # 185,000 characters
    (isolated_env / "big.csv").write_text(f'title,abstract\nBig,"{abstract}"\n')
    assert invoke("run", "big.csv", "--backend", "local", "-o", "x.jsonl").exit_code == 0


def test_absurd_counts_are_usage_errors(isolated_env):
    huge = "9" * 25
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    for args in (
        ["run", papers, "--backend", "local", "--limit", huge],
        ["seen", "list", "--limit", huge],
    ):
        result = invoke(*args)
        assert result.exit_code == 2 and "--limit" in result.stderr, args
    result = invoke("fetch", "arxiv:cs.LG", "--since", "99999999999999d")
    assert result.exit_code == 2 and "at most 3660 days" in result.stderr


def test_an_address_with_a_line_break_never_becomes_a_header(isolated_env):
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    assert invoke("run", papers, "--backend", "local", "-o", "r.jsonl").exit_code == 0
    for flags in (
        ["--email", "a@b.c\r\nBcc: x@y"],
        ["--email", "a@b.c", "--email-from", "me\nBcc: z@q"],
    ):
        result = invoke("post", "r.jsonl", *flags, "--dry-run")
        assert result.exit_code == 2 and "is not one email address" in result.stderr, flags
        assert "Bcc:" not in result.stdout


def test_a_hand_edited_relevance_must_be_a_score(isolated_env):
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    assert invoke("run", papers, "--backend", "local", "-o", "r.jsonl").exit_code == 0
    row = (isolated_env / "r.jsonl").read_text().strip()
    for value in ("NaN", "Infinity", "11", "-1"):
        (isolated_env / "n.jsonl").write_text(row[:-1] + f', "relevance": {value}}}\n')
        result = invoke("digest", "n.jsonl")
        assert result.exit_code == 2 and "n.jsonl:1: relevance:" in result.stderr, value


def test_a_key_echoed_as_json_escapes_is_redacted_once_decoded(isolated_env, sleeps):
    escaped = "".join(f"\\u{ord(c):04x}" for c in API_KEY)  # no byte of the key in clear
    content = '{"tags": ["LLMs"], "summary": "It works, key ' + escaped + '."}'
    result = run_against(isolated_env, content)
    assert result.exit_code == 0, result.output
    written = (isolated_env / "out.jsonl").read_text(encoding="utf-8")
    assert API_KEY not in written and "key [redacted]." in written
    assert API_KEY.encode() not in cached_bytes(isolated_env)


def test_an_api_key_with_a_pasted_quote_is_one_line(isolated_env):
    papers = write_papers(isolated_env / "p.jsonl", ["One"])
    env = {"OPENAI_API_KEY": "test-key-123\u2019", "OPENAI_BASE_URL": BASE_URL}
    result = invoke("run", papers, "-o", "out.jsonl", env=env)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "paper-agent: error: OPENAI_API_KEY holds a character no API key has (a pasted quote "
        "or control character?); set it again"
    )


def test_odd_usage_figures_cost_neither_the_answer_nor_the_limit(isolated_env, sleeps):
    papers = write_papers(isolated_env / "p.jsonl", ["One", "Two", "Three"])
    body = completion({"tags": ["LLMs"], "summary": "It works."})
    body["usage"] = {"prompt_tokens": -100_000_000, "completion_tokens": "many"}
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL}
    with respx.mock(base_url=BASE_URL) as router:
        router.post("/chat/completions").mock(return_value=httpx.Response(200, json=body))
        result = invoke("run", papers, "-o", "out.jsonl", env=env)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (isolated_env / "out.jsonl").read_text().splitlines()]
    assert all(r["error"] is None and r["usage"]["prompt_tokens"] >= 0 for r in rows)
