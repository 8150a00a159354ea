"""Delivery of rendered digests: Slack incoming webhooks and SMTP email."""
