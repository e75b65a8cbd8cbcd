"""Label noise injected at a known rate into the training split of a real dataset (``label_noise=``).

Why: whether a selection rule skips wrong labels can only be measured where the wrong
labels are known. The synthetic set corrupts records on purpose; for a real dataset this
flips a seeded, exact share of the *training* labels and records which, so a benchmark can
count how often each filter drops the flipped records against the others. Validation and
test keep their labels: a model is selected and judged on clean labels.

- ``symmetric``: round(rate x n_train) training records drawn at random, each given a class
  drawn uniformly from the other classes;
- ``pair``: for each of the two ``label_noise_classes``, round(rate x its training records)
  drawn at random and given the other class (class-dependent noise, e.g. N <-> O on CinC 2017).

Applied after the dataset cache is read (the cache holds the dataset's own labels), so one
cache serves every noise setting. ``meta`` gets ``noise_flipped`` (bool) and ``label_clean``
(the class name before flipping): ground truth for reports, never model input.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from erts.data.records import RecordSet
from erts.errors import DataError


def flip_symmetric(labels: np.ndarray, ids: np.ndarray, num_classes: int, rate: float,
                   rng: np.random.Generator) -> np.ndarray:
    """``labels`` with round(rate x len(ids)) of ``ids`` given a uniformly drawn other class."""
    out = labels.copy()
    chosen = rng.permutation(ids)[:int(round(rate * len(ids)))]
    shift = rng.integers(1, num_classes, size=len(chosen))  # 1..K-1: never the record's own class
    out[chosen] = (labels[chosen] + shift) % num_classes
    return out


def flip_pair(labels: np.ndarray, ids: np.ndarray, a: int, b: int, rate: float,
              rng: np.random.Generator) -> np.ndarray:
    """``labels`` with round(rate x n) of the ``ids`` of class ``a`` relabelled ``b``, and of ``b`` ``a``."""
    out = labels.copy()
    for src, dst in ((a, b), (b, a)):
        members = ids[labels[ids] == src]
        out[rng.permutation(members)[:int(round(rate * len(members)))]] = dst
    return out


def apply_label_noise(rs: RecordSet, cfg) -> RecordSet:
    """The record set with ``cfg.label_noise`` applied to its training split (``rs`` itself for none)."""
    kind = getattr(cfg, "label_noise", "none")
    if kind == "none":
        return rs
    if rs.multilabel:
        raise DataError(f"{rs.name}: label_noise={kind} is for single-label datasets")
    train = rs.indices("train")
    rng = np.random.default_rng([int(cfg.label_noise_seed), 24])
    labels = np.asarray(rs.labels, dtype=np.int64)
    if kind == "symmetric":
        noisy = flip_symmetric(labels, train, rs.num_classes, cfg.label_noise_rate, rng)
    else:
        unknown = [c for c in cfg.label_noise_classes if c not in rs.class_names]
        if unknown:
            raise DataError(f"{rs.name}: label_noise_classes={cfg.label_noise_classes}: no class {unknown[0]!r}; "
                            f"classes: {', '.join(rs.class_names)}")
        a, b = (rs.class_names.index(c) for c in cfg.label_noise_classes)
        noisy = flip_pair(labels, train, a, b, cfg.label_noise_rate, rng)
    meta = rs.meta.copy() if len(rs.meta) else pd.DataFrame(index=range(len(labels)))
    meta["noise_flipped"] = noisy != labels
    meta["label_clean"] = np.asarray(rs.class_names)[labels]
    return dataclasses.replace(rs, labels=noisy, meta=meta)
