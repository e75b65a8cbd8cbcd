"""Your own ECG records: a folder of WFDB records plus ``labels.csv``.

Layout::

    my_ecgs/
      labels.csv          record,label[,split][,any other columns]
      classes.txt         optional: the class names, one per line, in order
      rec001.hea / .dat   WFDB records (any format wfdb reads); subfolders allowed
      sub/rec002.hea ...

``record`` is the record path relative to the folder, without extension.
``label`` holds one class name, or several separated by ``;`` or ``,`` (then the
whole set is multi-label); a class name that contains ``;`` or ``,`` is put in double
quotes inside the field, so it is never split. The optional ``split`` column (train/val/test) fixes
the split; otherwise it is stratified 70/15/15 with ``split_seed``. Other
columns (e.g. a patient id) are kept in ``meta``. Without ``classes.txt`` the
classes are the sorted label values; with it, any other label is a bad record.

Every record must have the majority's lead count and (unless ``fs`` is set, which
resamples all) sampling rate, and the lead names of the first kept record (compared
case-insensitively; the same names in another order are put in that order). ``length_s`` defaults to the median record duration.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from erts.data.cache import cached
from erts.data.preprocess import BadRecord, BadRecordLog, check_rate, preprocess
from erts.data.records import SPLITS, RecordSet
from erts.data.splits import preprocess_key, stratified_split
from erts.data.wfdb_io import Source, parse_header, progress, read_wfdb
from erts.errors import DataError

LABELS_FILE = "labels.csv"
CLASSES_FILE = "classes.txt"


def load(cfg) -> RecordSet:
    """Loads the WFDB folder ``cfg.root`` with its labels.csv, cached."""
    if not cfg.root or not Path(cfg.root).is_dir():
        raise DataError(f"wfdb-folder needs root=<folder with WFDB records and {LABELS_FILE}>, got {cfg.root!r}")
    src = Source(cfg.root)
    key = {"dataset": "wfdb-folder", "root": str(src.root.resolve()), "source": src.fingerprint(), **preprocess_key(cfg)}
    return cached("wfdb-folder", key, lambda: build(src, cfg), cfg.cache_dir)


def read_labels(root: Path) -> tuple[pd.DataFrame, list[str], bool]:
    """labels.csv -> (table with a ``labels`` list column, class names, multilabel)."""
    path = root / LABELS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{root}: no {LABELS_FILE} (columns: record,label[,split]); see docs/datasets.md")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"record", "label"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {list(df.columns)}")
    df["record"] = df["record"].str.strip()
    dup = df["record"][df["record"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: records listed twice: {', '.join(dup.head(5))}")
    df["labels"] = [split_labels(s) for s in df["label"]]
    bad = df.loc[df["labels"].isna(), "record"]
    if len(bad):
        raise DataError(f"{path}: unbalanced double quote in the label of record(s) {', '.join(bad.head(5))}")
    if "split" in df.columns:
        df["split"] = df["split"].str.strip()
        bad = df.loc[~df["split"].isin(SPLITS), "record"]
        if len(bad):
            raise DataError(f"{path}: split must be one of {SPLITS}; bad rows: {', '.join(bad.head(5))}")
    multilabel = bool((df["labels"].map(len) > 1).any())
    if (root / CLASSES_FILE).exists():
        classes = [c.strip() for c in (root / CLASSES_FILE).read_text().splitlines() if c.strip()]
    else:
        classes = sorted({c for labs in df["labels"] for c in labs})
    return df, classes, multilabel


def build(src: Source, cfg) -> RecordSet:
    """Reads, checks and preprocesses every listed record (no cache)."""
    df, classes, multilabel = read_labels(src.root)
    log = BadRecordLog(cfg.bad_records)
    heads = _headers(src.root, df["record"])
    if not heads:
        raise DataError(f"wfdb-folder: none of the records in {src.root / LABELS_FILE} has a readable header")
    n_leads = int(pd.Series([h.n_sig for h in heads.values()]).mode()[0])
    fs_mode = float(pd.Series([h.fs for h in heads.values()]).mode()[0])
    durations = [h.n_samples / h.fs for h in heads.values() if h.n_samples]
    cfg = dataclasses.replace(cfg, length_s=cfg.length_s or float(np.median(durations)))
    xs, ys, rows, fs_out, lead_names = [], [], [], float(cfg.fs or fs_mode), None
    for row in progress(df.to_dict("records"), "wfdb-folder", total=len(df)):
        rid = row["record"]
        try:
            y = _encode(row["labels"], classes, multilabel, rid)
            x, fs, leads = read_wfdb(src.root / rid, rid)
            if cfg.fs is None:
                check_rate(fs, fs_mode, rid, "like the other records (set fs= to resample all)")
            if lead_names is not None:
                x, leads = match_leads(x, leads, lead_names, rid)
            x, fs_out = preprocess(x, fs, cfg, rid, expected_leads=n_leads, lead_names=leads)
        except BadRecord as e:
            log.handle(e)
            continue
        lead_names = lead_names or leads
        xs.append(x)
        ys.append(y)
        rows.append({k: v for k, v in row.items() if k != "labels"})
    if not xs:
        raise DataError(f"wfdb-folder: no usable records in {src.root} ({len(log.skipped)} skipped, first: {log.skipped[:3]})")
    labels = np.stack(ys) if multilabel else np.asarray(ys, dtype=np.int64)
    meta = pd.DataFrame(rows)
    split = meta["split"].to_numpy("U5") if "split" in meta else stratified_split(labels, cfg.split_seed)
    return RecordSet(name="wfdb-folder", signals=np.stack(xs), labels=labels, split=split,
                     record_ids=meta["record"].to_numpy(str), class_names=classes, fs=fs_out,
                     lead_names=lead_names, multilabel=multilabel,
                     meta=meta.drop(columns=[c for c in ("record", "split") if c in meta]), skipped=log.skipped)


def match_leads(x: np.ndarray, leads: list[str], reference: list[str], rid: str) -> tuple[np.ndarray, list[str]]:
    """Puts a record's leads in the reference (first kept record's) order, names compared case-insensitively.

    The same names in another order are reordered (each lead goes to its named row); other
    names are a BadRecord. A different lead count is left to preprocess, which names it.
    """
    if len(leads) != len(reference):
        return x, leads
    have, want = [n.strip().lower() for n in leads], [n.strip().lower() for n in reference]
    if have == want:
        return x, leads
    if sorted(have) == sorted(want) and len(set(want)) == len(want):
        order = [have.index(n) for n in want]
        return x[order], [leads[i] for i in order]
    raise BadRecord(rid, f"leads {leads} do not match the first record's {reference} "
                         "(names compared case-insensitively; the same names in another order are reordered)")


def split_labels(text: str) -> list[str] | None:
    """A label field -> its labels: separated by ``;`` or ``,`` outside double quotes.

    A label that contains a separator is quoted inside the field: the field's value is
    ``"AV block, 1st degree";AF`` (in the CSV file, where quotes inside a quoted field are
    doubled, see docs/datasets.md). Returns None for unbalanced quotes.
    """
    out, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch in ";," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quoted:
        return None
    out.append("".join(cur))
    return [t.strip() for t in out if t.strip()]


def _headers(root: Path, records: pd.Series) -> dict:
    """Headers parsed as text (cheap) to find the majority lead count, rate and duration."""
    out = {}
    for rid in records:
        hea = root / f"{rid}.hea"
        try:
            out[rid] = parse_header(hea.read_text(errors="replace"), rid)
        except (OSError, BadRecord):
            continue  # reported with its reason when the record itself is read
    return out


def _encode(labels: list[str], classes: list[str], multilabel: bool, rid: str) -> np.ndarray | int:
    if not labels:
        raise BadRecord(rid, f"empty label in {LABELS_FILE}")
    unknown = [c for c in labels if c not in classes]
    if unknown:
        raise BadRecord(rid, f"unknown label(s) {unknown} (classes: {classes})")
    if not multilabel:
        return classes.index(labels[0])
    y = np.zeros(len(classes), dtype=np.float32)
    y[[classes.index(c) for c in labels]] = 1.0
    return y
