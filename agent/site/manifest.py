"""The site's manifest: what the last build wrote (a content hash per file, and when it last
changed), with which options, as of when, and a summary of each day, so the next build reads
only the days that changed and writes only the files whose content did."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import OutputError
from agent.outputs import write_atomic

log = logging.getLogger(__name__)

MANIFEST = ".paper-agent-site.json"
FORMAT = 1


def content_hash(text: str) -> str:
    """The hash a file's content is known by."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Manifest:
    """What a build left: options, when it read the library, files, and each day's summary."""

    options: dict[str, Any] = field(default_factory=dict)
    built: str | None = None  # when the build read the library (UTC, ISO 8601)
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> sha256, changed
    days: dict[str, dict[str, Any]] = field(default_factory=dict)  # "2026-03-01" -> summary

    @classmethod
    def load(cls, root: Path) -> Manifest | None:
        """The manifest in ``root``, or None when there is none or it cannot be read (the
        next build is then a full one: the manifest only saves work)."""
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            log.warning("cannot read %s (%s): building the whole site", path, exc)
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            log.warning("%s is of another format: building the whole site", path)
            return None
        try:
            return cls(
                options=dict(data["options"]),
                built=None if data["built"] is None else str(data["built"]),
                files={str(k): dict(v) for k, v in data["files"].items()},
                days={str(k): dict(v) for k, v in data["days"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("%s is damaged: building the whole site", path)
            return None

    def save(self, root: Path) -> None:
        """Write the manifest (last, once every file it names is in place)."""
        data = {
            "format": FORMAT,
            "options": self.options,
            "built": self.built,
            "files": dict(sorted(self.files.items())),
            "days": dict(sorted(self.days.items())),
        }
        write_atomic(root / MANIFEST, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


class SiteWriter:
    """Writes a build's files under ``root``: a file whose content is what the manifest says
    it already holds is left alone; files of the last build that this one does not make
    again (nor ``keep``) are removed at ``finish``."""

    def __init__(self, root: Path, previous: Manifest | None, when: dt.datetime) -> None:
        self.root = root
        self.previous = previous.files if previous else {}
        self.files: dict[str, dict[str, str]] = {}
        self.when = when.isoformat()
        self.written: list[str] = []
        self.unchanged = 0
        self.removed: list[str] = []

    def put(self, name: str, text: str) -> bool:
        """Make ``name`` (a relative path) hold ``text``; returns whether it was written."""
        digest = content_hash(text)
        old = self.previous.get(name)
        path = self.root / name
        if old is not None and old.get("sha256") == digest and path.is_file():
            self.files[name] = old
            self.unchanged += 1
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
        # A file put back as it was (removed by hand) has not changed for a feed reader.
        if old is not None and old.get("sha256") == digest:
            self.files[name] = old
        else:
            self.files[name] = {"sha256": digest, "changed": self.when}
        self.written.append(name)
        return True

    def keep(self, name: str) -> None:
        """Carry ``name`` over from the last build unread (its day did not change)."""
        self.files[name] = self.previous[name]
        self.unchanged += 1

    def has(self, name: str) -> bool:
        """Whether the last build wrote ``name`` and it is still there."""
        return name in self.previous and (self.root / name).is_file()

    def changed(self, name: str) -> str | None:
        """When ``name`` last changed content (this build or an earlier one)."""
        entry = self.files.get(name) or self.previous.get(name)
        return entry.get("changed") if entry else None

    def finish(self) -> None:
        """Remove what the last build wrote and this one no longer makes."""
        for name in sorted(set(self.previous) - set(self.files)):
            path = self.root / name
            if not _inside(self.root, path):
                continue  # a hand-edited manifest never removes a file outside the site
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise OutputError(f"cannot remove {path}: {exc.strerror}") from None
            self.removed.append(name)
            if path.parent != self.root:
                with contextlib.suppress(OSError):
                    path.parent.rmdir()  # only when that left it empty


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` lies under ``root`` once resolved."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return ".." not in Path(path).parts
