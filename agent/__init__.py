"""paper-agent: tag and summarize new papers against your taxonomy, and deliver the digest."""

__version__ = "0.1.0"
