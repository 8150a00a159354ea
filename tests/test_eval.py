"""paper-agent eval: metrics on tiny hand-computed cases, input errors, and the CLI."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.eval import eval_cmd
from agent.errors import InputError
from agent.eval import Gold, Prediction, evaluate, evaluate_files, rouge_scores, tag_scores

FIXTURES = Path(__file__).parent / "fixtures"


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write rows as JSONL and return the path."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_tag_metrics_by_hand() -> None:
    # paper 1: predicted a, b; gold a       -> tp a, fp b
    # paper 2: predicted c;    gold b, c    -> tp c, fn b
    scores = tag_scores([(["a", "b"], ["a"]), (["c"], ["b", "c"])])
    assert scores["precision_at_1"] == 1.0
    assert scores["micro_precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert scores["micro_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert scores["micro_f1"] == pytest.approx(2 / 3, abs=1e-4)
    # per label: a = (1, 1, 1), b = (0, 0, 0), c = (1, 1, 1)
    assert scores["macro_f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert scores["labels"] == 3


def test_precision_at_one_uses_the_top_tag_only() -> None:
    scores = tag_scores([(["x", "a"], ["a"]), ([], ["a"]), (["A"], ["a"])])
    assert scores["precision_at_1"] == pytest.approx(1 / 3, abs=1e-4)  # case-insensitive hit


def test_rouge_by_hand() -> None:
    # unigrams: 2 of 4 shared -> F1 0.5; bigrams: 1 of 3 shared -> F1 1/3; LCS "cat dog" -> 0.5
    scores = rouge_scores([("cat dog fish bird", ["cat dog tree rock"])])
    assert scores == {"rouge1": 50.0, "rouge2": 33.33, "rougeL": 50.0, "papers": 1}


def test_rouge_takes_the_best_reference_by_rouge1() -> None:
    scores = rouge_scores([("the cat sat", ["a dog ran far", "the cat sat"])])
    assert scores["rouge1"] == 100.0
    assert rouge_scores([("", ["anything"])])["rouge1"] == 0.0


def test_errored_count_as_empty_missing_are_left_out() -> None:
    gold = {
        "1": Gold(["we propose a cache"], ["a"]),
        "2": Gold(["we study robots"], ["b"]),
        "3": Gold(["never run"], ["c"]),
    }
    results = {
        "1": Prediction(["a"], "we propose a cache"),
        "2": Prediction(["b"], "we study robots", errored=True),
        "9": Prediction(["z"], "not in gold"),
    }
    report = evaluate(results, gold)
    assert (report.matched, report.missing, report.errored, report.extra) == (2, 1, 1, 1)
    assert report.summary is not None and report.summary["rouge1"] == 50.0
    assert report.tags is not None and report.tags["precision_at_1"] == 0.5


def test_gold_formats(tmp_path: Path) -> None:
    gold = write_jsonl(
        tmp_path / "gold.jsonl",
        [
            {"paper_id": "p1", "tldrs": ["we propose a cache"], "categories": ["cs.LG"]},
            {"id": "p2", "summary": "we study robots", "tags": ["Robotics"]},
        ],
    )
    results = write_jsonl(
        tmp_path / "results.jsonl",
        [
            {"id": "p1", "tags": ["cs.LG"], "summary": "we propose a cache", "error": None},
            {"id": "p2", "tags": ["Vision"], "summary": "we study robots", "error": None},
        ],
    )
    report = evaluate_files(results, gold)
    assert report.summary is not None and report.summary["rouge1"] == 100.0
    assert report.tags is not None and report.tags["precision_at_1"] == 0.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ('{"id": "1"}\nnot json\n', ":2: invalid JSON"),
        ('["a list"]\n', ":1: expected a JSON object"),
        ('{"title": "no id"}\n', ":1: no 'id'"),
        ('{"id": "1", "tags": "a", "summary": 5}\n', "'summary' must be a string"),
    ],
)
def test_bad_results_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(content, encoding="utf-8")
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"id": "1", "tags": ["a"]}])
    with pytest.raises(InputError, match=message):
        evaluate_files(path, gold)


def test_no_overlap_is_an_error(tmp_path: Path) -> None:
    results = write_jsonl(tmp_path / "r.jsonl", [{"id": "1", "tags": ["a"], "summary": "x"}])
    gold = write_jsonl(tmp_path / "g.jsonl", [{"id": "2", "tags": ["a"]}])
    with pytest.raises(InputError, match="no result id matches"):
        evaluate_files(results, gold)


def _scitldr_results(tmp_path: Path) -> Path:
    """Results whose summaries are each paper's first TLDR (a perfect score)."""
    rows = [json.loads(line) for line in (FIXTURES / "eval-scitldr-gold.jsonl").open()]
    out = [
        {"id": r["paper_id"], "title": r["title"], "tags": [], "summary": r["tldrs"][0]}
        for r in rows
    ]
    return write_jsonl(tmp_path / "results.jsonl", out)


def test_cli_table_and_json(tmp_path: Path) -> None:
    results = _scitldr_results(tmp_path)
    gold = FIXTURES / "eval-scitldr-gold.jsonl"
    runner = CliRunner()
    table = runner.invoke(eval_cmd, [str(results), "--gold", str(gold)])
    assert table.exit_code == 0, table.output
    assert table.output == (
        "metric                  value\n"
        "papers matched              8\n"
        "papers missing              0\n"
        "papers errored              0\n"
        "results not in gold         0\n"
        "summary papers              8\n"
        "ROUGE-1 F1 x100        100.00\n"
        "ROUGE-2 F1 x100        100.00\n"
        "ROUGE-L F1 x100        100.00\n"
        "summaries with visible defects: 0 of 8 (0.0%)\n"
    )
    as_json = runner.invoke(eval_cmd, [str(results), "--gold", str(gold), "--json"])
    data = json.loads(as_json.output)
    assert data["summary"]["rouge1"] == 100.0 and data["matched"] == 8 and data["tags"] is None


def test_cli_bad_input_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import main

    gold = FIXTURES / "eval-scitldr-gold.jsonl"
    monkeypatch.setattr(sys, "argv", ["paper-agent", "eval", "missing.jsonl", "--gold", str(gold)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "paper-agent: error: file not found: missing.jsonl"


# Gold never reaches the prompt (issue 16 item 8).

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "path", [ROOT / "examples" / "arxiv-categories-dev.jsonl", FIXTURES / "arxiv-sample.jsonl"]
)
def test_the_labelled_arxiv_sets_keep_their_gold_where_no_prompt_reads_it(path: Path) -> None:
    from agent.eval import load_gold
    from agent.llm.prompts import PromptBuilder
    from agent.sources.files import read_papers
    from agent.taxonomy import load_taxonomy

    gold = load_gold(path)
    assert gold and all(g.tags for g in gold.values())  # eval still reads the labels
    taxonomy = load_taxonomy(ROOT / "examples" / "taxonomies" / "arxiv.toml")
    prompts = PromptBuilder(taxonomy, max_tags=3, summary_words=40)
    papers = list(read_papers([str(path)]))
    assert len(papers) == len(gold)
    for paper in papers:
        assert paper.categories == []
        assert "Categories:" not in prompts.messages(paper)[1]["content"]


def run_llm(tmp_path: Path, rows: list[dict[str, object]]) -> tuple[Path, list[str]]:
    """``paper-agent run`` over ``rows`` against a mocked LLM: the results and the prompts."""
    import httpx
    import respx

    from agent.cli import cli
    from tests.llm import API_KEY, BASE_URL, answer

    papers = write_jsonl(tmp_path / "papers.jsonl", rows)
    prompts: list[str] = []

    def reply(request: httpx.Request) -> httpx.Response:
        prompts.append(json.loads(request.content)["messages"][1]["content"])
        return answer(["cs.CV"], "A new detector finds small objects in aerial images.")

    taxonomy = ROOT / "examples" / "taxonomies" / "arxiv.toml"
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": BASE_URL}
    with respx.mock(base_url=BASE_URL) as router:
        router.post("/chat/completions").mock(side_effect=reply)
        args = ["run", str(papers), "--taxonomy", str(taxonomy), "-o", str(tmp_path / "r.jsonl")]
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return tmp_path / "r.jsonl", prompts


PAPER_ROW = {"id": "2401.00001", "title": "Small objects from above", "abstract": "We detect."}


def test_eval_refuses_results_whose_prompt_showed_the_gold(tmp_path: Path) -> None:
    from agent.cli import cli

    gold = write_jsonl(tmp_path / "gold.jsonl", [{**PAPER_ROW, "categories": ["cs.CV"]}])
    results, prompts = run_llm(tmp_path, [{**PAPER_ROW, "categories": ["cs.CV"]}])
    assert "Categories: cs.CV" in prompts[0]  # the model was shown the answer
    refused = CliRunner().invoke(cli, ["eval", str(results), "--gold", str(gold)])
    assert refused.exit_code == 2
    line = refused.stderr.strip()
    assert "\n" not in line and "showed the model the gold tags of 1 of these papers" in line
    assert refused.stdout == ""  # no scores


def test_eval_scores_results_whose_gold_stayed_in_tags(tmp_path: Path) -> None:
    from agent.cli import cli

    row = {**PAPER_ROW, "tags": ["cs.CV"]}
    gold = write_jsonl(tmp_path / "gold.jsonl", [row])
    results, prompts = run_llm(tmp_path, [row])
    assert "cs.CV" not in prompts[0]
    scored = CliRunner().invoke(cli, ["eval", str(results), "--gold", str(gold)])
    assert scored.exit_code == 0, scored.output
    assert re.search(r"^precision@1 +1\.000$", scored.stdout, re.MULTILINE)


def test_categories_the_prompt_showed_are_fine_when_they_are_not_the_gold() -> None:
    """arXiv's categories beside a topic taxonomy's gold: the model saw no answer."""
    results = {"p": Prediction(["LLMs"], "", shown=("cs.CL", "cs.LG"))}
    report = evaluate(results, {"p": Gold([], ["LLMs"])})
    assert report.tags is not None and report.tags["precision_at_1"] == 1.0
    with pytest.raises(InputError, match="gold tags of 1 of these papers"):
        evaluate(results, {"p": Gold([], ["cs.lg"])})
