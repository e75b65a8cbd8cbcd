"""Run-directory files, all written atomically (erts.fileio: temp file in the same folder + os.replace).

Why: a run killed at any instant must leave either the old or the new version of
every file, never a truncated one, so ``--resume`` and reports can trust them.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from erts.fileio import atomic_write, current_umask, write_text  # noqa: F401 (current_umask, write_text re-exported)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default))


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def save_checkpoint(path: Path, state: dict) -> None:
    import torch  # lazily: the sweep driver writes tables with this module and never needs torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Weights-only load: tensors and plain containers, never pickled code."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rewrites the whole table (small: one row per epoch or per run)."""
    if not rows:
        return
    columns = list(rows[0])
    for r in rows[1:]:
        columns += [c for c in r if c not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- provenance ---------------------------------------------------------------------------

RUN_JSON = "run.json"


def _git(src: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(src: str | Path | None = None) -> str | None:
    """The commit of the git checkout erts runs from (``src``: the package folder), with ``+dirty``
    when tracked files have uncommitted changes; None when erts is not run from a checkout (an
    installed copy, even one inside some repository's folder, is not: its files are not tracked)."""
    if src is None:
        import erts

        src = Path(erts.__file__).resolve().parent
    src = Path(src)
    if not _git(src, "ls-files", "--", "__init__.py"):  # the package's own files are tracked here
        return None
    commit = _git(src, "rev-parse", "HEAD")
    if not commit:
        return None
    dirty = _git(src, "status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """What made a run or a report: erts version, git commit (None outside a checkout), the command
    line (sys.argv), Python version, and when (local time, ISO 8601)."""
    from erts import __version__

    return {"erts_version": __version__, "git_commit": git_commit(),
            "command": list(sys.argv if argv is None else argv),
            "python": sys.version.split()[0], "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def record_start(run_dir: Path, resumed: bool = False, world_size: int = 1) -> dict[str, Any]:
    """Writes (atomically) run.json: the provenance of the process that started the run, and one entry
    per ``--resume`` after it (``resumes``), each with its number of processes (torchrun's world
    size). Returns its content."""
    path = run_dir / RUN_JSON
    me = {**provenance(), "world_size": world_size}
    try:
        old = json.loads(path.read_text()) if resumed and path.exists() else None
    except (OSError, ValueError):
        old = None
    if old is None:
        info = {**me, "resumes": []} if not resumed else {"resumes": [me]}
    else:
        info = {**old, "resumes": [*old.get("resumes", []), me]}
    write_json(path, info)
    return info


def read_provenance(run_dir: Path) -> dict[str, Any] | None:
    """run.json of a run folder, else the provenance block of its metrics.json; None for runs older than both."""
    for name, key in ((RUN_JSON, None), ("metrics.json", "provenance")):
        try:
            d = json.loads((Path(run_dir) / name).read_text())
        except (OSError, ValueError):
            continue
        d = d.get(key) if key else d
        if isinstance(d, dict):
            return d
    return None
