"""Several papers in one LLM request (``--papers-per-request``): fewer prompt tokens per paper.

The pipeline asks for one paper at a time from many workers; ``PaperGroups`` collects those
papers into requests of up to K (sent when K are waiting, or when no paper came for ``IDLE``
seconds), at most ``concurrency`` requests at a time. The group answer is keyed by paper id,
never by position; each paper's part is then handled exactly as a single-paper answer
(``OpenAIBackend.ask_one`` with the part as its first answer): validated, cached under the
paper's own single-paper key (so a rerun at any K hits), and when invalid repaired alone. A
paper the answer left out is asked alone; an answer for an unknown or repeated id is ignored
and logged. A shared request's usage is split across its papers, so the run's totals stay exact.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agent.errors import PaperFailed
from agent.llm.answers import AnswerInvalid, is_placeholder, split_group
from agent.llm.client import SERVER_TROUBLE, Completion, Messages
from agent.llm.prompts import prompt_id
from agent.models import Annotation, Paper, Usage

if TYPE_CHECKING:
    from agent.backends.openai import OpenAIBackend

log = logging.getLogger(__name__)

# Seconds without a new paper after which a group that is not full goes anyway. The workers
# whose papers a request just finished come back within a few milliseconds.
IDLE = 0.02

Waiting = tuple[Paper, "asyncio.Future[Annotation]"]


class PaperGroups:
    """A micro-batcher in front of the LLM: ``annotate(paper)`` resolves when its group is done."""

    def __init__(
        self, backend: OpenAIBackend, size: int, concurrency: int, idle: float = IDLE
    ) -> None:
        self.backend = backend
        self.size = size
        self.idle = idle
        self._slots = asyncio.Semaphore(concurrency)  # requests in flight, as with K = 1
        self._pending: list[Waiting] = []
        self._arrived = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def annotate(self, paper: Paper) -> Annotation:
        """The paper's annotation, asked together with the papers that come with it."""
        future: asyncio.Future[Annotation] = asyncio.get_running_loop().create_future()
        self._pending.append((paper, future))
        self._arrived.set()
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch())
        return await future

    async def aclose(self) -> None:
        """Cancel the dispatcher and the groups still being asked (the run is over)."""
        tasks = [t for t in (self._dispatcher, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()

    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            group = await self._next_group()
            task = asyncio.create_task(self._run(group))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _next_group(self) -> list[Waiting]:
        """Up to ``size`` waiting papers, once ``size`` wait or none came for ``idle`` seconds."""
        while True:
            self._pending = [w for w in self._pending if not w[1].done()]  # drop cancelled
            if len(self._pending) >= self.size:
                break
            self._arrived.clear()
            if not self._pending:
                await self._arrived.wait()
                continue
            try:
                await asyncio.wait_for(self._arrived.wait(), self.idle)
            except TimeoutError:
                break
        group: list[Waiting] = []
        ids: set[str] = set()
        rest: list[Waiting] = []
        for waiting in self._pending:
            key = prompt_id(waiting[0])
            # Two papers the prompt shows with the same id could not tell their answers apart.
            if len(group) < self.size and key not in ids:
                group.append(waiting)
                ids.add(key)
            else:
                rest.append(waiting)
        self._pending = rest
        return group

    async def _run(self, group: list[Waiting]) -> None:
        try:
            await self._ask(group)
        except asyncio.CancelledError:
            for _, future in group:
                future.cancel()
            raise
        except Exception as exc:  # BackendError (the run stops), or a bug: never swallowed,
            for _, future in group:  # every paper of the group raises it in its worker
                if not future.done():
                    future.set_exception(exc)

    async def _ask(self, group: list[Waiting]) -> None:
        """Ask for the group in one request, then settle each paper as a single answer.

        What a paper whose worker is gone (cancelled) would have carried, its share of the
        request included, is counted as ``abandoned``: the server received it all the same.
        """
        backend = self.backend
        papers = [paper for paper, _ in group]
        usage = Usage()
        parts: dict[str, str] = {}
        if len(papers) > 1:

            def render(fmt: str) -> Messages:
                return backend.prompts(fmt).group_messages(papers)

            try:
                completion = await backend.llm.complete(render, backend.group_question(), usage)
            except asyncio.CancelledError:
                backend.llm.abandoned(usage)
                raise
            except PaperFailed as exc:
                if exc.halt or exc.kind in SERVER_TROUBLE:
                    # The server's trouble, not the papers': asking each alone would only
                    # multiply the load. Each paper fails as the request did.
                    for (_, future), share in zip(group, usage.split(len(group)), strict=True):
                        failed = PaperFailed(exc.kind, exc.message, usage=share, halt=exc.halt)
                        self._settle(future, failed, share)
                    return
                log.warning(
                    "a request for %d papers failed (%s); asking each alone", len(papers), exc
                )
            else:
                parts = self._parts(completion, papers)
        shared = zip(group, usage.split(len(group)), strict=True)
        # Papers with a valid part need no request: they finish first, the rest after.
        order = sorted(
            shared, key=lambda item: not self._valid(parts.get(prompt_id(item[0][0])), item[0][0])
        )
        unsettled = [share for _, share in order]  # shares not yet carried by a paper's outcome
        try:
            for (paper, future), share in order:
                unsettled.pop(0)
                if future.done():  # its worker was cancelled
                    backend.llm.abandoned(share)
                    continue
                part = parts.get(prompt_id(paper))
                answered = None if part is None else _completion(part)
                try:
                    answer = await backend.ask_one(paper, answered=answered)
                except asyncio.CancelledError:
                    backend.llm.abandoned(share)  # ask_one counted its own
                    raise
                except PaperFailed as exc:
                    # A new error per paper: the client may raise one stored error to many
                    # papers, and each paper's usage is its own.
                    own = exc.usage if isinstance(exc.usage, Usage) else Usage()
                    mine = PaperFailed(
                        exc.kind,
                        exc.message,
                        last_raw=exc.last_raw,
                        usage=share + own,
                        halt=exc.halt,
                    )
                    self._settle(future, mine, share + own)
                    continue
                answer.usage = share + answer.usage
                self._settle(future, backend.annotation(paper, answer), answer.usage)
        finally:
            for share in unsettled:
                backend.llm.abandoned(share)

    def _settle(
        self, future: asyncio.Future[Annotation], outcome: Annotation | PaperFailed, usage: Usage
    ) -> None:
        """Hand ``outcome`` to its paper's worker, or count its ``usage`` as abandoned when
        the worker is gone."""
        if future.done():
            self.backend.llm.abandoned(usage)
        elif isinstance(outcome, PaperFailed):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def _parts(self, completion: Completion, papers: list[Paper]) -> dict[str, str]:
        """Each paper's part of the group answer by prompt id; {} when it has none to give."""
        choice = completion.choices[0]
        problem = None
        if choice.message.refusal:
            problem = f"the model refused ({choice.message.refusal})"
        elif choice.finish_reason in ("content_filter", "length"):
            problem = f"the answer stopped at {choice.finish_reason}"
        else:
            try:
                entries = split_group(choice.message.content or "")
            except AnswerInvalid as exc:
                problem = str(exc)
        if problem is not None:
            log.warning("a request for %d papers: %s; asking each alone", len(papers), problem)
            return {}
        wanted = {prompt_id(paper) for paper in papers}
        placeholders = self.backend.prompts().placeholders
        copied = [key for key, _ in entries if key is not None and key not in wanted]
        copied = [key for key in copied if is_placeholder(key, placeholders)]
        if copied:
            # Said once, as what it is: the model copied the answer format's example id.
            log.warning(
                "group answer: %d of %d answers give the prompt's placeholder id %r instead "
                "of a paper's id (the model copied the example); those papers are asked alone",
                len(copied),
                len(entries),
                copied[0],
            )
        parts: dict[str, str] = {}
        for key, text in entries:
            if key in copied:
                continue
            if key is None:
                log.warning("group answer: an entry without an id, ignored: %.200s", text)
            elif key not in wanted:
                log.warning("group answer: an answer for id %r, not in the request, ignored", key)
            elif key in parts:
                log.warning("group answer: a second answer for id %r, ignored", key)
            else:
                parts[key] = text
        missing = [paper.id for paper in papers if prompt_id(paper) not in parts]
        if missing:
            log.warning("group answer: no answer for %s; asking for each alone", ", ".join(missing))
        return parts

    def _valid(self, part: str | None, paper: Paper) -> bool:
        if part is None:
            return False
        try:
            self.backend.validate(part, False, paper)
        except AnswerInvalid:
            return False
        return True


def _completion(part: str) -> Completion:
    """A paper's part of a group answer, shaped as the completion of its own request."""
    choice = {"message": {"content": part}, "finish_reason": "stop"}
    return Completion.model_validate({"choices": [choice]})
