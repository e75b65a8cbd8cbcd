"""Train/val/test splits for datasets without official folds, written down so others can reproduce them.

Why a per-stratum shuffle rather than scikit-learn's StratifiedShuffleSplit:
it is deterministic for a seed, gives every class its share in every split,
and never fails on small sets or classes with one or two records (those stay
in train). Multi-label sets are stratified on each record's *rarest* label,
so rare labels are spread over the splits first.
"""
from __future__ import annotations

from typing import Any

import numpy as np


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


def preprocess_key(cfg) -> dict[str, Any]:
    """Every DataConfig setting that changes prepared arrays (for cache keys); training crops (crop, crop_s) are cut at train time."""
    keys = ("fs", "length_s", "length_from", "bandpass", "standardize", "nan_policy", "bad_records", "split_seed")
    key = {k: getattr(cfg, k) for k in keys}
    key["standardize"] = cfg.standardize == "record"  # train and none cache the same arrays (as the bool once did)
    return key


