"""Interests, the offline relevance model, its combine rule, and eval --relevance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.backends.local import LocalBackend
from agent.backends.local.relevance import RelevanceModel, combine, shorten
from agent.backends.local.tagger import term_counts
from agent.backends.local.text import parse
from agent.cli import cli
from agent.cli.eval import eval_cmd
from agent.errors import ConfigError, InputError
from agent.interests import Criterion, Interests, criterion_name, load_interests
from agent.models import Paper
from agent.taxonomy import load_taxonomy

FIXTURES = Path(__file__).parent / "fixtures" / "relevance"


@pytest.fixture
def labelled() -> tuple[list[Paper], dict[str, set[str]], list[Criterion]]:
    """The fixture's papers, the ids relevant to each interest, and the interests as criteria."""
    rows = [json.loads(line) for line in (FIXTURES / "papers.jsonl").read_text().splitlines()]
    interests = json.loads((FIXTURES / "interests.json").read_text())
    papers = [Paper(id=r["id"], title=r["title"], abstract=r["abstract"]) for r in rows]
    relevant = {
        i["name"]: {r["id"] for r in rows if {k.lower() for k in r["keywords"]} & set(i["gold"])}
        for i in interests
    }
    return papers, relevant, [Criterion(i["name"], i["criterion"]) for i in interests]


def test_on_topic_papers_rank_above_off_topic_ones(labelled) -> None:
    papers, relevant, criteria = labelled
    model = RelevanceModel(Interests(criteria=criteria))
    scores = {p.id: model.score(p) for p in papers}
    for name, ids in relevant.items():
        ranked = sorted(scores, key=lambda pid: -scores[pid].by[name])
        assert ranked[0] in ids  # the best paper for each interest is one of its own
        hits_in_top8 = len(set(ranked[:8]) & ids)
        assert hits_in_top8 >= 5, (name, hits_in_top8)


def test_why_names_the_matching_criterion(labelled) -> None:
    papers, relevant, criteria = labelled
    model = RelevanceModel(Interests(criteria=criteria))
    for name, ids in relevant.items():
        whys = [model.score(p).why for p in papers if p.id in ids]
        assert whys.count(name) > len(whys) / 2, (name, whys)  # author keywords are noisy
    paper = Paper(id="p", title="Federated learning with differential privacy", abstract="")
    score = model.score(paper)
    assert score.why == "Privacy and federated learning"
    assert 0.0 < score.relevance <= 10.0
    assert score.relevance == max(score.by.values())


def test_nothing_matches_gives_zero_and_empty_why() -> None:
    model = RelevanceModel(Interests(criteria=[Criterion("Privacy", "Differential privacy.")]))
    score = model.score(Paper(id="x", title="Sorting socks", abstract="We fold laundry."))
    assert (score.relevance, score.why, score.by) == (0.0, "", {"Privacy": 0.0})


def test_fractions_make_ties_rare(labelled) -> None:
    papers, _, criteria = labelled
    model = RelevanceModel(Interests(criteria=criteria))
    values = [model.score(p).relevance for p in papers]
    nonzero = [v for v in values if v > 0]
    assert len(set(nonzero)) >= 0.95 * len(nonzero)
    assert any(v != round(v) for v in nonzero)
    assert all(0.0 <= v <= 10.0 for v in values)


def test_liked_papers_pull_similar_papers_up(labelled) -> None:
    papers, relevant, _ = labelled
    synthesis = sorted(relevant["Program synthesis"])
    liked = [p for p in papers if p.id in synthesis[:4]]
    rest = [p for p in papers if p.id not in synthesis[:4]]
    # A criterion about something else entirely: only the liked papers can lift synthesis.
    crit = [Criterion("Privacy", "Privacy in machine learning: differential privacy.")]
    alone = RelevanceModel(Interests(criteria=crit))
    both = RelevanceModel(Interests(criteria=crit, liked=liked))
    targets = [p for p in rest if p.id in synthesis]
    gain = [both.score(p).relevance - alone.score(p).relevance for p in targets]
    others = [p for p in rest if p.id not in synthesis]
    other_gain = [both.score(p).relevance - alone.score(p).relevance for p in others]
    assert sum(gain) / len(gain) > sum(other_gain) / len(other_gain) + 0.5
    assert any(both.score(p).why.startswith("like “") for p in targets)
    liked_alone = RelevanceModel(Interests(liked=liked))
    top = max(rest, key=lambda p: liked_alone.score(p).relevance)
    assert top.id in synthesis
    value, why = both.liked_score(top) or (0.0, "")
    assert 0.0 <= value <= 10.0 and why.startswith("like “")


def test_two_unlike_liked_papers_do_not_make_every_paper_like_them(labelled) -> None:
    papers, relevant, _ = labelled
    # One paper from each of two interests: they share almost nothing, so a scale taken from
    # how alike they are would call any paper as close to them as they are to each other.
    names = sorted(relevant)
    liked = [next(p for p in papers if p.id in relevant[name]) for name in names[:2]]
    model = RelevanceModel(Interests(liked=liked))
    chosen = {p.id for p in liked}
    related = relevant[names[0]] | relevant[names[1]]
    unrelated = [p for p in papers if p.id not in related and p.id not in chosen]
    named = [p for p in unrelated if model.score(p).why]
    assert len(named) <= len(unrelated) // 10, [p.title for p in named]
    assert sum(model.score(p).relevance for p in unrelated) / len(unrelated) < 3.0


def test_combine_raises_toward_liked_never_lowers() -> None:
    assert combine(4, 8, "llm says", "like “A”") == (6.0, "like “A”")  # 4 + 0.5 * (8 - 4)
    assert combine(7, 2, "llm says", "like “A”") == (7.0, "llm says")  # never pushed down
    assert combine(7, None, "llm says") == (7.0, "llm says")
    assert combine(10, 10, "x", "y") == (10.0, "x")  # a tie: the model's own reason
    assert combine(12, -3) == (10.0, "")  # clamped to 0-10
    assert combine(0, 10, "", "like “B”", pull=1.0) == (10.0, "like “B”")


def test_shorten_cuts_at_a_word() -> None:
    assert shorten("Attention Is All You Need", 60) == "Attention Is All You Need"
    assert shorten("Attention Is All You Need", 15) == "Attention Is…"


def test_criterion_names() -> None:
    assert criterion_name("Reinforcement learning: agents that learn") == "Reinforcement learning"
    long_head = "Papers that study how agents learn from rewards in games: RL"
    assert criterion_name(long_head) == "Papers that study how agents"
    assert (
        criterion_name("Graph neural networks for molecules.")
        == "Graph neural networks for molecules"
    )


def reference_liked_score(liked: list[Paper], paper: Paper) -> tuple[float, int]:
    """The kNN liked score by its definition, one pair at a time in plain Python."""
    model = RelevanceModel(Interests(liked=liked)).liked
    assert model is not None

    def vec(p: Paper) -> dict[str, float]:
        return model.vector(term_counts(parse(p.title, p.abstract)))

    def cosine(a: dict[str, float], b: dict[str, float]) -> float:
        return sum(v * b.get(t, 0.0) for t, v in a.items())

    vectors = [vec(p) for p in liked]
    inner = [sorted((cosine(v, w) for w in vectors), reverse=True)[1:4] for v in vectors]
    typical = sum(sum(s) / len(s) for s in inner if s) / len(inner)
    sims = [cosine(vec(paper), w) for w in vectors]
    top = sorted(sims, reverse=True)[:3]
    nearest = max(range(len(sims)), key=sims.__getitem__)
    nearest = nearest if sims[nearest] >= 0.05 else -1
    return min(max((sum(top) / len(top)) / max(typical, 0.05), 0.0), 1.0), nearest


def test_the_liked_score_is_the_nearest_liked_papers_similarity(labelled) -> None:
    """The postings are summed by numpy: the same numbers as one pair at a time."""
    papers, relevant, _ = labelled
    liked = [p for p in papers if p.id in sorted(relevant["Program synthesis"])[:6]]
    liked += papers[:5]  # some unlike the others
    model = RelevanceModel(Interests(liked=liked)).liked
    assert model is not None
    for paper in papers[5:40]:
        counts = term_counts(parse(paper.title, paper.abstract))
        score, nearest = model.score(model.vector(counts))
        expected, expected_nearest = reference_liked_score(liked, paper)
        assert score == pytest.approx(expected, abs=1e-12)
        assert nearest == expected_nearest


def test_only_the_last_liked_papers_are_read_and_the_run_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("agent.interests.MAX_LIKED", 3)
    liked = tmp_path / "liked.jsonl"
    rows = [
        {"id": str(i), "title": f"Paper {i}", "abstract": "Sparse attention."} for i in range(5)
    ]
    liked.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = load_interests([], liked, None)
    assert got is not None
    assert [p.id for p in got.liked] == ["2", "3", "4"]
    line = f"{liked} holds 5 liked papers: the last 3 (the most recent likes) are used"
    assert got.notes == [line]
    papers = tmp_path / "papers.jsonl"
    papers.write_text(json.dumps({"id": "9", "title": "Attention", "abstract": "Sparse."}) + "\n")
    args = ["run", str(papers), "--backend", "local", "--liked", str(liked), "-o", "out.jsonl"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines().count(f"paper-agent: {line}") == 1
    monkeypatch.setattr("agent.interests.MAX_LIKED", 5)  # all of it is read: nothing to say
    again = load_interests([], liked, None)
    assert again is not None and len(again.liked) == 5 and again.notes == []


def test_load_interests(tmp_path: Path) -> None:
    assert load_interests([], None, None) is None
    liked = tmp_path / "liked.jsonl"
    liked.write_text(json.dumps({"id": "1", "title": "T", "abstract": "A b c."}) + "\n")
    got = load_interests(["RL: rewards", {"name": "Vision", "text": "Images."}], liked, 4)
    assert got is not None
    assert [c.name for c in got.criteria] == ["RL", "Vision"]
    assert [p.id for p in got.liked] == ["1"] and got.min_relevance == 4.0


@pytest.mark.parametrize(
    ("criteria", "minimum", "message"),
    [
        (["  "], None, "empty"),
        ([42], None, "string or a table"),
        ([{"name": "X"}], None, "needs a non-empty 'text'"),
        ([{"text": "t", "weight": 2}], None, "unknown criterion key"),
        (["RL: a", "rl: b"], None, "both named"),
        (["RL: a"], 11, "from 0 to 10"),
        ([], 3, "no criteria or liked"),
    ],
)
def test_load_interests_config_errors(criteria: list, minimum: float | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_interests(criteria, None, minimum)


def test_load_interests_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_interests([], tmp_path / "nope.jsonl", None)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError):
        load_interests([], empty, None)


def test_local_backend_fills_relevance() -> None:
    interests = Interests(criteria=[Criterion("Privacy", "Differential privacy and federated.")])
    backend = LocalBackend(load_taxonomy(), interests=interests)
    paper = Paper(id="p", title="Differentially private federated learning", abstract="Privacy.")
    ann = backend.annotate_sync(paper)
    assert ann.relevance is not None and ann.relevance > 0 and ann.why == "Privacy"
    assert set(ann.relevance_by) == {"Privacy"}
    assert LocalBackend(load_taxonomy()).annotate_sync(paper).relevance is None


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write rows as JSONL and return the path."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def tiny_eval(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Five results, their gold keywords, and two interests: one per-criterion, one fallback."""
    gold = write_jsonl(
        tmp_path / "gold.jsonl",
        [
            {"id": "a", "keywords": ["Privacy"]},
            {"id": "b", "keywords": ["vision"]},
            {"id": "c", "keywords": ["differential privacy", "vision"]},
            {"id": "d", "keywords": []},
            {"id": "e", "keywords": ["privacy"]},
        ],
    )
    results = write_jsonl(
        tmp_path / "results.jsonl",
        [
            {"id": "a", "relevance": 9, "relevance_by": {"P": 2.0, "V": 1.0}},
            {"id": "b", "relevance": 8, "relevance_by": {"P": 9.0, "V": 8.0}},
            {"id": "c", "relevance": 7, "relevance_by": {"P": 8.0, "V": 9.0}},
            {"id": "d", "relevance": 6, "relevance_by": {"P": 7.0, "V": 0.5}},
            {"id": "e", "error": {"type": "x", "message": "y"}},
        ],
    )
    interests = tmp_path / "interests.json"
    interests.write_text(
        json.dumps(
            [
                {"name": "P", "criterion": "privacy", "gold": ["privacy", "differential privacy"]},
                {"name": "V", "criterion": "vision", "gold": ["Vision"]},
            ]
        )
    )
    return results, gold, interests


def test_eval_relevance_by_hand(tiny_eval) -> None:
    # P: ranking b(9) c(8) d(7) a(2) e(unscored, last); relevant a, c, e.
    #    AP = (1/2 + 2/4 + 3/5) / 3 = 1.6 / 3; P@10 = 3 / 10.
    # V: ranking c(9) b(8) a(1) d(0.5) e; relevant b, c. AP = (1 + 1) / 2 = 1; P@10 = 2 / 10.
    results, gold, interests = tiny_eval
    out = CliRunner().invoke(
        eval_cmd,
        [str(results), "--gold", str(gold), "--relevance", "--interests", str(interests), "--json"],
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    aps = {r["name"]: r["ap"] for r in report["interests"]}
    assert aps == {"P": round(1.6 / 3, 4), "V": 1.0}
    assert report["map"] == round((1.6 / 3 + 1.0) / 2, 4)
    assert report["precision_at_10"] == 0.25
    table = CliRunner().invoke(
        eval_cmd, [str(results), "--gold", str(gold), "--relevance", "--interests", str(interests)]
    )
    assert table.exit_code == 0
    assert table.output.splitlines()[-1].split() == ["mean", "0.767", "0.25"]


def test_eval_relevance_falls_back_to_relevance(tmp_path: Path, tiny_eval) -> None:
    _, gold, interests = tiny_eval
    # Results made with one interest alone: no relevance_by, ranked by relevance a b c d e.
    results = write_jsonl(
        tmp_path / "alone.jsonl",
        [{"id": pid, "relevance": 10 - i} for i, pid in enumerate("abcde")],
    )
    out = CliRunner().invoke(
        eval_cmd,
        [str(results), "--gold", str(gold), "--relevance", "--interests", str(interests), "--json"],
    )
    report = json.loads(out.output)
    # P: relevant a(1) c(3) e(5): AP = (1 + 2/3 + 3/5) / 3.
    assert report["interests"][0]["ap"] == round((1 + 2 / 3 + 3 / 5) / 3, 4)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"id": "a", "relevance": 9}, {"id": "a", "relevance": 9}], "id 'a' again"),
        ([{"id": "a", "relevance": float("nan")}], "'relevance' must be a finite number"),
    ],
)
def test_eval_relevance_refuses_what_would_make_impossible_scores(
    tmp_path: Path, tiny_eval, rows, message
) -> None:
    _, gold, interests = tiny_eval
    results = tmp_path / "bad.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))  # NaN as JSON allows it
    args = ["eval", str(results), "--gold", str(gold), "--relevance", "--interests", str(interests)]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 2 and message in out.stderr


def test_eval_relevance_needs_interests(tiny_eval) -> None:
    results, gold, _ = tiny_eval
    out = CliRunner().invoke(eval_cmd, [str(results), "--gold", str(gold), "--relevance"])
    assert out.exit_code == 2 and "--interests" in out.output


def test_eval_relevance_ceiling_scores_each_paper_once_by_a_model_blind_to_it() -> None:
    """benchmarks/eval_relevance.py --ceiling: every paper of (b)'s ranking scored once, by a
    model that never saw its label, and the relevant ones ranked above the rest on average."""
    import importlib.util

    from agent.eval import InterestGold

    path = Path(__file__).parents[1] / "benchmarks" / "eval_relevance.py"
    spec = importlib.util.spec_from_file_location("eval_relevance", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    papers, keywords = bench.read_rows(FIXTURES / "papers.jsonl")
    criteria, gold = bench.read_interests(FIXTURES / "interests.json")
    criterion, interest = criteria[1], gold[1]  # Program synthesis
    assert isinstance(interest, InterestGold)
    liked_too = bench.with_liked(papers, keywords, criterion, interest, 7, False)
    seen: list[set[str]] = []  # the ids each fold's model was trained on
    real = bench.RelevanceModel

    def spy(interests: Interests, negatives: list[Paper]) -> RelevanceModel:
        seen.append({p.id for p in (*interests.liked, *negatives)})
        return real(interests, negatives)

    bench.RelevanceModel = spy
    scores = bench.ceiling(papers, keywords, criterion, interest, 7, folds=5)
    assert len(seen) == 5
    for fold, trained in enumerate(seen):
        held = {pid for i, (pid, _, _) in enumerate(liked_too) if i % 5 == fold}
        assert held and not held & trained
    assert sorted(pid for pid, _, _ in scores) == sorted(pid for pid, _, _ in liked_too)
    relevant = [v for pid, v, _ in scores if keywords[pid] & interest.gold]
    others = [v for pid, v, _ in scores if not keywords[pid] & interest.gold]
    assert relevant and sum(relevant) / len(relevant) > sum(others) / len(others)
