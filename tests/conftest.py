"""Every test gets its own state dir and no real credentials."""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.smtp import Inbox, free_port

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Point the state dir at a temp dir and drop any real configuration from the environment."""
    monkeypatch.setenv("PAPER_AGENT_HOME", str(tmp_path / "home"))
    for var in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "PAPER_AGENT_MODEL",
        "SLACK_WEBHOOK_URL",
        "PAPER_AGENT_ARXIV_API_URL",
        "PAPER_AGENT_ARXIV_RSS_URL",
        "PAPER_AGENT_HF_API_URL",
        "PAPER_AGENT_ZOTERO_API_URL",
        "ZOTERO_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Every retry wait or message spacing, recorded instead of slept."""
    from agent.llm import retry

    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(retry, "sleep", fake_sleep)
    return waited


@pytest.fixture
def fixtures() -> Path:
    """The folder of test data files."""
    return FIXTURES


@pytest.fixture(scope="session", autouse=True)
def network_guard(tmp_path_factory) -> None:
    """Before any test: an LLM request that no route mocks stops at respx, never at the network.

    respx patches ``httpx`` only; the openai SDK is routed through our httpx client (DESIGN 1).
    If that ever stopped (an SDK that sends on its own transport), every mocked test would
    silently reach the network instead of failing, so the whole suite refuses to run.
    """
    import asyncio

    import httpx
    import respx
    from respx.models import AllMockedAssertionError

    from agent.backends.openai import OpenAIBackend
    from agent.config import Settings
    from agent.models import Paper
    from agent.taxonomy import load_taxonomy

    settings = Settings(
        backend="openai",
        base_url="http://unmocked.invalid/v1",  # .invalid never resolves, should respx miss it
        api_key="test-key",
        max_attempts=1,
        home=tmp_path_factory.mktemp("guard-home"),
    )
    paper = Paper(id="guard", title="A request nothing mocks", abstract="It must not leave.")

    async def annotate_unmocked() -> None:
        async with httpx.AsyncClient() as http:
            backend = OpenAIBackend(settings, load_taxonomy(), http)
            with respx.mock(assert_all_called=False):  # strict, and no route at all
                await backend.annotate(paper)

    with pytest.raises(AllMockedAssertionError, match="not mocked"):
        asyncio.run(annotate_unmocked())


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs; skipped only where mounting is not permitted."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command: the full-disk tests need to mount a tmpfs")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 accepting AUTH without TLS (for the test only)."""
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture
async def make_backend(tmp_path):
    """Build an OpenAIBackend on a real httpx client (respx intercepts it)."""
    import httpx

    from agent.backends.openai import OpenAIBackend
    from agent.config import Settings
    from agent.llm.cache import AnswerCache, cache_dir
    from agent.taxonomy import load_taxonomy
    from tests.llm import API_KEY, BASE_URL

    clients: list[httpx.AsyncClient] = []

    def build(cache: bool = False, **overrides) -> OpenAIBackend:
        settings = Settings(
            backend="openai",
            base_url=BASE_URL,
            api_key=API_KEY,
            home=tmp_path / "home",
            **overrides,
        )
        client = httpx.AsyncClient()
        clients.append(client)
        store = AnswerCache(cache_dir(settings.home)) if cache else None
        return OpenAIBackend(settings, load_taxonomy(), client, store)

    yield build
    for client in clients:
        await client.aclose()
