"""How the library knows a paper (DESIGN 11): by its arXiv id without version, else by its
normalized title, else by the id its source gave. The seen query, the papers table and the
delivery journal all match papers by these keys."""

from __future__ import annotations

import re

from agent.models import Paper
from agent.sources.files import arxiv_id, is_arxiv_id, title_key

__all__ = ["arxiv_key", "bare_arxiv", "key", "title_key"]

_VERSION = re.compile(r"v\d+$")


def key(paper: Paper) -> str:
    """The arXiv id without version when the paper has one, else ``title:`` and its title
    normalized (or, with no word in the title, ``id:`` and its id)."""
    return arxiv_key(paper) or title_key(paper.title) or "id:" + paper.id


def arxiv_key(paper: Paper) -> str | None:
    """The paper's arXiv id without version, from its id or else its URL; None without one."""
    return bare_arxiv(paper.id) or (arxiv_id(paper.url) if paper.url else None)


def bare_arxiv(text: str) -> str | None:
    """``text`` as an arXiv id without version: a bare id, ``arXiv:ID`` or an arXiv URL."""
    text = text.strip()
    if is_arxiv_id(text):
        return _VERSION.sub("", text)
    return arxiv_id(text)  # also finds the id in "arXiv:2401.12345v2"
