"""The defect check flags what a reader sees is wrong, and nothing in a clean sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.eval import eval_cmd
from agent.defects import defects, has_defects


def kinds(summary: str) -> set[str]:
    """The kinds of defect found, without their details."""
    return {found.split(":", 1)[0] for found in defects(summary)}


# Each from issue 10 (the bundled sample on main) or from the offline backend's SciTLDR output,
# placed in an otherwise clean sentence: the one defect is all that is flagged.
FLAGGED = [
    ("We compare adapters including LoRA,^3, and prompt tuning.", "markup"),
    ("We derive Transfer Q^*, which bounds the regret.", "markup"),
    ("The estimate depends on rho_{BL} only.", "markup"),
    ("It yields a 5\\% improvement on GSM8K.", "markup"),
    ("We build a Q\\&A architecture for clinical notes.", "markup"),
    ("We calibrate the model's ``confidence'' on unseen tasks.", "markup"),
    ("The loss decays as $x^2$ near the optimum.", "markup"),
    ("We follow prior work~\\cite{smith2020} on pruning.", "markup"),
    ("We adapt \\textbf{spectral} methods to graphs.", "markup"),
    ("We report Q&amp;A accuracy on five benchmarks.", "markup"),
    ("Following this motivation, we design a sparse attention kernel.", "dangling opening"),
    ("In response to this gap, we release a benchmark of 500 tasks.", "dangling opening"),
    ("Yet, as we demonstrate, scaling alone does not close the gap.", "dangling opening"),
    ("Then we propose a two-stage training recipe.", "dangling opening"),
    ("However, the method fails on long documents.", "dangling opening"),
    ("And ranking losses in retrieval, we introduce a listwise objective.", "dangling opening"),
    ("By contrast, humans learn from a few examples.", "dangling opening"),
    ("To compensate, prior systems offload the optimizer state.", "dangling opening"),
    ("In light of this, our study revisits the causes of collapse.", "dangling opening"),
    ("This framework improves recall by 12% on BEIR.", "dangling reference"),
    ("We extend these techniques to video generation.", "dangling reference"),
    ("We propose BAM, a simple yet effective method that addresses this shortcoming.",
     "dangling reference"),
    ("We treat this challenge as a segmentation problem.", "dangling reference"),
    ("We investigate whether such pruned models transfer to new tasks.", "dangling reference"),
    ("We introduce two principal techniques.", "dangling reference"),
    ("we propose a sparse attention kernel for long inputs.", "lowercase start"),
    ("We present a method for binary (+1/- and ternary weights.", "brackets"),
    ("We present a method for binary weights) and ternary ones.", "brackets"),
    ("We compress the cache to four bits per token but.", "cut ending"),
    ("We study the robustness of.", "cut ending"),
    ("We propose a new optimizer and.", "cut ending"),
    ("We propose a sparse attention kernel for long inputs", "cut ending"),
    ("We propose a sparse attention kernel,.", "cut ending"),
    ("We propose a new optimizer and. It converges faster than Adam.", "cut ending"),
    ("Quantization, and stability challenges, we develop block-wise dynamic quantization.",
     "cut start"),
    ("We design and implement.", "cut ending"),
    ("We dedicate this perspective paper to the discussion of the following aspects.",
     "cut ending"),
    # Issue 16, item 10: each seen in the offline backend's arXiv dev or SciTLDR output.
    ("I.e., the query likelihood model, we seek to utilize LLMs' generative ability.",
     "dangling opening"),
    ("E.g., sorting networks, we derive tighter bounds.", "dangling opening"),
    ("We introduce Double.", "bare name"),
    ("We introduce Double. It drafts and verifies tokens in parallel.", "bare name"),
    ("This research systematically reviews 52 articles from 2022-2024, with important findings.",
     "cut ending"),
    ("A lightweight module models global interactions with O cost.", "lost math"),
    ("We show there exists some N in O, such that N hidden units suffice.", "lost math"),
    ("Large Language Models have revo lutionized natural language processing.", "split word"),
    ("We introduce Grasp Any Region for comprehen- sive region-level understanding.",
     "split word"),
]  # fmt: skip

CLEAN = [
    "We propose BAM, a simple yet effective method that removes the need for labelled data.",
    "Fine-tuning with (IA)^3 matches full fine-tuning at 0.01% of the parameters.",
    "word2vec embeddings still help low-resource tagging.",
    "k-means clustering of activations reveals three regimes: (i) memorisation, (ii) "
    "generalisation and (iii) collapse.",
    "The method works in two steps: i) retrieve candidates, ii) rerank them.",
    "mBERT transfers across 40 languages without parallel data.",
    "In this paper, we propose a graph transformer for molecules.",
    "This paper proposes two methods of biasing agents towards coordinated behaviour.",
    "Besides improving accuracy, the method halves inference cost.",
    "In contrast to prior work, we train on unlabeled video.",
    "Instead of aligning distributions, we reweight the source samples.",
    "SO(3)-equivariant networks learn rotation-invariant features.",
    "Next-generation sequencing reads are denoised with a diffusion model.",
    "We propose FLUX, a framework for retrieval. This framework reduces latency by 40%.",
    "We study neural networks for multi-instance learning and show that these models are "
    "universal approximators.",
    "Training costs $5 per hour and $10 per day at most.",
    "We release the dataset that the model was trained on.",
    "Code is available at https://github.com/example/flux.",
    "Our method improves top-1 accuracy by 3.2% (from 71.0 to 74.2) on ImageNet.",
    "We show that GPT-4 solves most tasks, e.g. sorting and parsing, without tools.",
    "We compare against Smith et al. The results hold across five seeds.",
    'Do transformers need attention? We find that "mixing" layers suffice.',
    "Our approach outperforms such baselines as BM25 and DPR.",
    "A 7B model trained on 2T tokens matches a 70B one on code [1].",
    "Workers send gradient signs to the server. We show that this algorithm converges.",
    "In this extended abstract, we sketch a proof of convergence.",
    "For generator classes such as mixtures of Gaussians, we prove a sample bound.",
    "The system we design and implement halves the memory of training.",
    "We design and implement a checkpointing engine for LLM training.",
    "The steps are as follows: retrieve, rerank and answer.",
    "A lightweight module models global interactions in O(N log N) time.",
    "The true I(X;T) over deep networks is either constant or infinite.",
    "I/O costs dominate, so we batch writes.",
    "We introduce Double, a speculative decoding scheme that needs no training.",
    "We introduce Double (Double Retrieval Speculative Parallelism).",
    "We report several findings on pruning and show that they transfer to new tasks.",
    "This review of 52 articles reports that closed models dominate persona work.",
    "Time stamps and speed ups are logged for every chat bot reply.",
    "We study multilingual models, e.g., mBERT, on ten tasks.",
    "We propose pre- and post-processing steps for noisy scans.",
]


@pytest.mark.parametrize(("summary", "kind"), FLAGGED)
def test_issue_examples_are_flagged(summary: str, kind: str) -> None:
    assert kinds(summary) == {kind}, defects(summary)
    assert has_defects(summary)


@pytest.mark.parametrize("summary", CLEAN)
def test_clean_sentences_pass(summary: str) -> None:
    assert defects(summary) == []
    assert not has_defects(summary)


def test_each_defect_is_named_with_what_was_found() -> None:
    found = defects("however, we gain 5\\% (on average")
    assert found == [
        "markup: TeX escape '\\\\%'",
        "brackets: '(' never closed",
        "dangling opening: 'however'",
        "lowercase start: 'however'",
        "cut ending: no final punctuation after 'gain 5\\\\% (on average'",
    ]


def test_blank_summary() -> None:
    assert defects("  ") == ["empty: no summary"]


def results_file(tmp_path: Path) -> Path:
    """Four results: two clean summaries, one with a defect, one errored, one empty."""
    rows = [
        {"id": "1", "title": "a", "tags": [], "summary": "We propose a sparse attention kernel."},
        {"id": "2", "title": "b", "tags": [], "summary": "However, it yields a 5\\% gain."},
        {"id": "3", "title": "c", "tags": [], "summary": "We release a benchmark of 500 tasks."},
        {"id": "4", "title": "d", "tags": [], "summary": "", "error": {"kind": "x"}},
        {"id": "5", "title": "e", "tags": [], "summary": ""},
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_reports_defects_with_gold(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "1", "tldrs": ["A sparse attention kernel."]}) + "\n")
    out = CliRunner().invoke(eval_cmd, [str(results_file(tmp_path)), "--gold", str(gold)])
    assert out.exit_code == 0, out.output
    # Every result with a summary is read, in the gold or not.
    assert out.output.splitlines()[-1] == "summaries with visible defects: 1 of 3 (33.3%)"
    as_json = CliRunner().invoke(
        eval_cmd, [str(results_file(tmp_path)), "--gold", str(gold), "--json"]
    )
    assert json.loads(as_json.output)["defects"] == {
        "summaries": 3,
        "with_defects": 1,
        "percent": 33.3,
        "kinds": {"dangling opening": 1, "markup": 1},
        "papers": {"2": ["markup: TeX escape '\\\\%'", "dangling opening: 'However'"]},
    }


def test_eval_without_gold_counts_defects_only(tmp_path: Path) -> None:
    results = str(results_file(tmp_path))
    out = CliRunner().invoke(eval_cmd, [results])
    assert out.exit_code == 0, out.output
    assert out.output == "summaries with visible defects: 1 of 3 (33.3%)\n"
    as_json = json.loads(CliRunner().invoke(eval_cmd, [results, "--json"]).output)
    assert as_json["defects"]["with_defects"] == 1
    refused = CliRunner().invoke(eval_cmd, [results, "--relevance"])
    assert refused.exit_code == 2 and "--relevance needs --gold" in refused.output
