"""The one seam every channel delivers through (DESIGN 17): it leaves out the papers a
destination already has, resumes a digest it stopped part-way through, sends the rest in order
and journals each message, with the papers it carried, once the service accepted it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agent.delivery.journal import DeliveryLog, Destination, paper_key
from agent.digest.text import plural
from agent.errors import DeliveryError, PaperAgentError, PartialDeliveryError

if TYPE_CHECKING:
    from agent.digest import Digest
    from agent.models import PaperResult
    from agent.store.deliveries import Delivered

log = logging.getLogger(__name__)

Build = Callable[[list["PaperResult"]], Awaitable["Digest"]]
Say = Callable[[str], None]
AGAIN = "the same command again"


@dataclass(frozen=True)
class Outgoing:
    """One message for a channel, and the keys of the annotated papers it shows or counts."""

    payload: Any
    papers: tuple[str, ...]


class Channel(Protocol):
    """A kind of destination: renders a digest to messages and sends one at a time."""

    destination: Destination

    def render(self, digest: Digest) -> list[Outgoing]:
        """The messages of ``digest``, in sending order."""
        ...

    def digest_key(self, messages: list[Outgoing]) -> str:
        """A stable hash of what the messages say (not of their dates or ids)."""
        ...

    async def send(self, payload: Any) -> None:
        """Deliver one message; a DeliveryError (saying why) when the service did not take it."""
        ...


@dataclass
class Plan:
    """What a delivery will do: the digest's messages, those already delivered, and how many
    papers were left out for having reached this destination before."""

    digest: str
    messages: list[Outgoing]
    day: str = ""  # the digest's date
    done: set[int] = field(default_factory=set)
    left_out: int = 0
    resumed: bool = False  # the digest a failed delivery stopped in, not a new one
    # Delivered messages whose records name no paper (a version-1 delivery log): recorded again
    # with the papers they carried, so the next digest leaves those out too.
    unnamed: dict[int, str] = field(default_factory=dict)  # index -> when it was delivered

    @property
    def pending(self) -> list[int]:
        """Indexes of the messages to send."""
        return [i for i in range(len(self.messages)) if i not in self.done]

    @property
    def payloads(self) -> list[Any]:
        """The payloads of the messages to send."""
        return [self.messages[i].payload for i in self.pending]

    @property
    def nothing_new(self) -> bool:
        """Every paper this digest would carry already reached the destination."""
        return (
            not self.resumed
            and bool(self.left_out)
            and not any(self.messages[i].papers for i in self.pending)
        )

    def notes(self, destination: Destination, force: str = "--force") -> list[str]:
        """What a delivery says before sending: why nothing goes (and that ``force`` sends
        anyway), or what is left out."""
        name = destination.name
        if self.nothing_new:
            papers = plural(self.left_out, "paper")
            return [
                f"{name}: nothing new to send: {papers} already delivered there "
                f"({force} sends them again)"
            ]
        if not self.pending:
            return [
                f"{name}: nothing sent: this digest was already delivered ({force} sends it again)"
            ]
        lines = []
        if self.left_out:
            papers = plural(self.left_out, "paper")
            lines.append(f"{papers} already delivered to {destination.where} left out")
        if self.done:
            done = f"{len(self.done)} of {plural(len(self.messages), 'message')}"
            lines.append(f"{name}: {done} already delivered, not sent again")
        return lines

    @property
    def sends(self) -> bool:
        """Whether any message goes."""
        return bool(self.pending) and not self.nothing_new


@dataclass
class Report:
    """What a delivery did; message numbers are 1-based, as shown to users."""

    total: int
    sent: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    left_out: int = 0


class Builder:
    """``build`` memoized by the papers it is given: a file and two channels that share a
    set of papers share one digest (and its one highlights request)."""

    def __init__(self, build: Build) -> None:
        self._build = build
        self._built: dict[tuple[str, ...], Digest] = {}

    async def __call__(self, results: list[PaperResult]) -> Digest:
        """The digest of ``results``."""
        key = tuple(r.id for r in results)
        if key not in self._built:
            self._built[key] = await self._build(results)
        return self._built[key]


async def plan(
    results: Sequence[PaperResult],
    build: Build,
    channel: Channel,
    journal: DeliveryLog,
    *,
    force: bool = False,
) -> Plan:
    """What delivering the digest of ``results`` to ``channel`` sends (nothing is sent)."""
    everything = list(results)
    destination = channel.destination
    if force:
        built = await build(everything)
        messages = channel.render(built)
        return Plan(channel.digest_key(messages), messages, _day(built))
    keys = [paper_key(r) for r in everything]
    delivered = journal.delivered(destination, everything)

    stopped = _stopped(journal.unfinished(destination), set(keys))
    if stopped is not None:
        # Rebuilt from what it was built from (today's papers less those other digests
        # delivered), a digest stopped part-way resumes with its own numbering.
        digest, done, theirs = stopped
        base = [
            r for r, k in zip(everything, keys, strict=True) if k not in delivered or k in theirs
        ]
        built = await build(base)
        messages = channel.render(built)
        if channel.digest_key(messages) == digest:
            left_out = len(everything) - len(base)
            unnamed = _unnamed(journal.of_digest(destination, digest), messages)
            return Plan(
                digest, messages, _day(built), done, left_out, resumed=True, unnamed=unnamed
            )

    fresh = [r for r, k in zip(everything, keys, strict=True) if k not in delivered]
    built = await build(fresh)
    messages = channel.render(built)
    digest = channel.digest_key(messages)
    # The same digest again (a day with no paper, one of failures only): its messages count.
    records = journal.of_digest(destination, digest)
    done = {r.message for r in records if r.message < len(messages)}
    unnamed = _unnamed(records, messages)
    left_out = len(everything) - len(fresh)
    return Plan(digest, messages, _day(built), done, left_out, unnamed=unnamed)


def _day(digest: Digest) -> str:
    """The date a digest is for, as the library records it."""
    return digest.date.isoformat()


def _unnamed(records: list[Delivered], messages: list[Outgoing]) -> dict[int, str]:
    """Delivered messages of one digest (``records``) recorded without the papers they
    carry, and when."""
    named = {r.message for r in records if r.papers}
    return {
        r.message: r.at
        for r in records
        if r.message < len(messages) and r.message not in named and messages[r.message].papers
    }


def _stopped(records: list[Delivered], keys: set[str]) -> tuple[str, set[int], set[str]] | None:
    """The newest digest delivered only in part whose delivered papers are all among ``keys``
    (so these results may rebuild it): its hash, delivered indexes and papers."""
    digests: dict[str, list[Delivered]] = {}
    for record in records:
        digests.setdefault(record.digest, []).append(record)
    candidates = []
    for digest, parts in digests.items():
        done = {r.message for r in parts}
        theirs = {k for r in parts for k in r.papers}
        if len(done) < max(r.total for r in parts) and theirs <= keys:
            candidates.append((max(r.at for r in parts), digest, done, theirs))
    if not candidates:
        return None
    _, digest, done, theirs = max(candidates)
    return digest, done, theirs


async def deliver(
    results: Sequence[PaperResult],
    build: Build,
    channel: Channel,
    *,
    force: bool = False,
    journal: DeliveryLog | None = None,
    say: Say | None = None,
    on_sent: Callable[[int, int], None] | None = None,
    again: str = AGAIN,
    forcing: str = "--force",
) -> Report:
    """Deliver the digest of ``results`` to ``channel``: the papers it already has left out
    (unless ``force``), a stopped digest resumed, one line per outcome to ``say``; raise
    PartialDeliveryError naming what was and was not delivered (``again`` sends the rest,
    ``forcing`` would send every paper)."""
    own = journal is None
    journal = journal or DeliveryLog()
    try:
        return await _deliver(
            results, build, channel, journal, force, say or log.info, on_sent, again, forcing
        )
    finally:
        if own:
            journal.close()


async def _deliver(
    results: Sequence[PaperResult],
    build: Build,
    channel: Channel,
    journal: DeliveryLog,
    force: bool,
    tell: Say,
    on_sent: Callable[[int, int], None] | None,
    again: str,
    forcing: str,
) -> Report:
    """``deliver`` with its journal open."""
    name = channel.destination.name
    by_key = {paper_key(r): r for r in results}
    with journal.lock():
        todo = await plan(results, build, channel, journal, force=force)
        for index, at in todo.unnamed.items():
            _record(journal, todo, channel.destination, index, by_key, at)
        total = len(todo.messages)
        report = Report(total, skipped=sorted(i + 1 for i in todo.done), left_out=todo.left_out)
        for line in todo.notes(channel.destination, forcing):
            tell(line)
        if not todo.sends:
            return report
        for index in todo.pending:
            message = todo.messages[index]
            try:
                await channel.send(message.payload)
            except DeliveryError as exc:
                delivered = [*report.skipped, *report.sent]
                raise PartialDeliveryError(
                    name, index + 1, total, delivered, str(exc), again
                ) from None
            report.sent.append(index + 1)
            _record(journal, todo, channel.destination, index, by_key)
            if on_sent is not None:
                on_sent(index + 1, total)
    tell(f"{name}: {plural(len(report.sent), 'message')} delivered")
    return report


def _record(
    journal: DeliveryLog,
    todo: Plan,
    destination: Destination,
    index: int,
    by_key: dict[str, PaperResult],
    at: str | None = None,
) -> None:
    """Journal message ``index`` of ``todo`` as delivered (``at``: when, default now)."""
    papers = [by_key[k] for k in todo.messages[index].papers if k in by_key]
    try:
        journal.record(destination, todo.digest, todo.day, index, len(todo.messages), papers, at)
    except PaperAgentError as exc:
        # Delivered is delivered: a journal we cannot write costs only the next day's guard.
        log.warning("cannot write the delivery log (%s): these papers may be sent again", exc)
