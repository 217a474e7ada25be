"""The command's name and its user-facing error type."""

from __future__ import annotations

PROG = "nirs4all-store"


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""
