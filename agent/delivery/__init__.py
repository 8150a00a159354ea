"""Delivery of rendered digests: Slack webhooks, SMTP email, and the log of what was sent."""
