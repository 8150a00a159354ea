"""Where papers come from: files (and stdin), the arXiv API, arXiv's RSS feed, Hugging Face.

Each source is one module behind one interface (``agent.sources.base.Source``); a spec such as
``arxiv:cs.LG,cs.CL`` names the kind before the colon, so a new source is one module and one
line in ``KINDS``.
"""

from __future__ import annotations

import importlib

from agent.errors import InputError
from agent.sources.base import Source, SourceError, SourceOptions, Window
from agent.sources.files import arxiv_id, paper_id, read_papers, unique_papers

# spec prefix -> "module:class"; each class has ``from_spec(rest, options)``.
KINDS = {
    "arxiv": "agent.sources.arxiv:ArxivSource",
    "arxiv-rss": "agent.sources.rss:ArxivRssSource",
    "hf": "agent.sources.hf:HuggingFaceSource",
}

__all__ = [
    "KINDS",
    "Source",
    "SourceError",
    "SourceOptions",
    "Window",
    "arxiv_id",
    "paper_id",
    "parse_source",
    "read_papers",
    "unique_papers",
]


def parse_source(spec: str, options: SourceOptions) -> Source:
    """The source ``spec`` names, checked before any request (an unknown kind or category is
    an ``InputError``)."""
    kind, sep, rest = spec.partition(":")
    target = KINDS.get(kind.strip().lower()) if sep else None
    if target is None:
        known = ", ".join(f"{k}:..." for k in KINDS)
        raise InputError(f"unknown source {spec!r}: use one of {known}")
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    return cls.from_spec(rest.strip(), options)
