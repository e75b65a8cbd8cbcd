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

from erts.data.truth import ground_truth
from erts.errors import DataError

SELECTION_ARRAYS = ("index", "p", "focus", "pdd_keep", "erts_keep", "updated")
# written by newer training loops: rescued = kept only because class rescue put it back; filter_cand = ranked
# by the focus filter (the rule's hard candidates in an ERTS epoch, whatever the reliability signal)
OPTIONAL_ARRAYS = ("rescued", "filter_cand")
_EPOCH_FILE = re.compile(r"epoch_(\d+)\.npz$")


def load_selection_log(run_dir: str | Path) -> pd.DataFrame:
    """All epochs' selection arrays as one frame: epoch, index, p, focus, pdd_keep, erts_keep, updated
    (and ``rescued`` when the logs have it; epochs written without it read False).

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
                raise DataError(f"{path}: selection log lacks arrays {missing}")
            cols = {k: z[k] for k in SELECTION_ARRAYS + tuple(k for k in OPTIONAL_ARRAYS if k in z.files)}
        n = len(cols["index"])
        bad = [k for k, v in cols.items() if len(v) != n]
        if bad:
            raise DataError(f"{path}: arrays {bad} do not have {n} rows like 'index'")
        frames.append(pd.DataFrame({"epoch": np.full(n, int(m.group(1))), **cols}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             [("epoch", int), ("index", np.int64), ("p", np.float32), ("focus", np.float32),
                              ("pdd_keep", bool), ("erts_keep", bool), ("updated", bool)]})
    out = pd.concat(frames, ignore_index=True)
    for k in OPTIONAL_ARRAYS:
        if k in out.columns:
            out[k] = out[k].astype("boolean").fillna(False).astype(bool)
    return out


def load_train_records(run_dir: str | Path) -> pd.DataFrame:
    """train_records.csv (index, record_id, label, ground-truth columns), indexed by ``index``."""
    path = Path(run_dir) / "train_records.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; the run folder was not written by erts train")
    df = pd.read_csv(path, dtype={"record_id": str, "label": str}, keep_default_na=False, na_values=[""])
    for col in ("index", "record_id", "label"):
        if col not in df.columns:
            raise DataError(f"{path}: column {col!r} is missing")
    return df.set_index("index", drop=False)


def with_records(sel: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Selection rows joined with label (one row per label for multi-label) and ground truth."""
    unknown = np.setdiff1d(sel["index"].unique(), records.index.to_numpy())
    if len(unknown):
        raise DataError(f"selection log rows {unknown[:5].tolist()} are not in train_records.csv")
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


def filter_candidates(sel: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """The reliability filter's candidates (the rows it ranked: ``filter_cand``; logs written before
    it existed: the rows with a focus score), with label and ground truth. A filter on the loss
    (``reliability=loss``) ranks its candidates without a focus score."""
    ranked = sel["filter_cand"].to_numpy(dtype=bool) if "filter_cand" in sel else ~np.isnan(sel["focus"].to_numpy(dtype=float))
    return with_records(sel[ranked], records)


def filter_by_truth(cand: pd.DataFrame) -> pd.DataFrame:
    """Per ground-truth group: candidates, mean focus, share removed by the focus filter,
    share with focus 0.

    The number that says whether ERTS does what it claims: it should remove a
    larger share of the corrupted records than of the clean ones. A focus of 0
    means the Grad-CAM map of the true class was constant (ReLU left nothing):
    no positive evidence for the label anywhere in the record.
    """
    if "truth" not in cand.columns or cand.empty:
        return pd.DataFrame(columns=["truth", "candidates", "mean_focus", "filter_drop", "zero_focus"])
    c = cand.drop_duplicates(["epoch", "index"])  # multi-label explode must not count a record twice
    c = c.assign(_zero=c["focus"].to_numpy(dtype=float) == 0)
    g = c.groupby("truth")
    return pd.DataFrame({"candidates": g.size(), "mean_focus": g["focus"].mean(),
                         "filter_drop": 1 - g["erts_keep"].mean(), "zero_focus": g["_zero"].mean()}).reset_index()


CORRUPTED = "corrupted"  # every ground-truth group but 'clean', pooled


def truth_contrast(table: pd.DataFrame) -> dict | None:
    """Corrupted (all non-clean groups pooled) against clean, from a filter_by_truth-like table
    with columns truth, candidates, dropped (count removed by the filter).

    Returns n and removed share of each side and their ratio, or None when one side is missing.
    """
    clean = table[table["truth"] == "clean"]
    bad = table[table["truth"] != "clean"]
    n_clean, n_bad = float(clean["candidates"].sum()), float(bad["candidates"].sum())
    if n_clean == 0 or n_bad == 0:
        return None
    r_clean = float(clean["dropped"].sum()) / n_clean
    r_bad = float(bad["dropped"].sum()) / n_bad
    return {"n_corrupted": int(n_bad), "n_clean": int(n_clean), "removed_corrupted": r_bad,
            "removed_clean": r_clean, "ratio": r_bad / r_clean if r_clean > 0 else (np.inf if r_bad > 0 else np.nan)}


# --- one record's history (erts explain) -------------------------------------------------

def record_status(r) -> str:
    """What happened to one record in one epoch, in words, from its selection-log row."""
    focus, p = float(r["focus"]), float(r["p"])
    rescued = bool(r.get("rescued", False)) or (bool(r["updated"]) and not bool(r["erts_keep"]))
    if not np.isfinite(p) and r["pdd_keep"] and r["erts_keep"]:
        what = "trained on (no selection this epoch)"
    elif rescued:
        what = "rescued (class rescue)"
    elif not r["pdd_keep"]:
        what = "dropped by the PDD rule"
    elif not r["erts_keep"]:
        what = "removed by the focus filter" + (" (focus 0: no positive evidence)" if focus == 0 else "")
    elif np.isfinite(focus):
        what = "kept by the focus filter"
    else:
        what = "kept by the PDD rule"
    if r["erts_keep"] and not r["updated"]:
        what += "; no update (its batch was skipped)"
    return what


def record_history(run_dir: str | Path, record_id: str) -> tuple[pd.Series, pd.DataFrame]:
    """(the record's train_records.csv row, its selection log: one row per epoch with a 'status').

    Raises KeyError when the record is not a training record of the run. Epochs
    whose log does not contain the record (none, normally) are absent. The phase
    of each epoch comes from log.csv when there is one.
    """
    run_dir = Path(run_dir)
    records = load_train_records(run_dir)
    hit = records[records["record_id"].astype(str) == str(record_id)]
    if hit.empty:
        raise KeyError(f"record {record_id!r} is not a training record of {run_dir} (train_records.csv)")
    row = hit.iloc[0]
    sel = load_selection_log(run_dir)
    h = sel[sel["index"] == int(row["index"])].sort_values("epoch").reset_index(drop=True)
    log = run_dir / "log.csv"
    if log.exists() and len(h):
        phases = pd.read_csv(log)
        if "phase" in phases.columns:
            h.insert(1, "phase", h["epoch"].map(phases.drop_duplicates("epoch", keep="last").set_index("epoch")["phase"]))
    h["status"] = [record_status(r) for _, r in h.iterrows()]
    return row, h


def truth_text(row: pd.Series) -> str:
    """Ground truth of one train_records.csv row in words ('' when the dataset has none)."""
    gt = ground_truth(pd.DataFrame([row]))
    if gt is None:
        return ""
    extra = [f"{c}={row[c]}" for c in ("true_class", "label_original", "label_current")
             if c in row.index and pd.notna(row[c]) and str(row[c]) != ""]
    return f"ground truth: {gt.iloc[0]}" + (f" ({', '.join(extra)})" if extra else "")


def history_parts(h: pd.DataFrame) -> tuple[str, str]:
    """(how often the record was updated, dropped, filtered, rescued; its focus scores), in words."""
    if h.empty:
        return "no selection-log entry for this record", ""
    n = len(h)
    parts = [f"updated in {int(h['updated'].sum())} of {n} epochs",
             f"dropped by the PDD rule in {int((~h['pdd_keep']).sum())}",
             f"removed by the focus filter in {int((h['pdd_keep'] & ~h['erts_keep']).sum())}"]
    if "rescued" in h.columns:
        parts.append(f"rescued in {int(h['rescued'].sum())}")
    f = h["focus"].to_numpy(dtype=float)
    ok = np.isfinite(f)
    if ok.any():
        last = f[ok][-1]
        focus = (f"focus scored in {int(ok.sum())} epoch{'s' if ok.sum() != 1 else ''}, mean {f[ok].mean():.2f}, last {last:.2f}"
                 + (" (no positive evidence)" if last == 0 else ""))
    else:
        focus = "never scored for focus"
    return "; ".join(parts), focus


def history_summary(h: pd.DataFrame) -> str:
    """One line: how often the record was updated, dropped, filtered, rescued; its focus scores."""
    return "; ".join(x for x in history_parts(h) if x)


def format_history(row: pd.Series, h: pd.DataFrame) -> str:
    """The text `erts explain` prints: record, label, ground truth, summary, one line per epoch."""
    head = [f"record {row['record_id']} (training record, index {row['index']}), label {row['label']}"]
    t = truth_text(row)
    if t:
        head.append(t)
    head.append(history_summary(h))
    lines = []
    for _, r in h.iterrows():
        p = float(r["p"])
        fo = float(r["focus"])
        phase = r.get("phase", "")
        phase = "" if not isinstance(phase, str) else phase
        lines.append(f"  epoch {int(r['epoch']):3d}  {phase:9s} "
                     f"p={'-' if not np.isfinite(p) else f'{p:.3f}':>5s}  "
                     f"focus={'-' if not np.isfinite(fo) else f'{fo:.3f}':>5s}  {r['status']}")
    return "\n".join(head + (["per epoch:"] + lines if lines else []))


def kept_fraction(log: pd.DataFrame) -> pd.Series:
    """kept_frac per epoch from a run's log.csv (samples back-propagated / training samples)."""
    return log.set_index("epoch")["kept_frac"]



def history_text(run_dir: str | Path, record_id: str) -> str:
    """What `erts explain` prints about a record's training: format_history, or why there is none."""
    run_dir = Path(run_dir)
    if not (run_dir / "train_records.csv").exists():
        return f"{run_dir}: no train_records.csv, so no keep/filter history"
    try:
        row, h = record_history(run_dir, record_id)
    except KeyError:
        return (f"record {record_id} is not a training record of {run_dir.name} (a validation or test record, "
                "or not in the dataset): no keep/filter history")
    return format_history(row, h)
