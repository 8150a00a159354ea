"""Digest building and rendering: loading, grouping, escaping, golden files, the digest command.

Golden files live in tests/fixtures/digest/golden/; after an intended change, regenerate them
with ``UPDATE_GOLDEN=1 pytest tests/test_digest.py`` and review the diff.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.digest import build_digest, load_results, render, render_digest
from agent.digest.text import escape_markdown, escape_mrkdwn, fit, safe_url, short_authors
from agent.errors import InputError
from agent.models import ErrorInfo, PaperResult

DATE = dt.date(2026, 3, 6)
GOLDEN = {
    "markdown": "digest.md",
    "mrkdwn": "digest.mrkdwn",
    "html": "digest.html",
    "json": "digest.json",
    "slack": "digest.slack-one.json",  # the one-screen message, Slack's default
}
# --full is the Slack digest from before --top: this file is not regenerated with the others,
# only edited for a change meant for --full too (issue 16: three authors in full, no '*').
FULL_SLACK_GOLDEN = "digest.slack.json"
HOSTILE = ["<!channel>", "<!here>", "<@U123>", "<http://evil|click>"]


@pytest.fixture
def digest_dir(fixtures):
    """The folder with the fixed results file, its taxonomy and the golden files."""
    return fixtures / "digest"


@pytest.fixture
def sample_results(digest_dir) -> list[PaperResult]:
    """Ten results: several tags, an unknown tag, an untagged paper, two failures, hostile text."""
    return load_results(digest_dir / "results.jsonl")


def result(id: str, tags: list[str], **extra: object) -> PaperResult:
    return PaperResult(id=id, title=f"Paper {id}", tags=tags, summary="s", backend="local", **extra)


@pytest.mark.parametrize("fmt", list(GOLDEN))
def test_each_format_matches_its_golden_file(fmt, sample_results, digest_dir):
    text = render_digest(sample_results, fmt, taxonomy=digest_dir / "taxonomy.toml", date=DATE)
    golden = digest_dir / "golden" / GOLDEN[fmt]
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_slack_full_is_unchanged_from_the_digest_before_top_picks(sample_results, digest_dir):
    text = render_digest(
        sample_results, "slack", taxonomy=digest_dir / "taxonomy.toml", date=DATE, full=True
    )
    assert text == (digest_dir / "golden" / FULL_SLACK_GOLDEN).read_text(encoding="utf-8")


def test_load_results_names_the_file_and_line_of_a_bad_line(tmp_path, digest_dir):
    good = (digest_dir / "results.jsonl").read_text().splitlines()[0]
    path = tmp_path / "results.jsonl"
    path.write_text(f"{good}\n\n{{not json\n")
    with pytest.raises(InputError, match=r"results\.jsonl:3: not valid JSON"):
        load_results(path)
    path.write_text(f'{good}\n{{"id": "x"}}\n')
    with pytest.raises(InputError, match=r"results\.jsonl:2: title: Field required"):
        load_results(path)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_an_empty_results_file_is_a_quiet_day(tmp_path, content):
    """What `run --source` writes when nothing is new: the digest still renders."""
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    assert load_results(path) == []
    result = CliRunner().invoke(cli, ["digest", str(path), "--format", "markdown"])
    assert result.exit_code == 0 and "0 papers" in result.stdout


def test_load_results_reports_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_results(tmp_path / "nope.jsonl")


def test_groups_follow_the_taxonomy_then_unknown_tags_then_untagged():
    results = [result("1", []), result("2", ["B", "A"]), result("3", ["Z"]), result("4", ["A"])]
    digest = build_digest(results, tag_order=["A", "B"])
    assert [(g.tag, [e.result.id for e in g.entries]) for g in digest.groups] == [
        ("A", ["4"]),
        ("B", ["2"]),
        ("Z", ["3"]),
        ("Untagged", ["1"]),
    ]
    assert digest.groups[1].entries[0].other_tags == ["A"]
    assert digest.overview == [("A", 1), ("B", 1), ("Z", 1), ("Untagged", 1)]


def test_size_order_puts_the_largest_group_first_and_untagged_last():
    results = [result("1", []), result("2", []), result("3", ["A"]), result("4", ["B"])]
    results += [result("5", ["B"])]
    digest = build_digest(results, tag_order=["A", "B"], group_order="size")
    assert [g.tag for g in digest.groups] == ["B", "A", "Untagged"]


def test_papers_sort_by_relevance_when_present_else_keep_input_order():
    class Scored(PaperResult):
        relevance: float | None = None  # the field PaperResult may gain later

    results = [
        Scored(id="a", title="a", tags=["T"], backend="local"),
        Scored(id="b", title="b", tags=["T"], backend="local", relevance=0.2),
        Scored(id="c", title="c", tags=["T"], backend="local"),
        Scored(id="d", title="d", tags=["T"], backend="local", relevance=0.9),
    ]
    digest = build_digest(results)
    assert [e.result.id for e in digest.groups[0].entries] == ["d", "b", "a", "c"]
    unscored = build_digest([result("x", ["T"]), result("y", ["T"])])
    assert [e.result.id for e in unscored.groups[0].entries] == ["x", "y"]


def test_failed_papers_are_listed_at_the_end_with_their_error(sample_results, digest_dir):
    digest = build_digest(sample_results, date=DATE)
    assert (digest.total, digest.ok, digest.failed) == (10, 8, 2)
    assert [e.error for e in digest.failures] == [
        "refusal: The model refused: <!channel> policy & rules",
        "http_error: 500 Internal Server Error after 5 attempts",
    ]
    for fmt in ("markdown", "mrkdwn", "html", "text"):
        text = render(digest, fmt)
        assert text.index("Failed") > text.index("Untagged")
        assert "500 Internal Server Error after 5 attempts" in text


@pytest.mark.parametrize(
    ("authors", "expected"),
    [
        ([], ""),
        (["Ada Lovelace"], "Ada Lovelace"),
        (["A", "B"], "A, B"),
        (["A", "B", "C"], "A, B, C"),  # "et al." in place of one name saves nothing
        (["  A\n", "", "B", "C"], "A, B, C"),
        (["  A\n", "", "B", "C", "D"], "A, B et al."),
    ],
)
def test_authors_are_shortened(authors, expected):
    assert short_authors(authors) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://arxiv.org/abs/2401.00001", "https://arxiv.org/abs/2401.00001"),
        ("HTTP://example.org/a?b=1&c=2", "HTTP://example.org/a?b=1&c=2"),
        ("https://example.org/x_(1)|y>z", "https://example.org/x_%281%29%7Cy%3Ez"),
        ("javascript:alert(1)", None),
        ("JavaScript://example.org/%0aalert(1)", None),
        ("data:text/html,<script>", None),
        ("ftp://example.org/file", None),
        ("https:///no-host", None),
        ("https://example.org/a b", None),
        ("https://example.org/\x00", None),
        ("https://example.org/" + "a" * 2000, None),
        ("", None),
        (None, None),
    ],
)
def test_links_are_built_only_from_http_urls(url, expected):
    assert safe_url(url) == expected


def test_mrkdwn_escaping_neutralises_mentions_links_and_entities():
    escaped = escape_mrkdwn("<!channel> <!here> <@U123> <http://evil|click> &amp;")
    assert escaped == (
        "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;http://evil|click&gt; &amp;amp;"
    )


def test_an_asterisk_in_a_title_cannot_break_slack_bold():
    starred = result("s1", ["LLMs"], url="https://example.org/a*b").model_copy(
        update={"title": "A* search: *fast* and *", "authors": ["A", "B", "C"]}
    )
    digest = build_digest([starred], date=DATE)
    link = "<https://example.org/a%2Ab|A∗ search: ∗fast∗ and ∗>"
    one = json.loads(render(digest, "slack"))[0]["blocks"]
    full = json.loads(render(digest, "slack", full=True))[0]["blocks"]
    for blocks in (one, full):
        texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
        title_line = next(t for t in texts if "search" in t).split("\n")[0]
        # The only asterisks are the bold markers around the link.
        assert title_line == f"*{link}*"
    assert "A, B, C" in json.dumps(full, ensure_ascii=False)
    assert f"• *{link}* — A, B, C\n" in render(digest, "mrkdwn")


def test_markdown_escaping_keeps_text_literal():
    assert escape_markdown("a *b* [c](d) <e> &amp; `f`\nnext & R&D a_b _c_") == (
        r"a \*b\* \[c\](d) \<e\> \&amp; \`f\` next & R&D a_b \_c\_"
    )


def test_fit_cuts_escaped_text_without_splitting_an_entity():
    assert fit("a&b", 10) == "a&amp;b"
    cut = fit("&" * 50, 12)
    assert cut == "&amp;&amp;…" and len(cut) <= 12


@pytest.mark.parametrize("fmt", ["markdown", "mrkdwn", "html", "slack"])
def test_hostile_text_never_becomes_a_mention_link_or_tag(fmt, sample_results):
    text = render_digest(sample_results, fmt, date=DATE)
    for raw in [*HOSTILE, "<!everyone>", "<b>"]:
        assert raw not in text
    assert "javascript:" not in text
    if fmt == "html":
        assert "&lt;!channel&gt;" in text and "&amp;amp;" in text
        assert "<script" not in text and " on" not in text.split("<body", 1)[1].split(">")[0]


@pytest.mark.parametrize("fmt", ["mrkdwn", "slack"])
def test_a_literal_entity_in_a_title_stays_literal_in_slack(fmt, sample_results):
    text = render_digest(sample_results, fmt, date=DATE)
    assert "keep &amp;amp; literal" in text


VOTED_TITLE = {
    "markdown": "### Paper v1 ▲ 42\n",
    "mrkdwn": "• *Paper v1* ▲ 42\n",
    "html": 'Paper v1 <span style="color:#616061;font-weight:normal;white-space:nowrap;">'
    "▲ 42</span></p>",
    "text": "* Paper v1 ▲ 42\n",
    "slack": '"*Paper v1* ▲ 42\\n`LLMs`\\ns"',  # the one-screen message: tags under the title
}


@pytest.mark.parametrize("fmt", list(VOTED_TITLE))
def test_upvotes_show_next_to_the_title_in_every_format(fmt):
    voted = result("v1", ["LLMs"], metadata={"upvotes": "042", "github": "https://g.test/x"})
    text = render(build_digest([voted, result("v2", ["LLMs"])], date=DATE), fmt)
    assert VOTED_TITLE[fmt] in text
    assert text.count("▲") == 1  # the paper without upvotes shows none


def test_upvotes_are_kept_in_json_with_the_other_metadata():
    voted = result("v1", ["LLMs"], metadata={"upvotes": "42", "github": "https://g.test/x"})
    data = json.loads(render(build_digest([voted], date=DATE), "json"))
    assert data["groups"][0]["papers"][0]["metadata"] == voted.metadata


@pytest.mark.parametrize("value", ["<!channel>", "10 <@U1>", "-3", "1.5", "²", "", " ", "9" * 5000])
@pytest.mark.parametrize("fmt", ["markdown", "mrkdwn", "html", "text", "slack"])
def test_upvotes_that_are_not_a_count_are_not_shown(fmt, value):
    text = render(
        build_digest([result("v1", ["LLMs"], metadata={"upvotes": value})], date=DATE), fmt
    )
    assert "▲" not in text and "<!channel>" not in text and "<@U1>" not in text


def test_slack_format_is_a_json_array_of_payloads(sample_results):
    messages = json.loads(render_digest(sample_results, "slack", date=DATE))
    assert isinstance(messages, list) and messages
    assert all(set(m) == {"text", "blocks"} for m in messages)


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_digest_command_prints_or_writes_each_format(digest_dir, tmp_path):
    results = str(digest_dir / "results.jsonl")
    common = ["--taxonomy", str(digest_dir / "taxonomy.toml"), "--date", "2026-03-06"]
    printed = invoke("digest", results, "--format", "markdown", *common)
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == (digest_dir / "golden" / "digest.md").read_text()
    out = tmp_path / "digest.html"
    written = invoke("digest", results, "--format", "html", "-o", str(out), *common)
    assert written.exit_code == 0, written.output
    assert out.read_text() == (digest_dir / "golden" / "digest.html").read_text()
    assert written.stdout == ""


def test_digest_command_reads_stdin_and_orders_groups_by_size(digest_dir):
    text = (digest_dir / "results.jsonl").read_text()
    done = invoke("digest", "-", "--format", "json", "--group-order", "size", input=text)
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["counts"] == {"papers": 10, "ok": 8, "failed": 2}
    assert data["groups"][-1]["tag"] == "Untagged"


def test_digest_command_turns_a_bad_file_into_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    done = invoke("digest", str(bad))
    assert done.exit_code == 2
    assert "bad.jsonl:1: not valid JSON" in done.stderr
    assert "Traceback" not in done.output
    wrong_date = invoke("digest", str(bad), "--date", "yesterday")
    assert wrong_date.exit_code == 2 and "YYYY-MM-DD" in wrong_date.stderr


def test_results_with_fields_from_a_newer_version_still_load(tmp_path):
    rows = [
        {
            "id": "a",
            "title": "Low",
            "backend": "local",
            "tags": ["LLMs"],
            "summary": "s",
            "relevance": 0.1,
        },
        {
            "id": "b",
            "title": "High",
            "backend": "local",
            "tags": ["LLMs"],
            "summary": "s",
            "relevance": 0.9,
            "why": "matches your interests",
        },
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = render_digest(load_results(path), "markdown", date=DATE)
    assert text.index("### High") < text.index("### Low")


def scored_results() -> list[PaperResult]:
    """Papers with relevance and why, one of them with only the hashed t- id."""
    return [
        result("2401.00001", ["LLMs"], relevance=3.0),
        PaperResult(
            id="t-0123456789ab",
            title="Paper agents",
            tags=["Agents"],
            summary="s",
            backend="local",
            relevance=9.0,
            why="<!channel> RL *agents*",
        ),
        result("2401.00003", ["Other"], relevance=6.5, why="", metadata={"upvotes": "3"}),
        result("2401.00004", ["LLMs"], relevance=1.0),
    ]


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_top_picks_then_contents_then_sections(fmt):
    digest = build_digest(
        scored_results(), tag_order=["LLMs", "Agents"], fallback="Other", date=DATE, top=2
    )
    text = render(digest, fmt)
    picks = text.index("Top picks")
    contents = text.index("Contents:")
    sections = text.index("group-1")
    assert picks < contents < sections
    top = text[picks:contents]
    assert top.index("Paper agents") < top.index("Paper 2401.00003")
    assert "Paper 2401.00001" not in top  # third by relevance: only in its section
    assert "relevance 9.0/10" in top and "relevance 6.5/10" in top
    if fmt == "markdown":
        assert r"*Why:* \<!channel\> RL \*agents\*" in top
        assert "[LLMs (2)](#group-1) · [Agents (1)](#group-2) · [Other (1)](#group-3)" in text
        assert '<a id="group-3"></a>\n## Other (1)' in text
    else:
        assert "<em>Why:</em> &lt;!channel&gt; RL *agents*" in top
        assert '<a href="#group-3" style="color:#1264a3;text-decoration:none;">Other</a>' in text
        assert '<h2 id="group-3"' in text
    # The fallback tag's section is the last one.
    assert text.rindex("Other (1)" if fmt == "markdown" else "Other <span") > text.index("Agents")


def test_top_picks_default_to_fifteen_only_when_results_are_scored():
    many = [result(f"2401.{i:05d}", ["LLMs"], relevance=float(i % 10)) for i in range(30)]
    assert len(build_digest(many).top) == 15
    assert build_digest([result("a", ["LLMs"])]).top == []
    assert "Top picks" not in render(build_digest([result("a", ["LLMs"])]), "markdown")


def test_min_relevance_leaves_papers_out_and_says_so_in_every_format():
    digest = build_digest(scored_results(), date=DATE, min_relevance=3)
    assert [e.result.id for e in digest.ranked][-1] == "2401.00001"
    for fmt in ("markdown", "mrkdwn", "html", "text"):
        text = render(digest, fmt)
        assert "1 paper below relevance 3.0 not shown" in text
        assert "Paper 2401.00004" not in text
    assert json.loads(render(digest, "json"))["below_min_relevance"] == 1


@pytest.mark.parametrize("fmt", ["markdown", "mrkdwn", "html", "text", "json", "slack", "full"])
def test_hashed_ids_are_never_shown(fmt):
    untitled = PaperResult(id="t-fedcba987654", title="", tags=["LLMs"], backend="local")
    failed = PaperResult(
        id="t-aaaaaaaaaaaa",
        title="",
        backend="local",
        error={"type": "invalid_input", "message": "no title"},
    )
    digest = build_digest([*scored_results(), untitled, failed], date=DATE, top=10)
    text = render(digest, "slack", full=True) if fmt == "full" else render(digest, fmt)
    assert "t-0123456789ab" not in text and "t-fedcba987654" not in text
    assert "t-aaaaaaaaaaaa" not in text
    assert "2401.00003" in text  # real ids stay
    if fmt in ("markdown", "text"):
        assert "(untitled)" in text


def test_digest_command_top_sort_full_and_more_url(digest_dir, tmp_path):
    results = tmp_path / "scored.jsonl"
    results.write_text("".join(r.to_line() + "\n" for r in scored_results()))
    common = ["--date", "2026-03-06"]
    done = invoke("digest", str(results), "-f", "markdown", "--top", "1", "--sort", "upvotes")
    assert done.exit_code == 0, done.output
    top = done.stdout.split("## Top picks", 1)[1].split("**Contents:**", 1)[0]
    assert "Paper 2401.00003" in top and "Paper 2401.00001" not in top
    one = invoke(
        "digest", str(results), "-f", "slack", "--more-url", "https://example.org/d", *common
    )
    messages = json.loads(one.stdout)
    assert len(messages) == 1 and "|Full digest: all 4 papers>" in one.stdout
    full = json.loads(invoke("digest", str(results), "-f", "slack", "--full", *common).stdout)
    assert full == json.loads(render(build_digest(scored_results(), date=DATE), "slack", full=True))
    bad = invoke("digest", str(results), "-f", "slack", "--more-url", "javascript:alert(1)")
    assert bad.exit_code == 2 and "http(s) URL" in bad.stderr
    negative = invoke("digest", str(results), "--top", "-1")
    assert negative.exit_code == 2


def test_post_dry_run_sends_one_message_unless_full(digest_dir):
    results = str(digest_dir / "results.jsonl")
    one = invoke("post", results, "--dry-run", "--top", "3")
    assert one.exit_code == 0, one.output
    assert "# Slack: 1 message(s), not sent" in one.stderr
    assert '"+ 5 more in 5 tags · ⚠ 2 papers failed"' in one.stdout
    full = invoke("post", results, "--dry-run", "--full")
    assert json.loads(full.stdout) == json.loads(
        render_digest(load_results(results), "slack", full=True)
    )


@pytest.mark.parametrize("fmt", ["markdown", "mrkdwn", "html", "text", "slack"])
def test_tex_in_a_title_reads_as_plain_text_in_every_format_for_people(fmt):
    # JSON keeps the result as it is (for programs); every format a person reads shows it plain.
    tex = result("t1", ["LLMs"]).model_copy(update={"title": r"H$_2$O: 5\% of the KV cache"})
    text = render(build_digest([tex], date=DATE), fmt)
    assert "H₂O: 5% of the KV cache" in text
    assert "$" not in text


@pytest.mark.parametrize("fmt", ["markdown", "mrkdwn", "html", "text", "slack"])
def test_tag_source_and_model_names_are_one_line_without_control_codes(fmt):
    odd = result("o1", ["Evil\x1b[2J\nTag", "Second\x07"]).model_copy(
        update={"source": "s\x1b[31m\nsrc", "model": "m\r\nodel"}
    )
    text = render(build_digest([odd], date=DATE), fmt)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "2J Tag" in text and "31m src" in text  # one line each (brackets may be escaped)


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


@pytest.mark.parametrize("fmt", ["slack", "mrkdwn", "markdown", "html", "json", "text"])
def test_bidirectional_controls_never_reach_any_format(fmt):
    import dataclasses

    def hostile(text: str) -> str:
        return f"{BIDI[:6]}{text}{BIDI[6:]}"

    fields = {
        "authors": [hostile("Eve"), "Bob", "Carol"],
        "source": hostile("src"),
        "model": hostile("mdl"),
        "relevance": 9.0,
        "why": hostile("why"),
        "metadata": {hostile("k"): hostile("v")},
    }
    papers = [
        result("2601.00001" + BIDI, [hostile("LLMs"), hostile("Agents")], **fields).model_copy(
            update={"summary": hostile("gnp.exe")}
        ),
        result("f1", ["LLMs"]).model_copy(
            update={"title": hostile("Broken"), "error": ErrorInfo(type="x", message=hostile("m"))}
        ),
    ]
    digest = build_digest(papers, date=DATE, top=1)
    digest = dataclasses.replace(digest, highlights=[hostile("stood out")])
    for full in (False, True):
        text = render(digest, fmt, full=full)
        assert not any(ch in text for ch in BIDI), [ch for ch in BIDI if ch in text]
        assert "\\u202" not in text.lower() and "\\u20" + "6" not in text.lower()
        # The text stays, only the controls go (Slack's one screen shows no authors or failures).
        shown = ["gnp.exe", "Agents"] + (["Eve", "Broken"] if full or fmt != "slack" else [])
        assert all(word in text for word in shown), shown
