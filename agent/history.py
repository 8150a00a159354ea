"""Each ``run`` (and ``batch import``) recorded in the library (DESIGN 15): the command, a
summary of its settings (never a secret), when it started and ended and how, its papers and
each one's result.

Results are recorded as they are written to the results file, a few hundred at a time (one
short transaction each), never held for the whole run. The results file is what a run makes;
the library is its memory: a library that cannot be written costs one warning and the rest of
the run's record, never a result, and the run then exits 1 (its work stands, its memory does
not).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agent.errors import PaperAgentError

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.models import Paper, PaperResult
    from agent.store import Library
    from agent.taxonomy import Taxonomy

log = logging.getLogger(__name__)

BATCH = 200  # results per transaction at most
EVERY = 1.0  # seconds after which the next result recorded takes those waiting with it
DEFAULT_SERVER = "https://api.openai.com/v1"


def settings_key(settings: Settings, taxonomy: Taxonomy, *, batch: bool = False) -> str:
    """A hash of everything that shapes a paper's tags and summary (the backend, its model
    and server, the taxonomy, the prompt templates, the limits...): an annotation is stored
    under it, so the same paper annotated otherwise is another annotation. ``batch``: the
    answers come from batch files (the LLM's, whatever ``--backend`` says)."""
    return _hash(_ingredients(settings, taxonomy, batch))


def settings_summary(
    settings: Settings, taxonomy: Taxonomy, *, batch: bool = False
) -> dict[str, Any]:
    """What ``paper-agent runs`` may show of a run's settings: no key, no password, no
    webhook (a base URL keeps only its scheme, host, port and path)."""
    summary = {
        k: v
        for k, v in _ingredients(settings, taxonomy, batch).items()
        if k not in ("taxonomy", "prompts", "criteria")
    }
    summary["taxonomy"] = str(settings.taxonomy) if settings.taxonomy else "bundled"
    if settings.prompts_dir is not None:
        summary["prompts_dir"] = str(settings.prompts_dir)
    summary["interests"] = len(settings.criteria) + (settings.liked is not None)
    summary["settings_key"] = settings_key(settings, taxonomy, batch=batch)
    return summary


def _ingredients(settings: Settings, taxonomy: Taxonomy, batch: bool) -> dict[str, Any]:
    """What makes an annotation, by backend."""
    from agent import __version__

    backend = "openai" if batch or settings.batch_api else settings.resolved_backend()
    made: dict[str, Any] = {
        "backend": backend,
        "taxonomy": taxonomy.model_dump(mode="json"),
        "max_tags": taxonomy.tag_limit(settings.max_tags),
        "summary_words": settings.summary_words,
        "max_abstract_chars": settings.max_abstract_chars,
    }
    if backend == "local":
        # The offline tagger and summarizer are code: another version may answer otherwise.
        made |= {"version": __version__, "semantic": settings.semantic}
        return made
    from agent.llm.cache import server_id

    return made | {
        "model": settings.model,
        "server": server_id(settings.base_url or DEFAULT_SERVER),
        "prompts": _prompts(settings.prompts_dir),
        "criteria": settings.criteria,  # with interests, the LLM is asked their relevance
        "papers_per_request": settings.papers_per_request,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "response_format": settings.response_format,
    }


def _prompts(directory: Path | None) -> str:
    """A hash of the prompt templates' text (``--prompts-dir``, else the bundled ones)."""
    from agent.llm.prompts import default_prompts_dir

    folder = directory or default_prompts_dir()
    texts = {}
    for template in sorted(folder.glob("*.j2")):
        try:
            texts[template.name] = template.read_text(encoding="utf-8", errors="replace")
        except OSError:
            texts[template.name] = None  # the run itself says what is wrong with it
    return _hash(texts)


def _hash(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def command_line(
    inputs: Iterable[str], sources: Iterable[str], output: Path, verb: str = "run"
) -> str:
    """The run as a command: its inputs, sources (``--source``, or for ``batch import`` its
    ``--output-file``) and results file; its settings are apart."""
    from agent.llm.redact import scrub

    option = "--source" if verb == "run" else "--output-file"
    words = [*verb.split(), *inputs]
    for spec in sources:
        words += [option, spec]
    words += ["-o", str(output)]
    return scrub(" ".join(shlex.quote(w) for w in words))


class RunRecorder:
    """One run in the library: started now, its results recorded as they come."""

    def __init__(self, library: Library, run: int, settings: str) -> None:
        self.library = library
        self.run = run
        self.ok = True  # False once a write failed: the rest is not recorded
        self._settings = settings
        self._papers: deque[Paper] = deque()  # read by the pipeline, result not yet written
        self._pending: list[tuple[int, Paper, PaperResult]] = []
        self._position = 0
        self._since = time.monotonic()

    def track(self, papers: Iterable[Paper]) -> Iterator[Paper]:
        """``papers``, each noted as it is read: its result, in input order, is about it."""
        for paper in papers:
            self._papers.append(paper)
            yield paper

    def add(self, result: PaperResult) -> None:
        """Record one written result (in input order), in the next batch."""
        paper = self._papers.popleft() if self._papers else None
        if paper is None or paper.id != result.id:
            from agent.delivery.journal import paper_of

            paper = paper_of(result)  # never expected: the result still says what it is about
        self._pending.append((self._position, paper, result))
        self._position += 1
        if len(self._pending) >= BATCH or time.monotonic() - self._since >= EVERY:
            self.flush()

    def flush(self) -> None:
        """Record the results waiting, in one transaction."""
        batch, self._pending = self._pending, []
        self._since = time.monotonic()
        if batch and self.ok:
            self._write(lambda: self.library.runs.record(self.run, batch, self._settings))

    def finish(self, code: int, note: str | None = None) -> None:
        """Record what is left and how the run ended (its exit code), then close."""
        self.flush()
        status = {0: "ok", 1: "failed", 2: "error"}.get(code, "interrupted")
        if self.ok:
            self._write(lambda: self.library.runs.finish(self.run, status, code, note))
        self.library.close()

    def _write(self, write: Callable[[], object]) -> None:
        try:
            write()
        except PaperAgentError as exc:
            self.ok = False
            _unrecorded(exc)


def _unrecorded(exc: PaperAgentError) -> None:
    """The one warning of a run the library cannot record."""
    log.warning("cannot record this run in the library (%s); its results file is whole", exc)


class Outcome:
    """How ``run`` ended, whichever way it does (an exit code, an error, Ctrl-C), written to
    its record when it has one; a context manager around the command's body."""

    def __init__(self) -> None:
        self.recorder: RunRecorder | None = None
        self.failed = False  # the library could not even start the record

    def start(
        self, settings: Settings, taxonomy: Taxonomy, command: str, *, batch: bool = False
    ) -> RunRecorder | None:
        """Start the run's record; None (and a warning) when the library cannot take it."""
        from agent.store import Library

        summary = settings_summary(settings, taxonomy, batch=batch)
        library = None
        try:
            library = Library.open(settings.home)
            run = library.runs.start(command, summary)
        except PaperAgentError as exc:
            if library is not None:
                library.close()
            _unrecorded(exc)
            self.failed = True
            return None
        self.recorder = RunRecorder(library, run, summary["settings_key"])
        return self.recorder

    @property
    def recorded(self) -> bool:
        """False when the run's record could not be started or is not whole."""
        return not self.failed and (self.recorder is None or self.recorder.ok)

    def __enter__(self) -> Outcome:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.recorder is None:
            return
        code, note = 0, None
        if isinstance(exc, SystemExit):
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        elif isinstance(exc, KeyboardInterrupt):
            code, note = 130, "interrupted"
        elif isinstance(exc, PaperAgentError):
            code, note = exc.exit_code, str(exc)
        elif exc is not None:
            code, note = 2, f"{type(exc).__name__}: {exc}"
        if note is not None:
            from agent.llm.redact import scrub

            note = scrub(note)
        self.recorder.finish(code, note)
