"""A digest is dated by its papers (their newest date), else by the run, and says which."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.digest import build_digest, load_results, render
from agent.models import PaperResult

PEOPLE = ["slack", "mrkdwn", "markdown", "html", "text"]  # the formats a person reads


def result(i: int, published: str | None) -> PaperResult:
    return PaperResult(
        id=f"2011.{i:05d}",
        title=f"Paper {i}",
        tags=["LLMs"],
        summary="s",
        backend="local",
        published=published,
    )


def heading(fmt: str, text: str) -> str:
    """The digest's title line in ``fmt``."""
    if fmt == "slack":
        return json.loads(text)[0]["blocks"][0]["text"]["text"]
    line = text.split("<h1", 1)[1].split(">", 1)[1] if fmt == "html" else text
    return line.splitlines()[0].strip("#* ").split("</h1>")[0]


@pytest.mark.parametrize("fmt", PEOPLE)
def test_papers_posted_later_are_headed_with_their_own_date(fmt):
    results = [
        result(1, "2020-11-19T18:00:00Z"),  # submitted the day before the announcement
        result(2, "2020-11-20T10:00:00Z"),
        result(3, None),
        result(4, "2999-01-01"),  # a broken date in the future is not the batch's day
        result(5, "Nov 21, 2020"),  # another form is not guessed at
    ]
    digest = build_digest(results)
    assert (digest.date, digest.date_basis) == (dt.date(2020, 11, 20), "papers")
    text = render(digest, fmt)
    assert heading(fmt, text) == "Research digest — papers of 2020-11-20"
    assert dt.date.today().isoformat() not in text


@pytest.mark.parametrize("fmt", PEOPLE)
def test_without_paper_dates_the_run_is_named(fmt):
    digest = build_digest([result(1, None), result(2, "not a date")])
    today = dt.date.today().isoformat()
    assert heading(fmt, render(digest, fmt)) == f"Research digest — run of {today}"


def test_a_given_date_is_shown_as_it_is_and_json_says_the_basis():
    given = build_digest([result(1, "2020-11-20")], date=dt.date(2021, 1, 2))
    assert heading("markdown", render(given, "markdown")) == "Research digest — 2021-01-02"
    for digest, basis, day in [
        (given, "given", "2021-01-02"),
        (build_digest([result(1, "2020-11-20")]), "papers", "2020-11-20"),
        (build_digest([result(1, None)]), "run", dt.date.today().isoformat()),
    ]:
        data = json.loads(render(digest, "json"))
        assert (data["date"], data["date_basis"]) == (day, basis)


def test_the_date_travels_from_the_input_through_results_to_the_digest(isolated_env):
    rows = [
        {"id": "2011.00001", "title": "One", "abstract": "We propose A. It works."},
        {"title": "Two", "abstract": "We propose B. It works.", "published": "2020-11-20T10:00Z"},
    ]
    (isolated_env / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", "p.jsonl", "--backend", "local", "-o", "r.jsonl"])
    assert ran.exit_code == 0, ran.output
    lines = [json.loads(x) for x in (isolated_env / "r.jsonl").read_text().splitlines()]
    assert "published" not in lines[0]  # no date given: the results line is as before
    assert lines[1]["published"] == "2020-11-20T10:00Z"
    assert [r.published for r in load_results(isolated_env / "r.jsonl")] == [
        None,
        "2020-11-20T10:00Z",
    ]
    shown = runner.invoke(cli, ["digest", "r.jsonl"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("# Research digest — papers of 2020-11-20\n")
