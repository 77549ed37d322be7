"""User-facing errors: one line, exit code 2 at the CLI."""

from __future__ import annotations


class SnnccError(Exception):
    """Bad input or an impossible request, worded for the user in one line.

    The CLI prints ``error: <message>`` on stderr and exits with :attr:`exit_code`.
    """

    exit_code = 2


class UnsupportedError(SnnccError):
    """The input uses something snncc cannot express (an op, a layer kind, a limit)."""


class ResourceError(SnnccError):
    """A network does not fit a target's resource limits."""
