"""Delivery of rendered digests: Slack incoming webhooks and SMTP email."""

from __future__ import annotations

from agent.delivery.email import SmtpSettings, build_email, send_email
from agent.delivery.journal import DeliveryLog
from agent.delivery.slack import SlackPostError, SlackReport, post_to_slack

__all__ = [
    "DeliveryLog",
    "SlackPostError",
    "SlackReport",
    "SmtpSettings",
    "build_email",
    "post_to_slack",
    "send_email",
]
