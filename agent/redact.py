"""Keep secrets (API keys, webhook URLs) out of everything we print, log or store."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

SECRET_ENV = ("OPENAI_API_KEY", "SLACK_WEBHOOK_URL")
_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_*-]{6,}"),
    re.compile(r"https://hooks\.slack\.com/\S+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with known secrets and anything shaped like a key or webhook replaced."""
    for secret in (*secrets, *(os.environ.get(name) for name in SECRET_ENV)):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text
