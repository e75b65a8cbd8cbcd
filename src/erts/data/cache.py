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
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from erts.data.records import RecordSet

CACHE_VERSION = 1


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
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
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
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"record": np.asarray(record_ids).astype(str), "split": np.asarray(split).astype(str)})
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def cached(name: str, key_parts: dict[str, Any], build: Callable[[], RecordSet],
           cache_dir: str | None = None) -> RecordSet:
    """Returns the cached record set for ``key_parts``, building and saving it on a miss.

    The split is also written as ``<entry>.split.csv`` so others can reproduce it.
    The returned set carries ``cache_path``, ``split_path`` and ``fresh`` (built now).
    """
    folder = entry_path(name, key_parts, cache_dir)
    fresh = not (folder / "info.json").exists()
    if fresh:
        save_recordset(build(), folder)
    rs = load_recordset(folder)
    split_path = folder.with_name(folder.name + ".split.csv")
    if not split_path.exists():
        write_split_file(split_path, rs.record_ids, rs.split)
    rs.cache_path, rs.split_path, rs.fresh = folder, split_path, fresh
    return rs
