"""The LLM backend: tags and a summary for one paper from one validated, cached chat call
(or for several papers from one call, with ``--papers-per-request``: see ``groups``)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from agent.config import Settings
from agent.interests import Interests
from agent.llm.answers import AnswerInvalid, parse_answer
from agent.llm.cache import MISS, AnswerCache
from agent.llm.client import LLM, Answer, Completion, Messages, Question
from agent.llm.cost import Budget
from agent.llm.prompts import PromptBuilder
from agent.models import Annotation, Paper, Usage
from agent.taxonomy import Taxonomy

SCHEMA_NAME = "paper_annotation"
GROUP_SCHEMA_NAME = "paper_annotations"


class OpenAIBackend:
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp, LM Studio)."""

    name = "openai"

    def __init__(
        self,
        settings: Settings,
        taxonomy: Taxonomy,
        http: httpx.AsyncClient,
        cache: AnswerCache | None = None,
        interests: Interests | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.llm = LLM(settings, http, cache, budget)
        self.unfinished = self.llm.unfinished  # what papers cancelled in flight had spent
        self.interests = interests
        self.criteria = interests.criteria if interests is not None else []
        # Liked papers count with the LLM too: scored offline, combined with its answer.
        self.liked = None
        if interests is not None and interests.liked:
            from agent.backends.local.relevance import RelevanceModel

            self.liked = RelevanceModel(Interests(liked=interests.liked))
        self.model = settings.model
        self.settings = settings
        self.taxonomy = taxonomy
        self.max_tags = taxonomy.tag_limit(settings.max_tags)
        self.base_url = self.llm.base_url
        self._prompts: dict[str, PromptBuilder] = {}
        # The pipeline keeps concurrency x this many papers in flight, so groups fill up.
        self.papers_per_request = settings.papers_per_request
        self.groups = None
        if self.papers_per_request > 1:
            from agent.backends.groups import PaperGroups

            self.groups = PaperGroups(self, self.papers_per_request, settings.concurrency)

    def prompts(self, fmt: str | None = None) -> PromptBuilder:
        """The prompt builder for a response format (the current one by default)."""
        fmt = fmt or self.llm.format
        if fmt not in self._prompts:
            self._prompts[fmt] = PromptBuilder(
                self.taxonomy,
                max_tags=self.max_tags,
                summary_words=self.settings.summary_words,
                response_format=fmt,
                prompts_dir=self.settings.prompts_dir,
                max_abstract_chars=self.settings.max_abstract_chars,
                criteria=self.criteria,
                group_size=self.papers_per_request,
            )
        return self._prompts[fmt]

    def question(self) -> Question:
        """What every paper is asked: the answer schema, sized by the taxonomy and settings."""
        prompts = self.prompts()
        return Question(SCHEMA_NAME, prompts.schema, prompts.max_tokens)

    def group_question(self) -> Question:
        """What a request for several papers asks: the same for every group of the run."""
        prompts = self.prompts()
        return Question(GROUP_SCHEMA_NAME, prompts.group_schema, prompts.group_max_tokens)

    def key_for(self, messages: Messages) -> str:
        """The cache key of a paper's first request, from its rendered messages."""
        return self.llm.key(messages, self.question())

    def validate(self, raw: str, final: bool, paper: Paper | None = None) -> dict[str, Any]:
        """The answer for ``paper`` checked against the taxonomy, the limits and the paper
        itself (a summary must be more than its title), or ``AnswerInvalid``."""
        parsed = parse_answer(
            raw,
            self.taxonomy,
            max_tags=self.max_tags,
            summary_words=self.settings.summary_words,
            final=final,
            relevance=bool(self.criteria),
            paper=paper,
            placeholders=self.prompts().placeholders,
        )
        return parsed._asdict()

    async def annotate(self, paper: Paper, *, answered: Completion | None = None) -> Annotation:
        """Tags and summary for ``paper``; raises PaperFailed or BackendError.

        ``answered``: the paper's completion from a batch output file, validated like an
        online answer (and repaired online when invalid). With ``papers_per_request`` above
        1, a paper not in the cache waits to be asked together with others.
        """
        if self.groups is None or answered is not None:
            return self.annotation(paper, await self.ask_one(paper, answered=answered))
        if self.llm.cache is not None:
            hit = self.llm.cache.get(self.key_for(self.prompts().messages(paper)))
            if hit is not MISS:
                # Checked as a fresh answer would be, as a single paper's hit is (LLM.ask).
                try:
                    value = self.validate(json.dumps(hit), False, paper)
                except AnswerInvalid:
                    pass
                else:
                    return self.annotation(paper, Answer(value, Usage(), cached=True))
        return await self.groups.annotate(paper)

    async def ask_one(self, paper: Paper, *, answered: Completion | None = None) -> Answer:
        """The validated answer for ``paper`` alone: cached under its single-paper key."""

        def render(fmt: str) -> Messages:
            return self.prompts(fmt).messages(paper)

        def validate(raw: str, final: bool) -> dict[str, Any]:
            return self.validate(raw, final, paper)

        return await self.llm.ask(
            render, self.question(), validate, label=f"paper {paper.id}", answered=answered
        )

    def annotation(self, paper: Paper, answer: Answer) -> Annotation:
        """The paper's annotation from its validated answer."""
        relevance, why = self._relevance(paper, answer.value)
        return Annotation(
            tags=answer.value["tags"],
            summary=answer.value["summary"],
            usage=answer.usage,
            cached=answer.cached,
            relevance=relevance,
            why=why,
        )

    def _relevance(self, paper: Paper, value: dict[str, Any]) -> tuple[float | None, str | None]:
        """The model's relevance, raised by the liked papers (``combine``); None without
        interests."""
        if self.interests is None:
            return None, None
        liked = self.liked.liked_score(paper) if self.liked is not None else None
        if not self.criteria:
            return liked if liked is not None else (None, None)
        from agent.backends.local.relevance import combine

        return combine(
            value.get("relevance") or 0.0,
            liked[0] if liked else None,
            value.get("why") or "",
            liked[1] if liked else "",
        )

    async def aclose(self) -> None:
        """Stop the groups still being asked, and close the answer cache."""
        if self.groups is not None:
            await self.groups.aclose()
        self.llm.close()
