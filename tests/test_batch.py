"""Batch files: export, a fake ``vllm run-batch``, import; and OpenAI's Batch API over respx."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner

from agent.cli import cli
from agent.llm.batch import ENDPOINT, read_batch_output, split_custom_id
from agent.llm.batch_api import Jobs
from tests.llm import API_KEY, BASE_URL, completion

PAPERS = Path(__file__).parent / "fixtures" / "papers.jsonl"
OPENAI = Path(__file__).parent / "fixtures" / "openai"


@pytest.fixture(autouse=True)
def llm_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", BASE_URL)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def requests_in(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_batch(requests: list[dict], *, invalid: set[int] = frozenset(), seed: int = 3) -> str:
    """What ``vllm run-batch`` writes: one output line per request, in its own order."""
    lines = []
    for n, request in enumerate(requests):
        assert request["method"] == "POST" and request["url"] == ENDPOINT
        tag = "Nonexistent Tag" if n in invalid else "Agents"
        body = completion({"tags": [tag], "summary": f"Answer {n} for the paper."})
        lines.append(
            {
                "id": f"batch_req_{n}",
                "custom_id": request["custom_id"],
                "response": {"status_code": 200, "request_id": f"req_{n}", "body": body},
                "error": None,
            }
        )
    random.Random(seed).shuffle(lines)
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_export_writes_the_online_request_body_once_per_uncached_paper(tmp_path):
    result = invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    assert result.exit_code == 0, result.output
    requests = requests_in(tmp_path / "requests.jsonl")
    assert len(requests) == 5
    ids = [json.loads(line)["id"] for line in PAPERS.read_text().splitlines()]
    assert [split_custom_id(r["custom_id"])[1] for r in requests] == ids
    body = requests[0]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["messages"][0]["role"] == "system" and ids[0] not in json.dumps(body)[:20]
    assert API_KEY not in (tmp_path / "requests.jsonl").read_text()


def test_export_splits_past_the_line_limit(tmp_path):
    from agent.backends.openai import OpenAIBackend
    from agent.config import Settings
    from agent.llm.batch import export_requests
    from agent.sources import read_papers
    from agent.taxonomy import load_taxonomy

    settings = Settings(backend="openai", base_url=BASE_URL, home=tmp_path / "home")
    backend = OpenAIBackend(settings, load_taxonomy(), None)  # type: ignore[arg-type]
    exported = export_requests(
        backend, read_papers([str(PAPERS)]), tmp_path / "req.jsonl", max_lines=2
    )
    assert [p.name for p in exported.files] == [
        "req-0001.jsonl",
        "req-0002.jsonl",
        "req-0003.jsonl",
    ]
    assert [len(requests_in(p)) for p in exported.files] == [2, 2, 1]
    assert not list(tmp_path.glob("*.partial"))


def test_import_validates_caches_and_repairs_the_invalid_answer_online(tmp_path):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    requests = requests_in(tmp_path / "requests.jsonl")
    (tmp_path / "output.jsonl").write_text(run_batch(requests, invalid={2}))
    with respx.mock(base_url=BASE_URL) as router:
        repair = router.post("/chat/completions").respond(
            200, json=completion({"tags": ["Agents"], "summary": "The repaired answer."})
        )
        result = invoke(
            "batch", "import", str(PAPERS), "--output-file", "output.jsonl", "-o", "results.jsonl"
        )
    assert result.exit_code == 0, result.output
    assert repair.call_count == 1  # only the invalid answer went online
    sent = json.loads(repair.calls[0].request.content)
    assert "Nonexistent Tag" in sent["messages"][-2]["content"]  # repaired, not asked afresh
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    ids = [json.loads(line)["id"] for line in PAPERS.read_text().splitlines()]
    assert [r["id"] for r in results] == ids  # input order, whatever the output's order
    assert all(r["error"] is None and r["tags"] == ["Agents"] for r in results)
    assert results[2]["summary"] == "The repaired answer."
    assert results[0]["summary"] == "Answer 0 for the paper."
    # Every answer is cached now: a second export has nothing to send.
    again = invoke("batch", "export", str(PAPERS), "-o", "again.jsonl")
    assert "nothing to export" in again.output
    assert (tmp_path / "again.jsonl").read_text() == ""  # no stale requests to send again
    # The import is a run in the library, with the LLM's settings, line for line.
    from agent.store import Library, Selection

    with Library.open(tmp_path / "home") as lib:
        [info] = lib.runs.list()
        lines = [r.to_line() + "\n" for r in lib.results(Selection(run=info.id))]
    assert info.command == f"batch import {PAPERS} --output-file output.jsonl -o results.jsonl"
    assert (info.status, info.ok, info.settings["backend"]) == ("ok", 5, "openai")
    assert lines == (tmp_path / "results.jsonl").read_text().splitlines(keepends=True)


def test_import_without_repair_reports_the_invalid_answer_and_sends_nothing(tmp_path):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    requests = requests_in(tmp_path / "requests.jsonl")
    (tmp_path / "output.jsonl").write_text(run_batch(requests, invalid={1}))
    with respx.mock(base_url=BASE_URL) as router:  # any request would fail here
        result = invoke(
            "batch", "import", str(PAPERS), "--output-file", "output.jsonl", "--no-repair"
        )
        assert not router.calls
    assert result.exit_code == 1
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert results[1]["error"]["type"] == "invalid_answer"
    assert "Nonexistent Tag" in results[1]["error"]["message"]
    assert sum(r["error"] is None for r in results) == 4


def test_expired_and_missing_lines_get_error_records_and_are_exported_again(tmp_path):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    requests = requests_in(tmp_path / "requests.jsonl")
    answered = run_batch(requests[:3])
    expired = {
        "id": "batch_req_x",
        "custom_id": requests[3]["custom_id"],
        "response": None,
        "error": {"code": "batch_expired", "message": "This request could not be executed."},
    }
    (tmp_path / "output.jsonl").write_text(answered)
    (tmp_path / "errors.jsonl").write_text(json.dumps(expired) + "\n")
    with respx.mock(base_url=BASE_URL):
        result = invoke(
            "batch",
            "import",
            str(PAPERS),
            "--output-file",
            "output.jsonl",
            "--error-file",
            "errors.jsonl",
        )
    assert result.exit_code == 1
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["error"]["type"] if r["error"] else None for r in results] == [
        None,
        None,
        None,
        "batch_expired",
        "batch_missing",
    ]
    assert invoke("batch", "export", str(PAPERS), "-o", "again.jsonl").exit_code == 0
    assert [r["custom_id"] for r in requests_in(tmp_path / "again.jsonl")] == [
        requests[3]["custom_id"],
        requests[4]["custom_id"],
    ]


def test_reference_output_and_error_lines_parse(tmp_path):
    # The real samples use custom_ids of their own ("request-1"): read, and skipped as not ours.
    assert read_batch_output([OPENAI / "batch_output.jsonl"]) == {}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    from agent.errors import InputError

    with pytest.raises(InputError, match="line 1"):
        read_batch_output([bad])


def test_import_of_a_missing_output_file_is_one_line_exit_2(tmp_path):
    result = invoke("batch", "import", str(PAPERS), "--output-file", "nope.jsonl")
    assert result.exit_code == 2
    assert "no such file: nope.jsonl" in result.output
    assert not (tmp_path / "results.jsonl").exists()


# --- OpenAI's Batch API ---------------------------------------------------------------------


@pytest.fixture
def polls(monkeypatch) -> list[float]:
    """Poll waits, recorded; each yields to the event loop as a real sleep does."""
    from agent.llm import retry

    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(retry, "sleep", fake_sleep)
    return waited


def batch_object(
    status: str, *, total: int, done: int = 0, batch_id: str = "batch_abc123", **fields
) -> dict:
    """A Batch object shaped like tests/fixtures/batch_object_validating.json."""
    sample = json.loads(
        (Path(__file__).parent / "fixtures" / "batch_object_validating.json").read_text()
    )
    sample.update(
        id=batch_id,
        status=status,
        request_counts={"total": total, "completed": done, "failed": 0},
        **fields,
    )
    return sample


class FakeBatchAPI:
    """The Batch API's endpoints on a respx router, answering like the service would."""

    def __init__(
        self,
        router: respx.MockRouter,
        states: list[str],
        *,
        expire: int = 0,
        batch_id: str = "batch_abc123",
        uploaded: list[bytes] | None = None,
    ) -> None:
        self.batch_id = batch_id
        self.states = list(states)
        self.expire = expire  # how many requests (from the end) expire
        self.error_code = "batch_expired"
        self.uploaded: list[bytes] = uploaded if uploaded is not None else []  # files it holds
        self.upload = router.post("/files").mock(side_effect=self.on_upload)
        self.create = router.post("/batches").mock(side_effect=self.on_create)
        self.poll = router.get(f"/batches/{batch_id}").mock(side_effect=self.on_poll)
        self.output = router.get("/files/file-out/content").mock(side_effect=self.on_output)
        self.errors = router.get("/files/file-err/content").mock(side_effect=self.on_errors)
        self.cancel = router.post(f"/batches/{batch_id}/cancel").mock(
            return_value=httpx.Response(200, json=batch_object("cancelling", total=0))
        )

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.uploaded[-1].decode().splitlines()]

    def on_upload(self, request: httpx.Request) -> httpx.Response:
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        parts = request.content.split(b"--" + boundary)
        fields = {}
        for part in parts[1:-1]:
            head, _, data = part.partition(b"\r\n\r\n")
            name = head.split(b'name="')[1].split(b'"')[0].decode()
            fields[name] = data[: -len(b"\r\n")]
        assert fields["purpose"] == b"batch"
        self.uploaded.append(fields["file"])
        return httpx.Response(
            200,
            json={
                "id": "file-in",
                "object": "file",
                "bytes": len(fields["file"]),
                "created_at": 1714508499,
                "filename": "requests.jsonl",
                "purpose": "batch",
            },
        )

    def on_create(self, request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        assert sent["input_file_id"] == "file-in"
        assert sent["endpoint"] == ENDPOINT and sent["completion_window"] == "24h"
        return httpx.Response(
            200, json=batch_object("validating", total=len(self.requests()), batch_id=self.batch_id)
        )

    def on_poll(self, request: httpx.Request) -> httpx.Response:
        status = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        total = len(self.requests())
        if status in ("completed", "expired", "cancelled"):
            files = {"output_file_id": "file-out"}
            if self.expire:
                files["error_file_id"] = "file-err"
            done = total - self.expire
            body = batch_object(status, total=total, done=done, batch_id=self.batch_id, **files)
        else:
            body = batch_object(status, total=total, done=total // 2, batch_id=self.batch_id)
        return httpx.Response(200, json=body)

    def on_output(self, request: httpx.Request) -> httpx.Response:
        answered = self.requests()[: len(self.requests()) - self.expire]
        return httpx.Response(200, content=run_batch(answered).encode())

    def on_errors(self, request: httpx.Request) -> httpx.Response:
        lines = [
            {
                "id": "batch_req_e",
                "custom_id": r["custom_id"],
                "response": None,
                "error": {"code": self.error_code, "message": "not executed"},
            }
            for r in self.requests()[len(self.requests()) - self.expire :]
        ]
        return httpx.Response(200, content="".join(json.dumps(x) + "\n" for x in lines).encode())


def test_run_with_the_batch_api_uploads_polls_downloads_and_imports(tmp_path, sleeps):
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        api = FakeBatchAPI(router, ["validating", "in_progress", "finalizing", "completed"])
        result = invoke("run", str(PAPERS), "--batch-api", "-o", "results.jsonl")
    assert result.exit_code == 0, result.output
    assert api.upload.call_count == 1 and api.create.call_count == 1
    assert api.poll.call_count == 4
    assert sleeps[:3] == [30.0, 60.0, 120.0]  # batch_poll_seconds, doubling
    assert "batch batch_abc123: in_progress, 2/5 done" in result.output
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(results) == 5 and all(r["error"] is None for r in results)
    jobs = Jobs(tmp_path / "home").load()
    assert [(j.batch_id, j.status) for j in jobs] == [("batch_abc123", "completed")]
    # A rerun finds every answer cached: nothing is uploaded again.
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        again = invoke("run", str(PAPERS), "--batch-api", "-o", "results.jsonl")
        assert not router.calls
    assert again.exit_code == 0 and "nothing to send" in again.output


def test_expired_requests_are_reported_per_paper_and_resubmitted(tmp_path, sleeps):
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        FakeBatchAPI(router, ["in_progress", "expired"], expire=2)
        result = invoke("run", str(PAPERS), "--batch-api", "-o", "results.jsonl")
    assert result.exit_code == 1
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["error"]["type"] for r in results if r["error"]] == ["batch_expired"] * 2
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        api = FakeBatchAPI(router, ["completed"], batch_id="batch_def456")
        again = invoke("run", str(PAPERS), "--batch-api", "-o", "results.jsonl")
        assert len(api.requests()) == 2  # only the expired papers went again
    assert again.exit_code == 0, again.output


def test_an_interrupted_run_resumes_its_batch_without_uploading_again(tmp_path, polls):
    from agent.backends.openai import OpenAIBackend
    from agent.config import Settings
    from agent.llm.batch_api import answer_by_batch
    from agent.sources import read_papers
    from agent.taxonomy import load_taxonomy

    settings = Settings(backend="openai", base_url=BASE_URL, api_key=API_KEY, home=tmp_path / "h")

    held: list[bytes] = []  # the service keeps the uploaded file across both runs

    async def go(states: list[str], interrupt: bool):
        async with httpx.AsyncClient() as http:
            backend = OpenAIBackend(settings, load_taxonomy(), http)
            with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
                api = FakeBatchAPI(router, states, uploaded=held)
                task = asyncio.create_task(answer_by_batch(backend, read_papers([str(PAPERS)])))
                if interrupt:
                    while api.poll.call_count < 2:
                        await asyncio.sleep(0)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                    return api, None
                return api, await task

    first, _ = asyncio.run(go(["in_progress"], interrupt=True))
    assert first.upload.call_count == 1 and first.create.call_count == 1 and len(held) == 1
    second, answers = asyncio.run(go(["finalizing", "completed"], interrupt=False))
    assert second.upload.call_count == 0 and second.create.call_count == 0
    assert len(answers) == 5 and all(a.completion is not None for a in answers.values())


def test_a_failed_batch_gives_every_paper_its_reason(tmp_path, sleeps):
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        api = FakeBatchAPI(router, ["failed"])
        api.poll.mock(
            return_value=httpx.Response(
                200,
                json=batch_object(
                    "failed",
                    total=5,
                    errors={"object": "list", "data": [{"code": "x", "message": "bad model"}]},
                ),
            )
        )
        result = invoke("run", str(PAPERS), "--batch-api", "-o", "results.jsonl")
    assert result.exit_code == 1
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["error"]["type"] for r in results} == {"batch_failed"}
    assert "bad model" in results[0]["error"]["message"]


def test_batch_status_and_cancel(tmp_path, polls):
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        api = FakeBatchAPI(router, ["in_progress"])

        async def interrupted() -> None:
            from agent.backends.openai import OpenAIBackend
            from agent.config import Settings
            from agent.llm.batch_api import answer_by_batch
            from agent.sources import read_papers
            from agent.taxonomy import load_taxonomy

            settings = Settings(
                backend="openai", base_url=BASE_URL, api_key=API_KEY, home=tmp_path / "home"
            )
            async with httpx.AsyncClient() as http:
                backend = OpenAIBackend(settings, load_taxonomy(), http)
                task = asyncio.create_task(answer_by_batch(backend, read_papers([str(PAPERS)])))
                while api.poll.call_count < 1:
                    await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

        asyncio.run(interrupted())
        status = invoke("batch", "status")
        assert status.exit_code == 0
        assert "batch_abc123  in_progress  2/5 done" in status.output
        cancelled = invoke("batch", "cancel")
        assert cancelled.exit_code == 0 and api.cancel.call_count == 1
        assert "batch_abc123  cancelling" in cancelled.output


def test_max_cost_sends_only_the_batch_requests_it_covers(tmp_path, sleeps):
    from agent.llm.cost import Price, request_estimate

    (tmp_path / "paper-agent.toml").write_text('[prices."gpt-4o-mini"]\ninput = 10\noutput = 40\n')
    invoke("batch", "export", str(PAPERS), "-o", "all.jsonl")
    price = Price(input=10, cached_input=10, output=40)
    costs = [
        price.cost(*request_estimate(r["body"], 0), batch=True)
        for r in requests_in(tmp_path / "all.jsonl")
    ]
    limit = sum(costs[:3]) + costs[3] / 2  # three requests fit, the fourth does not
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        api = FakeBatchAPI(router, ["completed"])
        result = invoke("run", str(PAPERS), "--batch-api", "--max-cost", f"{limit:.6f}")
        assert len(api.requests()) == 3
    assert result.exit_code == 1
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["error"]["type"] if r["error"] else None for r in results] == [None] * 3 + [
        "skipped"
    ] * 2
    assert "stopped early: the next request would pass --max-cost" in result.output
    assert "at Batch API prices" in result.output


def test_export_with_max_cost_speaks_of_estimates_not_spending(tmp_path):
    """An export sends nothing: its line says what the written requests are estimated at."""
    from agent.llm.cost import Price, request_estimate, usd_exact

    (tmp_path / "paper-agent.toml").write_text('[prices."gpt-4o-mini"]\ninput = 10\noutput = 40\n')
    invoke("batch", "export", str(PAPERS), "-o", "all.jsonl")
    price = Price(input=10, cached_input=10, output=40)
    costs = [
        price.cost(*request_estimate(r["body"], 0), batch=True)
        for r in requests_in(tmp_path / "all.jsonl")
    ]
    limit = sum(costs[:3]) + costs[3] / 2  # three requests fit, the fourth does not
    some = invoke("batch", "export", str(PAPERS), "-o", "some.jsonl", "--max-cost", f"{limit:.6f}")
    none = invoke("batch", "export", str(PAPERS), "-o", "none.jsonl", "--max-cost", "0.000001")
    assert (some.exit_code, none.exit_code) == (1, 1)
    assert len(requests_in(tmp_path / "some.jsonl")) == 3
    line = some.output.splitlines()[0]
    assert "2 left out: with them the estimate would pass --max-cost $" in line
    assert f"at most {usd_exact(sum(costs[:3]))} estimated at Batch API prices" in line
    assert "nothing to export" in none.output and "5 left out" in none.output
    for output in (some.output, none.output):
        assert "spent" not in output  # nothing was


def test_a_cancelled_batch_keeps_what_it_finished(tmp_path, sleeps):
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        api = FakeBatchAPI(router, ["in_progress", "cancelling", "cancelled"], expire=2)
        api.error_code = "batch_cancelled"
        result = invoke("run", str(PAPERS), "--batch-api", "-o", "results.jsonl")
        assert api.poll.call_count == 3
    assert result.exit_code == 1
    assert "batch batch_abc123: cancelling" in result.output
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["error"]["type"] if r["error"] else None for r in results] == [None] * 3 + [
        "batch_cancelled"
    ] * 2


def test_import_with_other_settings_than_the_export_is_one_line_exit_2(tmp_path):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    (tmp_path / "output.jsonl").write_text(run_batch(requests_in(tmp_path / "requests.jsonl")))
    (tmp_path / "results.jsonl").write_text("earlier results\n")
    with respx.mock(base_url=BASE_URL) as router:
        result = invoke(
            "batch", "import", str(PAPERS), "--output-file", "output.jsonl", "--summary-words", "20"
        )
        assert not router.calls
    assert result.exit_code == 2
    assert "none of the 5 batch answers is for these papers with these settings" in result.output
    assert (tmp_path / "results.jsonl").read_text() == "earlier results\n"  # untouched


def test_a_paper_changed_since_the_export_says_so(tmp_path):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    (tmp_path / "output.jsonl").write_text(run_batch(requests_in(tmp_path / "requests.jsonl")))
    lines = PAPERS.read_text().splitlines()
    changed = json.loads(lines[1])
    changed["abstract"] += " A sentence added after the export."
    lines[1] = json.dumps(changed)
    (tmp_path / "papers.jsonl").write_text("\n".join(lines) + "\n")
    with respx.mock(base_url=BASE_URL):
        result = invoke("batch", "import", "papers.jsonl", "--output-file", "output.jsonl")
    assert result.exit_code == 1
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert results[1]["error"]["type"] == "batch_mismatch"
    assert "import with the settings of the export" in results[1]["error"]["message"]
    assert sum(r["error"] is None for r in results) == 4


# --- found by trying to break it -------------------------------------------------------------


def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe")
    for command in (["batch", "export"], ["run", "--backend", "local"]):
        result = invoke(*command, str(PAPERS), "-o", "pipe")
        assert result.exit_code == 2
        assert "-o pipe is not a regular file" in result.output
    assert not (tmp_path / "pipe").is_file()


def test_export_through_a_symlink_writes_the_target_and_leaves_no_partial(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "elsewhere" / "real.jsonl")
    assert invoke("batch", "export", str(PAPERS), "-o", "link.jsonl").exit_code == 0
    assert len(requests_in(tmp_path / "elsewhere" / "real.jsonl")) == 5
    assert (tmp_path / "link.jsonl").is_symlink()
    assert not list(tmp_path.rglob("*.partial"))


def test_export_to_stdout(tmp_path):
    result = CliRunner().invoke(cli, ["batch", "export", str(PAPERS), "-o", "-"])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5 and all(line["url"] == ENDPOINT for line in lines)
    assert not (tmp_path / "-").exists()


def test_a_cut_off_last_line_costs_only_its_paper(tmp_path, caplog):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    text = run_batch(requests_in(tmp_path / "requests.jsonl"))
    (tmp_path / "output.jsonl").write_text(text[: len(text) - 40])  # a download cut short
    with respx.mock(base_url=BASE_URL):
        result = invoke("batch", "import", str(PAPERS), "--output-file", "output.jsonl")
    assert result.exit_code == 1
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sum(r["error"] is None for r in results) == 4
    assert [r["error"]["type"] for r in results if r["error"]] == ["batch_missing"]
    assert "1 line(s) are not batch output lines (cut off?): 5" in caplog.text


def test_a_cached_answer_wins_over_an_older_output_line(tmp_path):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    requests = requests_in(tmp_path / "requests.jsonl")
    (tmp_path / "good.jsonl").write_text(run_batch(requests))
    (tmp_path / "bad.jsonl").write_text(run_batch(requests, invalid={0, 1, 2, 3, 4}))
    with respx.mock(base_url=BASE_URL) as router:
        assert invoke("batch", "import", str(PAPERS), "--output-file", "good.jsonl").exit_code == 0
        again = invoke("batch", "import", str(PAPERS), "--output-file", "bad.jsonl")
        assert not router.calls  # nothing repaired, nothing paid
    assert again.exit_code == 0
    assert "5 cache hits" in again.output


def test_a_request_file_given_as_output_says_so(tmp_path):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    result = invoke("batch", "import", str(PAPERS), "--output-file", "requests.jsonl")
    assert result.exit_code == 2
    assert "requests.jsonl is a request file" in result.output


def test_a_batch_answer_with_unreadable_usage_is_still_an_answer(tmp_path):
    invoke("batch", "export", str(PAPERS), "-o", "requests.jsonl")
    lines = [
        json.loads(x) for x in run_batch(requests_in(tmp_path / "requests.jsonl")).split("\n") if x
    ]
    for line in lines:
        line["response"]["body"]["usage"] = {"prompt_tokens": "many"}
    (tmp_path / "output.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with respx.mock(base_url=BASE_URL):
        result = invoke("batch", "import", str(PAPERS), "--output-file", "output.jsonl")
    assert result.exit_code == 0, result.output


DAMAGED_JOB_LISTS = [
    b"[1, 2, 3]",
    b'{"jobs": "x"}',
    b'[{"status": "x"}]',
    b'[{"sha256": "a',
    b"\xff\xfe",
]


@pytest.mark.parametrize("content", DAMAGED_JOB_LISTS)
def test_a_damaged_old_job_list_is_warned_about_not_fatal(tmp_path, content, caplog):
    """A ``batches/jobs.json`` of release 0.1.0 that cannot be imported: one warning naming
    it, the file left as it was, and the commands go on."""
    batches = tmp_path / "home" / "batches"
    batches.mkdir(parents=True)
    (batches / "jobs.json").write_bytes(content)
    result = invoke("batch", "status")
    assert result.exit_code == 0, result.output
    assert "no Batch API jobs" in result.output
    assert (batches / "jobs.json").read_bytes() == content  # kept as it was, for inspection
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert str(batches / "jobs.json") in warning


def test_a_damaged_old_job_list_does_not_stop_a_batch_api_run(tmp_path, sleeps, caplog):
    batches = tmp_path / "home" / "batches"
    batches.mkdir(parents=True)
    (batches / "jobs.json").write_text('[{"sha256": "cut off by a full disk')
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        api = FakeBatchAPI(router, ["completed"])
        result = invoke("run", str(PAPERS), "--batch-api", "-o", "results.jsonl")
    assert result.exit_code == 0, result.output
    assert api.upload.call_count == 1 and api.create.call_count == 1
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(results) == 5 and all(r["error"] is None for r in results)
    jobs = Jobs(tmp_path / "home").load()  # this run's job
    assert [(j.batch_id, j.status) for j in jobs] == [("batch_abc123", "completed")]
    assert "cannot read it: Unterminated string" in caplog.text


def test_status_without_a_key_shows_the_saved_jobs(tmp_path, polls, monkeypatch):
    from agent.llm.batch_api import Job, Jobs

    Jobs(tmp_path / "home").save(Job("a" * 64, "req.jsonl", 7, "file-1", "batch_x", "in_progress"))
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    result = invoke("batch", "status")
    assert result.exit_code == 0
    assert "batch_x  in_progress  0/7 done" in result.output
    assert "not checked with the API" in result.output


def test_a_batch_the_api_no_longer_knows_is_not_waited_for(tmp_path, polls):
    from agent.llm.batch_api import Job, Jobs

    jobs = Jobs(tmp_path / "home")
    jobs.save(Job("b" * 64, "req.jsonl", 3, "file-1", "batch_gone", "in_progress"))
    with respx.mock(base_url=BASE_URL) as router:
        router.get("/batches/batch_gone").respond(
            404, json={"error": {"message": "No batch found", "type": "invalid_request_error"}}
        )
        result = invoke("batch", "resume")
    assert result.exit_code == 0, result.output
    assert "batch batch_gone: not_found" in result.output
    assert [j.status for j in jobs.load()] == ["not_found"]


def test_a_run_stopped_between_create_and_save_adopts_the_batch_it_created(tmp_path, polls):
    """The API created the batch but the run never saw the reply: the rerun finds it by its
    input file instead of creating a second one."""
    from agent.backends.openai import OpenAIBackend
    from agent.config import Settings
    from agent.llm.batch_api import answer_by_batch
    from agent.sources import read_papers
    from agent.taxonomy import load_taxonomy

    settings = Settings(backend="openai", base_url=BASE_URL, api_key=API_KEY, home=tmp_path / "h")
    held: list[bytes] = []
    made: list[str] = []  # batches the service created

    async def go(first: bool):
        async with httpx.AsyncClient() as http:
            backend = OpenAIBackend(settings, load_taxonomy(), http)
            with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
                api = FakeBatchAPI(router, ["in_progress", "completed"], uploaded=held)
                listed = router.get("/batches").respond(
                    200,
                    json={
                        "object": "list",
                        "data": [batch_object("in_progress", total=5, input_file_id="file-in")],
                        "has_more": False,
                    },
                )
                if first:
                    on_create = api.on_create

                    def created_then_lost(request):
                        made.append(json.loads(on_create(request).content)["id"])  # made...
                        raise asyncio.CancelledError  # ...and the run stopped before the reply

                    api.create.side_effect = created_then_lost
                    with pytest.raises(asyncio.CancelledError):
                        await answer_by_batch(backend, read_papers([str(PAPERS)]))
                    return api, listed, None
                return api, listed, await answer_by_batch(backend, read_papers([str(PAPERS)]))

    first, _, _ = asyncio.run(go(first=True))
    assert first.upload.call_count == 1 and made == ["batch_abc123"]
    second, listed, answers = asyncio.run(go(first=False))
    assert listed.call_count == 1
    assert second.upload.call_count == 0 and second.create.call_count == 0
    assert len(answers) == 5


def test_batch_api_without_a_key_is_one_line_that_names_the_flag(isolated_env, monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    result = invoke("run", str(PAPERS), "--batch-api", "-o", "out.jsonl")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "paper-agent: error: --batch-api needs OPENAI_API_KEY "
        "(or --base-url for a server with the Batch API)"
    ]  # not "using the offline backend" first, and no "--backend openai" the user never gave
    assert not (isolated_env / "out.jsonl").exists()


def test_a_batch_id_from_the_server_never_becomes_a_path_outside_the_state_dir():
    from agent.llm.batch_api import file_stem

    assert file_stem("batch_abc123") == "batch_abc123"
    for hostile in ("../../../PWNED", "a/b", "/etc/passwd", "..", "x" * 500, ""):
        stem = file_stem(hostile)
        assert "/" not in stem and ".." not in stem and 0 < len(stem) <= 100


def test_an_unknown_batch_status_is_polled_until_it_ends(tmp_path, sleeps):
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        api = FakeBatchAPI(router, ["frobnicating", "frobnicating", "completed"])
        result = invoke("run", str(PAPERS), "--batch-api", "-o", "results.jsonl")
    assert result.exit_code == 0, result.output
    assert api.poll.call_count == 3
    assert "frobnicating" in result.output
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(results) == 5 and all(r["error"] is None for r in results)
