"""The dataset names and where each one's loader lives, as plain data.

Why at the bottom: the config checks a dataset name (and ``erts train --keys``
lists them) without importing the data package; ``erts.data`` reads the same
table to import one loader lazily. The loaders are named by string, never
imported here.
"""
from __future__ import annotations

from erts.errors import ConfigError

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


def check_dataset(name: str) -> None:
    """A ConfigError naming the accepted datasets unless ``name`` is one."""
    if name not in DATASETS:
        raise ConfigError(f"dataset={name!r} is not accepted; available: {', '.join(DATASETS)}")
