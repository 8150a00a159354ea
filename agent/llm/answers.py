"""Validation of an LLM answer against the taxonomy (DESIGN 3); errors become repair prompts."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.llm.redact import redact
from agent.models import Paper, plain_text
from agent.taxonomy import Taxonomy

WHY_CHARS = 120  # one short line in a digest
# About 6 characters a word in English prose; twice that leaves room for long terms.
CHARS_PER_WORD = 12
# A whole answer field that is an angle-bracket placeholder: "<the summary>", "<summary>".
_PLACEHOLDER = re.compile(r"<[^<>]*>")
_WORD = re.compile(r"\w+")


def summary_chars(summary_words: int) -> int:
    """The most characters a summary of ``summary_words`` words may have (schema and check)."""
    return summary_words * CHARS_PER_WORD


# How an unknown-tag message goes on: every tag of the taxonomy, for the model to choose from.
USE_ONLY = "; use only: "


def without_tag_list(message: str) -> str:
    """``message`` without the taxonomy's tags an unknown-tag message ends with: a warning
    line names the unknown tag, ``-v`` shows the rest."""
    head, listed, _ = message.partition(USE_ONLY)
    return f"{head} (not in the taxonomy; -v lists its tags)" if listed else message


class AnswerInvalid(ValueError):
    """The answer cannot be accepted; the message is shown to the model when re-asking."""


class RawAnswer(BaseModel):
    """The shape the model must return."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str]
    summary: str
    relevance: int | None = Field(default=None, ge=0, le=10)  # asked only with interests
    why: str | None = None


class Parsed(NamedTuple):
    """A valid answer: canonical tags, the summary, and relevance and why with interests."""

    tags: list[str]
    summary: str
    relevance: float | None = None
    why: str | None = None


def words(text: str) -> list[str]:
    """``text``'s words, case-folded, without punctuation: what "the same words" compares."""
    return _WORD.findall(text.casefold())


def is_placeholder(text: str, placeholders: Collection[str] = ()) -> bool:
    """Whether ``text`` is a placeholder rather than content: wholly in angle brackets, or the
    words of one of ``placeholders`` (the prompt's own, "<the summary>", read from it)."""
    text = text.strip().strip("\"'")
    if _PLACEHOLDER.fullmatch(text):
        return True
    said = words(text)
    return bool(said) and any(said == words(p) for p in placeholders)


def not_a_summary(
    summary: str, taxonomy: Taxonomy, paper: Paper | None, placeholders: Collection[str] = ()
) -> str | None:
    """Why ``summary`` says nothing of its own about ``paper``, or None when it may.

    It is the prompt's placeholder, a tag name (or a list of them), the title, or the
    abstract's opening copied word for word: its words, case and punctuation aside, are the
    first words of the abstract (its first sentence, or less). A summary that only starts
    like the abstract and goes on in its own words is a summary.
    """
    if is_placeholder(summary, placeholders):
        return f"the summary {summary!r} is the prompt's placeholder, not a summary of the paper"
    parts = [p.strip(" .\"'") for p in [summary, *re.split(r"[,;/]| and ", summary)]]
    if taxonomy.resolve(parts[0]) is not None or (
        len(parts) > 2 and all(taxonomy.resolve(p) is not None for p in parts[1:] if p)
    ):
        return f"the summary {summary!r} is a tag name, not a summary of the paper"
    if paper is None:
        return None
    said = words(summary)
    if said and said == words(paper.title):
        return "the summary repeats the title; say what the paper does and what it finds"
    opening = words(paper.abstract)[: len(said)]
    if said and said == opening:
        return (
            "the summary copies the abstract's opening word for word; say in your own words "
            "what the paper does and what it finds"
        )
    return None


def _strip_fence(text: str) -> str:
    # Some local servers in json_object mode still wrap the object in a Markdown fence.
    text = text.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3]
        text = text.split("\n", 1)[1] if "\n" in text else text
    return text.strip()


def _embedded_object(text: str) -> object:
    """The JSON object that starts at the first ``{`` of ``text`` ("Here it is: {...}"), or None.

    A last resort only: earlier attempts re-ask, so the model learns to answer bare JSON.
    """
    start = text.find("{")
    if start < 0:
        return None
    try:
        found, _ = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def parse_answer(
    raw: str,
    taxonomy: Taxonomy,
    *,
    max_tags: int,
    summary_words: int,
    final: bool = False,
    relevance: bool = False,
    paper: Paper | None = None,
    placeholders: Collection[str] = (),
) -> Parsed:
    """Canonical tags and the summary from ``raw``, or ``AnswerInvalid`` saying what is wrong.

    Tags match case-insensitively and through aliases, each counted once; the taxonomy's
    fallback tag is dropped when the answer also has other tags. Prose around the JSON, unknown
    tags and an over-long summary are re-asked; on the ``final`` attempt the JSON object inside
    prose is taken, unknown tags are dropped (if any known tag remains) and the summary is
    clipped to the word limit instead. A summary that is no summary of ``paper``
    (``not_a_summary``: the prompt's ``placeholders``, a tag, the title) is refused every time.
    """
    try:
        data = json.loads(_strip_fence(raw))
    except ValueError as exc:
        data = _embedded_object(raw) if final else None
        if data is None:
            raise AnswerInvalid(f"the answer is not valid JSON ({exc})") from None
    try:
        answer = RawAnswer.model_validate(plain_text(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()
        )
        raise AnswerInvalid(f"the answer does not match the schema ({problems})") from None

    tags: list[str] = []
    unknown: list[str] = []
    for label in answer.tags:
        name = taxonomy.resolve(label)
        if name is None:
            unknown.append(label)
        elif name not in tags:
            tags.append(name)
    if unknown and (not final or not tags):
        raise AnswerInvalid(
            f"unknown tag(s) {', '.join(map(repr, unknown))}{USE_ONLY}{', '.join(taxonomy.names)}"
        )
    if not tags:
        raise AnswerInvalid("the answer has no tags; give at least one tag from the list")
    if taxonomy.fallback in tags and len(tags) > 1:
        # "Other" beside real tags contradicts itself; the real tags are the useful part, and
        # re-asking would cost a request for no better answer.
        tags.remove(taxonomy.fallback)

    # The decoded text: a key written as "\\u0074..." escapes is only visible once decoded.
    summary = redact(" ".join(answer.summary.split()))
    if not summary:
        raise AnswerInvalid("the summary is empty")
    empty = not_a_summary(summary, taxonomy, paper, placeholders)
    if empty is not None:
        raise AnswerInvalid(empty)
    words = summary.split()
    if len(words) > summary_words:
        if not final:
            raise AnswerInvalid(f"the summary has {len(words)} words; the limit is {summary_words}")
        summary = " ".join(words[:summary_words]).rstrip(",;:") + "…"
    max_chars = summary_chars(summary_words)
    if len(summary) > max_chars:  # few words but a wall of characters: the schema's maxLength
        if not final:
            raise AnswerInvalid(
                f"the summary has {len(summary)} characters; the limit is {max_chars}"
            )
        summary = summary[: max_chars - 1].rstrip(",;: ") + "…"
    if not relevance:
        return Parsed(tags[:max_tags], summary)
    if answer.relevance is None:
        raise AnswerInvalid('the answer has no "relevance" (an integer from 0 to 10)')
    why = redact(" ".join((answer.why or "").split()))[:WHY_CHARS]
    return Parsed(tags[:max_tags], summary, float(answer.relevance), why)


def split_group(raw: str) -> list[tuple[str | None, str]]:
    """The (id, answer text) of each entry of a group answer, in the order given.

    Each entry's text, its id removed, is what a single-paper request would have answered, so
    it is validated by ``parse_answer`` like one. An entry without a string id has None (no
    paper can claim it); ``AnswerInvalid`` when ``raw`` is not a group answer at all.
    """
    try:
        data = json.loads(_strip_fence(raw))
    except ValueError as exc:
        raise AnswerInvalid(f"the group answer is not valid JSON ({exc})") from None
    answers = data.get("answers") if isinstance(data, dict) else None
    if not isinstance(answers, list):
        raise AnswerInvalid('the group answer has no "answers" list')
    parts: list[tuple[str | None, str]] = []
    for entry in answers:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            rest = {k: v for k, v in entry.items() if k != "id"}
            parts.append((entry["id"].strip(), json.dumps(rest, ensure_ascii=False)))
        else:
            parts.append((None, json.dumps(entry, ensure_ascii=False)))
    return parts
