"""The delivery journal: which message of which digest reached which destination, carrying
which papers, so no paper reaches the same destination twice.

One record per message a service accepted: ``(digest, channel, destination, message, papers)``,
the shape of the library's future ``deliveries`` table. Destinations are known by a one-way
id (never the webhook URL or a password). A journal written by version 1 (digest hash ->
destination -> delivered indexes, no papers) is read as records without papers, and rewritten
as version 2 on the next delivery, its entries kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import state_dir
from agent.models import Paper, PaperResult

log = logging.getLogger(__name__)

LOG_FILE = "deliveries.json"
VERSION = 2
# Older records are pruned so the file stays small: a paper delivered longer ago than this may
# reach the same destination again (no source repeats a paper after so long).
KEEP_DAYS = 90


def digest_hash(messages: Sequence[Any]) -> str:
    """A stable hash of the payloads: the same digest resumes, a changed one starts over."""
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def destination_id(secret: str) -> str:
    """Version 1's one-way fingerprint of a destination: still matched, never written."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


def paper_key(result: PaperResult) -> str:
    """A paper as the seen-store knows it: its arXiv id without version, else its title."""
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


def fingerprint(channel: str, *parts: str) -> str:
    """``channel:`` and a one-way hash of ``parts``."""
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]
    return f"{channel}:{digest}"


@dataclass(frozen=True)
class Delivery:
    """One message a destination accepted, and the keys of the papers it carried."""

    digest: str
    channel: str  # "" for a version-1 record: its log did not say
    destination: str
    message: int  # 0-based index in the digest's messages
    total: int  # messages in that digest
    papers: tuple[str, ...]
    at: str  # ISO 8601, UTC


class DeliveryLog:
    """The journal: a small JSON file in the state dir, replaced atomically on each record."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / LOG_FILE

    def deliveries(self, destination: Destination) -> list[Delivery]:
        """Every record for ``destination`` (under its id or a version-1 alias)."""
        ids = {destination.id, *destination.aliases}
        return [d for d in self._read() if d.destination in ids]

    def record(self, delivery: Delivery, aliases: Iterable[str] = ()) -> None:
        """Add ``delivery``, replacing a record of the same message (under its destination's
        id or an ``aliases`` one), and prune old ones."""
        cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(days=KEEP_DAYS)).isoformat()
        ids = {delivery.destination, *aliases}

        def same(d: Delivery) -> bool:
            return (d.digest, d.message) == (delivery.digest, delivery.message) and (
                d.destination in ids
            )

        kept = [d for d in self._read() if d.at >= cutoff and not same(d)]
        self._write([*kept, delivery])

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a post reads, delivers and records: a second post at once waits for it,
        then finds what it delivered (nothing goes out twice). A state dir where no lock can
        be made costs only that guard, as an unwritable journal costs only the resume."""
        from agent.errors import OutputError
        from agent.outputs import output_lock

        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(output_lock(self.path, "the delivery log", wait=True))
            except OutputError as exc:
                log.warning("cannot lock the delivery log (%s); posting without it", exc)
            yield

    def _read(self) -> list[Delivery]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            # The journal only saves re-sending; a damaged one must not block today's digest.
            log.warning("ignoring unreadable delivery log %s: %s", self.path, exc)
            return []
        if not isinstance(data, dict):
            return []
        records = data.get("deliveries")
        if isinstance(records, list):
            return [d for d in map(_delivery, records) if d is not None]
        digests = data.get("digests")  # version 1
        return list(_from_version_1(digests)) if isinstance(digests, dict) else []

    def _write(self, deliveries: list[Delivery]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One record a line: readable, and a long list of paper keys stays one line.
        # vars(), not asdict(): asdict deep-copies every key, ten times slower on a full journal.
        lines = ",\n".join(json.dumps(vars(d), ensure_ascii=False) for d in deliveries)
        text = f'{{"version": {VERSION}, "deliveries": [\n{lines}\n]}}\n'
        # Write then rename, so an interrupted post never leaves a half-written journal.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".deliveries-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _index(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _delivery(raw: object) -> Delivery | None:
    """A version-2 record, or None for anything else (a hand edit, a damaged file): the
    journal only saves re-sending, it must not stop a post."""
    if not isinstance(raw, dict):
        return None
    digest, channel, destination, at = (
        raw.get("digest"),
        raw.get("channel"),
        raw.get("destination"),
        raw.get("at"),
    )
    message, total, papers = _index(raw.get("message")), _index(raw.get("total")), raw.get("papers")
    if not (
        isinstance(digest, str)
        and isinstance(channel, str)
        and isinstance(destination, str)
        and isinstance(at, str)
        and message is not None
        and message >= 0
        and isinstance(papers, list)
        and _all_text(papers)
    ):
        return None
    return Delivery(digest, channel, destination, message, total or 0, tuple(papers), at)


def _all_text(values: list[object]) -> bool:
    # join() checks every item is a str at C speed: a full journal holds 100,000s of keys.
    try:
        "".join(values)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def _from_version_1(digests: dict[str, Any]) -> Iterable[Delivery]:
    """Version 1's ``{digest: {destination: {"delivered": [i], "total", "updated"}}}`` as
    records without papers; anything malformed in it is dropped, as version 1 dropped it."""
    for digest, destinations in digests.items():
        if not isinstance(destinations, dict):
            continue
        for destination, entry in destinations.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("delivered"), list):
                continue
            total = _index(entry.get("total")) or 0
            updated = entry.get("updated")
            at = updated if isinstance(updated, str) else ""
            for index in sorted({i for i in map(_index, entry["delivered"]) if i is not None}):
                yield Delivery(digest, "", destination, index, total, (), at)
