"""The Markdown digest read by a real CommonMark parser (markdown-it-py), as GitHub reads it.

A string comparison cannot tell whether a renderer runs two lines into one paragraph or shows
a backslash: these tests parse the file and look at the structure and text a reader gets.
"""

from __future__ import annotations

import datetime as dt

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from agent.digest import build_digest, render
from agent.digest.text import escape_markdown
from agent.models import PaperResult

DATE = dt.date(2026, 3, 6)
# CommonMark plus the GitHub extensions that read plain text differently (tables, ~strike~).
GITHUB = MarkdownIt("commonmark").enable(["table", "strikethrough"])
COMMONMARK = MarkdownIt("commonmark")
PARSERS = pytest.mark.parametrize("md", [COMMONMARK, GITHUB], ids=["commonmark", "github"])

HOSTILE_TITLES = [
    "Retrieval & RAG: snake_case and __init__ or _x_",
    "<script>alert(1)</script> and <b>bold</b>",
    "[click](javascript:alert(1)) ![img](https://evil.example/x.png)",
    "<https://evil.example> **loud** __also__ *em* _em_ ~~gone~~ ~x~",
    "# Not a heading ##",
    "1. Not a list",
    "- not an item",
    "> not a quote",
    "| a | b |",
    "keep &amp; and &#60; literal, R&D",
    "`code` and ``more``",
    "---",
    "trailing backslash \\",
]


def plain(inline: Token) -> str:
    """The text a reader sees in an inline token; any markup in it fails the test."""
    kinds = {c.type for c in inline.children or []}
    assert kinds <= {"text", "softbreak"}, (inline.content, kinds)
    return "".join(c.content for c in inline.children or [])


@PARSERS
@pytest.mark.parametrize("text", HOSTILE_TITLES)
def test_escaped_text_reads_literally_wherever_it_lands(md, text):
    escaped = escape_markdown(text)
    contexts = {  # where the text lands: (Markdown source, what a reader must see)
        "a line's start": (escaped, text),
        "mid-line": (f"x {escaped}", f"x {text}"),
        "a heading": (f"### {escaped}", text),
        "a list item": (f"1. {escaped}", text),
    }
    for where, (source, expected) in contexts.items():
        inlines = [t for t in md.parse(source) if t.type == "inline"]
        assert len(inlines) == 1, where
        assert plain(inlines[0]) == expected, where
    link = next(t for t in md.parse(f"[{escaped}](https://ok.example)") if t.type == "inline")
    assert plain_link(link) == text
    assert (link.children or [])[0].attrGet("href") == "https://ok.example"


def test_the_raw_file_shows_no_escape_where_none_is_needed():
    for text in ["Retrieval & RAG", "snake_case", "C# and F#", "2.5x faster", "+1 and -based"]:
        assert escape_markdown(text) == text
    assert escape_markdown("$\\alpha$-LaTeX") == "$\\alpha$-LaTeX"


def scored(i: int, title: str) -> PaperResult:
    return PaperResult(
        id=f"2603.{i:05d}",
        title=title,
        url=f"https://arxiv.org/abs/2603.{i:05d}",
        authors=["Ada Lovelace", "Alan Turing", "Grace Hopper"],
        tags=["Retrieval & RAG", "LLMs"],
        summary=f"Summary {i}: beats *baselines* by ~5% & more.",
        backend="local",
        relevance=10 - i / 2,
        why="Retrieval & RAG" if i % 2 else "",
    )


def blocks_under(tokens: list[Token], heading: str) -> list[Token]:
    """The tokens after the h2 whose text is ``heading``, up to the next h2."""
    start = next(
        i
        for i, t in enumerate(tokens)
        if t.type == "inline" and t.content == heading and tokens[i - 1].tag == "h2"
    )
    end = next(
        (i for i in range(start + 1, len(tokens)) if tokens[i].type == "heading_open"),
        len(tokens),
    )
    return tokens[start + 2 : end]


@PARSERS
def test_each_top_pick_is_its_own_list_item_with_separate_paragraphs(md):
    results = [scored(i, title) for i, title in enumerate(HOSTILE_TITLES)]
    results.append(scored(len(results), "Plain title"))
    digest = build_digest(results, date=DATE, top=11)
    tokens = md.parse(render(digest, "markdown"))
    picks = blocks_under(tokens, "Top picks")
    assert picks[0].type == "ordered_list_open"
    picks = picks[: [t.type for t in picks].index("ordered_list_close") + 1]
    items = []
    for token in picks:
        if token.type == "list_item_open":
            items.append([])
        elif token.type == "inline" and token.level == 3:  # a paragraph right in the item
            items[-1].append(token)
    assert len(items) == 11
    for number, (entry, paragraphs) in enumerate(zip(digest.top, items, strict=True)):
        title, meta, *rest = paragraphs
        children = title.children or []
        kinds = [c.type for c in children if c.type != "text" or c.content]
        assert kinds == ["strong_open", "link_open", "text", "link_close", "strong_close"]
        link = next(c for c in children if c.type == "link_open")
        assert link.attrGet("href") == entry.url
        assert children[kinds.index("text") + 1].content == entry.title  # literal, whole
        assert meta.content.startswith(f"*relevance {entry.score}/10*")
        assert "Retrieval & RAG, LLMs · Ada Lovelace, Alan Turing, Grace Hopper" in (
            "".join(c.content for c in meta.children or [])
        )
        assert len(rest) == (2 if number % 2 else 1)  # why (odd ones), then the summary
        assert plain(rest[-1]) == entry.summary


@PARSERS
def test_no_backslash_is_seen_and_every_link_is_ours(md):
    results = [scored(i, title) for i, title in enumerate(HOSTILE_TITLES)]
    digest = build_digest(results, date=DATE, top=5)
    text = render(digest, "markdown")
    tokens = md.parse(text)
    seen = [
        c.content
        for t in tokens
        if t.type == "inline"
        for c in t.children or []
        if c.type == "text"
    ]
    titles = {e.title for e in digest.ranked}
    # Only the title that ends in a backslash shows one: its own.
    assert [s for s in seen if "\\" in s] == [s for s in seen if s in titles and "\\" in s]
    hrefs = {
        c.attrGet("href")
        for t in tokens
        if t.type == "inline"
        for c in t.children or []
        if c.type == "link_open"
    }
    ours = {r.url for r in results} | {g.anchor and f"#{g.anchor}" for g in digest.groups}
    assert hrefs <= ours
    children = [c for t in tokens if t.type == "inline" for c in t.children or []]
    assert not {c.type for c in children} & {"image", "html_block", "s_open", "code_inline"}
    html = [c.content for c in children if c.type == "html_inline"]
    assert html and all(h.startswith('<a id="') or h == "</a>" for h in html)  # the anchors
    # Every section heading shows its title, whole and literal.
    headings = [
        plain_link(tokens[i + 1])
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h3"
    ]
    assert sorted(headings) == sorted(titles)
    assert "Retrieval & RAG" in text and "Retrieval \\& RAG" not in text


def plain_link(inline: Token) -> str:
    children = inline.children or []
    assert children[0].type == "link_open" and children[-1].type == "link_close"
    return "".join(c.content for c in children[1:-1])
