"""Datasets: every loader returns a RecordSet (see records.py).

Loaders are registered by name (erts.registry, the table the config checks names
against) and imported lazily, so `erts data list` and the built-in dataset never
pay for wfdb/scipy imports they do not use.
"""
from __future__ import annotations

import importlib

from erts.data.records import SPLITS, RecordSet
from erts.errors import DataError, warn
from erts.registry import DATASETS, check_dataset


def list_datasets() -> dict[str, str]:
    return {name: desc for name, (_, desc) in DATASETS.items()}


def load_dataset(cfg, *, all_splits: bool = True) -> RecordSet:
    """Loads (from cache when possible) the dataset named by ``cfg.dataset``.

    An unknown name is a ConfigError; a root or data that cannot be used is a DataError
    (erts.errors), a missing file a FileNotFoundError, each naming the path and the reason.
    A split without records is a DataError unless ``all_splits`` is False (``erts data info``
    warns instead): training needs all three, and finding out after the training, or after
    its run folder was written, helps nobody. A training window (``crop_s``) longer than the
    prepared records is a stated warning: training then uses the whole records. ``label_noise``
    flips a seeded share of the training labels after the cache is read (erts.data.noise), and
    ``exclude_records`` sets listed training records aside after that (erts.data.exclude).
    """
    from erts.data.exclude import apply_exclusions
    from erts.data.noise import apply_label_noise

    check_dataset(cfg.dataset)
    module, func = DATASETS[cfg.dataset][0].split(":")
    rs = apply_exclusions(apply_label_noise(getattr(importlib.import_module(module), func)(cfg), cfg), cfg)
    problem = split_problem(rs)
    if all_splits and problem:
        raise DataError(problem)
    crop_s = getattr(cfg, "crop_s", None)
    if crop_s and int(round(crop_s * rs.fs)) > rs.length:
        warn(f"crop_s={crop_s:g} s is longer than the prepared {rs.name} records ({rs.length / rs.fs:g} s); "
             f"training uses the whole records (set crop_s <= {rs.length / rs.fs:g} or a longer length_s)")
    return rs


def split_problem(rs: RecordSet) -> str | None:
    """The empty splits, with the counts and what to do; None when every split has records."""
    counts = {s: len(rs.indices(s)) for s in SPLITS}
    empty = [s for s, n in counts.items() if n == 0]
    if empty:
        return (f"{rs.name}: the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty "
                f"({', '.join(f'{n} {s}' for s, n in counts.items())} records); a drawn split puts 15 % of "
                "each class (multi-label: of each record's rarest label) in val and in test, so classes "
                "with fewer than 4 records stay in train: add records, or give the split yourself "
                "(wfdb-folder: a split column in labels.csv)")
    return None


__all__ = ["DATASETS", "SPLITS", "RecordSet", "list_datasets", "load_dataset", "split_problem"]
