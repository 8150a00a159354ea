"""The delivery log: which messages of which digest reached which destination (for --resume)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agent.config import state_dir

log = logging.getLogger(__name__)

LOG_FILE = "deliveries.json"
# Old entries are pruned so the file stays small; a digest older than this is not resumed.
KEEP_DAYS = 30


def digest_hash(messages: Sequence[Any]) -> str:
    """A stable hash of the payloads: the same digest resumes, a changed one starts over."""
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def destination_id(secret: str) -> str:
    """A one-way fingerprint of a destination, so the log never holds the webhook URL."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


class DeliveryLog:
    """A small JSON file in the state dir: digest hash -> destination -> delivered messages."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / LOG_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # The log only saves re-sending; a damaged one must not block today's digest.
            log.warning("ignoring unreadable delivery log %s: %s", self.path, exc)
            return {}
        digests = data.get("digests") if isinstance(data, dict) else None
        return _clean(digests) if isinstance(digests, dict) else {}

    def delivered(self, digest: str, destination: str) -> set[int]:
        """Indexes (0-based) of the messages already delivered."""
        return set(self._read().get(digest, {}).get(destination, {}).get("delivered", []))

    def record(self, digest: str, destination: str, total: int, index: int) -> None:
        """Note that message ``index`` of ``total`` reached ``destination``."""
        digests = self._read()
        now = dt.datetime.now(dt.UTC)
        cutoff = (now - dt.timedelta(days=KEEP_DAYS)).isoformat()
        digests = {
            key: value
            for key, value in digests.items()
            if any(d["updated"] >= cutoff for d in value.values())
        }
        entry = digests.setdefault(digest, {}).setdefault(destination, {"delivered": []})
        entry["delivered"] = sorted({*entry["delivered"], index})
        entry["total"] = total
        entry["updated"] = now.isoformat()
        self._write({"version": 1, "digests": digests})

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a post reads, delivers and records: a second post at once waits for it,
        then finds what it delivered (nothing goes out twice). A state dir where no lock can
        be made costs only that guard, as an unwritable log costs only --resume."""
        from agent.errors import OutputError
        from agent.outputs import output_lock

        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(output_lock(self.path, "the delivery log", wait=True))
            except OutputError as exc:
                log.warning("cannot lock the delivery log (%s); posting without it", exc)
            yield

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so an interrupted post never leaves a half-written log.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".deliveries-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _clean(digests: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The log's entries in the shape this module writes; anything else (a hand edit, a
    damaged file) is dropped: the log only saves re-sending, it must not stop a post."""
    clean: dict[str, dict[str, dict[str, Any]]] = {}
    for key, value in digests.items():
        if not isinstance(value, dict):
            continue
        destinations = {}
        for where, entry in value.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("delivered"), list):
                continue
            delivered = entry["delivered"]
            updated = entry.get("updated")
            total = entry.get("total")
            destinations[where] = {
                "delivered": sorted(
                    {i for i in delivered if isinstance(i, int) and not isinstance(i, bool)}
                ),
                "total": total if isinstance(total, int) and not isinstance(total, bool) else 0,
                "updated": updated if isinstance(updated, str) else "",
            }
        if destinations:
            clean[key] = destinations
    return clean
