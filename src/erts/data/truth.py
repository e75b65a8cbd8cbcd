"""Which training records are known to be wrong, from the columns a dataset carries.

Why here: ground truth is a property of the records (the synthetic set's corruptions, CinC
2017's labels that changed between releases, labels flipped by ``label_noise=``), and both the
reports and the audit read it; neither should import the other to find it.
"""
from __future__ import annotations

import pandas as pd


def as_bool(column: pd.Series) -> pd.Series:
    """A boolean column, also when it was read back from CSV as text or numbers ('True', '1', '1.0')."""
    if column.dtype == bool:
        return column
    return column.astype(str).str.strip().str.lower().isin(["true", "1", "1.0"])


def ground_truth(records: pd.DataFrame) -> pd.Series | None:
    """Per-record ground truth as text groups ('clean' for untouched records), or None.

    Labels flipped on purpose (``noise_flipped``, from ``label_noise=``) come first: they are
    the labels the run trained on, whatever else the dataset carries;
    synthetic: the ``corruption`` column (none -> clean, label_flip, noise, ambiguous);
    cinc2017: ``label_changed`` (label changed between releases -> 'label changed').
    """
    if "noise_flipped" in records.columns:
        return as_bool(records["noise_flipped"]).map({True: "label flipped", False: "clean"})
    if "corruption" in records.columns:
        return records["corruption"].fillna("none").astype(str).replace({"none": "clean"})
    if "label_changed" in records.columns:
        return as_bool(records["label_changed"]).map({True: "label changed", False: "clean"})
    return None


def truth_description(records: pd.DataFrame) -> str:
    """What the ground truth of ``records`` means, in words for a report heading."""
    if "noise_flipped" in records.columns:
        return "label flipped on purpose (label_noise)"
    if "corruption" in records.columns:
        return "corrupted on purpose"
    return "label changed between releases"
