"""User-facing errors: the CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations

# How a skipped paper's error message starts; what follows says why it was not run.
NOT_RUN = "not run: "


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
    """One paper could not be annotated; the run records it and goes on.

    ``halt`` says the failure is the server's, before it ever answered this run: no other
    paper can do better now, so the run stops launching papers.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        last_raw: str | None = None,
        usage: object = None,
        halt: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.last_raw = last_raw
        self.usage = usage  # what the failed attempts cost (agent.models.Usage)
        self.halt = halt


class Interrupted(PaperAgentError):
    """SIGINT or SIGTERM: finished results were written; exit 128 + the signal number."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number
