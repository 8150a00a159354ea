"""What the tool prints never carries a key, and ordinary words are left alone."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from urllib.parse import unquote

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


# A webhook is redacted by its value in every form it takes once a server or httpx reads it.

TOKEN = "SeCrEt" + "XyZ1234" + "aBc"  # the part of a Slack webhook that grants access
WEBHOOK = f"https://hooks.example.test/services/T0ID12345/B0ID12345/{TOKEN}"


def seen(text: str) -> str:
    """``text`` as a reader would find the token in it: any case, spacing or percent-escape."""
    return unquote(unquote("".join(text.split()))).lower()


@pytest.mark.parametrize(
    ("secret", "text"),
    [
        # Registered as given, logged as httpx sends it (dot segments resolved, host lower-cased).
        (
            "https://Hooks.Example.TEST/services/T0ID12345/B0ID12345/../B0ID12345/" + TOKEN,
            f'HTTP Request: POST {WEBHOOK} "HTTP/1.1 200 OK"',
        ),
        (
            "https://hooks.example.test/services/./T0ID12345/B0ID12345/" + TOKEN,
            f"POST /services/T0ID12345/B0ID12345/{TOKEN} 200",
        ),
        # Registered as normal, written out in another form.
        (
            WEBHOOK,
            f"could not reach https://hooks.example.test/services/T0ID12345/./x/../B0ID12345/{TOKEN}.",
        ),
        (WEBHOOK, f"url=HTTPS://HOOKS.EXAMPLE.TEST/services/T0ID12345/B0ID12345/%53{TOKEN[1:]}"),
        (WEBHOOK, f"url: /services/T0ID12345/B0ID12345/%2553{TOKEN[1:]}"),  # twice encoded
        (WEBHOOK, f"the token {TOKEN.upper()} was refused"),  # its distinctive part alone
        (WEBHOOK, f"Post 'http://127.0.0.1:9/services/T0ID12345/B0ID12345/{TOKEN}'"),
    ],
)
def test_a_webhook_is_redacted_in_every_form_it_takes(secret: str, text: str) -> None:
    shown = redact(text, [f"  {secret}\n"])
    assert TOKEN.lower() not in seen(shown), shown
    assert REDACTED in shown


def test_a_redacted_url_keeps_the_prose_around_it() -> None:
    text = f"see (https://hooks.example.test/services/T0ID12345/./B0ID12345/{TOKEN}), then retry"
    assert redact(text, [WEBHOOK]) == f"see ({REDACTED}), then retry"


def test_a_webhook_leaves_ordinary_words_and_paths_alone() -> None:
    text = "services and/or hooks: see /services/ or 50% of https://example.org/a/../b/token"
    assert redact(text, [WEBHOOK]) == text


def test_a_key_percent_encoded_in_a_url_is_redacted() -> None:
    key = "Zq9-not-shaped-like-any-key-7Hk2"
    text = "GET https://api.example.test/v1/models?key=Zq9%2Dnot%2Dshaped-like-any-key-7Hk2 401"
    shown = redact(text, [key])
    assert key.lower() not in seen(shown) and REDACTED in shown


@pytest.fixture
def webhook_server() -> Iterator[tuple[int, list[str]]]:
    """A local incoming webhook on an ephemeral port, and the paths it was posted to."""
    received: list[str] = []

    class Webhook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.path)
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port, received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "path",
    [
        f"/services/T0ID12345/B0ID12345/../B0ID12345/{TOKEN}",
        f"/services/./T0ID12345/B0ID12345/{TOKEN}",
        f"/services/T0ID12345/B0ID12345/./{TOKEN}",
        f"/services/T0ID12345/B0ID12345/%53{TOKEN[1:]}",
    ],
)
def test_a_webhook_with_dot_segments_is_not_printed_at_v(tmp_path, webhook_server, path) -> None:
    """The real logging path: a process at -v posts to the webhook and httpx logs the request."""
    port, received = webhook_server
    papers = tmp_path / "papers.jsonl"
    papers.write_text(json.dumps({"title": "Robots", "abstract": "We build robots."}) + "\n")
    env = {
        **os.environ,
        "PAPER_AGENT_HOME": str(tmp_path / "home"),
        "SLACK_WEBHOOK_URL": f"  http://LocalHost:{port}{path}  \n",
    }
    args = ["-v", "run", str(papers), "--backend", "local", "-o", "out.jsonl", "--post-slack"]
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(received) == 1 and TOKEN.lower() in seen(received[0])  # it was posted...
    assert "HTTP Request: POST [redacted]" in done.stderr  # ...httpx logged it...
    assert TOKEN.lower() not in seen(done.stderr + done.stdout)  # ...and never showed it
