"""A state dir as paper-agent 0.1.0 (the last release before the library) left it.

``tests/fixtures/legacy-home`` was written by that release's own code: a run of two sources
posted to Slack (the seen-store and the delivery log), an emailed digest, a paper seen only by
its title, and two batch jobs. It is committed rather than made by today's code, which no longer
writes those files the same way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.models import Paper

LEGACY_HOME = Path(__file__).parent / "fixtures" / "legacy-home"
FILES = ("seen.sqlite3", "deliveries.json", "batches/jobs.json")
TITLE_ONLY = Paper(id="hf-77", title="A Paper Known Only By Its Title", abstract="", source="hf")


def copy_legacy_home(home: Path) -> Path:
    """``home`` holding a copy of the 0.1.0 state files, each with its modification time."""
    home.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(LEGACY_HOME / name, home / name)
    return home
