"""What the tool prints never carries a key, and ordinary words are left alone."""

from __future__ import annotations

import pytest

from agent.llm.redact import REDACTED, redact

# Built at run time: no key-shaped literal sits in the repository.
FAKE_KEY = "sk-" + "proj-" + "A1b2C3d4E5f6G7h8"


@pytest.mark.parametrize(
    "text",
    [
        f"key={FAKE_KEY}",
        f"Authorization: Bearer {FAKE_KEY}",
        f'{{"api_key": "{FAKE_KEY}"}}',
        f"the key {FAKE_KEY} was rejected",
    ],
)
def test_key_shaped_strings_are_redacted(text: str) -> None:
    shown = redact(text)
    assert FAKE_KEY not in shown and REDACTED in shown


@pytest.mark.parametrize(
    "text",
    [
        "without task-specific fine-tuning",
        "a risk-sensitive policy and a desk-bound user",
        "TASK-SPECIFIC heads",
    ],
)
def test_words_that_merely_contain_sk_dash_stay_intact(text: str) -> None:
    assert redact(text) == text
