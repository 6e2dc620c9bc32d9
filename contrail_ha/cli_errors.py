"""The CLI's errors: each a click exception with its exit code, printed without click's prefix."""

from __future__ import annotations

from typing import IO, Any

import click
from rich.console import Console

from contrail_ha.errors import ContrailHaError

err = Console(stderr=True, highlight=False, soft_wrap=True)


class CommandError(click.ClickException, ContrailHaError):
    """A command failed (exit 1 unless a subclass says otherwise).

    The message (rich markup allowed) goes to stderr as it is, without click's ``Error:`` prefix;
    an empty message prints nothing, for when the command already showed why (a table, JSON).
    """

    exit_code = 1

    def __init__(self, message: str = "") -> None:
        super().__init__(message)

    def show(self, file: IO[Any] | None = None) -> None:
        if self.message:
            err.print(self.message)


class Degraded(CommandError):
    """``status``: something is degraded (exit 1)."""


class DataLost(CommandError):
    """``drill``: an acknowledged write or analytics message was lost or duplicated (exit 1)."""


class Interrupted(CommandError):
    """``drill``: stopped by Ctrl-C or SIGTERM after healing the fault in progress (exit 130)."""

    exit_code = 130


class UsageProblem(click.UsageError, ContrailHaError):
    """The command cannot be run as given: bad arguments, a missing file, not root (exit 2).

    Printed as ``error: <message>`` on stderr, without click's usage banner.
    """

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        err.print(f"error: {self.message}")
