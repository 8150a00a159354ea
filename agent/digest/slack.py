"""Slack Block Kit payloads built as data, split into messages that respect every Slack limit."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from agent.digest.model import Digest, Entry
from agent.digest.rank import DEFAULT_TOP
from agent.digest.text import escape_mrkdwn, fit, plural, safe_url
from agent.models import PaperResult

Block = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class SlackPost:
    """One webhook payload and the annotated papers it shows or counts (the delivery journal
    records them once Slack accepts it; failed papers are not delivered, so not among them)."""

    message: Message
    papers: list[PaperResult]


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
    if entry.ref:  # a hashed t-... id means nothing to a reader
        details.append(escape_mrkdwn(entry.ref))
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
    entry: Entry


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
            units.append(_Unit(tag, blocks, starts_group=i == 0, entry=entry))
    return units


def _size(blocks: list[Block]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))


def build_slack_messages(digest: Digest, limits: SlackLimits | None = None) -> list[Message]:
    """Block Kit messages for ``digest``: every paper kept, every limit respected, numbered."""
    return [post.message for post in _full_posts(digest, limits or SlackLimits())]


def _full_posts(digest: Digest, limits: SlackLimits) -> list[SlackPost]:
    room = limits.blocks - 1  # each message opens with its numbered header
    pages: list[list[Block]] = [_intro(digest, limits)]
    carried: list[list[PaperResult]] = [[]]
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
            carried.append([])
        else:
            page.extend(unit.blocks)
        if unit.entry.error is None:
            carried[-1].append(unit.entry.result)

    total = len(pages)
    title = f"{digest.title} — {digest.dated}"
    posts = []
    for number, (page, papers) in enumerate(zip(pages, carried, strict=True), start=1):
        suffix = f" ({number}/{total})" if total > 1 else ""
        head = header(fit(title, limits.header_text - len(suffix), _plain) + suffix, limits)
        fallback = escape_mrkdwn(f"{title}: {plural(digest.total, 'paper')}") + suffix
        posts.append(SlackPost({"text": fallback, "blocks": [head, *page]}, papers))
    return posts


# One screen: each pick's parts are cut to these (raw characters) before the section limit,
# so fifteen picks and the per-tag lines fit one message with room to spare.
PICK_TITLE = 300
PICK_TAGS = 200
PICK_WHY = 300
PICK_SUMMARY = 400
TAG_NAME = 100


def pick_block(entry: Entry, limits: SlackLimits) -> Block:
    """A top pick in one section: linked title and upvotes, tags and relevance, why, summary."""
    meta = " ".join(f"`{t}`" for t in entry.tags if t)
    if entry.score:
        meta += (" · " if meta else "") + f"relevance {entry.score}"
    lines = [
        fit(meta, PICK_TAGS, _plain),
        f"→ {fit(entry.why, PICK_WHY, _plain)}" if entry.why else "",
        fit(entry.summary, PICK_SUMMARY, _plain),
    ]
    short = dataclasses.replace(entry, title=fit(entry.title, PICK_TITLE, _plain))
    # _title_and_text escapes every part and holds the section limit, as for --full.
    extra = "\n".join(line for line in lines if line)
    return section(_title_and_text(short, extra, limits, entry.votes))


def _rest(digest: Digest, shown: list[Entry], linked: bool, limits: SlackLimits) -> Block | None:
    """What the picks leave out: one line per tag ("+ 12 more in Agents") when a link to the
    full digest follows, else one line in all ("+ 61 more in 14 tags"); then the failures."""
    ids = {id(e) for e in shown}
    left = [(g.tag, sum(1 for e in g.entries if id(e) not in ids)) for g in digest.groups]
    left = [(tag, count) for tag, count in left if count]
    failed = f"⚠ {plural(digest.failed, 'paper')} failed" if digest.failures else ""

    def line(count: int, where: str) -> str:
        return f"+ {count} more in {where}" if shown else f"{plural(count, 'paper')} in {where}"

    if not linked:
        # A list of tags the reader cannot open is noise: say how much is left, in one line.
        total = sum(count for _, count in left)
        where = fit(left[0][0], TAG_NAME) if len(left) == 1 else f"{len(left)} tags"
        text = " · ".join(part for part in (line(total, where) if left else "", failed) if part)
        return section(fit(text, limits.section_text, _plain)) if text else None
    lines = [line(count, fit(tag, TAG_NAME)) for tag, count in left]
    if failed:
        lines.append(failed)
    if not lines:
        return None
    kept: list[str] = []
    for number, text in enumerate(lines):
        tail = f"+ {len(lines) - number} more lines"  # room for it, should the next not fit
        if sum(len(k) + 1 for k in kept) + len(text) + 1 + len(tail) > limits.section_text:
            kept.append(tail)
            break
        kept.append(text)
    return section("\n".join(kept))


def _pick_count(digest: Digest) -> int:
    # Slack always shows papers in its one screen: without a ranking, the first ones by tag.
    return digest.top_count if digest.top_asked else DEFAULT_TOP


def _one_screen_intro(digest: Digest, shown: int, limits: SlackLimits) -> list[Block]:
    papers = plural(digest.total, "paper")
    if not shown or shown == len(digest.ranked):
        # Nothing picked, or every annotated paper fits: no "first" or "top" to speak of.
        text = f"*{papers}*" + (f", by {digest.sort}" if shown and digest.sort != "tag" else "")
    elif digest.sort == "tag":
        text = f"*{shown}* of {papers}, a few from each tag"
    else:
        text = f"*Top {shown}* of {papers}, by {digest.sort}"
    if digest.failed:
        text += f" ({digest.failed} failed)"
    if digest.below_note:
        text += "\n" + digest.below_note
    fields = []
    for name, values in (("Sources", digest.sources), ("Model", digest.models)):
        if values:
            fields.append(f"*{name}*\n" + fit(", ".join(values), limits.field_text - len(name) - 3))
    blocks = [section(fit(text, limits.section_text, _plain), fields[: limits.fields])]
    if digest.highlights:
        bullets = "\n".join(f"• {b}" for b in digest.highlights)
        title = "*What stood out today*\n"
        blocks.append(section(title + fit(bullets, limits.section_text - len(title))))
    return blocks


def _more_block(digest: Digest, more_url: str | None, limits: SlackLimits) -> Block | None:
    url = safe_url(more_url)  # links only from http(s) URLs, whoever passed this one
    if url is None:
        return None
    label = f"Full digest: all {plural(digest.total, 'paper')}"
    return section(fit(f"<{escape_mrkdwn(url)}|{label}>", limits.section_text, _plain))


def build_slack_message(
    digest: Digest, limits: SlackLimits | None = None, more_url: str | None = None
) -> Message:
    """The one-screen Block Kit message: top picks, what is left ("+ 61 more in 14 tags", by tag
    when ``more_url`` links the full digest), then that link.

    Picks that would break a limit (blocks, message size) are left out and counted in the
    count of what is left instead, so the message always posts.
    """
    limits = limits or SlackLimits()
    title = f"{digest.title} — {digest.dated}"
    head = header(title, limits)
    more = _more_block(digest, more_url, limits)
    picks = digest.ranked[: _pick_count(digest)]

    def assemble(shown: list[Entry]) -> list[Block]:
        blocks = [head, *_one_screen_intro(digest, len(shown), limits)]
        if shown:
            blocks += [divider(), *(pick_block(e, limits) for e in shown)]
        rest = _rest(digest, shown, more is not None, limits)
        tail = [b for b in (rest, more) if b is not None]
        return blocks + ([divider(), *tail] if tail else [])

    blocks = assemble(picks)
    while picks and (len(blocks) > limits.blocks or _size(blocks) > limits.message_chars - 500):
        picks = picks[: min(len(picks) - 1, len(picks) - (len(blocks) - limits.blocks))]
        blocks = assemble(picks)
    fallback = escape_mrkdwn(f"{title}: {plural(digest.total, 'paper')}")
    return {"text": fallback, "blocks": blocks}


def slack_messages(
    digest: Digest,
    *,
    full: bool = False,
    more_url: str | None = None,
    limits: SlackLimits | None = None,
) -> list[Message]:
    """The webhook payloads to post: one screen by default, every paper with ``full``."""
    return [
        post.message for post in slack_posts(digest, full=full, more_url=more_url, limits=limits)
    ]


def slack_posts(
    digest: Digest,
    *,
    full: bool = False,
    more_url: str | None = None,
    limits: SlackLimits | None = None,
) -> list[SlackPost]:
    """``slack_messages`` with the papers each carries: with ``full``, those it shows; the one
    screen stands for the whole digest (picks shown, the rest counted and linked), so all."""
    if full:
        return _full_posts(digest, limits or SlackLimits())
    annotated = [entry.result for group in digest.groups for entry in group.entries]
    return [SlackPost(build_slack_message(digest, limits, more_url), annotated)]
