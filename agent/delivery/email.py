"""Send a digest by email: multipart plain text + HTML over SMTP (smtplib, run in a thread)."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING, Any

from agent.delivery.journal import Destination, destination_id, digest_hash, fingerprint, paper_key
from agent.delivery.outbox import Outgoing
from agent.errors import ConfigError, DeliveryError

if TYPE_CHECKING:
    from agent.digest import Digest

log = logging.getLogger(__name__)

DEFAULT_SENDER = "paper-agent@localhost"


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to hand the message over; the password is never shown in repr."""

    host: str = "localhost"
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout: float = 30.0


def parse_smtp_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, port 25; ``[::1]:25`` for IPv6) to a host and port."""
    value = value.strip()
    host, port = value, "25"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or "25"
    elif value.count(":") == 1:
        host, port = value.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--smtp must be HOST:PORT, got {value!r}")
    return host, int(port)


def check_addresses(sender: str, recipients: Sequence[str]) -> None:
    """An address with a line break ("a@b.c\\r\\nBcc: x@y" would add a header) or without an
    "@" is a ConfigError."""
    for flag, address in (("--email-from", sender), *(("--email", to) for to in recipients)):
        if any(ord(ch) < 32 or ch == "\x7f" for ch in address) or "@" not in parseaddr(address)[1]:
            raise ConfigError(f"{flag}: {address!r} is not one email address")


def build_email(
    *, subject: str, sender: str, recipients: Sequence[str], text: str, html: str
) -> EmailMessage:
    """A multipart/alternative message: the plain text part first, the HTML part preferred;
    addresses are checked as ``check_addresses`` does."""
    check_addresses(sender, recipients)
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message


def preview(message: EmailMessage) -> str:
    """The message as a reader sees it: headers, the decoded plain text, the HTML part's size."""
    lines = [f"{name}: {message[name]}" for name in ("From", "To", "Subject") if message[name]]
    text = html = None
    for part in message.walk():
        if part.get_content_type() == "text/plain" and text is None:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and html is None:
            html = part.get_content()
    lines.append("")
    lines.append((text or "(no plain-text part)").rstrip("\n"))
    if html is not None:
        lines.append("")
        # set_content ends every part with a newline; count the document, not that newline.
        size = len(html.removesuffix("\n"))
        lines.append(f"(HTML part: {size:,} characters, not shown)")
    return "\n".join(lines) + "\n"


def send_email_sync(message: EmailMessage, settings: SmtpSettings) -> None:
    """Deliver ``message`` over SMTP; any failure becomes a DeliveryError."""
    where = f"{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.user:
                if not settings.starttls:
                    log.warning("login to %s without --starttls: password sent in clear", where)
                smtp.login(settings.user, settings.password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP server {where} rejected the login: {_smtp_text(exc)}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(
            f"SMTP server {where} refused every recipient: {', '.join(exc.recipients)}"
        ) from None
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"sending email via {where} failed: {_smtp_text(exc)}") from None
    except OSError as exc:
        raise DeliveryError(f"cannot reach SMTP server {where}: {exc}") from None
    if refused:
        # The others got it; say exactly who did not.
        raise DeliveryError(f"SMTP server {where} refused some recipients: {', '.join(refused)}")


def _smtp_text(exc: smtplib.SMTPException) -> str:
    error = getattr(exc, "smtp_error", None)
    if isinstance(error, bytes):
        return f"{getattr(exc, 'smtp_code', '')} {error.decode('utf-8', 'replace')}".strip()
    return str(exc) or type(exc).__name__


async def send_email(message: EmailMessage, settings: SmtpSettings) -> None:
    """Deliver ``message`` without blocking the event loop (smtplib is synchronous)."""
    await asyncio.to_thread(send_email_sync, message, settings)


def email_destination(recipients: Sequence[str], settings: SmtpSettings) -> Destination:
    """The recipients through this server: the same id in any order or case of addresses."""
    addresses = sorted({parseaddr(to)[1].casefold() for to in recipients})
    server = f"{settings.host.casefold()}:{settings.port}"
    shown = ", ".join(recipients)
    return Destination(
        channel="email",
        id=fingerprint("email", server, *addresses),
        name=f"Email to {shown}",
        where=shown,
        aliases=(destination_id(f"mailto:{shown}"),),
    )


class EmailChannel:
    """Email's side of the delivery seam: the whole digest in one multipart message."""

    def __init__(self, settings: SmtpSettings, sender: str, recipients: Sequence[str]) -> None:
        check_addresses(sender, recipients)  # before anything is sent anywhere
        self.settings = settings
        self.sender = sender
        self.recipients = list(recipients)
        self.destination = email_destination(self.recipients, settings)

    def render(self, digest: Digest) -> list[Outgoing]:
        """One message: plain text and HTML of every paper, which it all carries."""
        from agent.digest import render
        from agent.digest.text import plural

        subject = f"{digest.title} {digest.date.isoformat()}: {plural(digest.total, 'paper')}"
        message = build_email(
            subject=subject,
            sender=self.sender,
            recipients=self.recipients,
            text=render(digest, "text"),
            html=render(digest, "html"),
        )
        papers = (entry.result for group in digest.groups for entry in group.entries)
        return [Outgoing(message, tuple(dict.fromkeys(map(paper_key, papers))))]

    def digest_key(self, messages: list[Outgoing]) -> str:
        """What the email says, not its Date or Message-ID (as version 1 of the journal had it)."""
        message = messages[0].payload
        body = message.get_body(("plain",))
        return digest_hash([message["Subject"], body.get_content() if body else ""])

    async def send(self, payload: Any) -> None:
        """Hand the message to the SMTP server; a DeliveryError saying why if it is refused."""
        await send_email(payload, self.settings)
