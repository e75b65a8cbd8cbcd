"""Datasets: every loader returns a RecordSet (see records.py).

Loaders are registered by name and imported lazily, so `erts data list` and the
built-in dataset never pay for wfdb/scipy imports they do not use.
"""
from __future__ import annotations

import importlib

from erts.data.records import SPLITS, RecordSet

# name -> ("module:function", one-line description). Each function takes a DataConfig.
DATASETS: dict[str, tuple[str, str]] = {
    "synthetic": ("erts.data.synthetic:load", "built-in synthetic 12-lead ECG, 5 PTB-XL-like superclasses, with corrupted records"),
    "ptbxl": ("erts.data.ptbxl:load", "PTB-XL (PhysioNet): 12-lead, 100/500 Hz, official folds, SCP-code tasks"),
    "cpsc2018": ("erts.data.challenge:load_cpsc2018", "CPSC 2018 in the PhysioNet/CinC Challenge 2020/21 layout (.hea + .mat)"),
    "georgia": ("erts.data.challenge:load_georgia", "Georgia 12-lead in the PhysioNet/CinC Challenge 2020/21 layout (.hea + .mat)"),
    "cinc2017": ("erts.data.cinc2017:load", "PhysioNet/CinC Challenge 2017 AF classification (training2017.zip or folder)"),
    "mitbih": ("erts.data.mitbih:load", "MIT-BIH Arrhythmia beats, AAMI classes, inter-patient DS1/DS2 split"),
    "wfdb-folder": ("erts.data.wfdb_folder:load", "your own folder of WFDB records plus a labels CSV"),
}


def list_datasets() -> dict[str, str]:
    return {name: desc for name, (_, desc) in DATASETS.items()}


def load_dataset(cfg) -> RecordSet:
    """Loads (from cache when possible) the dataset named by ``cfg.dataset``.

    An unknown name is a ConfigError; a root or data that cannot be used is a DataError
    (erts.errors), a missing file a FileNotFoundError, each naming the path and the reason.
    A training window (``crop_s``) longer than the prepared records is a stated warning:
    training then uses the whole records.
    """
    if cfg.dataset not in DATASETS:
        from erts.config import ConfigError

        raise ConfigError(f"dataset={cfg.dataset!r} is not accepted; available: {', '.join(DATASETS)}")
    module, func = DATASETS[cfg.dataset][0].split(":")
    rs = getattr(importlib.import_module(module), func)(cfg)
    crop_s = getattr(cfg, "crop_s", None)
    if crop_s and int(round(crop_s * rs.fs)) > rs.length:
        from erts.errors import warn

        warn(f"crop_s={crop_s:g} s is longer than the prepared {rs.name} records ({rs.length / rs.fs:g} s); "
             f"training uses the whole records (set crop_s <= {rs.length / rs.fs:g} or a longer length_s)")
    return rs


__all__ = ["DATASETS", "SPLITS", "RecordSet", "list_datasets", "load_dataset"]
