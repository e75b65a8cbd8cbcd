"""Datasets: every loader returns a RecordSet (see records.py).

Loaders are registered by name (erts.registry, the table the config checks names
against) and imported lazily, so `erts data list` and the built-in dataset never
pay for wfdb/scipy imports they do not use.
"""
from __future__ import annotations

import importlib

from erts.data.records import SPLITS, RecordSet
from erts.registry import DATASETS, check_dataset


def list_datasets() -> dict[str, str]:
    return {name: desc for name, (_, desc) in DATASETS.items()}


def load_dataset(cfg) -> RecordSet:
    """Loads (from cache when possible) the dataset named by ``cfg.dataset``.

    An unknown name is a ConfigError; a root or data that cannot be used is a DataError
    (erts.errors), a missing file a FileNotFoundError, each naming the path and the reason.
    A training window (``crop_s``) longer than the prepared records is a stated warning:
    training then uses the whole records.
    """
    check_dataset(cfg.dataset)
    module, func = DATASETS[cfg.dataset][0].split(":")
    rs = getattr(importlib.import_module(module), func)(cfg)
    crop_s = getattr(cfg, "crop_s", None)
    if crop_s and int(round(crop_s * rs.fs)) > rs.length:
        from erts.errors import warn

        warn(f"crop_s={crop_s:g} s is longer than the prepared {rs.name} records ({rs.length / rs.fs:g} s); "
             f"training uses the whole records (set crop_s <= {rs.length / rs.fs:g} or a longer length_s)")
    return rs


__all__ = ["DATASETS", "SPLITS", "RecordSet", "list_datasets", "load_dataset"]
