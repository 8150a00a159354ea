"""Email delivery against a real SMTP server (aiosmtpd on 127.0.0.1): library and CLI."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.delivery.email import (
    SmtpSettings,
    build_email,
    parse_smtp_address,
    preview,
    send_email,
)
from agent.errors import ConfigError
from tests.smtp import PASSWORD, free_port


def parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


async def test_send_email_delivers_a_multipart_plain_and_html_message(smtp_server):
    inbox, port = smtp_server
    message = build_email(
        subject="Research digest",
        sender="bot@example.org",
        recipients=["a@example.org", "b@example.org"],
        text="plain body",
        html="<p>html body</p>",
    )
    await send_email(message, SmtpSettings("127.0.0.1", port))
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "bot@example.org"
    assert envelope.rcpt_tos == ["a@example.org", "b@example.org"]
    received = inbox.message()
    assert received.get_content_type() == "multipart/alternative"
    body = {kind: text.strip() for kind, text in parts(received).items()}
    assert body == {"text/plain": "plain body", "text/html": "<p>html body</p>"}


def invoke(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env=env or None, catch_exceptions=False)


@pytest.fixture
def results_file(fixtures, tmp_path):
    """The fixed ten-paper results file."""
    path = tmp_path / "results.jsonl"
    path.write_text((fixtures / "digest" / "results.jsonl").read_text())
    return path


def test_post_emails_the_digest_with_login(smtp_server, results_file):
    inbox, port = smtp_server
    done = invoke(
        "post", str(results_file), "--email", "team@example.org", "--email", "me@example.org",
        "--smtp", f"127.0.0.1:{port}", "--smtp-user", "bob", "--smtp-password-env", "SMTP_PW",
        "--date", "2026-03-06",
        SMTP_PW=PASSWORD,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert inbox.logins == [("bob", PASSWORD)]
    assert inbox.envelopes[0].rcpt_tos == ["team@example.org", "me@example.org"]
    received = inbox.message()
    assert received["Subject"] == "Research digest 2026-03-06: 10 papers"
    body = parts(received)
    assert set(body) == {"text/plain", "text/html"}
    assert "Ping everyone <!channel>" in body["text/plain"]  # plain text shows it as is
    assert "Ping everyone &lt;!channel&gt;" in body["text/html"]  # HTML escapes it
    assert "<!channel>" not in body["text/html"] and "<script" not in body["text/html"]
    assert 'href="https://arxiv.org/abs/2410.23168"' in body["text/html"]
    assert done.stderr.endswith("Email to team@example.org, me@example.org: 1 message delivered\n")
    assert PASSWORD not in done.output


def test_a_rejected_login_is_a_delivery_error(smtp_server, results_file):
    _, port = smtp_server
    done = invoke(
        "post", str(results_file), "--email", "a@example.org", "--smtp", f"127.0.0.1:{port}",
        "--smtp-user", "bob", "--smtp-password-env", "SMTP_PW",
        SMTP_PW="wrong-password",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "rejected the login" in done.stderr and "wrong-password" not in done.output


def test_starttls_against_a_server_without_tls_fails_instead_of_sending_in_clear(
    smtp_server, results_file
):
    inbox, port = smtp_server
    done = invoke(
        "post", str(results_file), "--email", "a@example.org", "--smtp", f"127.0.0.1:{port}",
        "--starttls",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "STARTTLS" in done.stderr
    assert inbox.envelopes == []


def test_an_unreachable_server_is_one_clear_line(results_file):
    done = invoke(
        "post", str(results_file), "--email", "a@example.org", "--smtp", f"127.0.0.1:{free_port()}"
    )
    assert done.exit_code == 1
    assert "cannot reach SMTP server 127.0.0.1:" in done.stderr
    assert "Traceback" not in done.output


def test_a_missing_password_variable_is_a_config_error(results_file):
    done = invoke(
        "post", str(results_file), "--email", "a@example.org", "--smtp-password-env", "NOPE_PW"
    )
    assert done.exit_code == 2
    assert "$NOPE_PW is not set" in done.stderr


def test_dry_run_prints_the_email_readably_and_sends_nothing(smtp_server, results_file):
    inbox, port = smtp_server
    done = invoke(
        "post", str(results_file), "--email", "a@example.org", "--smtp", f"127.0.0.1:{port}",
        "--date", "2026-03-06", "--dry-run",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert inbox.envelopes == []
    head = done.stdout.splitlines()[:4]
    assert head == [
        "From: paper-agent@localhost",
        "To: a@example.org",
        "Subject: Research digest 2026-03-06: 10 papers",
        "",
    ]
    # The plain text part, decoded: an em dash, not =E2=80=94; a long line whole, not cut by
    # quoted-printable's soft line breaks at 76 characters.
    assert "Research digest — 2026-03-06\n" in done.stdout
    long_line = (
        "  Allocating test-time compute adaptively per prompt beats best-of-N by 4x and can "
    )
    assert long_line + "outperform a 14x larger model.\n" in done.stdout
    assert "=E2=80" not in done.stdout
    assert "Content-Transfer-Encoding" not in done.stdout and "<html" not in done.stdout.lower()
    html = invoke("digest", str(results_file), "-f", "html", "--date", "2026-03-06").stdout
    size = len(html.removesuffix("\n"))
    assert done.stdout.endswith(f"\n(HTML part: {size:,} characters, not shown)\n")


def test_preview_shows_headers_text_and_the_html_size():
    message = build_email(
        subject="Digest — é",
        sender="bot@example.org",
        recipients=["a@example.org", "b@example.org"],
        text="café — line one\nline two\n",
        html="<p>" + "é" * 12_000 + "</p>",
    )
    assert preview(message) == (
        "From: bot@example.org\n"
        "To: a@example.org, b@example.org\n"
        "Subject: Digest — é\n"
        "\n"
        "café — line one\n"
        "line two\n"
        "\n"
        "(HTML part: 12,007 characters, not shown)\n"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("smtp.example.org:587", ("smtp.example.org", 587)),
        ("localhost", ("localhost", 25)),
        ("[::1]:2525", ("::1", 2525)),
    ],
)
def test_smtp_addresses_parse(value, expected):
    assert parse_smtp_address(value) == expected


@pytest.mark.parametrize("value", ["", ":25", "host:port", "host:0", "host:70000"])
def test_bad_smtp_addresses_are_config_errors(value):
    with pytest.raises(ConfigError):
        parse_smtp_address(value)


def test_settings_never_show_the_password():
    assert PASSWORD not in repr(SmtpSettings(password=PASSWORD))


def test_a_rerun_after_a_slack_failure_does_not_send_the_email_twice(smtp_server, results_file):
    import httpx
    import respx

    inbox, port = smtp_server
    webhook = "https://hooks.example.test/services/T/B/resume"
    args = ["post", str(results_file), "--email", "team@example.org"]
    args += ["--smtp", f"127.0.0.1:{port}", "--date", "2026-03-06", "--slack-webhook", webhook]
    with respx.mock(assert_all_called=False) as router:
        slack = router.post(webhook).mock(
            side_effect=[httpx.Response(400, text="invalid_blocks"), httpx.Response(200, text="ok")]
        )
        first = invoke(*args)
        assert first.exit_code == 1 and "Run the same command again" in first.stderr
        assert "Email to team@example.org: 1 message delivered" in first.stderr
        again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert slack.call_count == 2
    assert len(inbox.envelopes) == 1  # the email went once
    assert again.stderr.splitlines()[-1] == (
        "Email to team@example.org: nothing new to send: 8 papers already delivered there "
        "(--force sends them again)"
    )
