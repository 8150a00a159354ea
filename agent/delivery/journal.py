"""The delivery journal: which message of which digest reached which destination, carrying
which papers, so no paper reaches the same destination twice.

It is kept in the library of the state dir (its ``deliveries`` tables): one record per message a
service accepted, with the digest's content hash, the channel, the destination's id, the
message's index and the papers it carried. Destinations are known by a one-way id (never the
webhook URL or a password). The journal only saves re-sending: a library that cannot be read
or written costs a warning, never a post.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from agent.config import state_dir
from agent.errors import PaperAgentError
from agent.models import Paper, PaperResult

if TYPE_CHECKING:
    from agent.store import Library
    from agent.store.deliveries import Delivered

log = logging.getLogger(__name__)

T = TypeVar("T")
LOCK_NAME = "deliveries"  # the lock file a post holds in the state dir: deliveries.lock


def digest_hash(messages: Sequence[Any]) -> str:
    """A stable hash of the payloads: the same digest resumes, a changed one starts over."""
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def destination_id(secret: str) -> str:
    """Version 1's one-way fingerprint of a destination: still matched, never written."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


def paper_of(result: PaperResult) -> Paper:
    """The paper a result is about, as far as the result tells."""
    return Paper(
        id=result.id,
        title=result.title,
        abstract="",
        url=result.url,
        authors=result.authors,
        source=result.source,
        metadata=result.metadata,
        published=result.published,
    )


def paper_key(result: PaperResult) -> str:
    """A paper as the library knows it: its arXiv id without version, else its title."""
    from agent.store.keys import key

    return key(Paper(id=result.id, title=result.title, abstract="", url=result.url))


@dataclass(frozen=True)
class Destination:
    """Where messages go, known by ``id``: a short hash that never holds the secret."""

    channel: str  # "slack" | "email"
    id: str
    name: str  # what lines about it start with: "Slack", "Email to a@b.org"
    where: str  # "12 papers already delivered to WHERE left out"
    aliases: tuple[str, ...] = ()  # the ids version 1 wrote for it

    @property
    def ids(self) -> list[str]:
        """Every id its deliveries may be recorded under."""
        return [self.id, *self.aliases]


def fingerprint(channel: str, *parts: str) -> str:
    """``channel:`` and a one-way hash of ``parts``."""
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]
    return f"{channel}:{digest}"


class DeliveryLog:
    """The journal of a state dir (default: the configured one), in its library; use it as
    a context manager, or call ``close()``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or state_dir()
        self._library: Library | None = None
        self._warned = False

    def delivered(self, destination: Destination, results: Sequence[PaperResult]) -> set[str]:
        """The keys of the results' papers that reached ``destination`` before."""
        papers = [paper_of(r) for r in results]
        found = self._read(lambda lib: lib.deliveries.delivered(destination.ids, papers), set())
        return {paper_key(r) for r in results if r.id in found}

    def unfinished(self, destination: Destination) -> list[Delivered]:
        """The messages of the digests delivered to ``destination`` only in part."""
        return self._read(lambda lib: lib.deliveries.unfinished(destination.ids), [])

    def of_digest(self, destination: Destination, digest: str) -> list[Delivered]:
        """The messages of the digest with this hash that reached ``destination``."""
        return self._read(lambda lib: lib.deliveries.of_digest(destination.ids, digest), [])

    def record(
        self,
        destination: Destination,
        digest: str,
        day: str,
        index: int,
        total: int,
        papers: Sequence[PaperResult],
        at: str | None = None,
    ) -> None:
        """Note that message ``index`` of ``total`` of a digest (its hash and date) reached
        ``destination`` carrying ``papers``; a PaperAgentError when the library refuses."""
        library = self._open()
        found = library.deliveries.digest(digest, day)
        carried = [paper_of(r) for r in papers]
        library.deliveries.record(
            found, destination.channel, destination.id, index, total, carried, at=at
        )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a post reads, delivers and records: a second post at once waits for it,
        then finds what it delivered (nothing goes out twice). A state dir where no lock can
        be made costs only that guard, as an unwritable journal costs only the resume."""
        from agent.errors import OutputError
        from agent.outputs import output_lock

        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(
                    output_lock(self.home / LOCK_NAME, "the delivery log", wait=True)
                )
            except OutputError as exc:
                log.warning("cannot lock the delivery log (%s); posting without it", exc)
            yield

    def close(self) -> None:
        """Close the library (a later call opens it again)."""
        if self._library is not None:
            self._library.close()
            self._library = None

    def __enter__(self) -> DeliveryLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self) -> Library:
        if self._library is None:
            from agent.store import Library

            self._library = Library.open(self.home)
        return self._library

    def _read(self, query: Callable[[Library], T], nothing: T) -> T:
        """``query`` on the library; ``nothing`` (and one warning) when it cannot be read."""
        try:
            return query(self._open())
        except PaperAgentError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot read the delivery log (%s): papers delivered before may be sent again",
                    exc,
                )
            return nothing
