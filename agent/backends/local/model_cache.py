"""Learned tag models kept in the state dir, so a taxonomy with ``examples`` trains once.

A model is stored as ``<state dir>/models/<key>.npz``: plain numpy arrays (vocabulary, idf,
weights, bias) and a JSON header, never a pickle. The key is the sha256 of everything the
trained model depends on: the examples file's bytes, the taxonomy's tags and aliases (they
decide which labels count), the training constants, ``MODEL_VERSION``, and the source of the
modules that turn a paper into features. The cache only saves time, so nothing in it stops a
run: a damaged or mismatched file is a miss (a warning, a retrain, a rewrite), and a store
that cannot be written leaves the run with the model it just trained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from agent.backends.local import learned, tagger, text
from agent.backends.local.learned import ExampleModel, load_examples, read_examples
from agent.taxonomy import Taxonomy

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# Bump when what ExampleModel learns changes in a way the sources below would not show
# (a new dependency that shapes features, say). Edits to those sources change the key anyway.
MODEL_VERSION = 1
FORMAT = 1  # the file layout: arrays and header fields
# Where a paper's features come from: tokenizing and stemming (text), term counts and title
# weight (tagger), vocabulary and training (learned). A model trained under other code is stale.
FEATURE_MODULES = (text, tagger, learned)
ARRAYS = ("header", "terms", "idf", "weights", "bias")
# What np.load and the checks below raise for a file that is not one of ours.
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def models_dir(home: Path) -> Path:
    """Where learned models live inside the state dir."""
    return home / "models"


def model_key(data: bytes, taxonomy: Taxonomy) -> str:
    """sha256 of the examples' bytes, the taxonomy's labels and the code that trains on them."""
    payload = {
        "format": FORMAT,
        "version": MODEL_VERSION,
        "code": _code_digest(),
        "training": {
            "min_df": learned.MIN_DF,
            "max_examples": learned.MAX_EXAMPLES,
            "l2": learned.L2,
            "epochs": learned.EPOCHS,
            "secondary_weight": learned.SECONDARY_WEIGHT,
        },
        "tags": [[tag.name, sorted(tag.aliases)] for tag in taxonomy.tags],
        "examples": hashlib.sha256(data).hexdigest(),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def cached_model(taxonomy: Taxonomy, home: Path | None = None) -> ExampleModel | None:
    """The model for ``taxonomy.examples``: read from the state dir, else trained and stored.

    None when the taxonomy has no examples or none of them carries one of its tags.
    """
    if taxonomy.examples is None:
        return None
    if home is None:
        from agent.config import state_dir

        home = state_dir()
    data = read_examples(taxonomy.examples)
    key = model_key(data, taxonomy)
    path = models_dir(home) / f"{key}.npz"
    if path.exists():
        model = load_model(path, key, len(taxonomy.tags))
        if model is not None:
            return model
    examples = load_examples(taxonomy.examples, taxonomy, data)
    if not examples:
        return None
    log.info("training the tag model on %d examples from %s", len(examples), taxonomy.examples)
    model = ExampleModel(examples, len(taxonomy.tags))
    save_model(path, key, model)
    return model


def load_model(path: Path, key: str, n_tags: int) -> ExampleModel | None:
    """The model stored at ``path`` under ``key``; None (with a warning) for any other file."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in ARRAYS}
        header = json.loads(arrays["header"].tobytes().decode("utf-8"))
        problem = _check(header, arrays, key, n_tags)
    except _UNREADABLE as exc:
        problem = f"unreadable ({type(exc).__name__}: {exc})"
    if problem is not None:
        log.warning("the stored tag model %s is %s; training it again", path, problem)
        return None
    return ExampleModel.from_arrays(
        arrays["terms"].tolist(), arrays["idf"], arrays["weights"], arrays["bias"]
    )


def save_model(path: Path, key: str, model: ExampleModel) -> None:
    """Write ``model`` atomically (a temp file, then a rename); a failure is only a warning."""
    import numpy as np

    terms, idf, weights, bias = model.arrays()
    header = {"format": FORMAT, "key": key, "terms": len(terms), "tags": model.n_tags}
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
                terms=np.asarray(terms, dtype=np.str_),
                idf=np.asarray(idf, dtype=np.float64),
                weights=np.asarray(weights, dtype=np.float32),
                bias=np.asarray(bias, dtype=np.float64),
            )
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.warning(
            "cannot store the tag model at %s (%s); the next run trains it again", path, exc
        )
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _check(header: object, arrays: dict[str, np.ndarray], key: str, n_tags: int) -> str | None:
    """Why the stored arrays are not the model for ``key``, or None when they are."""
    import numpy as np

    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return "in another format"
    if header.get("key") != key:
        return "for other examples or code (its key differs)"
    terms, idf, weights, bias = (arrays[name] for name in ARRAYS[1:])
    n_terms = len(terms)
    if (
        terms.dtype.kind != "U"
        or terms.ndim != 1
        or idf.shape != (n_terms,)
        or weights.shape != (n_terms, n_tags)
        or bias.shape != (n_tags,)
        or header.get("terms") != n_terms
    ):
        return "inconsistent (array shapes do not match)"
    if not all(a.dtype.kind == "f" and bool(np.isfinite(a).all()) for a in (idf, weights, bias)):
        return "damaged (non-finite numbers)"
    return None


def _code_digest() -> str:
    """sha256 of the feature modules' source: editing any of them retrains on the next run."""
    digest = hashlib.sha256()
    for module in FEATURE_MODULES:
        try:
            digest.update(Path(module.__file__ or "").read_bytes())
        except OSError:
            digest.update(module.__name__.encode())  # no source (a frozen build): the name only
    return digest.hexdigest()
