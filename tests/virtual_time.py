"""An asyncio event loop on virtual time: when nothing is ready, time jumps to the next timer.

For coroutines that only wait on timers and on each other (a throttle against a model of a
server): a run of minutes takes milliseconds, and the same seed gives the same run.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Idle(selectors.BaseSelector):
    """A selector with no I/O: waiting ``timeout`` seconds moves the loop's clock instead."""

    def __init__(self) -> None:
        self.loop: VirtualTimeLoop | None = None
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        """Note the file (the loop's own wake-up pipe); it never becomes ready."""
        key = selectors.SelectorKey(fileobj, 0, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        """Forget the file."""
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[Any]:
        """Nothing is ready: jump to the next timer, or fail if there is none (a deadlock)."""
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is set")
        assert self.loop is not None
        self.loop.now += max(0.0, timeout)
        return []

    def get_map(self) -> dict[Any, selectors.SelectorKey]:
        """The registered files."""
        return self._keys


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` only moves when every task waits on a timer."""

    def __init__(self) -> None:
        selector = _Idle()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0

    def time(self) -> float:
        """The virtual clock, in seconds."""
        return self.now


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
