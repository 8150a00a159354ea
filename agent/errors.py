"""User-facing errors: the CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations


class PaperAgentError(Exception):
    """Base class for errors a user can act on; ``exit_code`` follows DESIGN 9."""

    exit_code = 2


class InputError(PaperAgentError):
    """An input file is missing, empty, unreadable or holds no papers."""


class OutputError(PaperAgentError):
    """An output cannot be written: it would replace an input, another run holds it, or the
    disk is full. Finished work is kept and the message says where."""


class ConfigError(PaperAgentError):
    """A config, taxonomy or prompt file is invalid, or a setting is missing."""


class BackendError(PaperAgentError):
    """The backend cannot work at all (bad key, unknown model, unreachable server)."""


class DeliveryError(PaperAgentError):
    """A digest could not be delivered."""

    exit_code = 1


class PaperFailed(Exception):
    """One paper could not be annotated; the run records it and goes on."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        attempts: int = 1,
        last_raw: str | None = None,
        usage: object = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.attempts = attempts
        self.last_raw = last_raw
        self.usage = usage  # what the failed attempts cost (agent.models.Usage)
