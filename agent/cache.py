"""The answer cache (DESIGN 4): validated answers as JSON text in diskcache, keyed by sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

CACHE_FORMAT = 1
MISS = object()  # a miss is a sentinel, never None


def cache_key(
    *, model: str, messages: list[dict[str, str]], schema: Any, params: dict[str, Any]
) -> str:
    """sha256 of the canonical JSON of everything that shapes the answer (never the API key)."""
    payload = {
        "v": CACHE_FORMAT,
        "model": model,
        "messages": messages,
        "schema": schema,
        "params": params,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AnswerCache:
    """A thin, synchronous wrapper over ``diskcache.Cache``; every call is short."""

    def __init__(self, directory: Path) -> None:
        import diskcache  # imported here: only runs that use the cache pay for it

        try:
            self._cache = diskcache.Cache(str(directory))
        except OSError as exc:
            raise ConfigError(f"cannot open the cache at {directory}: {exc}") from None
        self.directory = directory

    def get(self, key: str) -> dict[str, Any] | object:
        """The stored answer for ``key``, or ``MISS``."""
        text = self._cache.get(key, default=MISS)
        if text is MISS or not isinstance(text, str):
            return MISS
        try:
            return json.loads(text)
        except ValueError:  # a damaged entry is a miss, not a crash
            return MISS

    def set(self, key: str, answer: dict[str, Any]) -> None:
        """Store a validated answer as JSON text."""
        self._cache.set(key, json.dumps(answer, ensure_ascii=False, sort_keys=True))

    def __len__(self) -> int:
        return len(self._cache)

    def volume(self) -> int:
        """Bytes used on disk."""
        return self._cache.volume()

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        return self._cache.clear()

    def close(self) -> None:
        """Close the underlying database."""
        self._cache.close()


def cache_dir(home: Path) -> Path:
    """Where the answer cache lives inside the state dir."""
    return home / "cache"
