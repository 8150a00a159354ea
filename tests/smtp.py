"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, keeping what it accepts."""

from __future__ import annotations

import email
import socket
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.smtp import AuthResult, LoginPassword

PASSWORD = "pa55-w0rd-never-shown"


class Inbox:
    """An aiosmtpd handler that keeps every accepted message and the logins it saw."""

    def __init__(self) -> None:
        self.envelopes: list = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        # handled=False: let aiosmtpd answer 535 itself on a bad password.
        return AuthResult(success=password == PASSWORD, handled=False)

    def message(self, index: int = 0) -> EmailMessage:
        return email.message_from_bytes(self.envelopes[index].content, policy=default)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
