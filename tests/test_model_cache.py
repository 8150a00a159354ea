"""Learned tag models are stored in the state dir, keyed by examples and code, and reused."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agent.backends.local import LocalBackend, model_cache
from agent.backends.local.learned import ExampleModel
from agent.backends.local.model_cache import cached_model, model_key, models_dir
from agent.backends.local.tagger import paper_terms
from agent.models import Paper
from agent.taxonomy import Tag, Taxonomy

PAPERS = [
    ("Image segmentation with transformers", "We segment images with a vision transformer.", "cv"),
    ("Object detection in video", "A detector for objects in video frames and images.", "cv"),
    ("Pixel-level image models", "Vision models that label every pixel of images.", "cv"),
    ("Machine translation at scale", "We translate text between languages with a model.", "cl"),
    ("Question answering over text", "A language model answers questions about text.", "cl"),
    ("Dialogue with language models", "Text dialogue agents built on a language model.", "cl"),
]


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A small labelled JSONL file."""
    path = tmp_path / "examples.jsonl"
    rows = [{"title": t, "abstract": a, "tags": [tag]} for t, a, tag in PAPERS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def taxonomy(examples: Path) -> Taxonomy:
    """Two tags with examples."""
    return Taxonomy(
        tags=[
            Tag(name="cv", description="Computer vision: images and video."),
            Tag(name="cl", description="Language: text, translation and dialogue."),
        ],
        examples=examples,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The state dir the cache writes to."""
    return tmp_path / "home"


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many examples each training run saw: one entry per model actually trained."""
    seen: list[int] = []
    original = ExampleModel.__init__

    def counting(self: ExampleModel, examples: list, n_tags: int) -> None:
        seen.append(len(examples))
        original(self, examples, n_tags)

    monkeypatch.setattr(ExampleModel, "__init__", counting)
    return seen


def stored(home: Path) -> list[Path]:
    return sorted(models_dir(home).iterdir())


def probe() -> Counter[str]:
    return paper_terms("Video object tracking", "We track objects across video frames.")


def test_second_load_reads_the_stored_model(
    taxonomy: Taxonomy, home: Path, trainings: list[int]
) -> None:
    first = cached_model(taxonomy, home)
    second = cached_model(taxonomy, home)
    assert trainings == [6]  # trained once, read back once
    assert [p.name for p in stored(home)] == [
        f"{model_key(taxonomy.examples.read_bytes(), taxonomy)}.npz"
    ]
    assert first is not None and second is not None
    assert second.probabilities(probe()) == pytest.approx(first.probabilities(probe()), abs=1e-9)
    assert second.vocab == first.vocab and second.idf == pytest.approx(first.idf)


def test_backend_uses_the_state_dir(
    taxonomy: Taxonomy, monkeypatch: pytest.MonkeyPatch, home: Path, trainings: list[int]
) -> None:
    monkeypatch.setenv("PAPER_AGENT_HOME", str(home))
    paper = Paper(id="1", title="Video object tracking", abstract="We track objects in video.")
    first = LocalBackend(taxonomy).annotate_sync(paper)
    second = LocalBackend(taxonomy).annotate_sync(paper)
    assert first == second
    assert trainings == [6]
    assert len(stored(home)) == 1


def test_key_follows_content_tags_and_version(
    taxonomy: Taxonomy, examples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = examples.read_bytes()
    key = model_key(data, taxonomy)
    copy = tmp_path / "elsewhere.jsonl"
    copy.write_bytes(data)
    # The content counts, not the path.
    assert model_key(copy.read_bytes(), taxonomy.model_copy(update={"examples": copy})) == key
    assert model_key(data + b"\n", taxonomy) != key
    renamed = taxonomy.model_copy(
        update={"tags": [taxonomy.tags[0], Tag(name="nlp", description="Language.")]}
    )
    assert model_key(data, renamed) != key
    aliased = taxonomy.model_copy(
        update={"tags": [taxonomy.tags[0], taxonomy.tags[1].model_copy(update={"aliases": ["x"]})]}
    )
    assert model_key(data, aliased) != key
    monkeypatch.setattr(model_cache, "MODEL_VERSION", model_cache.MODEL_VERSION + 1)
    assert model_key(data, taxonomy) != key
    monkeypatch.undo()
    monkeypatch.setattr(model_cache.learned, "EPOCHS", 10)
    assert model_key(data, taxonomy) != key


def test_edited_examples_retrain(
    taxonomy: Taxonomy, examples: Path, home: Path, trainings: list[int]
) -> None:
    cached_model(taxonomy, home)
    with examples.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"title": "Text corpora", "abstract": "Text.", "tags": ["cl"]}) + "\n")
    cached_model(taxonomy, home)
    cached_model(taxonomy, home)
    assert trainings == [6, 7]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"not a zip file"), id="garbage"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:200]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
    ],
)
def test_damaged_file_is_a_miss(
    taxonomy: Taxonomy, home: Path, trainings: list[int], caplog: pytest.LogCaptureFixture, damage
) -> None:
    good = cached_model(taxonomy, home)
    [path] = stored(home)
    damage(path)
    with caplog.at_level(logging.WARNING):
        again = cached_model(taxonomy, home)
    assert "training it again" in caplog.text and path.name in caplog.text
    assert trainings == [6, 6]
    assert again is not None and good is not None
    assert again.probabilities(probe()) == pytest.approx(good.probabilities(probe()))
    assert cached_model(taxonomy, home) is not None  # rewritten: read back, no third training
    assert trainings == [6, 6]


def rewrite(path: Path, **changes: np.ndarray) -> None:
    """Replace some arrays of a stored model, keeping the rest."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(changes)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def header(**fields: object) -> np.ndarray:
    return np.frombuffer(json.dumps(fields).encode(), dtype=np.uint8)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda key: {"header": header(format=1, key="0" * 64, terms=0, tags=2)}, "key differs"),
        (lambda key: {"header": header(format=99, key=key)}, "another format"),
        (lambda key: {"bias": np.zeros(3)}, "shapes"),
        (lambda key: {"idf": np.full(1, np.nan)}, "shapes"),
        (lambda key: {"bias": np.array([np.inf, 0.0])}, "non-finite"),
        (lambda key: {"terms": np.array([{"a": 1}], dtype=object)}, "unreadable"),
    ],
)
def test_mismatched_file_is_a_miss(
    taxonomy: Taxonomy,
    home: Path,
    trainings: list[int],
    caplog: pytest.LogCaptureFixture,
    change,
    reason: str,
) -> None:
    cached_model(taxonomy, home)
    [path] = stored(home)
    rewrite(path, **change(path.stem))
    with caplog.at_level(logging.WARNING):
        assert cached_model(taxonomy, home) is not None
    assert reason in caplog.text
    assert trainings == [6, 6]
    cached_model(taxonomy, home)
    assert trainings == [6, 6]  # the retrained model replaced the bad file


def test_unwritable_state_dir_still_gives_a_model(
    taxonomy: Taxonomy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    home.write_text("a file where the state dir should be")
    with caplog.at_level(logging.WARNING):
        assert cached_model(taxonomy, home) is not None
    assert "cannot store the tag model" in caplog.text


def test_failed_write_leaves_nothing_behind(
    taxonomy: Taxonomy, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    assert cached_model(taxonomy, home) is not None
    assert stored(home) == []  # neither a half-written model nor a temp file


def test_no_examples_no_model(taxonomy: Taxonomy, examples: Path, home: Path) -> None:
    assert cached_model(taxonomy.model_copy(update={"examples": None}), home) is None
    examples.write_text(json.dumps({"title": "t", "abstract": "a", "tags": ["other"]}) + "\n")
    assert cached_model(taxonomy, home) is None
    assert not models_dir(home).exists()
