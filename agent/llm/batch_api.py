"""OpenAI's Batch API end to end: upload, create, poll, download, then import (DESIGN 14).

Every job is saved in the library of the state dir as soon as the API gives it an id:
the upload's file id, then the batch id. A request file is known by the sha256 of its content,
so a rerun of an interrupted run finds its batches by their files and never uploads the same
work twice; a batch that failed, expired or was cancelled is not reused, and the rerun's
export (only papers without a cached answer) resubmits exactly what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import NOT_RUN, BackendError, ConfigError, InputError
from agent.llm import retry
from agent.llm.batch import (
    ENDPOINT,
    BatchAnswer,
    export_requests,
    read_batch_output,
    split_custom_id,
)
from agent.llm.redact import redact
from agent.llm.retry import call_with_retry
from agent.models import Paper

if TYPE_CHECKING:
    from agent.backends.openai import OpenAIBackend
    from agent.llm.client import LLM

log = logging.getLogger(__name__)

WINDOW = "24h"
MAX_POLL_SECONDS = 600.0
DONE = ("completed", "expired", "cancelled")  # these have output and error files to read
ENDED = (*DONE, "failed", "not_found")  # any other status (an unknown one too) is still running
# A batch in these states is not reused: its missing answers are exported and sent again.
SPENT = ("failed", "expired", "cancelled", "not_found")

Notify = Callable[[str], None]


@dataclass
class Job:
    """One request file and the batch that answers it."""

    sha256: str
    requests_file: str
    requests: int
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str = "uploading"
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    problem: str = ""  # why a batch failed (its validation errors)
    created: float = 0.0

    def label(self) -> str:
        """The batch id, or the request file while it has none."""
        return self.batch_id or Path(self.requests_file).name


def jobs_dir(home: Path) -> Path:
    """Where request files, downloaded outputs and the job list live in the state dir."""
    return home / "batches"


class Jobs:
    """The saved jobs, in the library of the state dir (shared by every process using it);
    the request and output files stay in ``batches/``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.directory = jobs_dir(home)

    def load(self) -> list[Job]:
        """Every saved job, oldest first."""
        from agent.store import Library

        with Library.open(self.home) as library:
            saved = library.batch_jobs.all()
        names = {f.name for f in fields(Job)}
        jobs = []
        for item in saved:
            try:
                jobs.append(Job(**{k: v for k, v in item.items() if k in names}))
            except TypeError:  # imported from a hand-edited old list: not a job we can follow
                log.warning("ignoring a saved batch job without its request file: %s", item)
        return jobs

    def save(self, job: Job) -> None:
        """Add or update ``job`` (known by its request file's hash and creation time)."""
        from agent.store import Library

        with Library.open(self.home) as library:
            library.batch_jobs.put(asdict(job))

    def find(self, sha256: str) -> Job | None:
        """The reusable job for a request file: not failed, expired or cancelled."""
        for job in reversed(self.load()):
            if job.sha256 == sha256 and job.status not in SPENT:
                return job
        return None

    def pick(self, batch_id: str | None) -> list[Job]:
        """The job with ``batch_id``, or every job still running when None."""
        jobs = self.load()
        if batch_id is None:
            return [j for j in jobs if j.batch_id and j.status not in ENDED]
        found = [j for j in jobs if j.batch_id == batch_id]
        if not found:
            raise InputError(f"no batch {batch_id} among the saved Batch API jobs")
        return found


class BatchAPI:
    """The Batch API calls we make, through the SDK on our httpx client, each retried."""

    def __init__(self, llm: LLM, notify: Notify, poll_seconds: float) -> None:
        self.llm = llm
        self.notify = notify
        self.poll_seconds = poll_seconds

    async def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """One API call with the retry policy; a refusal stops the run with one line."""
        import openai

        try:
            return await call_with_retry(fn, self.llm.policy)
        except openai.APIStatusError as exc:
            detail = redact(str(getattr(exc, "message", exc)), [self.llm.settings.api_key])
            raise BackendError(
                f"the Batch API refused to {what} (HTTP {exc.status_code}): {detail}"
            ) from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise BackendError(f"cannot reach {self.llm.base_url} to {what}: {exc}") from None

    async def submit(self, path: Path, sha: str, requests: int, jobs: Jobs) -> Job:
        """Upload ``path`` (content hash ``sha``) and create its batch, unless a live job
        already has this file."""
        job = jobs.find(sha)
        if job is not None and job.batch_id:
            self.notify(f"batch {job.batch_id} already has {path.name}: resuming it")
            return job
        job = job or Job(sha, str(path), requests, created=time.time())
        sdk = self.llm.sdk()
        if job.input_file_id is None:

            async def upload() -> Any:
                with path.open("rb") as stream:
                    return await sdk.files.create(file=(path.name, stream), purpose="batch")

            uploaded = await self.call(f"upload {path.name}", upload)
            job.input_file_id = uploaded.id
            jobs.save(job)  # from here on a rerun reuses the upload
        else:
            # Uploaded by a run that stopped before it saved its batch: that run may have
            # created one already, which the API lists under the same input file.
            page = await self.call("list batches", lambda: sdk.batches.list(limit=100))
            for batch in page.data:
                if batch.input_file_id == job.input_file_id and batch.status not in SPENT:
                    self._update(job, batch)
                    jobs.save(job)
                    self.notify(f"batch {job.batch_id} already has {path.name}: resuming it")
                    return job
        created = await self.call(
            "create a batch",
            lambda: sdk.batches.create(
                input_file_id=job.input_file_id,
                endpoint=ENDPOINT,
                completion_window=WINDOW,
                metadata={"paper_agent_sha256": sha[:64]},
            ),
        )
        self._update(job, created)
        jobs.save(job)
        self.notify(f"batch {job.batch_id} created for {requests} request(s)")
        return job

    async def refresh(self, job: Job, jobs: Jobs) -> Job:
        """The job with its batch's current status; a batch the API no longer knows (another
        account, deleted) is marked ``not_found`` and never waited for again."""
        import openai

        sdk = self.llm.sdk()
        try:
            return await self._apply(job, jobs, "check", sdk.batches.retrieve)
        except BackendError as exc:
            if not isinstance(exc.__context__, openai.NotFoundError):
                raise
        job.status, job.problem = "not_found", "the API does not know this batch"
        jobs.save(job)
        return job

    async def wait(self, pending: list[Job], jobs: Jobs) -> None:
        """Poll until every job is finished: the first wait is ``poll_seconds``, doubling to
        10 minutes, with one progress line per change."""
        delay = self.poll_seconds
        shown: dict[str, str] = {}
        while True:
            for job in pending:
                if job.status not in ENDED:
                    await self.refresh(job, jobs)
                line = f"batch {job.label()}: {job.status}, {job.completed}/{job.requests} done" + (
                    f", {job.failed} failed" if job.failed else ""
                )
                if shown.get(job.label()) != line:
                    shown[job.label()] = line
                    self.notify(line)
            if all(job.status in ENDED for job in pending):
                return
            await retry.sleep(delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)

    async def cancel(self, job: Job, jobs: Jobs) -> Job:
        """Ask the API to cancel the job's batch."""
        sdk = self.llm.sdk()
        return await self._apply(job, jobs, "cancel", sdk.batches.cancel)

    async def _apply(self, job: Job, jobs: Jobs, verb: str, method: Any) -> Job:
        """Call ``method(batch_id)``, and save the batch it returns into the job."""
        batch = await self.call(f"{verb} batch {job.batch_id}", lambda: method(job.batch_id))
        self._update(job, batch)
        jobs.save(job)
        return job

    async def download(self, job: Job, directory: Path) -> list[Path]:
        """The job's output and error files, downloaded once into ``directory``."""
        sdk = self.llm.sdk()
        paths = []
        for kind, file_id in (("output", job.output_file_id), ("errors", job.error_file_id)):
            if not file_id:
                continue
            target = directory / f"{file_stem(job.batch_id or '')}-{kind}.jsonl"
            if not target.exists():
                content = await self.call(
                    f"download {file_id}", lambda file_id=file_id: sdk.files.content(file_id)
                )
                partial = target.with_name(target.name + ".partial")
                partial.write_bytes(content.content)
                os.replace(partial, target)
            paths.append(target)
        return paths

    @staticmethod
    def _update(job: Job, batch: Any) -> None:
        job.batch_id = batch.id
        job.status = batch.status
        counts = batch.request_counts
        if counts is not None:
            job.completed, job.failed = counts.completed, counts.failed
        job.output_file_id = batch.output_file_id
        job.error_file_id = batch.error_file_id
        errors = getattr(batch.errors, "data", None) or []
        job.problem = "; ".join(str(e.message) for e in errors if getattr(e, "message", None))


def file_stem(batch_id: str) -> str:
    """A file name for a batch id the server chose: the id itself when it is a plain token
    ("batch_abc123"), else its hash, so "../../x" never leaves the batches directory."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,100}", batch_id):
        return batch_id
    return "batch-" + hashlib.sha256(batch_id.encode()).hexdigest()[:16]


def failed_answers(job: Job) -> dict[str, BatchAnswer]:
    """An error for every request of a batch that failed as a whole (its file was refused)."""
    why = job.problem or "the batch failed"
    answers: dict[str, BatchAnswer] = {}
    with contextlib.suppress(OSError), open(job.requests_file, encoding="utf-8") as stream:
        for line in stream:
            ids = split_custom_id(json.loads(line).get("custom_id", ""))
            if ids is not None:
                answers[ids[0]] = BatchAnswer(
                    error=("batch_failed", f"batch {job.batch_id}: {why}")
                )
    return answers


async def answer_by_batch(
    backend: OpenAIBackend, papers: Iterable[Paper], notify: Notify | None = None
) -> dict[str, BatchAnswer]:
    """Export the uncached papers, run them through the Batch API and return the answers.

    Cached papers never leave the machine; when every paper is cached nothing is uploaded.
    """
    notify = notify or log.warning
    settings = backend.settings
    jobs = Jobs(settings.home)
    directory = jobs.directory
    directory.mkdir(parents=True, exist_ok=True)
    scratch = directory / f"export-{os.getpid()}.jsonl"
    exported = export_requests(backend, papers, scratch)
    skipped: dict[str, BatchAnswer] = {}
    budget = backend.llm.budget
    if budget is not None and budget.refused:
        why = ("skipped", f"{NOT_RUN}{budget.refused}; run again to retry it")
        skipped = {key: BatchAnswer(error=why) for key in exported.over_budget}
    if not exported.files:
        if not skipped:
            notify(f"batch: all {exported.cached} answer(s) are cached; nothing to send")
        return skipped
    api = BatchAPI(backend.llm, notify, settings.batch_poll_seconds)
    pending = []
    for path, requests in zip(exported.files, exported.lines, strict=True):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        named = directory / f"requests-{sha[:16]}.jsonl"
        os.replace(path, named)
        pending.append(await api.submit(named, sha, requests, jobs))
    await api.wait(pending, jobs)
    return {**await collect(api, pending), **skipped}


async def collect(api: BatchAPI, finished: list[Job]) -> dict[str, BatchAnswer]:
    """The answers and per-paper errors of finished jobs (outputs downloaded once)."""
    answers: dict[str, BatchAnswer] = {}
    for job in finished:
        if job.status in ("failed", "not_found"):
            api.notify(f"batch {job.batch_id} failed: {job.problem or 'no reason given'}")
            answers.update(failed_answers(job))
            continue
        paths = await api.download(job, Path(job.requests_file).parent)
        for key, answer in read_batch_output(paths).items():
            if key not in answers or answers[key].completion is None:
                answers[key] = answer
    return answers


@contextlib.asynccontextmanager
async def batch_api(settings: Any, notify: Notify) -> AsyncIterator[tuple[BatchAPI, Jobs]]:
    """A ``BatchAPI`` and the job list for the ``batch`` commands (status, resume, cancel)."""
    from agent.llm.client import LLM
    from agent.llm.http import make_client

    if not settings.api_key and not settings.base_url:
        raise ConfigError(f"the Batch API needs {settings.api_key_env} (or OPENAI_BASE_URL)")
    async with make_client(settings.timeout) as http:
        yield (
            BatchAPI(LLM(settings, http), notify, settings.batch_poll_seconds),
            Jobs(settings.home),
        )
