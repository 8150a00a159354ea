"""Slack Block Kit payloads: every limit holds after escaping, long digests split, nothing lost."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from agent.digest import SlackLimits, build_digest, build_slack_messages
from agent.digest.slack import build_slack_message
from agent.models import ErrorInfo, PaperResult

DATE = dt.date(2026, 3, 6)
LIMITS = SlackLimits()
TAGS = ["LLMs", "Reasoning", "Agents", "Code & Tools", "Multimodal <vision>"]


def paper(i: int, **overrides: object) -> PaperResult:
    """A plausible result; every fifth summary is close to the section limit."""
    fields: dict[str, object] = {
        "id": f"2603.{i:05d}",
        "title": f"Paper {i}: scaling <things> & stuff",
        "url": f"https://arxiv.org/abs/2603.{i:05d}",
        "authors": ["Ada Lovelace", "Alan Turing", "Grace Hopper"],
        "source": "arxiv",
        "tags": [TAGS[i % len(TAGS)], TAGS[(i + 1) % len(TAGS)]],
        "summary": ("A & B < C. " * 260) if i % 5 == 0 else f"Summary of paper {i}.",
        "backend": "openai",
        "model": "gpt-4o-mini",
    }
    fields.update(overrides)
    return PaperResult.model_validate(fields)


def check_limits(message: dict) -> None:
    """Assert one webhook payload is within every documented Block Kit limit."""
    assert message["text"].strip()
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= LIMITS.blocks
    assert len(json.dumps(blocks, ensure_ascii=False)) <= LIMITS.message_chars
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            assert block["text"]["type"] == "plain_text"
            assert len(block["text"]["text"]) <= LIMITS.header_text
        elif kind == "section":
            assert 0 < len(block["text"]["text"]) <= LIMITS.section_text
            fields = block.get("fields", [])
            assert len(fields) <= LIMITS.fields
            assert all(len(f["text"]) <= LIMITS.field_text for f in fields)
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= LIMITS.context_elements
            assert all(len(e["text"]) <= LIMITS.section_text for e in block["elements"])
        else:
            assert kind == "divider"


def ids_in(messages: list[dict]) -> list[str]:
    """Paper ids in posting order, read from the context lines and failure sections."""
    found = []
    for message in messages:
        for block in message["blocks"]:
            text = json.dumps(block)
            found += re.findall(r"2603\.\d{5}", text)
    return found


def test_three_hundred_papers_split_into_numbered_messages_within_every_limit():
    results = [paper(i) for i in range(300)]
    results[7] = paper(7, error=ErrorInfo(type="timeout", message="gave up"), tags=[], summary=None)
    messages = build_slack_messages(build_digest(results, tag_order=TAGS, date=DATE))
    total = len(messages)
    assert total > 1
    for number, message in enumerate(messages, start=1):
        check_limits(message)
        assert message["blocks"][0]["type"] == "header"
        assert message["blocks"][0]["text"]["text"].endswith(f"({number}/{total})")
        assert message["text"].endswith(f"({number}/{total})")
    # Every paper is there exactly once (each id appears in its link and its context line).
    seen = ids_in(messages)
    assert sorted(set(seen)) == sorted(r.id for r in results)
    assert all(seen.count(r.id) <= 2 for r in results)
    # The failure is listed in the last message, after every group.
    last = json.dumps(messages[-1]["blocks"])
    assert "*Failed* (1)" in last and "timeout: gave up" in last


def test_a_group_split_across_messages_says_it_continues():
    results = [paper(i, tags=["LLMs"], summary="short") for i in range(60)]
    messages = build_slack_messages(build_digest(results, date=DATE))
    assert len(messages) == 3
    second = messages[1]["blocks"]
    assert second[1]["text"]["text"] == "*LLMs* (continued)"
    assert ids_in(messages) == [r.id for r in results for _ in (0, 1)]


def test_a_small_digest_is_one_unnumbered_message():
    messages = build_slack_messages(build_digest([paper(1)], date=DATE))
    assert len(messages) == 1
    assert messages[0]["blocks"][0]["text"]["text"] == "Research digest — 2026-03-06"
    assert messages[0]["text"] == "Research digest — 2026-03-06: 1 paper"


@pytest.mark.parametrize("title", ["T" * 5000, "&<>" * 2000])
def test_a_five_thousand_character_title_is_the_only_thing_cut(title):
    result = paper(1, title=title, summary="The summary survives intact.")
    messages = build_slack_messages(build_digest([result], date=DATE))
    assert len(messages) == 1
    check_limits(messages[0])
    text = messages[0]["blocks"][4]["text"]["text"]  # header, intro, divider, heading
    assert text.startswith("*<https://arxiv.org/abs/2603.00001|")
    assert text.endswith("…>*\nThe summary survives intact.")
    # Cutting after escaping never leaves half an entity behind.
    label = text.split("|", 1)[1].split(">*")[0]
    assert re.fullmatch(r"(?:[^&]|&amp;|&lt;|&gt;)*…", label)


def test_upvotes_stay_next_to_a_title_cut_to_the_section_limit():
    result = paper(1, title="&" * 5000, summary="Kept.", metadata={"upvotes": "1234"})
    messages = build_slack_messages(build_digest([result], date=DATE))
    check_limits(messages[0])
    text = messages[0]["blocks"][4]["text"]["text"]
    assert len(text) <= LIMITS.section_text
    assert text.endswith("…>* ▲ 1234\nKept.")


def test_an_over_long_field_is_cut_with_an_ellipsis():
    sources = [f"source-{i}-" + "x" * 40 for i in range(100)]
    results = [paper(i, source=s) for i, s in enumerate(sources)]
    messages = build_slack_messages(build_digest(results, date=DATE))
    check_limits(messages[0])
    fields = messages[0]["blocks"][1]["fields"]
    sources_field = next(f["text"] for f in fields if f["text"].startswith("*Sources*"))
    assert len(sources_field) == LIMITS.field_text and sources_field.endswith("…")


def test_untrusted_strings_are_escaped_in_every_block():
    hostile = "<!channel> <!here> <@U123> <http://evil|click> &amp;"
    result = paper(
        1,
        title=hostile,
        summary=hostile,
        authors=[hostile],
        tags=["<!here>", "<@U123>"],
        source="<!channel>",
        model="<!here>",
        url="javascript:alert(1)",
    )
    payload = json.dumps(build_slack_messages(build_digest([result], date=DATE)))
    for raw in ("<!channel>", "<!here>", "<@U123>", "<http://evil|click>", "javascript:"):
        assert raw not in payload
    assert "&lt;!channel&gt;" in payload and "&amp;amp;" in payload
    # No link at all: the only '<' left in the payload would open one.
    assert "<" not in payload


def test_limits_are_respected_when_they_are_smaller():
    limits = SlackLimits(blocks=10, section_text=200, header_text=20, field_text=30)
    results = [paper(i) for i in range(40)]
    messages = build_slack_messages(build_digest(results, date=DATE), limits)
    for message in messages:
        assert len(message["blocks"]) <= 10
        assert len(message["blocks"][0]["text"]["text"]) <= 20
        for block in message["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 200
    assert sorted(set(ids_in(messages))) == sorted(r.id for r in results)


# The one-screen message (Slack's default; --full is everything above).

HOSTILE = "<!channel> <!here> <@U123> <http://evil|click> &amp;"


def scored(i: int, **overrides: object) -> PaperResult:
    """A paper with a relevance, a why, upvotes, and every third one hostile and over-long."""
    fields: dict[str, object] = {
        "relevance": round(10 - (i % 100) / 10, 1),
        "why": f"Matches criterion {i % 3}" if i % 4 else "",
        "metadata": {"upvotes": str(i % 50)},
    }
    if i % 3 == 0:
        fields["title"] = f"{HOSTILE} {i} " + "T&" * 3000
        fields["why"] = HOSTILE * 40
    fields.update(overrides)
    return paper(i, **fields)


def one_screen(results: list[PaperResult], **options: object) -> dict:
    from agent.digest import slack_messages

    more_url = options.pop("more_url", None)
    digest = build_digest(results, tag_order=TAGS, date=DATE, **options)  # type: ignore[arg-type]
    messages = slack_messages(digest, more_url=more_url)  # type: ignore[arg-type]
    assert len(messages) == 1
    check_limits(messages[0])
    return messages[0]


def pick_texts(message: dict) -> list[str]:
    """The top picks' sections: those that open with a bold title."""
    return [
        b["text"]["text"]
        for b in message["blocks"][2:]
        if b["type"] == "section" and b["text"]["text"].startswith("*<")
    ]


def rest_lines(message: dict) -> list[str]:
    """The "+ N more in TAG" lines."""
    lines = []
    for block in message["blocks"]:
        if block["type"] == "section":
            lines += [t for t in block["text"]["text"].split("\n") if t.startswith("+ ")]
    return lines


@pytest.mark.parametrize("count", [1, 15, 400])
def test_one_message_holds_every_block_kit_limit(count):
    results = [scored(i) for i in range(count)]
    results[0] = scored(0, error=ErrorInfo(type="timeout", message="gave up"), summary=None)
    message = one_screen(results, more_url="https://example.org/digest.html")
    payload = json.dumps(message)
    for raw in ("<!channel>", "<!here>", "<@U123>", "<http://evil|click>"):
        assert raw not in payload
    picks = pick_texts(message)
    assert len(picks) == min(count - 1, 15)
    # Every annotated paper is a pick or counted in a per-tag line; the failure is counted.
    counted = sum(int(line.split()[1]) for line in rest_lines(message))
    assert len(picks) + counted == count - 1
    text = "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
    assert "⚠ 1 paper failed" in text
    papers = "1 paper" if count == 1 else f"{count} papers"
    assert text.endswith(f"<https://example.org/digest.html|Full digest: all {papers}>")


def test_picks_are_the_most_relevant_with_why_tags_and_upvotes():
    results = [
        paper(1, relevance=2.0),
        paper(2, relevance=9.5, why="RL agents", metadata={"upvotes": "7"}),
        paper(3, relevance=7.25),
        paper(4),  # unscored: last
    ]
    message = one_screen(results, top=2)
    first, second = pick_texts(message)
    assert first == (
        "*<https://arxiv.org/abs/2603.00002|Paper 2: scaling &lt;things&gt; &amp; stuff>* ▲ 7\n"
        "`Agents` `Code &amp; Tools` · relevance 9.5\n→ RL agents\nSummary of paper 2."
    )
    assert "2603.00003" in second and "relevance 7.2" in second and "→" not in second
    assert message["blocks"][1]["text"]["text"] == "*Top 2* of 4 papers, by relevance"
    assert rest_lines(message) == ["+ 2 more in 2 tags"]
    linked = one_screen(results, top=2, more_url="https://example.org/d")
    assert rest_lines(linked) == ["+ 1 more in Reasoning", "+ 1 more in Multimodal &lt;vision&gt;"]


def test_sort_by_upvotes_and_by_tag():
    results = [paper(i, metadata={"upvotes": str(u)}) for i, u in [(1, 5), (2, 50), (3, 9)]]
    by_votes = one_screen(results, sort="upvotes", top=2)
    assert ["2603.00002" in t for t in pick_texts(by_votes)] == [True, False]
    assert "2603.00003" in pick_texts(by_votes)[1]
    by_tag = one_screen(results, sort="tag", top=3)
    # TAGS order: Reasoning (paper 1), Agents (paper 2), Code & Tools (paper 3).
    assert [t.split("|")[0][-5:] for t in pick_texts(by_tag)] == ["00001", "00002", "00003"]
    assert by_tag["blocks"][1]["text"]["text"] == "*3 papers*"  # all of them: no "first"
    first_two = one_screen(results, sort="tag", top=2)
    assert first_two["blocks"][1]["text"]["text"] == "*2* of 3 papers, a few from each tag"


def test_without_relevance_slack_still_shows_the_first_papers_and_top_zero_shows_none():
    results = [paper(i, tags=["LLMs"], summary="short") for i in range(40)]
    message = one_screen(results)
    assert len(pick_texts(message)) == 15
    assert rest_lines(message) == ["+ 25 more in LLMs"]
    counts_only = one_screen(results, top=0)
    assert pick_texts(counts_only) == []
    text = json.dumps(counts_only["blocks"])
    assert "40 papers in LLMs" in text and "divider" in text


def test_more_url_must_be_http():
    results = [paper(1)]
    for url in ("javascript:alert(1)", "ftp://example.org/x", "https://ex.org/a b"):
        assert "Full digest" not in json.dumps(one_screen(results, more_url=url))
    linked = json.dumps(one_screen(results, more_url="https://ex.org/d?a=1&b=<2>"))
    assert "<https://ex.org/d?a=1&amp;b=%3C2%3E|Full digest: all 1 paper>" in linked


def test_a_large_top_gives_way_to_the_block_and_size_limits():
    results = [scored(i) for i in range(400)]
    message = one_screen(results, top=400)
    picks = pick_texts(message)
    assert 15 < len(picks) < 50
    counted = sum(int(line.split()[1]) for line in rest_lines(message))
    assert len(picks) + counted == 400
    assert message["blocks"][1]["text"]["text"].startswith(f"*Top {len(picks)}* of 400 papers")


def test_one_message_respects_smaller_limits():
    limits = SlackLimits(blocks=10, section_text=200, header_text=20, field_text=30)
    from agent.digest import build_slack_message

    digest = build_digest([scored(i) for i in range(40)], tag_order=TAGS, date=DATE)
    message = build_slack_message(digest, limits, "https://example.org/d")
    assert len(message["blocks"]) <= 10
    for block in message["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 200
    assert len(message["blocks"][0]["text"]["text"]) <= 20


def test_the_fallback_group_is_last_and_min_relevance_is_counted():
    results = [
        paper(1, tags=["Other"], relevance=9.0),
        paper(2, tags=["Zeta"], relevance=8.0),
        paper(3, tags=[], relevance=7.0),
        paper(4, tags=["LLMs"], relevance=1.0),
        paper(5, tags=["Agents"], relevance=6.0),
    ]
    digest = build_digest(results, tag_order=TAGS, date=DATE, fallback="other", min_relevance=4)
    assert [g.tag for g in digest.groups] == ["Agents", "Zeta", "Untagged", "Other"]
    assert digest.below == 1 and digest.below_note == "1 paper below relevance 4.0 not shown"
    by_size = build_digest(results * 2, fallback="Other", group_order="size", date=DATE)
    assert by_size.groups[-1].tag == "Other"
    message = one_screen(
        results, fallback="Other", min_relevance=4.5, top=0, more_url="https://example.org/d"
    )
    assert "1 paper below relevance 4.5 not shown" in message["blocks"][1]["text"]["text"]
    assert json.dumps(message).index("in Untagged") < json.dumps(message).index("in Other")


def test_without_a_ranking_the_one_message_shows_a_few_from_each_tag():
    results = [
        PaperResult(id=f"p{i}", title=f"Paper {i}", tags=[tag], summary="s", backend="local")
        for i, tag in enumerate(["LLMs"] * 20 + ["Agents"] * 3 + ["Code"] * 2)
    ]
    digest = build_digest(results, tag_order=["LLMs", "Agents", "Code"])
    assert [e.result.tags[0] for e in digest.ranked[:6]] == [
        "LLMs",
        "Agents",
        "Code",
        "LLMs",
        "Agents",
        "Code",
    ]
    text = json.dumps(build_slack_message(digest))
    assert "a few from each tag" in text
    assert "Paper 20" in text and "Paper 23" in text  # Agents' and Code's first papers


def test_without_a_link_what_is_left_is_one_line():
    # 76 papers over 15 tags, two failed: the 19-line list of tags nobody can open is one line.
    tags = [f"Tag {i}" for i in range(15)]
    results = [paper(i, tags=[tags[i % 15]], relevance=float(i % 10)) for i in range(76)]
    results += [paper(100 + i, error=ErrorInfo(type="timeout", message="x")) for i in range(2)]
    message = one_screen(results)
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert len(pick_texts(message)) == 15
    assert sections[-1] == "+ 61 more in 15 tags · ⚠ 2 papers failed"
    assert rest_lines(message) == ["+ 61 more in 15 tags · ⚠ 2 papers failed"]
    # With somewhere to go, the tags are listed above the link.
    linked = one_screen(results, more_url="https://example.org/d")
    assert len(rest_lines(linked)) == 15
    assert sum(int(line.split()[1]) for line in rest_lines(linked)) == 61
    assert json.dumps(linked).count("2 papers failed") == 1
    # Nothing picked: the count alone.
    counts = one_screen(results, top=0)
    assert counts["blocks"][-1]["text"]["text"] == "76 papers in 15 tags · ⚠ 2 papers failed"
