"""The record set: the one in-memory shape every dataset loader returns.

Why one shape: the training loop, the selection rules and the reports never need
to know which dataset they are looking at. Signals may be a read-only
``np.memmap`` (cached datasets); nothing here copies them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "val", "test")
EXCLUDED = "excluded"  # a training record set aside by a list (exclude_records=): in no split, row kept


def names_text(names) -> str:
    """Class (or lead) names as one comma-separated text, a name that holds a comma, a semicolon
    or a double quote written in double quotes (as in a wfdb-folder label field), so
    ``AV block, 1st degree`` reads as one name, not two."""
    return ", ".join(f'"{n}"' if any(c in str(n) for c in ',;"') else str(n) for n in names)


def _no_meta() -> "pd.DataFrame":
    """An empty metadata table (pandas imported here, so `erts train --keys` need not import it)."""
    import pandas as pd

    return pd.DataFrame()


@dataclass
class RecordSet:
    """A dataset split into train/val/test.

    signals:    (N, leads, T) float32, possibly memory-mapped.
    labels:     (N,) int64 class index (single-label) or (N, C) float32 multi-hot.
    split:      (N,) str array with values in SPLITS, or EXCLUDED (set aside, erts.data.exclude).
    record_ids: (N,) str array, unique, the names users see in reports.
    meta:       per-record metadata (N rows, same order). Never fed to the model;
                it holds things like ground-truth corruption flags or patient ids.
    """

    name: str
    signals: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    record_ids: np.ndarray
    class_names: list[str]
    fs: float
    lead_names: list[str]
    multilabel: bool = False
    meta: pd.DataFrame = field(default_factory=_no_meta)
    # records rejected while loading: list of (record_id, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # where the prepared arrays and the split CSV live, and whether they were built now (set by the cache)
    cache_path: Path | None = None
    split_path: Path | None = None
    fresh: bool = False

    def __post_init__(self) -> None:
        n = len(self.signals)
        if self.signals.ndim != 3:
            raise ValueError(f"{self.name}: signals must be (N, leads, T), got shape {self.signals.shape}")
        for attr in ("labels", "split", "record_ids"):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"{self.name}: {attr} has {len(getattr(self, attr))} rows, signals have {n}")
        if len(self.meta) not in (0, n):
            raise ValueError(f"{self.name}: meta has {len(self.meta)} rows, signals have {n}")
        bad = set(np.unique(self.split)) - {*SPLITS, EXCLUDED}
        if bad:
            raise ValueError(f"{self.name}: unknown split values {sorted(bad)}; expected {SPLITS} or {EXCLUDED!r}")
        if self.multilabel and self.labels.ndim != 2:
            raise ValueError(f"{self.name}: multi-label sets need (N, C) multi-hot labels")
        if not self.multilabel and self.labels.ndim != 1:
            raise ValueError(f"{self.name}: single-label sets need (N,) class indices")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_leads(self) -> int:
        return int(self.signals.shape[1])

    @property
    def length(self) -> int:
        return int(self.signals.shape[2])

    @cached_property
    def signal_lengths(self) -> np.ndarray:
        """(N,) samples of real signal in each prepared record (see ``signal_lengths``)."""
        return signal_lengths(self.signals)

    def indices(self, split: str) -> np.ndarray:
        """Row indices of one split (or of the EXCLUDED records), in stored order."""
        if split not in SPLITS and split != EXCLUDED:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return np.flatnonzero(self.split == split)

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        """Records per class (multi-label: records carrying each label)."""
        idx = np.arange(len(self.labels)) if split is None else self.indices(split)
        lab = self.labels[idx]
        counts = lab.sum(0) if self.multilabel else np.bincount(lab, minlength=self.num_classes)
        return {c: int(k) for c, k in zip(self.class_names, counts)}

    def summary(self) -> pd.DataFrame:
        """Record and class counts per split (rows: splits, and the excluded records when a list set
        some aside; columns: classes + total)."""
        import pandas as pd

        shown = SPLITS + ((EXCLUDED,) if len(self.indices(EXCLUDED)) else ())
        rows = {s: {**self.class_counts(s), "total": len(self.indices(s))} for s in shown}
        return pd.DataFrame(rows).T


def signal_lengths(signals: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Samples of real signal in each (leads, T) record: up to its last sample that is non-zero in
    any lead. Why: loaders pad a short record with exact zeros at its end (``crop_or_pad``), and
    a window cut from that padding shows the model silence; windows are cut inside this length.
    A record whose real signal ends in exact zeros in every lead loses that flat tail, which
    carries nothing either. Read in chunks, so a memory-mapped cache is never loaded whole."""
    out = np.zeros(len(signals), dtype=np.int64)
    for start in range(0, len(signals), chunk):
        nonzero = (np.asarray(signals[start:start + chunk]) != 0).any(axis=1)  # (n, T)
        last = nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)  # one past the last non-zero sample
        out[start:start + chunk] = np.where(nonzero.any(axis=1), last, 0)
    return out
