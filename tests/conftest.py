"""Every test gets its own state dir and no real credentials."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Point the state dir at a temp dir and drop any real configuration from the environment."""
    monkeypatch.setenv("PAPER_AGENT_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PAPER_AGENT_MODEL", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Every retry wait or message spacing, recorded instead of slept."""
    from agent import retry

    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(retry, "sleep", fake_sleep)
    return waited


@pytest.fixture
def fixtures() -> Path:
    """The folder of test data files."""
    return FIXTURES
