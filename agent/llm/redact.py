"""What we print, log or store never carries a secret or a raw control character.

Secrets are the API key and the Slack webhook from the environment, plus whatever a command
registers (a key read through ``api_key_env``, a ``--slack-webhook``, an SMTP password). They are
matched whatever their case, with surrounding whitespace ignored, and a webhook URL's path is a
secret of its own (it is the part that grants access).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

SECRET_ENV = ("OPENAI_API_KEY", "SLACK_WEBHOOK_URL")
MIN_SECRET = 4  # shorter values would redact ordinary words
REDACTED = "[redacted]"
_PATTERNS = (
    re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_*-]{6,}"),  # not the "sk-" of "task-specific"
    re.compile(r"https?://hooks\.slack\.com/\S+", re.IGNORECASE),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
)
# C0 controls but tab and newline, DEL and C1 controls: a terminal would act on them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_registered: set[str] = set()


def register(*secrets: str | None) -> None:
    """Treat each of ``secrets`` as a secret from now on, in this process's logs too."""
    _registered.update(s.strip() for s in secrets if s)
    scrub_logs()


def _variants(secret: str) -> Iterable[str]:
    yield secret
    if "://" in secret:
        # httpx prints a URL with its host lower-cased; a path alone still grants access.
        try:
            parts = urlsplit(secret)
        except ValueError:  # "http://[::1/..." is no URL: the whole string is still secret
            return
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(path.strip("/")) >= MIN_SECRET:
            yield path


@functools.lru_cache(maxsize=8)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms = {v for s in secrets for v in _variants(s) if len(v) >= MIN_SECRET}
    if not forms:
        return None
    # Longest first, so a URL is replaced whole before its path is.
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(alternatives, re.IGNORECASE)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with known secrets and anything shaped like a key or webhook replaced."""
    known = {s.strip() for s in (*secrets, *(os.environ.get(n) for n in SECRET_ENV)) if s}
    pattern = _pattern(frozenset(known | _registered))
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for shape in _PATTERNS:
        text = shape.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


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
