"""PhysioNet/Computing in Cardiology Challenge 2017: AF classification from a short single-lead ECG.

Reads ``training2017.zip`` as downloaded (members are decoded from the archive,
nothing is extracted) or its extracted ``training2017/`` folder: ``AXXXXX.hea``
+ ``AXXXXX.mat`` (MATLAB v4 ``val``, int16, 1000/mV, 300 Hz, 9-61 s) and the
label files ``REFERENCE.csv`` / ``REFERENCE-original.csv`` (``A00001,N``).

Defaults: records are centre-cropped or zero-padded to 30 s (the median
duration) when ``length_s`` is not set, standardised per record, and split
70/15/15 stratified by class with ``split_seed`` (the challenge's hidden test
set is not public). ``labels=original`` trains on the first-released labels;
``labels=original-train`` trains and validates on them but tests on the current
ones ("train on the original labels, evaluate on the current ones"). The split
is stratified by the *current* label whatever ``labels`` says, so all three
settings share one split and one test set. ``meta.label_changed`` flags the 294
records whose label differs between the two files: a ground-truth record of
label noise for the reports.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from erts.data.cache import cached
from erts.data.preprocess import BadRecord, BadRecordLog, check_rate, preprocess
from erts.data.records import RecordSet
from erts.data.splits import preprocess_key, stratified_split
from erts.data.wfdb_io import Source, decode_challenge_mat, progress
from erts.errors import DataError

CLASSES = ["N", "A", "O", "~"]  # normal, atrial fibrillation, other rhythm, too noisy
FS = 300.0
DEFAULT_LENGTH_S = 30.0
LABEL_FILES = {"current": "REFERENCE.csv", "original": "REFERENCE-original.csv"}
LABEL_SETTINGS = ("current", "original", "original-train")  # DataConfig.labels


def load(cfg) -> RecordSet:
    """Loads CinC 2017 from ``cfg.root`` (training2017.zip or the training2017/ folder), cached."""
    if not cfg.root:
        raise DataError("cinc2017 needs root=<training2017.zip or training2017/ folder> "
                         "(get it with: erts data download cinc2017 --root DIR)")
    cfg = dataclasses.replace(cfg, length_s=cfg.length_s or DEFAULT_LENGTH_S)
    src = Source(cfg.root)
    key = {"dataset": "cinc2017", "source": src.fingerprint(), "labels": cfg.labels, **preprocess_key(cfg)}
    if cfg.labels != "current":  # erts 0.1.0 stratified labels=original by the original labels: a new entry
        key["split_by"] = "label_current"
    return cached("cinc2017", key, lambda: build(src, cfg), cfg.cache_dir)


def read_labels(src: Source) -> tuple[str, pd.DataFrame]:
    """Finds the folder holding REFERENCE.csv; returns it and a table record -> label_current, label_original.

    ``label_original`` is empty when REFERENCE-original.csv is absent.
    """
    ref = src.find(LABEL_FILES["current"])
    if ref is None:
        raise FileNotFoundError(f"{src.root}: no {LABEL_FILES['current']} found (expected training2017/REFERENCE.csv)")
    folder = str(PurePosixPath(ref).parent)
    folder = "" if folder == "." else folder + "/"
    labels = _read_reference(src, ref).rename(columns={"label": "label_current"})
    orig_name = folder + LABEL_FILES["original"]
    if orig_name in src.names():
        orig = _read_reference(src, orig_name).rename(columns={"label": "label_original"})
        labels = labels.merge(orig, on="record", how="left")
    else:
        labels["label_original"] = np.nan
    labels["label_original"] = labels["label_original"].fillna("")
    return folder, labels


def _read_reference(src: Source, name: str) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(src.read_bytes(name)), header=None, names=["record", "label"], dtype=str,
                     keep_default_na=False)
    df["record"] = df["record"].str.strip()
    df["label"] = df["label"].str.strip()
    dup = df["record"][df["record"].duplicated()]
    if len(dup):
        raise DataError(f"{name}: records listed twice: {', '.join(dup.head(5))}")
    return df


def build(src: Source, cfg) -> RecordSet:
    """Decodes, checks and preprocesses every labelled record (no cache).

    The split is drawn over every readable record, stratified by its current
    label (records whose current label is unusable form one last stratum), before
    any record is dropped for its label, so ``labels=current``, ``original`` and
    ``original-train`` share one split. Then each record takes its label from the
    file its setting and split ask for (``label_column``); a record whose label
    there is missing or unknown is skipped (or fails, ``bad_records=fail``).
    """
    if cfg.labels not in LABEL_SETTINGS:
        raise DataError(f"cinc2017: labels={cfg.labels!r}; expected one of {', '.join(LABEL_SETTINGS)}")
    folder, labels = read_labels(src)
    if cfg.labels != "current" and not (labels["label_original"] != "").any():
        raise FileNotFoundError(f"{src.root}: labels={cfg.labels} needs {folder}{LABEL_FILES['original']}")
    log = BadRecordLog(cfg.bad_records)
    names = set(src.names())
    n_out = int(round(cfg.length_s * (cfg.fs or FS)))
    signals = np.empty((len(labels), 1, n_out), dtype=np.float32)
    pos, rows, bad, fs_out, lead_names = [], [], [], FS, ["ECG"]
    # the label column when it does not depend on the split: checked while reading, so 'fail' fails fast
    fixed = None if cfg.labels == "original-train" else label_column(cfg.labels, "train")
    for i, row in enumerate(progress(labels.itertuples(index=False), "cinc2017", total=len(labels))):
        try:
            x, fs_out, lead_names, length_s = _read_record(src, folder, row.record, names, cfg)
            if fixed is not None and cfg.bad_records == "fail":
                _check_label(row.record, getattr(row, fixed), fixed, cfg.labels)
        except BadRecord as e:
            log.handle(e)  # raises with bad_records=fail
            bad.append((i, e))
            continue
        signals[len(rows)] = x
        pos.append(i)
        rows.append({"record": row.record, "label_current": row.label_current, "label_original": row.label_original,
                     "label_changed": bool(row.label_original) and row.label_original != row.label_current,
                     "length_s": length_s})
    log.skipped.clear()  # re-filled below in record order, label problems included
    meta = pd.DataFrame(rows, columns=["record", "label_current", "label_original", "label_changed", "length_s"])
    strata = np.array([CLASSES.index(c) if c in CLASSES else len(CLASSES) for c in meta["label_current"]], dtype=np.int64)
    split = stratified_split(strata, cfg.split_seed)
    kept, y = [], []
    for j, r in enumerate(meta.itertuples(index=False)):
        col = label_column(cfg.labels, split[j])
        try:
            _check_label(r.record, getattr(r, col), col, cfg.labels)
        except BadRecord as e:
            log.handle(e)  # raises with bad_records=fail
            bad.append((pos[j], e))
            continue
        kept.append(j)
        y.append(CLASSES.index(getattr(r, col)))
    log.skipped[:] = [(e.record_id, e.reason) for _, e in sorted(bad, key=lambda b: b[0])]
    labelled = set(labels["record"])
    for name in sorted(names):
        p = PurePosixPath(name)
        if p.suffix == ".hea" and str(p.parent) + "/" == (folder or "./") and p.stem not in labelled:
            log.handle(BadRecord(p.stem, f"not listed in {LABEL_FILES['current']} (no label)"))
    if not kept:
        raise DataError(f"cinc2017: no usable records in {src.root} ({len(log.skipped)} skipped, first: {log.skipped[:3]})")
    for dst, j in enumerate(kept):  # compact in place (kept is increasing): no second copy of the signals
        if dst != j:
            signals[dst] = signals[j]
    meta = meta.iloc[kept].reset_index(drop=True)
    return RecordSet(name="cinc2017", signals=signals[:len(kept)], labels=np.asarray(y, dtype=np.int64),
                     split=split[kept], record_ids=meta["record"].to_numpy(str), class_names=list(CLASSES), fs=fs_out,
                     lead_names=lead_names, meta=meta.drop(columns="record"), skipped=log.skipped)


def label_column(setting: str, split: str) -> str:
    """Which meta column a record's training label comes from: ``label_current`` or ``label_original``.

    current: every split current; original: every split original; original-train:
    train and val original, test current.
    """
    if setting == "current" or (setting == "original-train" and split == "test"):
        return "label_current"
    return "label_original"


def _check_label(rid: str, label: str, column: str, setting: str) -> None:
    file = LABEL_FILES["current" if column == "label_current" else "original"]
    why = f" (labels={setting} takes train and val labels from it)" if setting == "original-train" else ""
    if not label:
        raise BadRecord(rid, f"no label in {file}{why}")
    if label not in CLASSES:
        raise BadRecord(rid, f"unknown label {label!r} in {file}{why} (expected one of {CLASSES})")


def _read_record(src: Source, folder: str, rid: str, names: set[str], cfg) -> tuple[np.ndarray, float, list[str], float]:
    """One record -> (preprocessed (1, T) signal, fs, lead names, original duration in s)."""
    hea = f"{folder}{rid}.hea"
    if hea not in names:
        raise BadRecord(rid, f"header file {rid}.hea not found")
    text = src.read_text(hea)
    mat = f"{folder}{rid}.mat"
    if mat not in names:
        raise BadRecord(rid, f"signal file {rid}.mat not found")
    x, fs, leads, _ = decode_challenge_mat(text, src.read_bytes(mat), rid)
    check_rate(fs, FS, rid)
    length_s = x.shape[1] / fs
    x, fs_out = preprocess(x, fs, cfg, rid, expected_leads=1, lead_names=leads)
    return x, fs_out, leads, length_s
