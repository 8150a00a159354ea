"""What a ranking is asked for: named criteria in the user's words, and the papers they voted on."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.errors import ConfigError
from agent.interests import Criterion
from agent.models import Paper

# A clause ends at a colon, semicolon, comma, dash between spaces, bracket or sentence stop;
# "e.g.", "vs." and "3.5" do not end one (a stop ends a clause only before a space or the end).
_CLAUSE_END = re.compile(
    r"[:;,(\[]|\s[-\u2013\u2014]\s|(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bcf)[.!?](?=\s|$)"
)


@dataclass(frozen=True)
class Feedback:
    """Papers the reader liked and disliked, most recent last."""

    liked: Sequence[Paper] = ()
    disliked: Sequence[Paper] = ()


def first_clause(text: str) -> str:
    """The name of a bare criterion: its words up to the first clause break, whole otherwise.

    "Reinforcement learning: agents that ..." is named "Reinforcement learning"; a sentence
    without a break is its own name, never cut at a word count.
    """
    text = " ".join(text.split())
    head = _CLAUSE_END.split(text, maxsplit=1)[0].strip()
    return head or text


def as_criterion(value: str | Mapping[str, object] | Criterion) -> Criterion:
    """A Criterion from a bare string, a ``{name, text}`` table or a Criterion."""
    if isinstance(value, Criterion):
        return value
    if isinstance(value, str):
        text = " ".join(value.split())
        if not text:
            raise ConfigError("a criterion is empty")
        return Criterion(first_clause(text), text)
    text, name = value.get("text"), value.get("name")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("a criterion table needs a non-empty 'text'")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError("a criterion's 'name' must be a non-empty string")
    text = " ".join(text.split())
    return Criterion(" ".join(name.split()) if name else first_clause(text), text)


def as_criteria(values: Iterable[str | Mapping[str, object] | Criterion]) -> list[Criterion]:
    """Criteria from any mix of the accepted forms; two with one name are a ConfigError."""
    out = [as_criterion(v) for v in values]
    names = [c.name.casefold() for c in out]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"two criteria are both named {out[i].name!r}: name them apart")
    return out
