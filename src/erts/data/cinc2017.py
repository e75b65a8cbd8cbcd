"""PhysioNet/Computing in Cardiology Challenge 2017: AF classification from a short single-lead ECG.

Reads ``training2017.zip`` as downloaded (members are decoded from the archive,
nothing is extracted) or its extracted ``training2017/`` folder: ``AXXXXX.hea``
+ ``AXXXXX.mat`` (MATLAB v4 ``val``, int16, 1000/mV, 300 Hz, 9-61 s) and the
label files ``REFERENCE.csv`` / ``REFERENCE-original.csv`` (``A00001,N``).

Defaults: records are centre-cropped or zero-padded to 30 s (the median
duration) when ``length_s`` is not set, standardised per record, and split
70/15/15 stratified by class with ``split_seed`` (the challenge's hidden test
set is not public). ``labels=original`` trains on the first-released labels.
``meta.label_changed`` flags the 294 records whose label differs between the
two files: a ground-truth record of label noise for the reports.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from erts.data.cache import cached
from erts.data.preprocess import BadRecord, BadRecordLog, preprocess
from erts.data.records import RecordSet
from erts.data.splits import preprocess_key, stratified_split
from erts.data.wfdb_io import Source, decode_challenge_mat, progress
from erts.errors import DataError

CLASSES = ["N", "A", "O", "~"]  # normal, atrial fibrillation, other rhythm, too noisy
FS = 300.0
DEFAULT_LENGTH_S = 30.0
LABEL_FILES = {"current": "REFERENCE.csv", "original": "REFERENCE-original.csv"}


def load(cfg) -> RecordSet:
    """Loads CinC 2017 from ``cfg.root`` (training2017.zip or the training2017/ folder), cached."""
    if not cfg.root:
        raise DataError("cinc2017 needs root=<training2017.zip or training2017/ folder> "
                         "(get it with: erts data download cinc2017 --root DIR)")
    cfg = dataclasses.replace(cfg, length_s=cfg.length_s or DEFAULT_LENGTH_S)
    src = Source(cfg.root)
    key = {"dataset": "cinc2017", "source": src.fingerprint(), "labels": cfg.labels, **preprocess_key(cfg)}
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
    """Decodes, checks and preprocesses every labelled record (no cache)."""
    folder, labels = read_labels(src)
    if cfg.labels == "original" and not (labels["label_original"] != "").any():
        raise FileNotFoundError(f"{src.root}: labels=original needs {folder}{LABEL_FILES['original']}")
    target_col = "label_current" if cfg.labels == "current" else "label_original"
    log = BadRecordLog(cfg.bad_records)
    names = set(src.names())
    n_out = int(round(cfg.length_s * (cfg.fs or FS)))
    signals = np.empty((len(labels), 1, n_out), dtype=np.float32)
    kept, rows, fs_out, lead_names = [], [], FS, ["ECG"]
    for row in progress(labels.itertuples(index=False), "cinc2017", total=len(labels)):
        try:
            x, fs_out, lead_names, length_s = _read_record(src, folder, row.record, names, cfg)
            label = getattr(row, target_col)
            if label not in CLASSES:
                raise BadRecord(row.record, f"unknown label {label!r} in {LABEL_FILES[cfg.labels]} (expected one of {CLASSES})")
        except BadRecord as e:
            log.handle(e)
            continue
        signals[len(kept)] = x
        kept.append(CLASSES.index(label))
        rows.append({"record": row.record, "label_current": row.label_current, "label_original": row.label_original,
                     "label_changed": bool(row.label_original) and row.label_original != row.label_current,
                     "length_s": length_s})
    labelled = set(labels["record"])
    for name in sorted(names):
        p = PurePosixPath(name)
        if p.suffix == ".hea" and str(p.parent) + "/" == (folder or "./") and p.stem not in labelled:
            log.handle(BadRecord(p.stem, f"not listed in {LABEL_FILES['current']} (no label)"))
    if not kept:
        raise DataError(f"cinc2017: no usable records in {src.root} ({len(log.skipped)} skipped, first: {log.skipped[:3]})")
    y = np.asarray(kept, dtype=np.int64)
    meta = pd.DataFrame(rows)
    return RecordSet(name="cinc2017", signals=signals[:len(kept)], labels=y, split=stratified_split(y, cfg.split_seed),
                     record_ids=meta["record"].to_numpy(str), class_names=list(CLASSES), fs=fs_out,
                     lead_names=lead_names, meta=meta.drop(columns="record"), skipped=log.skipped)


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
    if fs != FS:
        raise BadRecord(rid, f"sampling rate {fs:g} Hz, expected {FS:g} Hz")
    length_s = x.shape[1] / fs
    x, fs_out = preprocess(x, fs, cfg, rid, expected_leads=1, lead_names=leads)
    return x, fs_out, leads, length_s
