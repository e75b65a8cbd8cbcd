"""On-disk cache of prepared record sets: memory-mapped arrays under a content key.

Why: decoding thousands of WFDB/MAT files (or synthesising signals) takes
minutes; loading ``.npy`` files with ``mmap_mode='r'`` takes milliseconds and
never copies the signals into RAM. Entries are written to a temporary folder and
renamed into place, so a killed preparation never leaves a half-written cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from erts.data.records import RecordSet
from erts.errors import DataError
from erts.fileio import temp_dir, write_text

CACHE_VERSION = 1
ENTRY_RE = re.compile(r"^(?P<name>.+)-(?P<key>[0-9a-f]{16})(?P<tmp>\.tmp-.+)?$")  # <name>-<key>[.tmp-XXXX]


def default_cache_dir(cache_dir: str | None = None) -> Path:
    return Path(cache_dir or os.environ.get("ERTS_CACHE") or Path.home() / ".cache" / "erts").expanduser()


def cache_key(parts: dict[str, Any]) -> str:
    """A short stable hash of everything the prepared arrays depend on."""
    blob = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def files_fingerprint(paths: list[Path]) -> list[tuple[str, int, int]]:
    """Name, size and mtime of source files: cheap, and changes when a file is replaced."""
    out = []
    for p in sorted(paths):
        st = p.stat()
        out.append((p.name, st.st_size, int(st.st_mtime)))
    return out


def save_recordset(rs: RecordSet, folder: Path) -> None:
    """Writes ``rs`` atomically into ``folder`` (replacing nothing that exists)."""
    tmp = temp_dir(folder.parent, prefix=folder.name + ".tmp-")
    try:
        np.save(tmp / "signals.npy", np.ascontiguousarray(rs.signals, dtype=np.float32))
        np.save(tmp / "labels.npy", np.asarray(rs.labels))
        np.save(tmp / "split.npy", np.asarray(rs.split).astype("U5"))
        np.save(tmp / "record_ids.npy", np.asarray(rs.record_ids).astype(str))
        rs.meta.to_csv(tmp / "meta.csv", index=False)
        info = {
            "name": rs.name,
            "class_names": list(rs.class_names),
            "fs": float(rs.fs),
            "lead_names": list(rs.lead_names),
            "multilabel": bool(rs.multilabel),
            "skipped": [list(s) for s in rs.skipped],
            "meta_rows": len(rs.meta),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=1))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "info.json").exists():  # lost a race with nobody: surface the real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same entry first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_recordset(folder: Path) -> RecordSet:
    info = json.loads((folder / "info.json").read_text())
    meta = pd.read_csv(folder / "meta.csv") if info.get("meta_rows", 0) else pd.DataFrame()
    return RecordSet(
        name=info["name"],
        signals=np.load(folder / "signals.npy", mmap_mode="r"),
        labels=np.load(folder / "labels.npy"),
        split=np.load(folder / "split.npy"),
        record_ids=np.load(folder / "record_ids.npy"),
        class_names=info["class_names"],
        fs=info["fs"],
        lead_names=info["lead_names"],
        multilabel=info["multilabel"],
        meta=meta,
        skipped=[tuple(s) for s in info["skipped"]],
    )


def entry_path(name: str, key_parts: dict[str, Any], cache_dir: str | None = None) -> Path:
    """The cache folder of one prepared record set."""
    return default_cache_dir(cache_dir) / f"{name}-{cache_key(key_parts)}"


def write_split_file(path: str | Path, record_ids: np.ndarray, split: np.ndarray) -> Path:
    """Writes the split as CSV (columns ``record``, ``split``) so a run can be reproduced elsewhere."""
    path = Path(path)
    df = pd.DataFrame({"record": np.asarray(record_ids).astype(str), "split": np.asarray(split).astype(str)})
    write_text(path, df.to_csv(index=False))
    return path


def cached(name: str, key_parts: dict[str, Any], build: Callable[[], RecordSet],
           cache_dir: str | None = None) -> RecordSet:
    """Returns the cached record set for ``key_parts``, building and saving it on a miss.

    The split is also written as ``<entry>.split.csv`` so others can reproduce it.
    The returned set carries ``cache_path``, ``split_path`` and ``fresh`` (built now).
    """
    folder = entry_path(name, key_parts, cache_dir)
    fresh = not (folder / "info.json").exists()
    if not fresh and _rows(folder / "record_ids.npy") == 0:
        shutil.rmtree(folder, ignore_errors=True)  # an empty entry left by an older erts: rebuild (and fail) now
        fresh = True
    if fresh:
        rs = build()
        if len(rs.record_ids) == 0:
            first = "; ".join(f"{rid}: {why}" for rid, why in rs.skipped[:3])
            raise DataError(f"{name}: no usable records ({len(rs.skipped)} skipped{', first: ' + first if first else ''})")
        save_recordset(rs, folder)
    else:
        _touch(folder)
    rs = load_recordset(folder)
    split_path = folder.with_name(folder.name + ".split.csv")
    if not split_path.exists():
        write_split_file(split_path, rs.record_ids, rs.split)
    rs.cache_path, rs.split_path, rs.fresh = folder, split_path, fresh
    return rs


def _rows(npy: Path) -> int:
    """Rows of a saved array, read from its header alone."""
    with open(npy, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read(f)
    return int(shape[0]) if shape else 0


def _touch(folder: Path) -> None:
    """Marks an entry as used now (its age for ``erts data cache --remove-older-than``)."""
    try:
        os.utime(folder / "info.json")
    except OSError:
        pass  # a read-only shared cache still works


# --------------------------------------------------------------------------- erts data cache

@dataclass
class Entry:
    """One cache entry: the prepared folder (or a leftover temporary one) and its split file."""

    path: Path
    name: str
    size: int       # bytes, folder and split file together
    last_used: float  # seconds since the epoch (info.json's mtime: written when built, touched when loaded)
    complete: bool  # False: a preparation that was killed (a .tmp- folder) or an entry without info.json
    records: int | None = None

    @property
    def age_days(self) -> float:
        return max(0.0, (time.time() - self.last_used) / 86400)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def list_entries(cache_dir: str | Path | None = None) -> list[Entry]:
    """The prepared record sets under the cache folder, oldest use first (other files there are left alone)."""
    root = default_cache_dir(str(cache_dir) if cache_dir else None)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        m = ENTRY_RE.match(p.name)
        if not p.is_dir() or not m:
            continue
        info = p / "info.json"
        complete = info.exists() and not m["tmp"]
        split = p.with_name(p.name + ".split.csv")
        records = None
        if complete:
            try:
                records = _rows(p / "record_ids.npy")
            except (OSError, ValueError):
                complete = False
        last = (info if info.exists() else p).stat().st_mtime
        out.append(Entry(path=p, name=m["name"], size=_size(p) + (_size(split) if split.exists() else 0),
                         last_used=last, complete=complete, records=records))
    return sorted(out, key=lambda e: e.last_used)


def remove_entry(entry: Entry) -> None:
    """Deletes an entry's folder and split file (a reader holding its memory maps keeps its data)."""
    shutil.rmtree(entry.path, ignore_errors=True)
    entry.path.with_name(entry.path.name + ".split.csv").unlink(missing_ok=True)
