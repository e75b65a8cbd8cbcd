"""Atomic file writes that honour the umask: the one place run files and the dataset cache use.

Why: a process killed at any instant must leave either the old or the new version
of a file (or no cache entry), never a truncated one; and the temporary files
(``mkstemp`` makes 0600, ``mkdtemp`` 0700) must end with the permissions a plain
``open()`` would give, so others sharing a run or cache folder can read them.
This module imports nothing of erts: train/ and data/ both build on it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def current_umask() -> int:
    """The process umask, read from /proc where it can be (os.umask can only read it by setting it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Calls ``write(f)`` on a temporary file beside ``path``, syncs it, then renames it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a plain open() would honour the umask
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), "w")


def temp_dir(parent: Path, prefix: str) -> Path:
    """A new empty folder under ``parent``, to be filled and renamed into place; readable as the umask allows."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; others sharing the folder may read it
    return tmp
