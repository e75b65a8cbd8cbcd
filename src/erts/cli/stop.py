"""SIGTERM raised like Ctrl-C, so a command stopped by a scheduler or `kill` cleans up as after Ctrl-C.

Why: Python's default SIGTERM ends the process at once, with no ``finally`` and no
``except``: a half-written cache entry (``<entry>.tmp-*``) stays behind and the user
is told nothing. Raised as an exception, the writers remove their temporary files
and the command line says in one line that it stopped (exit 143).
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(BaseException):
    """SIGTERM (a scheduler's or `kill`'s stop), raised in the main thread like Ctrl-C's KeyboardInterrupt."""


def raise_terminated(signum, frame):
    raise Terminated()


def main_thread() -> bool:
    """Signal handlers can only be set in the main thread."""
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises Terminated (main thread only); the previous handler comes back after."""
    if not main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
