"""Errors a user can fix, and how the command line shows them.

Why a class of its own: ``erts`` prints these as one line naming the setting or
path and the reason, and exits 2; anything else is a bug and keeps its
traceback. ``ERTS_DEBUG=1`` shows the traceback of these too. Raise them where
the problem is found (the data loaders, the cache), not in each command. This
module imports nothing of erts, so every layer can raise them without a circle.
"""
from __future__ import annotations

import os
import sys


class ConfigError(ValueError):
    """A config key or value that cannot be accepted; the message says why and what is."""


class DataError(ValueError):
    """A dataset root, file or content that cannot be used; the message names it and says why."""


def debug() -> bool:
    """``ERTS_DEBUG=1``: user errors keep their traceback."""
    return os.environ.get("ERTS_DEBUG", "").lower() not in ("", "0", "false", "no")


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception classes the command line reports as one line (exit 2)."""
    return (ConfigError, DataError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError)


def describe(e: BaseException) -> str:
    """One line: ``config error: ...`` or ``error: <path>: <reason>``."""
    if isinstance(e, OSError) and e.filename is not None:  # e.g. "[Errno 2] No such file or directory: 'x'"
        text = f"{e.filename}: {e.strerror or e}"
    else:
        text = "; ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
    return f"config error: {text}" if isinstance(e, ConfigError) else f"error: {text}"


def warn(message: str) -> None:
    """A stated warning on stderr, one line."""
    print(f"erts: warning: {message}", file=sys.stderr)
