"""The library's API: papers merged by the seen-store's key, seen as a query (answering as the
seen-store does), runs read back as results lines, scores, deliveries, feedback, embeddings and
batch jobs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from agent.llm.batch_api import Job
from agent.models import Annotation, Paper, PaperResult, Usage
from agent.store import DB_NAME, Library, Selection
from agent.store.feedback import DISLIKE, LIKE
from agent.store.keys import key

TODAY = dt.datetime.now(dt.UTC).date()


def paper(pid: str, title: str = "A Paper", **fields: object) -> Paper:
    return Paper(id=pid, title=title, abstract=f"About {title}.", **fields)  # type: ignore[arg-type]


@pytest.fixture
def lib(isolated_env: Path):
    with Library.open() as opened:
        yield opened


def ok(p: Paper, tags: list[str], *, cached: bool = False, tokens: int = 0) -> PaperResult:
    usage = Usage(prompt_tokens=tokens, requests=1 if tokens else 0)
    return PaperResult.ok(
        p,
        Annotation(tags=tags, summary=f"{p.title} in short.", usage=usage, cached=cached),
        "openai",
        "gpt-x",
    )


# --- papers --------------------------------------------------------------------------------


def test_the_library_is_one_file_in_the_state_dir(lib, isolated_env):
    assert lib.path == isolated_env / "home" / DB_NAME and lib.path.exists()


def test_papers_are_known_by_the_seen_store_key(lib):
    papers = [paper("2401.00001v3"), paper("hf-1", "Only A Title"), paper("x", "!!!")]
    assert lib.papers.add(papers) == [key(p) for p in papers]
    assert lib.papers.add(papers) == [key(p) for p in papers]  # added again: the same rows
    assert len(lib.papers) == 3


def test_a_paper_from_two_sources_is_one_row_with_both(lib):
    first = paper(
        "2401.00001v1",
        "Deep Things",
        source="arxiv:cs.LG",
        published="2024-01-01T00:00:00Z",
        categories=["cs.LG"],
        metadata={"a": "1"},
    )
    again = Paper(
        id="2401.00001v2",
        title="Deep Things",
        abstract="",  # a source without the abstract keeps the stored one
        url="https://arxiv.org/abs/2401.00001v2",
        published="2024-02-02",
        source="hf",
        metadata={"b": "2"},
    )
    [k1] = lib.papers.add([first])
    stored = lib.papers.get(k1)
    [k2] = lib.papers.add([again])
    merged = lib.papers.get(k2)
    assert k1 == k2 == "2401.00001" and len(lib.papers) == 1
    assert merged.sources == ["arxiv:cs.LG", "hf"]
    assert merged.abstract == first.abstract and merged.url == again.url
    assert merged.published == first.published  # the first date stands
    assert merged.categories == ["cs.LG"] and merged.metadata == {"a": "1", "b": "2"}
    assert merged.id == "2401.00001v1" and merged.first_seen == stored.first_seen
    assert merged.updated > stored.updated
    assert lib.papers.find("2401.00001v7").key == k1 and lib.papers.find("2401.00001v1")
    for ident in (" 2401.00001 ", "arXiv:2401.00001v2", "https://arxiv.org/abs/2401.00001"):
        assert lib.papers.find(ident).key == k1
    assert lib.papers.find("nothing") is None


def test_a_paper_given_again_unchanged_is_not_changed(lib):
    lib.papers.add([paper("2401.00001", source="a")])
    mark = dt.datetime.now(dt.UTC)
    lib.papers.add([paper("2401.00001", source="a")])
    assert list(lib.papers.changed_since(mark)) == []
    lib.papers.add([paper("2401.00001", "A Better Title", source="a")])
    assert list(lib.papers.changed_since(mark)) == ["2401.00001"]


def test_a_paper_stored_by_title_gains_its_arxiv_id_and_keeps_its_history(lib):
    [title_key] = lib.papers.add([paper("hf-9", "Attention Again", source="hf")])
    lib.feedback.add(title_key, LIKE)
    [arxiv_key] = lib.papers.add([paper("2402.00009v1", "Attention again.", source="arxiv")])
    assert (title_key, arxiv_key) == ("title:attention again", "2402.00009")
    assert len(lib.papers) == 1 and lib.papers.get(title_key) is None
    assert lib.feedback.get(arxiv_key) == LIKE
    # A title-only paper later finds the row by its title.
    assert lib.papers.add([paper("hf-10", "ATTENTION AGAIN")]) == [arxiv_key]


def test_papers_stream_by_day_run_and_time(lib):
    lib.papers.add([paper(f"2401.{n:05d}", published=f"2024-01-0{n}T10:00:00Z") for n in (1, 2)])
    assert [p.key for p in lib.papers.on_day(TODAY)] == ["2401.00001", "2401.00002"]
    assert list(lib.papers.on_day(TODAY - dt.timedelta(days=1))) == []
    assert [p.key for p in lib.papers.on_day(dt.date(2024, 1, 2), by="published")] == ["2401.00002"]
    assert len(list(lib.papers.since(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))) == 2
    assert list(lib.papers.since(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))) == []
    run = lib.runs.start("run")
    p3, p1 = paper("2401.00003"), paper("2401.00001")
    lib.runs.record(run, [(0, p3, ok(p3, ["a"])), (1, p1, ok(p1, ["a"]))], "s")
    assert [p.key for p in lib.papers.of_run(run)] == ["2401.00003", "2401.00001"]
    assert lib.papers.get("2401.00003").to_paper().id == "2401.00003"


def test_a_stream_can_write_to_the_library_as_it_reads(lib):
    lib.papers.add([paper(f"2401.{n:05d}") for n in range(1200)])  # more than one fetch
    seen = 0
    for stored in lib.papers.on_day(TODAY):
        lib.seen.mark([stored.to_paper()], "loop")
        seen += 1
    assert seen == 1200 and len(lib.seen) == 1200


# --- seen ------------------------------------------------------------------------------------

# Each scenario: what is marked, in turn; then what the seen-store of release 0.1.0 answered
# (how many each mark added, which questions were seen, and the (id, key) rows it listed).
SCENARIOS = {
    "versions": (
        [[paper("2401.00001v2")]],
        [1],
        {"2401.00001", "2401.00001v9"},
        [("2401.00001v2", "2401.00001")],
    ),
    "title then id": (
        [[paper("hf-1", "Graph Nets")], [paper("2401.00002", "Graph nets")]],
        [1, 0],
        {"2401.00002v3", "hf-2"},
        [("hf-1", "2401.00002")],
    ),
    "id then title": (
        [[paper("2401.00002", "Graph Nets")], [paper("hf-1", "GRAPH NETS")]],
        [1, 0],
        {"2401.00002v3", "hf-2"},
        [("2401.00002", "2401.00002")],
    ),
    "one title, two ids": (
        [[paper("2401.00003", "A Survey")], [paper("2401.00004", "A Survey")]],
        [1, 1],
        {"2401.00004", "hf-3"},
        [("2401.00004", "2401.00004"), ("2401.00003", "2401.00003")],
    ),
    "url only": (
        [[paper("p-5", "Five", url="https://arxiv.org/abs/2401.00005v1")]],
        [1],
        {"2401.00005"},
        [("p-5", "2401.00005")],
    ),
    "no words": ([[paper("odd-1", "???")]], [1], {"odd-1"}, [("odd-1", "id:odd-1")]),
}
QUESTIONS = [
    paper("2401.00001"),
    paper("2401.00001v9", "Other"),
    paper("hf-2", "graph  nets"),
    paper("2401.00002v3", "x"),
    paper("2401.00099", "Graph Nets"),
    paper("2401.00004", "A Survey"),
    paper("2401.00005", "Z"),
    paper("hf-3", "A survey"),
    paper("odd-1", "???"),
    paper("odd-2", "???"),
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_seen_answers_as_the_seen_store_did(lib, scenario):
    steps, added, seen, listed = SCENARIOS[scenario]
    assert [lib.seen.mark(step, "src") for step in steps] == added
    assert lib.seen.seen(QUESTIONS) == seen
    assert len(lib.seen) == len(listed)
    # (The title shown may differ: the library keeps the latest a source gave.)
    assert [(e.id, e.key, e.source) for e in lib.seen.list()] == [(*row, "src") for row in listed]


def test_a_paper_in_the_library_is_not_seen_until_marked(lib):
    lib.papers.add([paper("2401.00001")])
    assert lib.seen.seen([paper("2401.00001")]) == set()
    assert lib.seen.mark([paper("2401.00001v2")], "arxiv") == 1
    assert lib.seen.mark([paper("2401.00001v3")], "arxiv") == 0
    assert lib.seen.seen([paper("2401.00001v1")]) == {"2401.00001v1"}


def test_forget_and_clear_keep_the_papers_and_their_history(lib):
    papers = [paper(f"2401.{n:05d}v1") for n in range(3)]
    run = lib.runs.start("run")
    lib.runs.record(run, [(i, p, ok(p, ["a"])) for i, p in enumerate(papers)], "s")
    lib.seen.mark(papers, "arxiv")
    assert lib.seen.forget("2401.00000v4") == 1 and lib.seen.forget("2401.00000") == 0
    assert lib.seen.forget("2401.00001v1") == 1  # by the id its source gave
    assert lib.seen.seen(papers) == {"2401.00002v1"}
    assert lib.seen.clear() == 1 and len(lib.seen) == 0
    assert len(lib.papers) == 3 and len(list(lib.results(Selection(run=run)))) == 3


def test_seen_list_is_newest_first_and_limited(lib):
    for n in range(3):
        lib.seen.mark([paper(f"2401.{n:05d}")], f"s{n}")
    assert [e.key for e in lib.seen.list()] == ["2401.00002", "2401.00001", "2401.00000"]
    assert [e.source for e in lib.seen.list(limit=2)] == ["s2", "s1"]


# --- runs and results ------------------------------------------------------------------------


def test_a_run_reads_back_as_the_results_lines_it_wrote(lib):
    papers = [
        paper(
            "2401.00001v1",
            "One",
            url="https://arxiv.org/abs/2401.00001v1",
            source="arxiv",
            published="2026-11-20T00:00:00Z",
        ),
        paper("hf-2", "Two", authors=["Ada"], metadata={"upvotes": "3"}, source="hf"),
        paper("2401.00003", "Three", source="arxiv", categories=["cs.LG", "stat.ML"]),
        paper("2401.00004", "Four", source="arxiv"),
    ]
    scored = {"relevance": 7.5, "why": "Vision: cameras", "relevance_by": {"Vision": 7.5}}
    written = [
        ok(papers[0], ["LLMs"], tokens=120),
        ok(papers[1], ["Vision", "RL"], cached=True).model_copy(update=scored),
        PaperResult.failed(papers[2], "invalid_answer", "no JSON", "openai", "gpt-x"),
        PaperResult.failed(papers[3], "skipped", "not run: over budget", "openai", "gpt-x"),
    ]
    run = lib.runs.start("run --source arxiv:cs.LG", {"backend": "openai", "model": "gpt-x"})
    lib.runs.record(
        run, [(i, p, r) for i, (p, r) in enumerate(zip(papers, written, strict=True))], "s1"
    )
    lib.runs.finish(run, "failed", exit_code=1)
    lines = [r.to_line() for r in lib.results(Selection(run=run))]
    assert lines == [r.to_line() for r in written]
    [info] = lib.runs.list()
    assert (info.id, info.status, info.exit_code, info.command) == (
        run,
        "failed",
        1,
        "run --source arxiv:cs.LG",
    )
    assert (info.ok, info.failed, info.skipped, info.total) == (2, 1, 1, 4)
    assert info.settings == {"backend": "openai", "model": "gpt-x"} and info.finished
    assert lib.runs.get(run) == info and lib.runs.get(run + 1) is None


def test_a_day_and_a_span_give_each_paper_its_latest_outcome(lib):
    one, two = paper("2401.00001", "One"), paper("2401.00002", "Two")
    first = lib.runs.start("run")
    failed = PaperResult.failed(two, "timeout", "slow", "openai", "gpt-x")
    lib.runs.record(first, [(0, one, ok(one, ["a"])), (1, two, failed)], "s")
    second = lib.runs.start("run")
    lib.runs.record(second, [(0, two, ok(two, ["b"]))], "s")
    lib.papers.add([paper("2401.00003")])  # fetched, never run: no result
    day = [(r.id, r.tags, r.error) for r in lib.results(Selection(day=TODAY))]
    assert day == [("2401.00001", ["a"], None), ("2401.00002", ["b"], None)]
    hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert [r.id for r in lib.results(Selection(since=hour_ago))] == ["2401.00001", "2401.00002"]
    assert list(lib.results(Selection(day=TODAY + dt.timedelta(days=1)))) == []
    assert [r.error.type for r in lib.results(Selection(run=first)) if r.error] == ["timeout"]


def test_results_carry_a_profile_s_latest_score(lib):
    one, two = paper("2401.00001", "One"), paper("2401.00002", "Two")
    run = lib.runs.start("run")
    lib.runs.record(run, [(0, one, ok(one, ["a"])), (1, two, ok(two, ["a"]))], "s")
    lib.scores.record("ml", "lexical", [("2401.00001", 4.0, "words")])
    lib.scores.record("ml", "llm", [("2401.00001", 8.5, "asked")])
    lib.scores.record("bio", "llm", [("2401.00002", 9.0, "cells")])
    rows = list(lib.results(Selection(run=run), profile="ml"))
    assert [(r.relevance, r.why) for r in rows] == [(8.5, "asked"), (None, None)]
    assert '"relevance"' not in rows[1].to_line()  # no score: the line has no interest fields
    lexical = list(lib.results(Selection(run=run), profile="ml", scorer="lexical"))
    assert lexical[0].relevance == 4.0


def test_a_selection_is_one_of_run_day_or_since():
    with pytest.raises(ValueError, match="one of run, day or since"):
        Selection(run=1, day=TODAY)
    with pytest.raises(ValueError):
        Selection()


def test_annotations_keep_what_making_them_cost_when_served_from_the_cache(lib):
    p = paper("2401.00001")
    run = lib.runs.start("run")
    lib.runs.record(run, [(0, p, ok(p, ["a"], tokens=500))], "s1")
    made = lib.annotations.get("2401.00001", "s1")
    lib.runs.record(run, [(1, p, ok(p, ["a"], cached=True))], "s1")
    assert lib.annotations.get("2401.00001", "s1") == made  # a cache hit changes nothing
    assert made.usage.prompt_tokens == 500
    lib.runs.record(run, [(2, p, ok(p, ["b"], tokens=20))], "s1")  # a new answer replaces it
    assert lib.annotations.get("2401.00001", "s1").tags == ["b"]
    lib.runs.record(run, [(3, p, ok(p, ["c"]))], "s2")  # other settings: another annotation
    assert [a.settings for a in lib.annotations.of_paper("2401.00001")] == ["s2", "s1"]
    assert lib.annotations.record(
        "2401.00001", "s3", Annotation(tags=[], summary="x"), "local", None
    )
    with pytest.raises(KeyError):
        lib.annotations.record("nope", "s", Annotation(tags=[], summary="x"), "local", None)


def test_changed_since_finds_new_annotations_and_scores(lib):
    p = paper("2401.00001")
    lib.papers.add([p, paper("2401.00002")])
    mark = dt.datetime.now(dt.UTC)
    assert list(lib.papers.changed_since(mark)) == []
    lib.scores.record("ml", "lexical", [("2401.00002", 1.0, None)])
    assert list(lib.papers.changed_since(mark)) == ["2401.00002"]
    lib.runs.record(lib.runs.start("run"), [(0, p, ok(p, ["a"]))], "s")
    assert sorted(lib.papers.changed_since(mark)) == ["2401.00001", "2401.00002"]


def test_a_finished_run_that_does_not_exist_is_an_error(lib):
    with pytest.raises(KeyError):
        lib.runs.finish(99, "ok")


# --- scores ----------------------------------------------------------------------------------


def test_scores_are_kept_per_profile_and_scorer(lib):
    lib.papers.add([paper("2401.00001"), paper("2401.00002")])
    scored = [("2401.00001", 3.0, "a"), ("2401.00002", 7.0, None)]
    assert lib.scores.record("ml", "lexical", scored) == 2
    assert lib.scores.record("ml", "lexical", scored) == 0  # unchanged: left as it was
    got = lib.scores.get("ml", ["2401.00001", "2401.00002", "2401.09999"])
    assert {k: (s.relevance, s.why) for k, s in got.items()} == {
        "2401.00001": (3.0, "a"),
        "2401.00002": (7.0, None),
    }
    assert lib.scores.get("other", ["2401.00001"]) == {}
    for bad in (-1.0, 10.5, math.nan):
        with pytest.raises(ValueError, match="not 0 to 10"):
            lib.scores.record("ml", "lexical", [("2401.00001", bad, None)])
    with pytest.raises(KeyError):
        lib.scores.record("ml", "lexical", [("2409.99999", 1.0, None)])


# --- deliveries ------------------------------------------------------------------------------


def test_deliveries_resume_by_message_and_never_repeat_a_paper(lib):
    papers = [paper(f"2401.{n:05d}v1", f"Paper {n}") for n in range(4)]
    lib.papers.add(papers[:1])  # a paper not in the library yet is stored on delivery
    digest = lib.deliveries.digest("hash-1", day="2026-12-01", profile="ml")
    assert lib.deliveries.digest("hash-1", day="2026-12-01", profile="ml") == digest
    lib.deliveries.record(digest, "slack", "sha256:aaa", 0, 2, papers[:2])
    lib.deliveries.record(digest, "slack", "sha256:aaa", 0, 2, papers[:2])  # once is enough
    assert lib.deliveries.delivered_messages("hash-1", "sha256:aaa") == {0}
    assert lib.deliveries.delivered_messages("hash-1", "sha256:bbb") == set()
    assert lib.deliveries.unfinished(["sha256:aaa"])[0].papers == ("2401.00000", "2401.00001")
    lib.deliveries.record(digest, "slack", "sha256:aaa", 1, 2, papers[1:3])
    assert lib.deliveries.delivered_messages("hash-1", "sha256:aaa") == {0, 1}
    assert lib.deliveries.unfinished(["sha256:aaa"]) == []  # both messages went
    keys = [key(p) for p in papers]
    assert sorted(lib.deliveries.delivered_keys("sha256:aaa")) == keys[:3]
    # Each message keeps every paper it carried, the one delivered twice too.
    [first, second] = lib.deliveries.of_digest(["sha256:bbb", "sha256:aaa"], "hash-1")
    assert (first.message, first.papers, first.day, first.channel) == (
        0,
        tuple(keys[:2]),
        "2026-12-01",
        "slack",
    )
    assert second.papers == tuple(keys[1:3])
    # Matched as the seen query matches: another version, or the title alone.
    asked = [paper("2401.00000v3", "X"), paper("hf-9", "PAPER 2"), papers[3]]
    assert lib.deliveries.delivered(["sha256:x", "sha256:aaa"], asked) == {"2401.00000v3", "hf-9"}
    titled = paper("hf-7", "Only A Title")
    lib.deliveries.record(digest, "email", "mailto:ccc", 0, 1, [titled])
    again = [paper("2409.00007", "ONLY a title!"), paper("hf-8", "only a title")]
    assert lib.deliveries.delivered(["mailto:ccc"], again) == {"2409.00007", "hf-8"}
    assert lib.deliveries.delivered(["sha256:bbb"], papers) == set()
    assert lib.deliveries.delivered([], papers) == set()


# --- feedback --------------------------------------------------------------------------------


def test_feedback_latest_vote_stands(lib):
    [one, two] = lib.papers.add([paper("2401.00001", "One"), paper("2401.00002", "Two")])
    assert lib.feedback.add(one, LIKE, profile="ml") is True
    assert lib.feedback.add(one, LIKE, profile="ml") is False
    assert lib.feedback.add(one, DISLIKE, profile="ml", origin="zotero") is True
    lib.feedback.add(two, LIKE)
    assert lib.feedback.get(one, "ml") == DISLIKE and lib.feedback.get(one) is None
    votes = list(lib.feedback.list("ml"))
    assert [(v.key, v.title, v.vote, v.origin) for v in votes] == [(one, "One", -1, "zotero")]
    assert len(list(lib.feedback.list())) == 2
    assert lib.feedback.remove(one, "ml") is True and lib.feedback.remove(one, "ml") is False
    with pytest.raises(ValueError):
        lib.feedback.add(two, 0)
    with pytest.raises(KeyError):
        lib.feedback.add("2409.99999", LIKE)


# --- embeddings and batch jobs ---------------------------------------------------------------


def test_embeddings_round_trip_per_model(lib):
    keys = lib.papers.add([paper("2401.00001"), paper("2401.00002")])
    vectors = {keys[0]: [0.5, -1.25, 3.0], keys[1]: np.arange(3, dtype=np.float64)}
    assert lib.embeddings.put("mini", vectors) == 2
    got = lib.embeddings.get("mini", [*keys, "2409.99999"])
    assert set(got) == set(keys) and got[keys[0]].dtype == np.float32
    np.testing.assert_array_equal(got[keys[0]], [0.5, -1.25, 3.0])
    lib.embeddings.put("mini", {keys[0]: [1, 1, 1]})
    np.testing.assert_array_equal(lib.embeddings.get("mini", keys[:1])[keys[0]], [1, 1, 1])
    assert lib.embeddings.get("other", keys) == {}
    assert lib.embeddings.count() == 2 and lib.embeddings.count("other") == 0


def test_batch_jobs_hold_a_job_as_saved(lib):
    first = Job("a" * 64, "/x/requests-a.jsonl", 3, created=10.5)
    second = Job("b" * 64, "/x/requests-b.jsonl", 1, batch_id="batch_1", created=11.0)
    lib.batch_jobs.put(dataclasses.asdict(second))
    lib.batch_jobs.put(dataclasses.asdict(first))
    first.status, first.batch_id = "in_progress", "batch_0"
    lib.batch_jobs.put(dataclasses.asdict(first))  # the same job, updated
    assert [Job(**j) for j in lib.batch_jobs.all()] == [first, second]  # oldest first
    assert lib.batch_jobs.remove("a" * 64, 10.5) is True
    assert lib.batch_jobs.remove("a" * 64, 10.5) is False
    with pytest.raises(ValueError):
        lib.batch_jobs.put({"status": "uploading"})


def test_an_export_is_a_results_file_the_digest_reads(lib, tmp_path):
    from agent.digest.model import load_results
    from agent.store.results import write_jsonl

    papers = [paper(f"2401.{n:05d}v1", f"Paper {n}") for n in range(3)]
    written = [ok(papers[0], ["a"]), ok(papers[1], ["b"], cached=True)]
    written.append(PaperResult.failed(papers[2], "refusal", "no", "openai", "gpt-x"))
    run = lib.runs.start("run")
    lib.runs.record(
        run, [(i, p, r) for i, (p, r) in enumerate(zip(papers, written, strict=True))], "s"
    )
    out = tmp_path / "export.jsonl"
    with out.open("w", encoding="utf-8") as stream:
        assert write_jsonl(lib.results(Selection(run=run)), stream) == 3
    assert out.read_text(encoding="utf-8") == "".join(r.to_line() + "\n" for r in written)
    assert [r.model_dump() for r in load_results(out)] == [r.model_dump() for r in written]
