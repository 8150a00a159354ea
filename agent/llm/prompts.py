"""Jinja prompt templates (DESIGN 5): static instructions first, the paper last."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from agent.errors import ConfigError
from agent.interests import Criterion
from agent.llm.answers import WHY_CHARS, summary_chars
from agent.models import Paper
from agent.taxonomy import Taxonomy

log = logging.getLogger(__name__)

TEMPLATES = ("system.j2", "user.j2")
# Loaded only by a run with --papers-per-request above 1; group-system.j2 extends system.j2.
GROUP_TEMPLATES = ("group-system.j2", "group-user.j2")
# An answer's share of a group answer's token limit beyond the answer itself: its id and braces.
ID_TOKENS = 32
# The tags that delimit untrusted text in our templates, in any case or spacing.
_DELIMITER = re.compile(r"<(?=\s*/?\s*papers?\b)", re.IGNORECASE)
# What the answer format shows in place of a value: "<the summary>", "<the paper's id>".
_SHOWN_PLACEHOLDER = re.compile(r"<([^<>\n]{1,80})>")


def defuse(text: str) -> str:
    """Untrusted ``text`` that cannot open or close a prompt's <paper>/<papers> delimiters.

    Only the ``<`` of such a tag changes (to a look-alike), so the text reads the same to the
    model and the rendered prompt, hence the cache key, stays deterministic.
    """
    return _DELIMITER.sub("\uff1c", text)


def default_prompts_dir() -> Path:
    """The bundled templates: inside the package when installed, beside it in a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "prompts", package.parent / "prompts"):
        if (candidate / "system.j2").is_file():
            return candidate
    raise ConfigError("the bundled prompt templates are missing; reinstall paper-agent")


def answer_schema(
    taxonomy: Taxonomy, *, max_tags: int, summary_words: int, relevance: bool = False
) -> dict[str, Any]:
    """The strict JSON Schema of an answer: 1 to ``max_tags`` tags from the taxonomy, a summary.

    The size bounds let servers that enforce them (llama.cpp, vLLM) stop a looping model early.
    """
    tags = {
        "type": "array",
        "items": {"type": "string", "enum": taxonomy.names},
        "minItems": 1,
        "maxItems": max_tags,
    }
    summary = {"type": "string", "maxLength": summary_chars(summary_words)}
    properties: dict[str, Any] = {"tags": tags, "summary": summary}
    if relevance:
        properties["relevance"] = {"type": "integer", "minimum": 0, "maximum": 10}
        properties["why"] = {"type": "string", "maxLength": WHY_CHARS}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def group_schema(single: dict[str, Any], size: int) -> dict[str, Any]:
    """The strict schema of a group answer: up to ``size`` single answers, each with its id.

    Ids are plain strings, not an enum of this request's ids: the schema stays the same for
    every request of a run, so providers' prefix caching can hit.
    """
    item = {
        **single,
        "properties": {"id": {"type": "string"}, **single["properties"]},
        "required": ["id", *single["required"]],
    }
    answers = {"type": "array", "items": item, "maxItems": size}
    return {
        "type": "object",
        "properties": {"answers": answers},
        "required": ["answers"],
        "additionalProperties": False,
    }


def clip_abstract(paper: Paper, max_chars: int) -> Paper:
    """``paper`` with its abstract cut to ``max_chars`` at a sentence end (logged)."""
    text = paper.abstract
    if len(text) <= max_chars:
        return paper
    cut = text.rfind(". ", 0, max_chars) + 1 or max_chars  # keep the full stop
    if cut < max_chars // 2:
        cut = text.rfind(" ", 0, max_chars) + 1 or max_chars
    log.info("paper %s: abstract cut from %d to %d characters", paper.id, len(text), cut)
    return paper.model_copy(update={"abstract": text[:cut].rstrip()})


class PromptBuilder:
    """Renders the chat messages for a paper from the system and user templates."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        *,
        max_tags: int,
        summary_words: int,
        response_format: str = "json_schema",
        prompts_dir: Path | None = None,
        max_abstract_chars: int | None = None,
        criteria: Sequence[Criterion] = (),
        group_size: int = 1,
    ) -> None:
        directory = prompts_dir or default_prompts_dir()
        if not directory.is_dir():
            raise ConfigError(f"prompts directory not found: {directory}")
        env = template_env(directory)
        self._system, self._user = _templates(env, TEMPLATES, directory)
        self.schema = answer_schema(
            taxonomy, max_tags=max_tags, summary_words=summary_words, relevance=bool(criteria)
        )
        # Twice the answer's expected size in tokens (tags ~10 each, ~2 a word, and a short
        # reason): a model that loops stops here instead of filling the context.
        why = 40 if criteria else 0
        self.max_tokens = max(256, 2 * (24 + 10 * max_tags + 2 * summary_words + why))
        # A group request: up to group_size papers, one answer each, keyed by the paper's id.
        self.group_size = group_size
        self.group_schema = group_schema(self.schema, group_size)
        self.group_max_tokens = group_size * (self.max_tokens + ID_TOKENS)
        self._env = env
        self._directory = directory
        self._group: tuple[jinja2.Template, jinja2.Template] | None = None
        if group_size > 1:
            self._group_templates()  # a missing template fails now, before any request
        self.response_format = response_format
        self.max_abstract_chars = max_abstract_chars
        self._static = {
            "tags": taxonomy.tags,
            "max_tags": max_tags,
            "summary_words": summary_words,
            "response_format": response_format,
            "schema_json": json.dumps(self.schema, indent=1),
            # The criteria are part of the static prefix: every paper's request shares them.
            "criteria": list(criteria),
        }
        self._system_text: str | None = None
        self._placeholders: frozenset[str] | None = None

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders the system messages show for values ("<the summary>"): an answer
        that gives one back gave nothing (read from the templates, custom ones too)."""
        if self._placeholders is None:
            shown = self.messages_system()
            if self.group_size > 1:
                shown += self._render(self._group_templates()[0], **self._static)
            self._placeholders = frozenset(
                f"<{found.strip()}>" for found in _SHOWN_PLACEHOLDER.findall(shown)
            )
        return self._placeholders

    def _render(self, template: jinja2.Template, **context: Any) -> str:
        return render_template(template, context)

    def messages_system(self) -> str:
        """The system message, rendered once: it is the same for every paper."""
        if self._system_text is None:
            self._system_text = self._render(self._system, **self._static)
        return self._system_text

    def messages(self, paper: Paper) -> list[dict[str, str]]:
        """The system and user messages for ``paper`` (its text defused: see ``defuse``)."""
        safe = self._safe(paper)
        return [
            {"role": "system", "content": self.messages_system()},
            {"role": "user", "content": self._render(self._user, paper=safe, **self._static)},
        ]

    def group_messages(self, papers: Sequence[Paper]) -> list[dict[str, str]]:
        """The system and user messages asking for ``papers`` in one request.

        The system message is the same for every group (the static prefix); the papers follow
        in the user message, each inside ``<paper id="...">`` with its id as ``prompt_id`` says.
        """
        system, user = self._group_templates()
        static = {**self._static, "schema_json": json.dumps(self.group_schema, indent=1)}
        safe = [self._safe(paper).model_copy(update={"id": prompt_id(paper)}) for paper in papers]
        return [
            {"role": "system", "content": self._render(system, **static)},
            {"role": "user", "content": self._render(user, papers=safe, **static)},
        ]

    def _group_templates(self) -> tuple[jinja2.Template, jinja2.Template]:
        if self._group is None:
            if "input_and_answer" not in self._system.blocks:
                # group-system.j2 replaces that block; without it, a group would be asked
                # for a single answer.
                raise ConfigError(
                    f"prompt template system.j2 in {self._directory} has no "
                    "{% block input_and_answer %}, which --papers-per-request above 1 replaces"
                )
            self._group = _templates(self._env, GROUP_TEMPLATES, self._directory)
        return self._group

    def _safe(self, paper: Paper) -> Paper:
        if self.max_abstract_chars is not None:
            paper = clip_abstract(paper, self.max_abstract_chars)  # a no-op when run clipped it
        return paper.model_copy(
            update={
                "id": defuse(paper.id),
                "title": defuse(paper.title),
                "abstract": defuse(paper.abstract),
                "authors": [defuse(a) for a in paper.authors],
                "categories": [defuse(c) for c in paper.categories],
                "metadata": {k: defuse(v) for k, v in paper.metadata.items()},
            }
        )


def prompt_id(paper: Paper) -> str:
    """The paper's id as a group prompt shows it, hence as its answer must give it: defused,
    and without a double quote that would end the id="..." attribute early."""
    return defuse(paper.id).replace('"', "'")


def template_env(directory: Path) -> jinja2.Environment:
    """The Jinja environment of every prompt: plain text, StrictUndefined, and sandboxed, so a
    template from someone else cannot reach the process's environment (the API key) or files."""
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,  # prompts are plain text; the paper sits inside delimiters
    )


def load_template(env: jinja2.Environment, name: str, directory: Path, hint: str = "") -> Any:
    """Template ``name`` from ``directory``, or a one-line ConfigError saying what is wrong."""
    try:
        return env.get_template(name)
    except jinja2.TemplateNotFound:
        raise ConfigError(f"prompt template {name} not found in {directory}{hint}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"prompt template {name} line {exc.lineno}: {exc.message}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"prompt template {name} in {directory} is not UTF-8 text") from None


def render_template(template: jinja2.Template, context: dict[str, Any]) -> str:
    """``template`` rendered and stripped; a missing variable or a forbidden attribute (the
    sandbox) is a one-line ConfigError."""
    try:
        return template.render(**context).strip()
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"prompt template {template.name}: {exc}") from None
    except SecurityError as exc:
        raise ConfigError(f"prompt template {template.name}: not allowed: {exc}") from None


def _templates(
    env: jinja2.Environment, names: Sequence[str], directory: Path
) -> tuple[jinja2.Template, jinja2.Template]:
    """The system and user templates ``names`` from ``directory``, or a one-line ConfigError."""
    hint = ""
    if names == GROUP_TEMPLATES:
        hint = " (--papers-per-request above 1 needs it: copy it from the bundled prompts/)"
    system, user = (load_template(env, name, directory, hint) for name in names)
    return system, user
