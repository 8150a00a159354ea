"""``--papers-per-request K``: one request for K papers, answers matched by id, cached per paper."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.backends.openai import OpenAIBackend
from agent.cli import cli
from agent.errors import ConfigError, PaperFailed
from agent.llm.cache import MISS
from agent.models import Annotation, Paper, Usage
from agent.pipeline import run_pipeline
from tests.llm import API_KEY, BASE_URL, answer, completion, error

TAGS = ["LLMs", "Reasoning", "Agents", "Code", "Multimodal", "Efficiency", "Architectures"]
PAPERS = [
    Paper(id=f"2401.{i:05d}", title=f"Paper number {i}", abstract=f"We study topic {i}.")
    for i in range(10)
]
TAG_OF = {p.id: TAGS[i % len(TAGS)] for i, p in enumerate(PAPERS)}
BY_TITLE = {p.title: p.id for p in PAPERS}
GROUP_ID = re.compile(r'<paper id="([^"]*)">')
TITLE = re.compile(r"^Title: (.*)$", re.MULTILINE)

Entries = list[dict[str, Any]]


class ScriptedServer:
    """Answers group requests with one entry per paper id (then ``edit``), singles by title."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.edit: Callable[[Entries], Entries] = lambda entries: entries
        self.group_reply: Callable[[Entries], httpx.Response] | None = None
        self.delay = 0.0
        self.random = random.Random(3)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.delay:
            await asyncio.sleep(self.random.uniform(0, self.delay))
        user = body["messages"][1]["content"]
        if "<papers>" in user:
            entries = [
                {"id": pid, "tags": [TAG_OF[pid]], "summary": f"It studies {pid}."}
                for pid in GROUP_ID.findall(user)
            ]
            entries = self.edit(entries)
            if self.group_reply is not None:
                return self.group_reply(entries)
            return httpx.Response(200, json=completion({"answers": entries}))
        pid = BY_TITLE[TITLE.search(user).group(1)]
        return answer([TAG_OF[pid]], f"It studies {pid}.")

    def groups(self) -> list[list[str]]:
        """The paper ids of each group request, in the order they were sent."""
        return [
            GROUP_ID.findall(b["messages"][1]["content"])
            for b in self.bodies
            if "<papers>" in b["messages"][1]["content"]
        ]

    def singles(self) -> list[dict[str, Any]]:
        """The bodies of the single-paper requests."""
        return [b for b in self.bodies if "<papers>" not in b["messages"][1]["content"]]


@pytest.fixture
def llm_server():
    """The scripted server behind a strict respx router."""
    server = ScriptedServer()
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        router.post("/chat/completions").mock(side_effect=server)
        yield server


@pytest.fixture
def make_backend(make_backend):
    """conftest's backend at K papers per request; ``cache`` shares the test's state dir."""
    single = make_backend

    def build(k: int, cache: bool = False, **overrides: Any) -> OpenAIBackend:
        return single(cache, papers_per_request=k, **overrides)

    return build


async def annotate_all(backend: OpenAIBackend, papers: list[Paper]) -> list[Annotation]:
    """Every paper at once, as the pipeline's workers ask for them; the backend then closed."""
    try:
        return await asyncio.gather(*(backend.annotate(p) for p in papers))
    finally:
        await backend.aclose()


def assert_own_answers(papers: list[Paper], results: list[Annotation]) -> None:
    for paper, result in zip(papers, results, strict=True):
        assert result.tags == [TAG_OF[paper.id]], paper.id
        assert result.summary == f"It studies {paper.id}."


async def test_one_request_annotates_k_papers_matched_by_id_in_any_order(llm_server, make_backend):
    llm_server.edit = lambda entries: [entries[2], entries[0], entries[3], entries[1]]
    papers = PAPERS[:4]
    results = await annotate_all(make_backend(4), papers)
    assert llm_server.groups() == [[p.id for p in papers]]
    assert llm_server.singles() == []
    assert_own_answers(papers, results)
    # The one request's usage (120 prompt, 30 completion tokens) is split, adding up exactly.
    assert sum(r.usage.requests for r in results) == 1
    assert [r.usage.prompt_tokens for r in results] == [30, 30, 30, 30]
    assert sum(r.usage.completion_tokens for r in results) == 30
    body = llm_server.bodies[0]
    schema = body["response_format"]["json_schema"]
    assert schema["strict"] is True
    item = schema["schema"]["properties"]["answers"]["items"]
    assert item["required"] == ["id", "tags", "summary"]
    assert item["additionalProperties"] is False


async def test_a_missing_id_is_asked_alone_and_extra_or_repeated_ids_are_ignored(
    llm_server, make_backend, caplog
):
    def edit(entries: Entries) -> Entries:
        dropped = [e for e in entries if e["id"] != PAPERS[1].id]
        stranger = {"id": "9999.99999", "tags": ["Other"], "summary": "Not asked for."}
        again = {"id": PAPERS[2].id, "tags": ["Code"], "summary": "A second answer."}
        return [*dropped, stranger, again]

    llm_server.edit = edit
    papers = PAPERS[:4]
    with caplog.at_level(logging.WARNING):
        results = await annotate_all(make_backend(4), papers)
    assert_own_answers(papers, results)  # the repeated id's second answer was not taken
    assert len(llm_server.groups()) == 1
    [single] = llm_server.singles()
    assert "Title: Paper number 1" in single["messages"][1]["content"]
    assert single["response_format"]["json_schema"]["name"] == "paper_annotation"
    logged = caplog.text
    assert "'9999.99999', not in the request, ignored" in logged
    assert f"a second answer for id '{PAPERS[2].id}', ignored" in logged
    assert f"no answer for {PAPERS[1].id}" in logged
    assert sum(r.usage.requests for r in results) == 2


async def test_an_invalid_part_is_repaired_alone(llm_server, make_backend):
    def edit(entries: Entries) -> Entries:
        entries[2]["tags"] = ["Cooking"]
        return entries

    llm_server.edit = edit
    papers = PAPERS[:4]
    results = await annotate_all(make_backend(4), papers)
    assert_own_answers(papers, results)
    assert len(llm_server.groups()) == 1
    [repair] = llm_server.singles()
    _, user, said, told = repair["messages"]
    assert "<papers>" not in user["content"] and "Title: Paper number 2" in user["content"]
    assert json.loads(said["content"]) == {
        "tags": ["Cooking"],
        "summary": f"It studies {papers[2].id}.",
    }
    assert "unknown tag(s) 'Cooking'" in told["content"]
    assert [r.usage.requests for r in results].count(1) == 2  # the group's and the repair


async def test_answers_are_cached_per_paper_so_a_rerun_at_any_k_sends_nothing(
    llm_server, make_backend
):
    first = await annotate_all(make_backend(4, cache=True), PAPERS)
    assert sorted(len(g) for g in llm_server.groups()) == [2, 4, 4]
    assert not any(r.cached for r in first)
    sent = len(llm_server.bodies)
    # Each answer sits under the key a K = 1 run computes for its paper alone.
    single = make_backend(1, cache=True)
    for paper in PAPERS:
        key = single.key_for(single.prompts().messages(paper))
        assert single.llm.cache.get(key) is not MISS
    for k in (1, 8):
        again = await annotate_all(make_backend(k, cache=True), PAPERS)
        assert len(llm_server.bodies) == sent  # zero requests
        assert all(r.cached for r in again)
        assert [r.tags for r in again] == [r.tags for r in first]
    await single.aclose()


async def test_a_k_run_sends_only_the_papers_not_yet_cached(llm_server, make_backend):
    await annotate_all(make_backend(1, cache=True), PAPERS[:5])
    assert len(llm_server.singles()) == 5
    results = await annotate_all(make_backend(8, cache=True), PAPERS)
    assert llm_server.groups() == [[p.id for p in PAPERS[5:]]]
    assert [r.cached for r in results] == [True] * 5 + [False] * 5
    assert_own_answers(PAPERS, results)


async def test_results_file_is_in_input_order_and_totals_count_each_request_once(
    llm_server, make_backend, tmp_path
):
    llm_server.edit = lambda entries: entries[::-1]
    llm_server.delay = 0.02  # groups finish out of order
    backend = make_backend(4, concurrency=2)
    out = tmp_path / "results.jsonl"
    try:
        stats = await run_pipeline(PAPERS, backend, out, concurrency=2)
    finally:
        await backend.aclose()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == [p.id for p in PAPERS]
    assert all(r["tags"] == [TAG_OF[r["id"]]] for r in lines)
    assert stats.usage.requests == len(llm_server.bodies) == 3
    assert stats.usage.prompt_tokens == 3 * 120


async def test_the_first_group_goes_alone_and_json_object_fallback_works_for_groups(
    make_backend,
):
    in_flight: list[int] = []
    busy = 0
    rejected = error(400, "response_format json_schema is not supported by this server")
    scripted = ScriptedServer()

    async def server(request: httpx.Request) -> httpx.Response:
        nonlocal busy
        in_flight.append(busy)
        busy += 1
        try:
            await asyncio.sleep(0.01)
            if len(in_flight) == 1:
                return rejected
            return await scripted(request)
        finally:
            busy -= 1

    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        route = router.post("/chat/completions").mock(side_effect=server)
        results = await annotate_all(make_backend(4, concurrency=2), PAPERS[:8])
    assert_own_answers(PAPERS[:8], results)
    assert route.call_count == 3
    assert in_flight[:2] == [0, 0]  # nothing else was sent until the server had answered
    formats = [json.loads(c.request.content)["response_format"] for c in route.calls]
    assert formats[0]["type"] == "json_schema"
    assert formats[1:] == [{"type": "json_object"}] * 2
    system = json.loads(route.calls[1].request.content)["messages"][0]["content"]
    assert '"answers"' in system and "exactly as given" in system


async def test_server_trouble_fails_each_paper_of_the_group_with_its_share(make_backend, sleeps):
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        route = router.post("/chat/completions").mock(return_value=error(500, "server error"))
        backend = make_backend(4, max_attempts=2)
        outcomes = await asyncio.gather(
            *(backend.annotate(p) for p in PAPERS[:4]), return_exceptions=True
        )
        await backend.aclose()
    assert route.call_count == 2  # one group, retried once; no paper asked alone
    assert all(isinstance(o, PaperFailed) and o.kind == "server_error" for o in outcomes)
    assert sum(o.usage.requests for o in outcomes) == 2


async def test_a_group_answer_that_is_not_json_asks_each_paper_alone(llm_server, make_backend):
    llm_server.group_reply = lambda entries: httpx.Response(200, json=completion("Sure! Here:"))
    results = await annotate_all(make_backend(4), PAPERS[:4])
    assert_own_answers(PAPERS[:4], results)
    assert len(llm_server.groups()) == 1 and len(llm_server.singles()) == 4


def test_usage_split_adds_up_to_the_whole():
    whole = Usage(prompt_tokens=1001, completion_tokens=7, cached_tokens=0, requests=1, retries=2)
    shares = whole.split(4)
    assert [s.requests for s in shares] == [1, 0, 0, 0]
    assert [s.prompt_tokens for s in shares] == [251, 250, 250, 250]
    assert sum(shares, Usage()) == whole


def test_custom_prompts_without_group_templates_fail_before_any_request(make_backend, tmp_path):
    from agent.llm.prompts import default_prompts_dir

    custom = tmp_path / "prompts"
    custom.mkdir()
    for name in ("system.j2", "user.j2"):
        (custom / name).write_text((default_prompts_dir() / name).read_text())
    make_backend(1, prompts_dir=custom).prompts()  # K = 1 needs only these two
    with pytest.raises(ConfigError, match=r"group-system\.j2 not found"):
        make_backend(4, prompts_dir=custom).prompts()


def run_cli(*args: str):
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)


@pytest.mark.parametrize("k", ["0", "33"])
def test_papers_per_request_out_of_bounds_is_a_usage_error(k, fixtures):
    result = run_cli(str(fixtures / "papers.jsonl"), "--papers-per-request", k)
    assert result.exit_code == 2
    assert "--papers-per-request" in result.stderr
    assert "Traceback" not in result.output


def test_the_cli_runs_k_papers_per_request(llm_server, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    papers = tmp_path / "papers.jsonl"
    papers.write_text("".join(p.model_dump_json() + "\n" for p in PAPERS))
    args = [str(papers), "--base-url", BASE_URL, "-o", "out.jsonl", "--papers-per-request", "4"]
    done = run_cli(*args)
    assert done.exit_code == 0, done.output
    assert "10 ok, 0 failed; 3 requests" in done.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == [p.id for p in PAPERS]
    again = run_cli(*args[:-1], "1")
    assert again.exit_code == 0 and "0 requests" in again.stderr
    assert len(llm_server.bodies) == 3
