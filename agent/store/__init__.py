"""The library: one SQLite database in the state dir that is paper-agent's memory."""

from agent.store.db import DB_NAME
from agent.store.library import Library
from agent.store.results import Selection

__all__ = ["DB_NAME", "Library", "Selection"]
