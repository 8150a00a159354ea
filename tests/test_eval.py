"""paper-agent eval: metrics on tiny hand-computed cases, input errors, and the CLI."""

from __future__ import annotations

import json
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
