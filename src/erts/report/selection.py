"""Reading a run's selection logs: what was kept, what was dropped, and of which class.

The training loop writes one ``selection/epoch_XXX.npz`` per trained epoch and a
``train_records.csv`` with each training record's label and, where the dataset
has it, ground truth about label noise. Joining the two answers the questions a
user asks of data dropout: which classes lose samples, and does the focus filter
remove the corrupted records rather than the clean ones.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

SELECTION_ARRAYS = ("index", "p", "focus", "pdd_keep", "erts_keep", "updated")
_EPOCH_FILE = re.compile(r"epoch_(\d+)\.npz$")


def load_selection_log(run_dir: str | Path) -> pd.DataFrame:
    """All epochs' selection arrays as one frame: epoch, index, p, focus, pdd_keep, erts_keep, updated.

    Empty frame (same columns) when the run has no selection folder.
    """
    folder = Path(run_dir) / "selection"
    frames = []
    for path in sorted(folder.glob("epoch_*.npz")):
        m = _EPOCH_FILE.search(path.name)
        if not m:
            continue
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in SELECTION_ARRAYS if k not in z.files]
            if missing:
                raise ValueError(f"{path}: selection log lacks arrays {missing}")
            cols = {k: z[k] for k in SELECTION_ARRAYS}
        n = len(cols["index"])
        bad = [k for k, v in cols.items() if len(v) != n]
        if bad:
            raise ValueError(f"{path}: arrays {bad} do not have {n} rows like 'index'")
        frames.append(pd.DataFrame({"epoch": np.full(n, int(m.group(1))), **cols}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             [("epoch", int), ("index", np.int64), ("p", np.float32), ("focus", np.float32),
                              ("pdd_keep", bool), ("erts_keep", bool), ("updated", bool)]})
    return pd.concat(frames, ignore_index=True)


def load_train_records(run_dir: str | Path) -> pd.DataFrame:
    """train_records.csv (index, record_id, label, ground-truth columns), indexed by ``index``."""
    path = Path(run_dir) / "train_records.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; the run folder was not written by erts train")
    df = pd.read_csv(path, dtype={"record_id": str, "label": str}, keep_default_na=False, na_values=[""])
    for col in ("index", "record_id", "label"):
        if col not in df.columns:
            raise ValueError(f"{path}: column {col!r} is missing")
    return df.set_index("index", drop=False)


def ground_truth(records: pd.DataFrame) -> pd.Series | None:
    """Per-record noise ground truth as text groups ('clean' for untouched records), or None.

    synthetic: the ``corruption`` column (none -> clean, label_flip, noise, ambiguous);
    cinc2017: ``label_changed`` (label changed between releases -> 'label changed').
    """
    if "corruption" in records.columns:
        return records["corruption"].fillna("none").astype(str).replace({"none": "clean"})
    if "label_changed" in records.columns:
        changed = records["label_changed"].astype(str).str.lower().isin(["true", "1"])
        return changed.map({True: "label changed", False: "clean"})
    return None


def with_records(sel: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Selection rows joined with label (one row per label for multi-label) and ground truth."""
    unknown = np.setdiff1d(sel["index"].unique(), records.index.to_numpy())
    if len(unknown):
        raise ValueError(f"selection log rows {unknown[:5].tolist()} are not in train_records.csv")
    out = sel.copy()
    out["record_id"] = records.loc[sel["index"], "record_id"].to_numpy()
    out["label"] = records.loc[sel["index"], "label"].to_numpy()
    gt = ground_truth(records)
    if gt is not None:
        out["truth"] = gt.loc[sel["index"]].to_numpy()
    out["label"] = out["label"].str.split(";")
    return out.explode("label", ignore_index=True)


def drop_rates(sel: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Per epoch and class: n seen, PDD drop rate, focus-filter drop rate.

    pdd_drop = share of the class's samples seen that epoch that the PDD rule
    removed; focus_drop = share of the PDD-kept samples the focus filter then
    removed (NaN when the class had no PDD-kept sample that epoch).
    """
    j = with_records(sel, records)
    j["pdd_drop"] = ~j["pdd_keep"]
    j["focus_drop"] = np.where(j["pdd_keep"], ~j["erts_keep"], np.nan)
    g = j.groupby(["epoch", "label"], sort=True)
    return pd.DataFrame({"n": g.size(), "pdd_drop": g["pdd_drop"].mean(),
                         "focus_drop": g["focus_drop"].mean()}).reset_index()


def focus_candidates(sel: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Rows that got a focus score (the focus filter's candidates), with label and ground truth."""
    return with_records(sel[~np.isnan(sel["focus"].to_numpy(dtype=float))], records)


def filter_by_truth(cand: pd.DataFrame) -> pd.DataFrame:
    """Per ground-truth group: candidates, mean focus, share removed by the focus filter.

    The number that says whether ERTS does what it claims: it should remove a
    larger share of the corrupted records than of the clean ones.
    """
    if "truth" not in cand.columns or cand.empty:
        return pd.DataFrame(columns=["truth", "candidates", "mean_focus", "filter_drop"])
    c = cand.drop_duplicates(["epoch", "index"])  # multi-label explode must not count a record twice
    g = c.groupby("truth")
    return pd.DataFrame({"candidates": g.size(), "mean_focus": g["focus"].mean(),
                         "filter_drop": 1 - g["erts_keep"].mean()}).reset_index()


def kept_fraction(log: pd.DataFrame) -> pd.Series:
    """kept_frac per epoch from a run's log.csv (samples back-propagated / training samples)."""
    return log.set_index("epoch")["kept_frac"]
