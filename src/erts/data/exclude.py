"""Training records set aside by a list (``exclude_records=``): train again without the suspects.

Why: `erts audit` ranks the training records whose label is most likely wrong, and the usual next
step (confident learning's pruning) is to train again without the worst of them. A list only ever
takes records out of the *training* split: validation and test stay as they are, so the run is
judged on the same records as a run without one. The records keep their rows (split ``excluded``),
so row indices in train_records.csv and the selection logs match those of runs on the whole split.

Nothing is dropped silently: a listed record the dataset does not have is an error (a list made
for another dataset, or a typo), one in validation or test is named in a warning and stays.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from erts.data.records import EXCLUDED, RecordSet, names_text
from erts.errors import DataError, warn

# the columns that make a CSV an `erts audit` ranking (audit.csv): its ranking (`--rank-by`, since
# 2026-12-06), and the combined score's rank, the only one in audit.csv files written before
AUDIT_RANKS = ("rank", "combined_rank")


def read_exclusion_list(path: str | Path, top: int | None = None) -> list[str]:
    """The record ids of the list, in its order (an audit.csv: by its ``rank``), its first ``top`` only if given."""
    df = pd.read_csv(path, dtype={"record_id": str})
    if "record_id" not in df.columns:
        raise DataError(f"exclude_records={path}: no record_id column (columns: {', '.join(map(str, df.columns))})")
    rank = next((c for c in AUDIT_RANKS if c in df.columns), None)
    if rank is not None:
        if top is None:
            raise DataError(f"exclude_records={path} is an `erts audit` ranking of all {len(df)} training records; "
                            "say how many of its most suspicious to set aside with exclude_top=N")
        df = df.sort_values(rank, kind="stable")
    if top is not None:
        if top > len(df):
            raise DataError(f"exclude_top={top}: {path} lists only {len(df)} records")
        df = df.iloc[:top]
    ids = df["record_id"].astype(str).str.strip()
    return list(dict.fromkeys(ids))  # once each, in order


def apply_exclusions(rs: RecordSet, cfg) -> RecordSet:
    """The record set with the listed training records set aside (``rs`` itself without a list)."""
    path = getattr(cfg, "exclude_records", None)
    if not path:
        return rs
    ids = read_exclusion_list(path, getattr(cfg, "exclude_top", None))
    row_of = {r: i for i, r in enumerate(rs.record_ids.astype(str))}
    rejected = {r for r, _ in rs.skipped}  # bad records the loader left out: already not trained on
    unknown = [r for r in ids if r not in row_of and r not in rejected]
    if unknown:
        raise DataError(f"exclude_records={path}: {len(unknown)} listed record(s) are not in {rs.name}: "
                        f"{names_text(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
    rows = np.array([row_of[r] for r in ids if r in row_of], dtype=np.int64)
    elsewhere = rows[rs.split[rows] != "train"]
    if len(elsewhere):
        warn(f"exclude_records={path}: {len(elsewhere)} listed record(s) are in the validation or test split and "
             f"stay there (a list never changes what a run is judged on): "
             f"{names_text(rs.record_ids[elsewhere[:10]])}{' ...' if len(elsewhere) > 10 else ''}")
    rows = rows[rs.split[rows] == "train"]
    split = rs.split.astype(f"U{max(rs.split.dtype.itemsize // 4, len(EXCLUDED))}")
    split[rows] = EXCLUDED
    out = dataclasses.replace(rs, split=split)
    emptied = [c for c, n in rs.class_counts("train").items() if n and not out.class_counts("train")[c]]
    if emptied:
        raise DataError(f"exclude_records={path}: no training record of {names_text(emptied)} would be left; "
                        "a model cannot learn a class it never sees (list fewer records)")
    return out


def set_aside_text(rs: RecordSet) -> str | None:
    """'1565 training records set aside: N 559 of 3171 (18%), ...' (per class, of the training records before
    the list), or None when nothing is. Why: pruning by a ranking can take a rare class's genuine hard
    records (CinC 2017, pair20: the audit's combined top took 49 % of the A records), and a run says so."""
    aside, kept = rs.class_counts(EXCLUDED), rs.class_counts("train")
    n = len(rs.indices(EXCLUDED))
    if not n:
        return None
    parts = [f"{c} {aside[c]} of {aside[c] + kept[c]} ({aside[c] / (aside[c] + kept[c]):.0%})"
             for c in rs.class_names if aside[c] + kept[c]]
    return f"{n} training records set aside (exclude_records=), by label: {', '.join(parts)}"
