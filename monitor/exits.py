"""Exit codes of ``cckm-monitor`` and the error that means "bad usage"."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments or configuration: exit 2."""
