"""Backends turn one Paper into an Annotation: the LLM over HTTP, or the offline one."""

from __future__ import annotations

from typing import Protocol

from agent.models import Annotation, Paper


class Backend(Protocol):
    """What the pipeline needs from a backend.

    ``annotate`` raises ``PaperFailed`` when only this paper failed (the run goes on) and
    ``BackendError`` when no paper can succeed (bad key, unknown model): the run stops.
    """

    name: str
    model: str | None
    papers_per_request: int  # papers one request annotates: the pipeline keeps more in flight

    async def annotate(self, paper: Paper) -> Annotation:
        """Tags and summary for one paper."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...
