"""Train/val/test splits for datasets without official folds, written down so others can reproduce them.

Why a per-stratum shuffle rather than scikit-learn's StratifiedShuffleSplit:
it is deterministic for a seed, gives every class its share in every split,
and never fails on small sets or classes with one or two records (those stay
in train). Multi-label sets are stratified on each record's *rarest* label,
so rare labels are spread over the splits first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from erts.data.cache import cache_key, cached, default_cache_dir
from erts.data.records import SPLITS, RecordSet


def strata_of(labels: np.ndarray) -> np.ndarray:
    """One stratum per record: the label itself, or (multi-hot) the record's rarest label (-1: none)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels
    freq = labels.sum(0)
    masked = np.where(labels > 0, freq[None, :], np.inf)
    return np.where(np.isfinite(masked.min(1)), masked.argmin(1), -1)


def stratified_split(labels: np.ndarray, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> np.ndarray:
    """Assigns each record to "train"/"val"/"test", stratified by class, deterministic for ``seed``.

    ``labels``: (N,) class ids or names, or (N, C) multi-hot. Within each
    stratum the records are shuffled and cut at round(n*val) and round(n*test)
    records for val and test; the rest is train.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or (f < 0).any() or f.sum() <= 0:
        raise ValueError(f"fractions={fractions} must be three non-negative numbers (train, val, test)")
    f = f / f.sum()
    strata = strata_of(labels)
    rng = np.random.default_rng(seed)
    out = np.full(len(strata), "train", dtype="U5")
    for s in np.unique(strata):  # sorted, so the rng is consumed in a fixed order
        members = rng.permutation(np.flatnonzero(strata == s))
        n_val, n_test = int(round(len(members) * f[1])), int(round(len(members) * f[2]))
        out[members[:n_val]] = "val"
        out[members[n_val:n_val + n_test]] = "test"
    return out


def write_split_file(path: str | Path, record_ids: np.ndarray, split: np.ndarray) -> Path:
    """Writes the split as CSV (columns ``record``, ``split``) so a run can be reproduced elsewhere."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"record": np.asarray(record_ids).astype(str), "split": np.asarray(split).astype(str)}).to_csv(path, index=False)
    return path


def read_split_file(path: str | Path) -> dict[str, str]:
    """record -> split, from a file written by ``write_split_file`` (values checked)."""
    df = pd.read_csv(path, dtype=str)
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise ValueError(f"{path}: unknown split values {bad}; expected {SPLITS}")
    return dict(zip(df["record"], df["split"]))


def preprocess_key(cfg) -> dict[str, Any]:
    """Every DataConfig setting that changes prepared arrays (for cache keys); crop is applied at train time."""
    return {k: getattr(cfg, k) for k in ("fs", "length_s", "bandpass", "standardize", "nan_policy", "bad_records", "split_seed")}


def cached_with_split(name: str, key_parts: dict[str, Any], build: Callable[[], RecordSet],
                      cache_dir: str | None = None) -> RecordSet:
    """``erts.data.cache.cached`` plus the split CSV next to the entry.

    Sets three attributes on the returned set that the CLI prints:
    ``cache_path`` (the entry folder), ``split_path`` (``<entry>.split.csv``)
    and ``fresh`` (True when it was built now, False on a cache hit).
    """
    built: list[bool] = []

    def build_once() -> RecordSet:
        built.append(True)
        return build()

    rs = cached(name, key_parts, build_once, cache_dir)
    folder = default_cache_dir(cache_dir) / f"{name}-{cache_key(key_parts)}"
    split_path = folder.with_name(folder.name + ".split.csv")
    if not split_path.exists():
        write_split_file(split_path, rs.record_ids, rs.split)
    rs.cache_path = folder
    rs.split_path = split_path
    rs.fresh = bool(built)
    return rs
