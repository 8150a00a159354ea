"""Slack Block Kit payloads: every limit holds after escaping, long digests split, nothing lost."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from agent.digest import SlackLimits, build_digest, build_slack_messages
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
