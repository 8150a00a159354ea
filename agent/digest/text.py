"""Text helpers shared by every renderer: escaping, safe links, author lists, truncation."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import quote, urlsplit

T = TypeVar("T")

ELLIPSIS = "…"
# URLs longer than this are shown unlinked: no reader clicks them and they eat Slack's budget.
MAX_URL_LENGTH = 1000

# Slack has no escape for its bold marker: an asterisk in a title would end the bold around
# it early, so untrusted text shows U+2217 (∗) instead, which reads the same.
_MRKDWN = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "*": "\u2217"})
# Markdown: only what would turn text into markup is escaped, so the file reads plainly
# ("Retrieval & RAG", "snake_case", "$\alpha$"). Anywhere in a line: emphasis and strikethrough
# (* ~, and _ unless between two letters or digits), code (`), links and images ([ ]), raw HTML
# and autolinks (< >, both: a Markdown file passed on unparsed must not hold "<!channel>"), '&'
# that starts an entity ("&amp;"), and a backslash that would escape the next character or end
# the line (a hard break).
_MARKDOWN_INLINE = re.compile(
    r"[`*~\[\]<>]|(?<![^\W_])_|_(?![^\W_])|&(?=#?[0-9A-Za-z]+;)|\\(?=[!-/:-@\[-`{-~]|$)"
)
# At the start of a line (a value may begin one): a heading ("# "), a list item ("- ", "+ ",
# "1. ", "1) "), a rule or setext underline ("---", "=="); a quote's ">" is escaped anywhere.
_MARKDOWN_LINE_START = re.compile(
    r"^(?:#(?=#{0,5}(?:\s|$))|[-+=](?=[-+=\s]|$)|\d{1,9}(?=[.)](?:\s|$)))"
)
# A run of '#' at the end of a heading's text would close the heading and vanish.
_MARKDOWN_CLOSING_HASHES = re.compile(r"(?<=\s)#(?=#*$)")
# Bidirectional controls (embeddings, overrides, isolates and marks) reorder what a reader
# sees: "U+202E" turns "txt.exe" around. Untrusted text never keeps them, in any format.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BIDI_CONTROL = re.compile(f"[{_BIDI}]")
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f{_BIDI}]")
# Characters left as they are in a link target; everything else is percent-encoded, so a URL
# can never close a Markdown link, a Slack <url|label> or an HTML attribute early ('*' too:
# escape_mrkdwn swaps it in text, and a URL must come through that unchanged).
_URL_SAFE = "/:?#[]@!$&'+,;=%-._~"


def escape_mrkdwn(text: object) -> str:
    """Escape ``&``, ``<`` and ``>`` so Slack shows the text literally (no mentions, no links),
    and swap ``*`` for ``∗`` so it cannot end the bold around a title."""
    return str(text).translate(_MRKDWN)


def escape_markdown(text: object) -> str:
    """Backslash-escape what would turn untrusted text into Markdown (CommonMark and GitHub's)
    syntax, wherever in a line the text lands, and nothing else."""
    line = _MARKDOWN_INLINE.sub(lambda m: "\\" + m.group(), one_line(str(text)))
    line = _MARKDOWN_CLOSING_HASHES.sub(r"\\#", line)
    # After a marker's digits, the escape goes before the '.' or ')': "1\. Introduction".
    return _MARKDOWN_LINE_START.sub(
        lambda m: m.group() + "\\" if m.group().isdigit() else "\\" + m.group(), line
    )


def one_line(text: str) -> str:
    """Collapse whitespace (including newlines) and drop control and bidirectional characters."""
    return " ".join(_CONTROL.sub("", text).split())


def without_bidi(value: T) -> T:
    """``value`` with every bidirectional control dropped from its strings (lists, dicts too).

    For data kept as it is otherwise (the JSON digest); text shown on one line gets the same
    cleaning from ``one_line``.
    """
    if isinstance(value, str):
        return _BIDI_CONTROL.sub("", value)  # type: ignore[return-value]
    if isinstance(value, list):
        return [without_bidi(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, dict):
        return {without_bidi(k): without_bidi(v) for k, v in value.items()}  # type: ignore[return-value]
    return value


def safe_url(url: str | None) -> str | None:
    """An http(s) URL fit to embed in a link, percent-encoded where needed, or None."""
    if not url:
        return None
    url = url.strip()
    if _CONTROL.search(url) or any(ch.isspace() for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    encoded = quote(url, safe=_URL_SAFE)
    # '(' and ')' are left out of _URL_SAFE because they end a Markdown link target.
    return encoded if len(encoded) <= MAX_URL_LENGTH else None


def short_authors(authors: Sequence[str], keep: int = 2) -> str:
    """``"A, B et al."`` for four names or more, all names for up to three."""
    names = [one_line(a) for a in authors if a and a.strip()]
    # "et al." stands for two names at least: it saves no room in place of one.
    if len(names) <= keep + 1:
        return ", ".join(names)
    return ", ".join(names[:keep]) + " et al."


def fit(text: str, limit: int, escape: Callable[[str], str] = escape_mrkdwn) -> str:
    """``escape(text)`` cut to at most ``limit`` characters, ending in an ellipsis when cut.

    Cutting the raw text (not the escaped one) never splits an entity such as ``&amp;``.
    """
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    # Binary search for the longest raw prefix whose escaped form leaves room for the ellipsis.
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(escape(text[:mid].rstrip())) + len(ELLIPSIS) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return escape(text[:lo].rstrip()) + ELLIPSIS


def plural(count: int, noun: str) -> str:
    """``"1 paper"``, ``"2 papers"``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
