"""Highlights: one LLM call that reads every summary and writes "what stood out today"."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from agent.config import Settings
from agent.digest.model import Digest
from agent.errors import BackendError, ConfigError, PaperFailed
from agent.llm.answers import AnswerInvalid, summary_chars
from agent.llm.cache import AnswerCache, cache_dir
from agent.llm.client import LLM, Messages, Question
from agent.llm.cost import Budget
from agent.llm.prompts import (
    default_prompts_dir,
    defuse,
    load_template,
    render_template,
    template_env,
)
from agent.llm.redact import redact
from agent.models import PaperResult, Usage, plain_text

log = logging.getLogger(__name__)

BULLETS = 3
BULLET_WORDS = 35
SCHEMA_NAME = "digest_highlights"
MAX_TOKENS = 512  # three bullets of 35 words, with room to spare
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "highlights": {
            "type": "array",
            "items": {"type": "string", "maxLength": summary_chars(BULLET_WORDS)},
            "minItems": BULLETS,
            "maxItems": BULLETS,
        }
    },
    "required": ["highlights"],
    "additionalProperties": False,
}


class _Highlights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    highlights: list[str]


def parse_highlights(raw: str, final: bool = False) -> dict[str, Any]:
    """Exactly three non-empty bullets, or ``AnswerInvalid`` saying what is wrong."""
    try:
        bullets = _Highlights.model_validate_json(raw).highlights
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise AnswerInvalid(f"the answer does not match the schema ({problem})") from None
    bullets = [redact(" ".join(plain_text(b).split())) for b in bullets if b.strip()]
    if len(bullets) < BULLETS or (len(bullets) > BULLETS and not final):
        raise AnswerInvalid(f"give exactly {BULLETS} non-empty bullets, not {len(bullets)}")
    max_chars = summary_chars(BULLET_WORDS)
    too_long = [b for b in bullets if len(b.split()) > BULLET_WORDS * 1.5 or len(b) > max_chars]
    if too_long and not final:
        raise AnswerInvalid(f"each bullet must have at most {BULLET_WORDS} words")
    clipped = [b if len(b) <= max_chars else b[: max_chars - 1].rstrip() + "…" for b in bullets]
    return {"highlights": clipped[:BULLETS]}


def render_messages(results: Sequence[PaperResult], fmt: str, prompts_dir: Any = None) -> Messages:
    """The system and user messages from the highlights templates (StrictUndefined)."""
    directory = prompts_dir or default_prompts_dir()
    env = template_env(directory)
    papers = [
        r.model_copy(
            update={
                "title": defuse(r.title),
                "summary": defuse(r.summary or ""),
                "tags": [defuse(t) for t in r.tags],
            }
        )
        for r in results
        if r.error is None and r.summary
    ]
    context = {
        "bullets": BULLETS,
        "bullet_words": BULLET_WORDS,
        "response_format": fmt,
        "schema_json": json.dumps(SCHEMA, indent=1),
        "papers": papers,
    }
    system, user = (
        render_template(load_template(env, name, directory), context)
        for name in ("highlights-system.j2", "highlights-user.j2")
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def write_highlights(
    results: Sequence[PaperResult],
    settings: Settings,
    http: httpx.AsyncClient | None = None,
    budget: Budget | None = None,
    spent: Callable[[Usage], None] | None = None,
) -> list[str]:
    """Three bullets for the top of the digest, validated and cached like every LLM answer.

    ``http`` is the run's shared client; without one (the digest commands) a client is made.
    ``budget`` is the run's --max-cost: a highlights request that would pass it is not sent.
    ``spent`` is told what the request cost, so the run's summary counts it.
    """
    if not any(r.error is None and r.summary for r in results):
        return []
    if http is None:
        from agent.llm.http import make_client

        async with make_client(settings.timeout) as client:
            return await write_highlights(results, settings, client, budget, spent)
    cache = AnswerCache(cache_dir(settings.home)) if settings.use_cache else None
    llm = LLM(settings, http, cache, budget)
    try:
        answer = await llm.ask(
            lambda fmt: render_messages(results, fmt, settings.prompts_dir),
            Question(SCHEMA_NAME, SCHEMA, MAX_TOKENS),
            parse_highlights,
            label="highlights",
        )
    except (PaperFailed, BackendError) as exc:
        # The digest matters more than its highlights: go on without them.
        log.warning("no highlights today: %s", getattr(exc, "message", exc))
        if spent is not None and isinstance(getattr(exc, "usage", None), Usage):
            spent(exc.usage)  # type: ignore[union-attr]
        return []
    finally:
        llm.close()
    if spent is not None:
        spent(answer.usage)
    return answer.value["highlights"]


def highlight_settings(settings: Settings) -> Settings:
    """``settings`` when they reach an LLM for ``--highlights``, else a config error."""
    if settings.resolved_backend() != "openai":
        raise ConfigError(
            "--highlights needs an LLM: set OPENAI_API_KEY or OPENAI_BASE_URL (or base_url in "
            "paper-agent.toml)"
        )
    return settings


async def with_highlights(
    digest: Digest,
    settings: Settings,
    http: httpx.AsyncClient | None = None,
    budget: Budget | None = None,
    spent: Callable[[Usage], None] | None = None,
) -> Digest:
    """``digest`` opened by highlights written from the summaries of its papers."""
    results = [entry.result for group in digest.groups for entry in group.entries]
    bullets = await write_highlights(results, settings, http, budget, spent)
    return dataclasses.replace(digest, highlights=bullets)
