"""Slack Block Kit payloads built as data, split into messages that respect every Slack limit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.digest.model import Digest, Entry
from agent.digest.text import escape_mrkdwn, fit, plural

Block = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class SlackLimits:
    """Slack's documented limits; all lengths count characters after escaping."""

    blocks: int = 50
    section_text: int = 3000
    header_text: int = 150
    context_elements: int = 10
    fields: int = 10
    field_text: int = 2000
    # Slack caps a message's text at 40,000 characters; keeping the whole serialized block list
    # under it leaves a margin for limits Slack does not document.
    message_chars: int = 40_000


def _plain(text: str) -> str:
    # plain_text is shown literally (no mentions, no links), so it is cut but never escaped.
    return text


def header(text: str, limits: SlackLimits) -> Block:
    """A header block, cut to Slack's 150 characters."""
    return {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": fit(text, limits.header_text, _plain),
            "emoji": True,
        },
    }


def section(text: str, fields: list[str] | None = None) -> Block:
    """A section of already-escaped mrkdwn (and optional fields)."""
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": f} for f in fields]
    return block


def context(elements: list[str], limits: SlackLimits) -> Block:
    """A context block of already-escaped mrkdwn elements, at most ten."""
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": e} for e in elements[: limits.context_elements]],
    }


def divider() -> Block:
    """A divider block."""
    return {"type": "divider"}


def _title_and_text(entry: Entry, extra: str, limits: SlackLimits, votes: str = "") -> str:
    """``*<url|title>*`` (then ``votes``), ``extra`` on the next line, within the section limit."""
    opening, closing = (f"*<{escape_mrkdwn(entry.url)}|", ">*") if entry.url else ("*", "*")
    if votes:
        closing += " " + escape_mrkdwn(votes)  # counted in the room below: the title gives way
    room = limits.section_text - len(opening) - len(closing) - (1 if extra else 0)
    title, body = escape_mrkdwn(entry.title), escape_mrkdwn(extra)
    if len(title) + len(body) > room:
        # Only the over-long part is cut: a short summary survives a 5,000-character title.
        title_room = max(room - len(body), min(len(title), room // 2))
        title = fit(entry.title, title_room)
        body = fit(extra, room - len(title))
    return f"{opening}{title}{closing}" + (f"\n{body}" if extra else "")


def paper_blocks(entry: Entry, limits: SlackLimits) -> list[Block]:
    """A section (linked title, summary) and a context line (authors, other tags, id)."""
    details = []
    if entry.authors:
        details.append(escape_mrkdwn(entry.authors))
    if entry.other_tags:
        details.append("also " + " ".join(f"`{escape_mrkdwn(t)}`" for t in entry.other_tags))
    details.append(escape_mrkdwn(entry.result.id))
    line = fit(" · ".join(details), limits.section_text, _plain)
    text = _title_and_text(entry, entry.summary, limits, entry.votes)
    return [section(text), context([line], limits)]


def failure_blocks(entry: Entry, limits: SlackLimits) -> list[Block]:
    """A failed paper: its title and the error, so nothing is silently dropped."""
    return [section(_title_and_text(entry, f"⚠ {entry.error}", limits))]


def _heading(label: str, suffix: str, limits: SlackLimits) -> Block:
    room = limits.section_text - len(suffix) - 3
    return section(f"*{fit(label, room)}* {suffix}")


def _intro(digest: Digest, limits: SlackLimits) -> list[Block]:
    def field(name: str, value: str) -> str:
        return f"*{name}*\n" + fit(value, limits.field_text - len(name) - 3)

    fields = [field("Papers", str(digest.total)), field("Failed", str(digest.failed))]
    if digest.sources:
        fields.append(field("Sources", ", ".join(digest.sources)))
    if digest.models:
        fields.append(field("Model", ", ".join(digest.models)))
    overview = " · ".join(f"{tag} {count}" for tag, count in digest.overview)
    text = "*Overview*\n" + fit(overview or "no paper annotated", limits.section_text - 13)
    blocks = [section(text, fields[: limits.fields])]
    if digest.highlights:
        bullets = "\n".join(f"• {b}" for b in digest.highlights)
        title = "*What stood out today*\n"
        blocks.append(section(title + fit(bullets, limits.section_text - len(title))))
    return blocks


@dataclass
class _Unit:
    tag: str  # the group this unit belongs to, repeated as "(continued)" on a new message
    blocks: list[Block]
    starts_group: bool


def _units(digest: Digest, limits: SlackLimits) -> list[_Unit]:
    units: list[_Unit] = []
    sections = [(g.tag, g.entries, paper_blocks) for g in digest.groups]
    if digest.failures:
        sections.append(("Failed", digest.failures, failure_blocks))
    for tag, entries, make in sections:
        suffix = f"({len(entries)})"
        for i, entry in enumerate(entries):
            blocks = make(entry, limits)
            if i == 0:
                # A group's heading always travels with its first paper.
                blocks = [divider(), _heading(tag, suffix, limits), *blocks]
            units.append(_Unit(tag, blocks, starts_group=i == 0))
    return units


def _size(blocks: list[Block]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))


def build_slack_messages(digest: Digest, limits: SlackLimits | None = None) -> list[Message]:
    """Block Kit messages for ``digest``: every paper kept, every limit respected, numbered."""
    limits = limits or SlackLimits()
    room = limits.blocks - 1  # each message opens with its numbered header
    pages: list[list[Block]] = [_intro(digest, limits)]
    for unit in _units(digest, limits):
        page = pages[-1]
        if len(page) + len(unit.blocks) > room or (
            _size(page) + _size(unit.blocks) > limits.message_chars - 500
        ):
            if unit.starts_group:
                page = unit.blocks[1:]  # no divider right under the header
            else:
                page = [_heading(unit.tag, "(continued)", limits), *unit.blocks]
            pages.append(page)
        else:
            page.extend(unit.blocks)

    total = len(pages)
    title = f"{digest.title} — {digest.date.isoformat()}"
    messages = []
    for number, page in enumerate(pages, start=1):
        suffix = f" ({number}/{total})" if total > 1 else ""
        head = header(fit(title, limits.header_text - len(suffix), _plain) + suffix, limits)
        fallback = escape_mrkdwn(f"{title}: {plural(digest.total, 'paper')}") + suffix
        messages.append({"text": fallback, "blocks": [head, *page]})
    return messages
