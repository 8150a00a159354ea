"""User-facing errors: the CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations

import enum

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


class PartialDeliveryError(DeliveryError):
    """A destination did not take a message: says which it has and how to send the rest."""

    def __init__(
        self, name: str, number: int, total: int, delivered: list[int], reason: str, again: str
    ) -> None:
        self.number = number
        self.total = total
        self.delivered = sorted(delivered)
        self.pending = [n for n in range(1, total + 1) if n not in set(delivered)]
        done = ", ".join(map(str, self.delivered)) or "none"
        todo = ", ".join(map(str, self.pending))
        super().__init__(
            f"{name}: message {number} of {total} not delivered: {reason.rstrip('.')}. "
            f"Delivered: {done}. Not delivered: {todo}. Run {again} to send only those."
        )


class Halt(enum.Enum):
    """Why one paper's failure stops the whole run from launching papers."""

    SERVER = "server"  # the server failed before it ever answered: no paper can do better now
    DRAIN = "drain"  # the run stops for its own reason (--max-cost): papers in flight finish


class PaperFailed(Exception):
    """One paper could not be annotated; the run records it and goes on, unless ``halt``
    says the run stops (and how)."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        last_raw: str | None = None,
        usage: object = None,
        halt: Halt | None = None,
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
