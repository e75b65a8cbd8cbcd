"""MIT-BIH Arrhythmia Database as heartbeats in the AAMI classes, with the inter-patient DS1/DS2 split.

Reads ``mit-bih-arrhythmia-database-1.0.0.zip`` as downloaded (each record's
files are extracted to a temporary folder for wfdb, one record at a time) or
its extracted folder.

One sample per annotated beat: a window of both leads around the R peak,
0.25 s before to 0.45 s after (90 + 162 = 252 samples at 360 Hz), or a centred
window of ``length_s`` when set. Lead 0 is always MLII, lead 1 the record's
chest lead (V1 in most records; V2, V4 or V5 in a few). Each record is checked,
resampled, band-passed and standardised as a whole (so beat amplitudes keep
their relation within a record) before the windows are cut.

Symbols map to AAMI classes N (N, L, R, e, j), S (A, a, J, S), V (V, E),
F (F), Q (/, f, Q); other annotations (rhythm, noise, ``!``, ``x``...) are not
beats and are ignored. The paced records 102, 104, 107, 217 are left out.
Split (inter-patient, de Chazal et al. 2004): DS2 -> test; DS1 -> train, except
4 DS1 records drawn with ``split_seed`` -> val (redrawn until val holds N, S,
V and F beats and train keeps at least half of each), so validation is
patient-wise too. Beats whose window runs off
the record's edge are dropped and listed in ``skipped`` as ``<record>_<sample>``.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from erts.data.cache import cached
from erts.data.preprocess import BadRecord, BadRecordLog, check_rate, preprocess
from erts.data.records import RecordSet
from erts.data.splits import preprocess_key
from erts.data.wfdb_io import Source, progress, read_wfdb
from erts.errors import DataError

CLASSES = ["N", "S", "V", "F", "Q"]
AAMI = {s: c for c, syms in {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}.items() for s in syms}
DS1 = ["101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203", "205",
       "207", "208", "209", "215", "220", "223", "230"]
DS2 = ["100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219",
       "221", "222", "228", "231", "232", "233", "234"]
PACED = ["102", "104", "107", "217"]
FS = 360.0
WINDOW_S = (0.25, 0.45)  # seconds before / after the R peak
VAL_RECORDS = 4


def load(cfg) -> RecordSet:
    """Loads MIT-BIH beats from ``cfg.root`` (the zip or its extracted folder), cached."""
    if not cfg.root:
        raise DataError("mitbih needs root=<mit-bih-arrhythmia-database-1.0.0.zip or its folder> "
                         "(get it with: erts data download mitbih --root DIR)")
    src = Source(cfg.root)
    key = {"dataset": "mitbih", "source": src.fingerprint(), "window_s": WINDOW_S, **preprocess_key(cfg)}
    return cached("mitbih", key, lambda: build(src, cfg), cfg.cache_dir)


def window(fs: float, length_s: float | None) -> tuple[int, int]:
    """(samples before the R peak, window length) at ``fs``."""
    if length_s:
        n = int(round(length_s * fs))
        return n // 2, n
    before, after = (int(round(s * fs)) for s in WINDOW_S)
    return before, before + after


def build(src: Source, cfg) -> RecordSet:
    """Reads every DS1/DS2 record and cuts its beats (no cache)."""
    if not any(PurePosixPath(n).suffix == ".hea" for n in src.names()):
        raise FileNotFoundError(f"no .hea files under {src.root}; point root= at the MIT-BIH zip or folder")
    log = BadRecordLog(cfg.bad_records)
    parts: list[tuple[np.ndarray, np.ndarray, pd.DataFrame]] = []
    fs_out = float(cfg.fs or FS)
    with tempfile.TemporaryDirectory(prefix="erts-mitbih-") as tmp:
        for rec in progress(DS1 + DS2, "mitbih", total=len(DS1) + len(DS2)):
            try:
                x, y, meta, edge = _record_beats(src, rec, Path(tmp), cfg)
            except BadRecord as e:
                log.handle(e)
                continue
            for sample in edge:
                log.handle(BadRecord(f"{rec}_{sample}", "beat window runs off the record edge"))
            parts.append((x, y, meta))
    if not parts:
        raise DataError(f"mitbih: no usable records in {src.root} ({len(log.skipped)} skipped, first: {log.skipped[:3]})")
    signals = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    meta = pd.concat([p[2] for p in parts], ignore_index=True)
    split = inter_patient_split(meta["record"].to_numpy(str), labels, cfg.split_seed)
    ids = (meta["record"].astype(str) + "_" + meta["sample"].astype(str)).to_numpy(str)
    return RecordSet(name="mitbih", signals=signals, labels=labels, split=split, record_ids=ids,
                     class_names=list(CLASSES), fs=fs_out, lead_names=["MLII", "V1/V2/V4/V5"], meta=meta,
                     skipped=log.skipped)


def _record_beats(src: Source, rec: str, tmp: Path, cfg) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[int]]:
    """One record -> (beat windows (B, 2, n), AAMI labels, meta rows, samples of beats dropped at the edges)."""
    import wfdb

    path = _local_path(src, rec, tmp)
    x, fs, leads = read_wfdb(path, rec)
    check_rate(fs, FS, rec)
    if len(leads) != 2 or "MLII" not in leads:
        raise BadRecord(rec, f"leads {leads}, expected 2 leads including MLII")
    if leads[0] != "MLII":
        x, leads = x[::-1].copy(), leads[::-1]  # record 114 stores V5 first
    if not (path.parent / f"{rec}.atr").exists():
        raise BadRecord(rec, f"annotation file {rec}.atr not found")
    try:
        ann = wfdb.rdann(str(path), "atr")
    except Exception as e:
        raise BadRecord(rec, f"unreadable annotations {rec}.atr: {type(e).__name__}: {e}") from None
    x, fs_out = preprocess(x, fs, dataclasses.replace(cfg, length_s=None), rec, expected_leads=2, lead_names=leads)
    symbols = np.asarray(ann.symbol)
    samples = np.asarray(ann.sample, dtype=np.int64)
    beat = np.isin(symbols, list(AAMI))
    symbols, samples = symbols[beat], samples[beat]
    before, n = window(fs_out, cfg.length_s)
    peaks = np.round(samples * (fs_out / fs)).astype(np.int64)
    ok = (peaks - before >= 0) & (peaks - before + n <= x.shape[1])
    starts = peaks[ok] - before
    windows = x[:, starts[:, None] + np.arange(n)].transpose(1, 0, 2)
    y = np.array([CLASSES.index(AAMI[s]) for s in symbols[ok]], dtype=np.int64)
    meta = pd.DataFrame({"record": rec, "sample": samples[ok], "symbol": symbols[ok]})
    return np.ascontiguousarray(windows, dtype=np.float32), y, meta, samples[~ok].tolist()


def _local_path(src: Source, rec: str, tmp: Path) -> Path:
    """Path (without extension) wfdb can read: the folder itself, or the record's files extracted to ``tmp``."""
    hea = src.find(f"{rec}.hea")
    if hea is None:
        raise BadRecord(rec, f"header file {rec}.hea not found in {src.root}")
    if not src.is_zip:
        return (src.root / hea).with_suffix("")
    parent = PurePosixPath(hea).parent
    members = [n for n in src.names() if PurePosixPath(n).parent == parent and PurePosixPath(n).stem == rec
               and PurePosixPath(n).suffix in (".hea", ".dat", ".atr")]
    for old in tmp.iterdir():
        old.unlink()  # one record at a time keeps the temporary folder small
    return src.extract(members, tmp) / rec


def inter_patient_split(records: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """DS2 -> test; DS1 -> train, with VAL_RECORDS DS1 records (drawn by ``seed``) -> val.

    A draw is kept only if val holds every class of N, S, V, F that DS1 has and
    train keeps at least half of each class's DS1 beats (so e.g. record 208,
    which holds 90% of DS1's F beats, never leaves train); after 1000 failed
    draws the first draw is used.
    """
    split = np.where(np.isin(records, DS2), "test", "train").astype("U5")
    in_ds1 = np.isin(records, DS1)
    ds1 = sorted(set(records[in_ds1].tolist()))
    n_val = min(VAL_RECORDS, len(ds1) - 1)
    if n_val <= 0:
        return split
    main = [CLASSES.index(c) for c in ("N", "S", "V", "F")]
    total = np.bincount(labels[in_ds1], minlength=len(CLASSES))[main]
    rng = np.random.default_rng(seed)
    draws = [sorted(rng.choice(ds1, n_val, replace=False).tolist()) for _ in range(1000)]
    for val in draws:
        in_val = np.bincount(labels[np.isin(records, val)], minlength=len(CLASSES))[main]
        if ((in_val > 0) | (total == 0)).all() and (in_val <= total / 2).all():
            break
    else:
        val = draws[0]
    split[np.isin(records, val)] = "val"
    return split
