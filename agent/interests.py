"""What a team cares about: named criteria, papers it liked, and a floor for the digest."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import ConfigError
from agent.models import Paper

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.config import Settings
    from agent.sources.refs import LikedOptions

# "Reinforcement learning: agents that ..." is named by the part before the colon when that
# part reads as a label; a longer one is a sentence, so its first words name it instead.
NAME_MAX_WORDS = 6
NAME_MAX_CHARS = 60
FALLBACK_NAME_WORDS = 5
# The liked-paper model reads at most this many: the last ones of the file, which a list of
# likes grows at (past a few thousand, more likes only make every run slower).
MAX_LIKED = 1000


@dataclass(frozen=True)
class Criterion:
    """One interest written in words: a short name (for ``why``) and its full text."""

    name: str
    text: str


@dataclass(frozen=True)
class Interests:
    """Criteria, liked papers and the relevance floor; at least one of the first two is set."""

    criteria: list[Criterion] = field(default_factory=list)
    liked: list[Paper] = field(default_factory=list)
    min_relevance: float | None = None
    notes: list[str] = field(default_factory=list)  # one line each for the user, e.g. a bound


def criterion_name(text: str) -> str:
    """A short name for a plain-text criterion: its label before a colon, else its first words."""
    head, colon, _ = text.partition(":")
    head = " ".join(head.split())
    if colon and head and len(head.split()) <= NAME_MAX_WORDS and len(head) <= NAME_MAX_CHARS:
        return head
    words = re.sub(r"[.;,:]+$", "", " ".join(text.split()[:FALLBACK_NAME_WORDS]))
    return words


def parse_criterion(value: object, where: str) -> Criterion:
    """A Criterion from a string or a ``{"name", "text"}`` table (``criterion`` also accepted)."""
    if isinstance(value, str):
        text = " ".join(value.split())
        if not text:
            raise ConfigError(f"{where}: a criterion is empty")
        return Criterion(criterion_name(text), text)
    if isinstance(value, dict):
        unknown = set(value) - {"name", "text", "criterion"}
        if unknown:
            raise ConfigError(f"{where}: unknown criterion key(s) {', '.join(sorted(unknown))}")
        text = value.get("text", value.get("criterion"))
        name = value.get("name")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}: a criterion table needs a non-empty 'text'")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"{where}: a criterion's 'name' must be a non-empty string")
        text = " ".join(text.split())
        return Criterion(" ".join(name.split()) if name else criterion_name(text), text)
    raise ConfigError(f"{where}: a criterion must be a string or a table with name and text")


def load_liked(path: Path, options: LikedOptions | None = None) -> tuple[list[Paper], int]:
    """The last ``MAX_LIKED`` liked papers of a file in any input format, a BibTeX, RIS or CSL
    JSON library, or a ``zotero:`` library, and how many it holds; none usable is an input
    error."""
    from agent.sources.refs import read_liked

    papers = read_liked(str(path), options)
    return papers[-MAX_LIKED:], len(papers)


def liked_note(path: Path, kept: int, total: int) -> str | None:
    """The line that says older liked papers were left out, or None when all were kept."""
    if kept == total:
        return None
    return (
        f"{path} holds {total:,} liked papers: the last {kept:,} (the most recent likes) are used"
    )


def load_interests(
    criteria: Sequence[str | dict[str, object]] | None,
    liked: Path | None,
    min_relevance: float | None,
    options: LikedOptions | None = None,
) -> Interests | None:
    """Interests from settings (``options``: how liked papers are read); None when neither
    criteria nor liked papers are set."""
    parsed = [
        parse_criterion(c, f"interests criterion {i}") for i, c in enumerate(criteria or [], 1)
    ]
    seen: set[str] = set()
    for c in parsed:
        key = c.name.casefold()
        if key in seen:
            raise ConfigError(f"two interest criteria are both named {c.name!r}: name them apart")
        seen.add(key)
    if min_relevance is not None:
        if isinstance(min_relevance, bool) or not isinstance(min_relevance, int | float):
            raise ConfigError("min_relevance must be a number from 0 to 10")
        if not 0 <= min_relevance <= 10:
            raise ConfigError(f"min_relevance must be from 0 to 10, not {min_relevance}")
    if not parsed and liked is None:
        if min_relevance is not None:
            raise ConfigError("min_relevance is set but there are no criteria or liked papers")
        return None
    papers, total = load_liked(liked, options) if liked is not None else ([], 0)
    note = liked_note(liked, len(papers), total) if liked is not None else None
    floor = None if min_relevance is None else float(min_relevance)
    return Interests(parsed, papers, floor, [note] if note else [])


def interests_of(settings: Settings, say: Callable[[str], None]) -> Interests | None:
    """The interests ``settings`` name; what reading the liked papers found is said through
    ``say``, one line each."""
    from agent.sources.refs import LikedOptions

    options = LikedOptions.from_settings(settings, say)
    interests = load_interests(settings.criteria, settings.liked, settings.min_relevance, options)
    for note in interests.notes if interests else []:
        say(note)
    return interests
