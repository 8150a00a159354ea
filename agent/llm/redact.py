"""What we print, log or store never carries a secret or a raw control character.

Secrets are the API key and the Slack webhook from the environment, plus whatever a command
registers (a key read through ``api_key_env``, a ``--slack-webhook``, an SMTP password). They are
matched by value, whatever their case, with surrounding whitespace ignored, in every form the
value takes on its way out: a webhook given as ``/services/T/B/../B/XXX`` is requested, and
logged by httpx, as ``/services/T/B/XXX``, and may be written ``%58XX``. So each secret is
known as given and as a server reads it (percent-escapes decoded, dot segments removed), as
its path alone (the part that grants access), and by each random-looking component (the
token); and each URL-like word of the text is read the same way before it is compared.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

SECRET_ENV = ("OPENAI_API_KEY", "SLACK_WEBHOOK_URL")
MIN_SECRET = 4  # shorter values would redact ordinary words
# A URL component this long that mixes digits or cases with letters is a token, not a word
# ("services", "hooks"): on its own it grants nothing, but it is the part that must not leak.
MIN_TOKEN = 8
REDACTED = "[redacted]"
_PATTERNS = (
    re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_*-]{6,}"),  # not the "sk-" of "task-specific"
    re.compile(r"https?://hooks\.slack\.com/\S+", re.IGNORECASE),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
)
# C0 controls but tab and newline, DEL and C1 controls: a terminal would act on them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A word that may be a URL or a path: what a log line puts between spaces or quotes, holding a
# "/" or a "%". Anchored at a word's start, so a long word is scanned once, not once a letter.
_WORD = re.compile(r"(?<![^\s\"'<>`])[^\s\"'<>`/%]*+[/%][^\s\"'<>`]*")
_EDGES = "([{.,;:!?)]}"  # punctuation around a URL in prose, kept when the URL is redacted
_AUTHORITY = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#]*")
_registered: set[str] = set()


def register(*secrets: str | None) -> None:
    """Treat each of ``secrets`` as a secret from now on, in this process's logs too."""
    _registered.update(s.strip() for s in secrets if s)
    scrub_logs()


def _without_dot_segments(path: str) -> str:
    """``path`` with its ``.`` and ``..`` segments resolved (RFC 3986, 5.2.4)."""
    kept: list[str] = []
    segments = path.split("/")
    for segment in segments:
        if segment == "..":
            if kept and kept != [""]:  # never above the root
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")  # "/a/b/.." is the folder "/a/"
    return "/".join(kept)


def _canonical(text: str) -> str:
    """``text`` as a server reads it, lower-cased: percent-escapes decoded (twice-encoded
    ones too) and the dot segments of its path resolved."""
    for _ in range(3):  # "%2558" is "%58" once decoded, "X" twice
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    text = text.lower()
    authority = _AUTHORITY.search(text)
    start = authority.end() if authority else 0
    ends = [i for i in (text.find("?", start), text.find("#", start)) if i >= 0]
    end = min(ends, default=len(text))
    return text[:start] + _without_dot_segments(text[start:end]) + text[end:]


def _is_token(part: str) -> bool:
    """Whether a URL component looks random (a token or an id), not like a word."""
    if len(part) < MIN_TOKEN:
        return False
    letters = any(c.isalpha() for c in part)
    mixed_case = any(c.isupper() for c in part) and any(c.islower() for c in part)
    return (letters and any(c.isdigit() for c in part)) or mixed_case


def _forms(secret: str) -> Iterator[str]:
    """``secret`` and the parts of it that grant access or identify it on their own: for a
    URL, its path with the query, and each token in the path, the query and the password."""
    yield secret
    if "://" not in secret:
        return
    try:
        parts = urlsplit(secret)
        password = unquote(parts.password or "")
    except ValueError:  # "http://[::1/..." is no URL: the whole string is still secret
        return
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(path.strip("/")) >= MIN_SECRET:
        yield path
    values = (value for _, value in parse_qsl(parts.query))
    yield from filter(_is_token, (*unquote(parts.path).split("/"), *values, password))


class _Needles(NamedTuple):
    """What to look for: the forms as written (any case), as a server reads them, and both
    case-folded for a quick first look."""

    written: re.Pattern[str]
    read: tuple[str, ...]
    folded: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def _needles(secrets: frozenset[str]) -> _Needles | None:
    forms = {form for secret in secrets for form in _forms(secret) if len(form) >= MIN_SECRET}
    if not forms:
        return None
    # Longest first, so a URL is replaced whole before its path is.
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    read = tuple(sorted({r for r in map(_canonical, forms) if len(r.strip("/")) >= MIN_SECRET}))
    folded = tuple({form.casefold() for form in forms} | set(read))
    return _Needles(re.compile(alternatives, re.IGNORECASE), read, folded)


def _hide_urls(text: str, read: tuple[str, ...]) -> str:
    """``text`` with each URL-like word that, read as a server reads it, holds a secret
    replaced (the punctuation around it kept)."""

    def holds(word: str) -> bool:
        seen = _canonical(word)
        return any(needle in seen for needle in read)

    shortest = min(map(len, read))

    def hide(match: re.Match[str]) -> str:
        word = match.group()
        # Decoding and resolving only shorten a word: a short one cannot hold a secret.
        if len(word) < shortest or not holds(word):
            return word
        core = word.strip(_EDGES)
        if not core or not holds(core):
            return REDACTED
        start = word.index(core)
        return word[:start] + REDACTED + word[start + len(core) :]

    return _WORD.sub(hide, text)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with known secrets, in any of their forms, and anything shaped like a key or
    webhook replaced."""
    known = {s.strip() for s in (*secrets, *(os.environ.get(n) for n in SECRET_ENV)) if s}
    needles = _needles(frozenset(known | _registered))
    if needles is not None and _may_hold(text, needles):
        if needles.read and ("/" in text or "%" in text):
            text = _hide_urls(text, needles.read)
        text = needles.written.sub(REDACTED, text)
    for shape in _PATTERNS:
        text = shape.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


def _may_hold(text: str, needles: _Needles) -> bool:
    """False when ``text`` surely holds no secret: most texts, told by plain substring tests."""
    if not text.isascii() or "%" in text or "/." in text:
        return True  # an escape to decode or a dot segment to resolve: look closely
    # Here reading a word as a server does only lower-cases it (and may drop a leading "./" or
    # "../"), and lower-casing ASCII is what IGNORECASE does: a secret in it is a substring.
    low = text.lower()
    return any(needle in low for needle in needles.folded)


def printable(text: str) -> str:
    """``text`` with control characters made visible (``\\x1b``), so a title cannot drive
    the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def scrub(text: str) -> str:
    """Everything printed to the terminal goes through this: no secret, no control."""
    return printable(redact(text))


_installed = False


def scrub_logs() -> None:
    """Scrub the message of every log record made in this process from now on (idempotent).

    A record factory, not a handler's filter: httpx logs every request URL, a webhook
    included, and whoever handles the record (our stderr, pytest's caplog, a host
    application) gets it already clean.
    """
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def scrubbed(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return record  # a malformed call: logging reports it as usual when it formats it
        record.msg, record.args = scrub(message), None
        if record.exc_info:
            # Formatters reuse exc_text once set: the traceback is scrubbed here, once.
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return record

    logging.setLogRecordFactory(scrubbed)
    _installed = True


class ScrubbingFormatter(logging.Formatter):
    """A log formatter whose whole output, tracebacks included, goes through ``scrub``."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, scrubbed."""
        return scrub(super().format(record))
