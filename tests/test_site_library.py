"""What the archive site asks of the library: its days, each result with its paper's key, and
the profiles that have scores."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.models import Paper
from agent.store import Library, Selection
from tests.site_data import PROFILES, START, day_papers, fill, record_day, sample_papers


@pytest.fixture
def lib(isolated_env):
    with Library.open(isolated_env / "home") as library:
        yield library


def test_days_are_the_days_with_results_with_their_counts(isolated_env):
    fill(isolated_env / "home", 3, 4)
    with Library.open(isolated_env / "home") as lib:
        # A paper stored without a run (as an old seen-store is imported) has no result.
        lib.papers.add([Paper(id="2501.99999", title="Only seen", abstract="")])
        assert lib.days() == [(START + dt.timedelta(days=n), 4) for n in range(3)]
        for day, count in lib.days():
            assert len(list(lib.results(Selection(day=day)))) == count


def test_keyed_results_give_the_key_the_library_knows_each_paper_by(lib):
    when = dt.datetime.combine(START, dt.time(9), dt.UTC)
    papers = day_papers(0, 3, sample_papers())
    # Another source gives the first paper with a version: its result says "...v2", the
    # library's key stays the bare arXiv id.
    papers[0] = papers[0].model_copy(update={"id": papers[0].id + "v2"})
    keys = record_day(lib, when, papers)
    keyed = list(lib.keyed_results(Selection(day=START)))
    assert [k for k, _ in keyed] == keys
    assert keyed[0][1].id.endswith("v2") and not keys[0].endswith("v2")
    plain = list(lib.results(Selection(day=START), profile="ml"))
    assert [r.to_line() for _, r in lib.keyed_results(Selection(day=START), "ml")] == [
        r.to_line() for r in plain
    ]


def test_profiles_are_those_with_a_score(lib):
    assert lib.scores.profiles() == []
    record_day(
        lib, dt.datetime.combine(START, dt.time(9), dt.UTC), day_papers(0, 2, sample_papers())
    )
    assert lib.scores.profiles() == sorted(PROFILES)
