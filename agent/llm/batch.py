"""Batch files in the OpenAI batch format, for OpenAI's Batch API or ``vllm run-batch``.

Export writes one request line per paper that is not cached: ``custom_id`` (the cache key and
the paper id), ``method``, ``url`` and ``body``, the very body an online request sends
(``LLM.body``). Import reads output and error files in any line order and hands each answer to
the backend as an ``answered`` completion: validated exactly as online, cached when valid,
repaired online when not (DESIGN 14).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from agent.errors import Halt, InputError, OutputError, PaperFailed
from agent.llm.cache import MISS
from agent.llm.client import Completion
from agent.llm.cost import OverBudget
from agent.llm.prompts import clip_abstract
from agent.models import Annotation, Paper
from agent.outputs import commit, partial_path, real_target

if TYPE_CHECKING:
    from agent.backends.openai import OpenAIBackend

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
MAX_LINES = 50_000  # OpenAI's limits for one batch input file
MAX_BYTES = 200 * 1024 * 1024
KEY_CHARS = 64  # a sha256 in hex leads every custom_id


def custom_id(key: str, paper_id: str) -> str:
    """``KEY:PAPER_ID``: the answer's cache key first (fixed width), then the paper it is for."""
    return f"{key}:{paper_id}"


def split_custom_id(value: str) -> tuple[str, str] | None:
    """The cache key and paper id of a custom_id we wrote, or None for anyone else's."""
    key, sep, paper_id = value.partition(":")
    if not sep or len(key) != KEY_CHARS or any(c not in "0123456789abcdef" for c in key):
        return None
    return key, paper_id


@dataclass
class Exported:
    """What an export wrote: the request files, and the papers it left out and why."""

    files: list[Path] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # requests in each file
    requests: int = 0
    cached: int = 0  # answered already: nothing to send
    invalid: int = 0  # neither title nor abstract: the run gives them an error record
    over_budget: list[str] = field(default_factory=list)  # cache keys --max-cost left out
    estimate: float = 0.0  # worst-case USD of the requests, at Batch API prices (with a budget)


def batch_requests(
    backend: OpenAIBackend, papers: Iterable[Paper], stats: Exported
) -> Iterator[str]:
    """One JSON line per paper whose answer is not cached (counted into ``stats``).

    With the run's --max-cost budget, a request is written only while the worst-case cost of
    the requests written so far, at Batch API prices, stays within it; the rest are left out.
    """
    question = backend.question()
    cache = backend.llm.cache
    budget = backend.llm.budget
    for paper in papers:
        if not paper.title and not paper.abstract:
            stats.invalid += 1
            continue
        # Clipped as the online path clips it, so the key is the one a run looks up.
        messages = backend.prompts().messages(
            clip_abstract(paper, backend.settings.max_abstract_chars)
        )
        key = backend.llm.key(messages, question)
        if cache is not None and cache.get(key) is not MISS:
            stats.cached += 1
            continue
        body = backend.llm.body(messages, question)
        if budget is not None:
            try:
                estimate = budget.commit(body, question.max_tokens)  # the batch may spend it all
            except OverBudget:
                stats.over_budget.append(key)
                continue
            stats.estimate += estimate
        stats.requests += 1
        line = {
            "custom_id": custom_id(key, paper.id),
            "method": "POST",
            "url": ENDPOINT,
            "body": body,
        }
        yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def export_requests(
    backend: OpenAIBackend,
    papers: Iterable[Paper],
    target: Path,
    *,
    max_lines: int = MAX_LINES,
    max_bytes: int = MAX_BYTES,
) -> Exported:
    """Write the request lines to ``target``, split into ``NAME-0001.jsonl``, ``NAME-0002...``
    when they pass ``max_lines`` or ``max_bytes`` per file. Each file appears whole or not at
    all; nothing is written when every answer is cached."""
    stats = Exported()
    parts: list[Path] = []
    stream: IO[str] | None = None
    size = 0
    try:
        for line in batch_requests(backend, papers, stats):
            data = line + "\n"
            length = len(data.encode("utf-8"))
            if length > max_bytes:
                raise InputError(f"one request is larger than {max_bytes} bytes: {line[:80]}...")
            if stream is None or stats.lines[-1] >= max_lines or size + length > max_bytes:
                if stream is not None:
                    stream.close()
                parts.append(partial_path(_numbered(real_target(target), len(parts) + 1)))
                stream = parts[-1].open("w", encoding="utf-8")
                stats.lines.append(0)
                size = 0
            stream.write(data)
            stats.lines[-1] += 1
            size += length
        if stream is not None:
            stream.close()
    except BaseException as exc:
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
        for part in parts:
            part.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write the batch file {target}: {exc.strerror}") from None
        raise
    names = (
        [target] if len(parts) == 1 else [_numbered(target, n) for n in range(1, len(parts) + 1)]
    )
    try:
        for part, name in zip(parts, names, strict=True):
            commit(part, name)
    except OSError as exc:
        for part in parts:
            part.unlink(missing_ok=True)
        raise OutputError(f"cannot write the batch file {target}: {exc.strerror}") from None
    stats.files = names
    return stats


def _numbered(target: Path, n: int) -> Path:
    return target.with_name(f"{target.stem}-{n:04d}{target.suffix}")


@dataclass
class BatchAnswer:
    """One line of a batch output or error file, for one paper."""

    completion: Completion | None = None
    error: tuple[str, str] | None = None  # (kind, message) when there is no usable completion
    paper_id: str = ""  # the paper its custom_id names


def read_batch_output(paths: Iterable[Path]) -> dict[str, BatchAnswer]:
    """The answers in output and error files (any line order), by cache key.

    A line is an answer (``response.status_code`` 200 with a chat completion) or an error
    (``error``, or another status). When a key has both, the answer wins. A line that is not
    JSON (a download cut short) is passed over with a warning: its paper counts as missing.
    """
    answers: dict[str, BatchAnswer] = {}
    for path in paths:
        unreadable: list[int] = []
        usable = 0
        for number, line in _lines(path):
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
                unreadable.append(number)
                continue
            if "body" in record and "response" not in record and "error" not in record:
                raise InputError(
                    f"{path} is a request file (request bodies, no responses): give the "
                    "output file the batch wrote"
                )
            usable += 1
            ids = split_custom_id(record["custom_id"])
            if ids is None:
                log.warning(
                    "%s, line %d: custom_id %r is not one paper-agent wrote; skipped",
                    path,
                    number,
                    record["custom_id"][:80],
                )
                continue
            answer = _answer(record)
            answer.paper_id = ids[1]
            earlier = answers.get(ids[0])
            if earlier is None or earlier.completion is None:
                answers[ids[0]] = answer
        if unreadable and not usable:
            raise InputError(f"{path}: not a batch output file (line {unreadable[0]} is not one)")
        if unreadable:
            shown = ", ".join(map(str, unreadable[:5])) + (" ..." if len(unreadable) > 5 else "")
            log.warning(
                "%s: %d line(s) are not batch output lines (cut off?): %s; their papers count "
                "as missing",
                path,
                len(unreadable),
                shown,
            )
    return answers


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                if line.strip():
                    yield number, line
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None


def _answer(record: dict[str, Any]) -> BatchAnswer:
    error = record.get("error")
    response = record.get("response")
    if isinstance(response, dict) and response.get("status_code") == 200:
        completion = _completion(response.get("body"))
        if completion is not None:
            return BatchAnswer(completion=completion)
        return BatchAnswer(error=("bad_response", "the batch answer is not a chat completion"))
    if isinstance(error, dict):
        code = str(error.get("code") or "batch_error")
        return BatchAnswer(error=(code, str(error.get("message") or code)))
    if isinstance(response, dict):
        status = response.get("status_code")
        body = response.get("body")
        error = body.get("error") if isinstance(body, dict) else None
        detail = str(error.get("message", "")) if isinstance(error, dict) else ""
        what = f"HTTP {status}" if isinstance(status, int) else "no status"
        return BatchAnswer(error=("http_error", f"{what} in the batch: {detail}".strip(" :")))
    return BatchAnswer(error=("batch_error", "the batch line has neither a response nor an error"))


def _completion(body: Any) -> Completion | None:
    """The chat completion in a response body; usage figures it cannot read are dropped, not
    the answer."""
    for candidate in (body, {**body, "usage": None} if isinstance(body, dict) else None):
        try:
            completion = Completion.model_validate(candidate)
        except ValidationError:
            continue
        return completion if completion.choices else None
    return None


MISMATCH = (
    "the batch's answer for this paper was asked with other settings (server, model, prompts, "
    "taxonomy, limits or interests); import with the settings of the export"
)


class BatchAnswers:
    """A backend whose answers come from batch output files (online only to repair them).

    The pipeline runs it like any backend, so the results file, its order, the error records
    and the summary are the same as a live run's.
    """

    def __init__(self, backend: OpenAIBackend, answers: dict[str, BatchAnswer]) -> None:
        self.backend = backend
        self.answers = answers
        self.name = backend.name
        self.model = backend.model
        self.papers_per_request = 1  # a batch line is one paper's request
        self.unfinished = backend.unfinished  # repairs cancelled in flight
        self.asked_for = {answer.paper_id for answer in answers.values()}

    def matching(self, papers: Iterable[Paper], max_abstract_chars: int) -> int:
        """How many of ``papers`` have an answer asked with these very settings."""
        messages = self.backend.prompts().messages
        return sum(
            self.backend.key_for(messages(clip_abstract(paper, max_abstract_chars))) in self.answers
            for paper in papers
        )

    async def annotate(self, paper: Paper) -> Annotation:
        """The paper's answer from the batch, a cached one, or an error record saying why."""
        backend = self.backend
        key = backend.key_for(backend.prompts().messages(paper))
        cache = backend.llm.cache
        if cache is not None and cache.get(key) is not MISS:
            # Answered and validated already (an earlier import, a live run): an older or
            # worse line in this file never replaces it, nor pays for a repair.
            return await backend.annotate(paper)
        answer = self.answers.get(key)
        if answer is None:
            if paper.id in self.asked_for:
                raise PaperFailed("batch_mismatch", MISMATCH)
            raise PaperFailed(
                "batch_missing",
                "no answer in the batch output; export it again to resubmit",
            )
        if answer.completion is None:
            kind, message = answer.error or ("batch_error", "no answer")
            if kind == "skipped":  # left out by --max-cost: the run stops as an online one does
                raise PaperFailed(kind, message, halt=Halt.DRAIN)
            raise PaperFailed(kind, f"{message} (export it again to resubmit)")
        return await backend.annotate(paper, answered=answer.completion)

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self.backend.aclose()
