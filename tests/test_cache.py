"""The answer cache: hits and misses, and damage (real damaged files) that is never fatal."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import diskcache
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.llm.cache import MISS, AnswerCache, cache_dir, cache_key
from tests.llm import API_KEY, BASE_URL, answer

ANSWER = {"tags": ["LLMs"], "summary": "It does a thing and finds it works."}
DB_NAME = "cache.db"  # diskcache's database file
DAMAGED = re.compile(r"cache\.damaged-\d{8}T\d{6}")


def key(n: int) -> str:
    return cache_key(
        server="s", model="m", messages=[{"role": "user", "content": str(n)}], schema={}, params={}
    )


@pytest.fixture
def directory(isolated_env: Path) -> Path:
    """The cache directory the CLI uses, inside the test's state dir."""
    return cache_dir(isolated_env / "home")


def garbage(directory: Path) -> bytes:
    """A cache whose database file is random bytes; returns them."""
    directory.mkdir(parents=True)
    data = os.urandom(8192)
    (directory / DB_NAME).write_bytes(data)
    return data


def stored(directory: Path) -> None:
    """A healthy cache holding 40 real answers."""
    store = AnswerCache(directory)
    for n in range(40):
        store.set(key(n), {**ANSWER, "summary": f"answer {n} " + "x" * 2000})
    store.close()


def cut(directory: Path) -> bytes:
    """Truncate the database file to half its size; returns what is left."""
    db = directory / DB_NAME
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 2)
    return db.read_bytes()


def truncated(directory: Path) -> bytes:
    """A cache with 40 real answers whose database was then cut to half its size."""
    stored(directory)
    return cut(directory)


def emptied(directory: Path) -> bytes:
    """A cache with 40 real answers whose database was then cut to 0 bytes (SQLite takes such
    a file for a new database: without a check the answers would be gone unsaid)."""
    stored(directory)
    (directory / DB_NAME).write_bytes(b"")
    return b""


DAMAGES = [garbage, truncated, emptied]


def moved(directory: Path) -> list[Path]:
    """The damaged caches set aside next to ``directory``."""
    return sorted(directory.parent.glob("cache.damaged-*"))


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_cache_is_moved_aside_and_a_fresh_one_works(directory, damage, caplog):
    damaged_bytes = damage(directory)
    store = AnswerCache(directory)
    try:
        assert len(store) == 0
        assert store.get(key(1)) is MISS
        store.set(key(1), ANSWER)
        assert store.get(key(1)) == ANSWER
    finally:
        store.close()
    [aside] = moved(directory)
    assert DAMAGED.fullmatch(aside.name)
    assert store.moved_aside == aside
    assert (aside / DB_NAME).read_bytes() == damaged_bytes  # kept as it was, for inspection
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(aside) in warnings[0].getMessage()
    assert AnswerCache(directory).get(key(1)) == ANSWER  # the fresh one persists


def test_a_cache_another_process_is_creating_is_not_taken_for_damage(directory):
    import fcntl
    import threading

    # Another process mid-way through creating the cache: it holds the opening lock, and its
    # database file is still 0 bytes (SQLite writes the header at the first statement).
    directory.mkdir(parents=True)
    (directory / DB_NAME).write_bytes(b"")
    opened: list[AnswerCache] = []
    with open(directory.with_name("cache.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiting = threading.Thread(target=lambda: opened.append(AnswerCache(directory)))
        waiting.start()
        diskcache.Cache(str(directory)).close()  # the creation finishes
    waiting.join()
    opened[0].set(key(1), ANSWER)
    opened[0].close()
    assert moved(directory) == []
    assert AnswerCache(directory).get(key(1)) == ANSWER


def test_a_cache_damaged_under_a_running_store_costs_one_warning(directory, caplog):
    stored(directory)
    store = AnswerCache(directory)
    cut(directory)  # under the open store, as a crash or a full disk would
    try:
        assert [store.get(key(n)) for n in range(5)] == [MISS] * 5
        store.set(key(1), ANSWER)
        assert store.get(key(1)) == ANSWER  # a fresh cache took over
    finally:
        store.close()
    assert len(moved(directory)) == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_cache_clear_works_on_a_healthy_cache(directory):
    store = AnswerCache(directory)
    store.set(key(1), ANSWER)
    store.close()
    result = CliRunner().invoke(cli, ["cache", "clear", "-y"], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"removed 1 cached answer(s) from {directory}" in result.stdout
    assert "damaged" not in result.stdout
    assert moved(directory) == []


@pytest.mark.parametrize("damage", DAMAGES)
def test_cache_clear_works_on_a_damaged_cache(directory, damage):
    damage(directory)
    result = CliRunner().invoke(cli, ["cache", "clear", "-y"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [aside] = moved(directory)
    assert f"removed 0 cached answer(s) from {directory}" in result.stdout
    assert f"damaged cache moved aside to {aside}" in result.stdout


@pytest.mark.parametrize("damage", DAMAGES)
def test_cache_info_reports_the_fresh_cache_and_the_damaged_one(directory, damage):
    damage(directory)
    result = CliRunner().invoke(cli, ["cache", "info"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [aside] = moved(directory)
    assert f"path: {directory}\nanswers: 0\n" in result.stdout
    assert f"damaged cache moved aside to {aside}" in result.stdout


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_dry_run_goes_on_with_a_fresh_cache(directory, damage, fixtures):
    damage(directory)
    papers = str(fixtures / "papers.jsonl")
    args = ["run", papers, "--dry-run", "--base-url", "http://127.0.0.1:9/v1"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "5 papers: 5 requests" in result.stdout and "0 cached" in result.stdout
    assert len(moved(directory)) == 1


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_run_goes_on_with_a_fresh_cache(directory, damage, fixtures, monkeypatch, sleeps):
    damage(directory)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)
    args = ["run", str(fixtures / "papers.jsonl"), "-o", "out.jsonl"]
    with respx.mock(base_url=BASE_URL) as router:
        route = router.post("/chat/completions").mock(return_value=answer(["LLMs"]))
        first = CliRunner().invoke(cli, args, catch_exceptions=False)
        second = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert route.call_count == 5  # the fresh cache served the rerun
    assert len(moved(directory)) == 1


def test_an_answer_from_one_server_is_never_served_for_another(
    isolated_env, fixtures, monkeypatch, sleeps
):
    # A stub on this machine answering as "gpt-4o-mini", then the real endpoint: the second
    # run must ask the real one, not reuse the stub's answers.
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    local = "http://127.0.0.1:8000/v1"
    args = ["run", str(fixtures / "papers.jsonl"), "-o", "out.jsonl", "--model", "gpt-4o-mini"]
    with respx.mock() as router:
        stub = router.post(f"{local}/chat/completions").mock(return_value=answer(["LLMs"]))
        real = router.post(f"{BASE_URL}/chat/completions").mock(return_value=answer(["LLMs"]))
        for base_url in (local, BASE_URL, BASE_URL + "/"):
            result = CliRunner().invoke(cli, [*args, "--base-url", base_url])
            assert result.exit_code == 0, result.output
    assert stub.call_count == 5 and real.call_count == 5  # the third run: all cache hits


def plant(directory: Path, value: object) -> str:
    """Store ``value`` under a key with plain diskcache, as a foreign writer would."""
    raw = diskcache.Cache(str(directory))
    raw.set(key(7), value)
    raw.close()
    return key(7)


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        "null",
        '["LLMs"]',
        b'{"tags": ["LLMs"], "summary": "bytes"}',
        42,
        ANSWER,  # a pickle: plain diskcache would hand it back, we never unpickle
    ],
    ids=["not-json", "json-null", "json-list", "bytes", "number", "pickle"],
)
def test_a_bad_entry_is_a_miss_and_the_next_answer_replaces_it(directory, value, caplog):
    bad = plant(directory, value)
    store = AnswerCache(directory)
    try:
        assert store.get(bad) is MISS
        store.set(bad, ANSWER)
        assert store.get(bad) == ANSWER
    finally:
        store.close()
    assert moved(directory) == []  # one bad entry does not condemn the cache
    assert "not a stored answer" in caplog.text


def big_answer_file(directory: Path) -> Path:
    """Store an answer large enough for diskcache to keep in its own file; return that file."""
    store = AnswerCache(directory)
    store.set(key(7), {**ANSWER, "summary": "x" * 100_000})
    store.close()
    [value_file] = [p for p in directory.rglob("*.val")]
    return value_file


def test_a_value_file_that_is_not_text_is_a_miss(directory):
    big_answer_file(directory).write_bytes(b"\xff\xfe\x00 not utf-8 \xc3")
    store = AnswerCache(directory)
    try:
        assert store.get(key(7)) is MISS
    finally:
        store.close()


def test_a_missing_value_file_is_a_miss(directory):
    big_answer_file(directory).unlink()
    store = AnswerCache(directory)
    try:
        assert store.get(key(7)) is MISS
        assert store.get(key(8)) is MISS
    finally:
        store.close()


def test_a_large_answer_round_trips_through_its_file(directory):
    big_answer_file(directory)
    store = AnswerCache(directory)
    try:
        assert store.get(key(7))["summary"] == "x" * 100_000
    finally:
        store.close()


def test_the_key_depends_on_every_input_but_not_on_dict_order():
    base = dict(
        server="s", model="m", messages=[{"role": "user", "content": "a"}], schema={}, params={}
    )
    assert cache_key(**base) != cache_key(**{**base, "params": {"temperature": 0}})
    assert cache_key(**base) != cache_key(**{**base, "server": "http://127.0.0.1:8000/v1"})
    assert cache_key(**base) != cache_key(**{**base, "model": "other"})
    assert cache_key(**base) != cache_key(**{**base, "schema": {"type": "object"}})
    assert cache_key(**{**base, "params": {"b": 1, "a": 2}}) == cache_key(
        **{**base, "params": {"a": 2, "b": 1}}
    )
    assert cache_key(**base) != cache_key(**{**base, "model": "n"})
    assert cache_key(**base) != cache_key(**{**base, "schema": {"type": "object"}})


def test_spellings_of_one_server_share_a_key_and_credentials_never_enter_it():
    from agent.llm.cache import server_id

    assert server_id("HTTP://LocalHost:8000/v1/") == server_id("http://localhost:8000/v1")
    assert server_id("https://user:secret@api.example.com/v1?x=1") == "https://api.example.com/v1"
    assert server_id("https://api.openai.com/v1") != server_id("http://127.0.0.1:8000/v1")


def test_a_cached_answer_that_no_longer_validates_is_a_miss(
    directory, fixtures, monkeypatch, sleeps
):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)
    args = ["run", str(fixtures / "papers.jsonl"), "-o", "out.jsonl"]
    with respx.mock(base_url=BASE_URL) as router:
        route = router.post("/chat/completions").mock(return_value=answer(["LLMs"]))
        assert CliRunner().invoke(cli, args, catch_exceptions=False).exit_code == 0
        raw = diskcache.Cache(str(directory))
        bad = [
            '{"foo": 1}',
            '{"tags": "LLMs", "summary": null}',
            '{"tags": ["NotATag"], "summary": "x"}',
        ]
        for n, stored in enumerate(list(raw.iterkeys())[:3]):
            raw.set(stored, bad[n])
        raw.close()
        again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert route.call_count == 5 + 3  # the three spoiled entries were asked again
    lines = Path("out.jsonl").read_text(encoding="utf-8").splitlines()
    assert all(json.loads(x)["error"] is None and json.loads(x)["tags"] == ["LLMs"] for x in lines)
