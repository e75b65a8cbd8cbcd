"""CPSC 2018 and Georgia 12-lead ECGs in the PhysioNet/CinC Challenge 2020/2021 layout.

Each record is ``X.hea`` (WFDB header, read as text: wfdb-python rejects some of
these headers' date fields) plus ``X.mat`` (MATLAB v4, ``val`` = leads x samples
ADC units, converted to mV with the header's gains), 12 leads, 500 Hz, with
SNOMED-CT diagnosis codes on a ``# Dx: 426783006,164889003`` comment line.

Tasks (``cfg.task``):

- ``paper8`` (= ``default``): the published 8-class single-label mapping. A
  record whose codes hit several classes takes the first in ``PAPER8_PRIORITY``
  (the specific abnormalities before NORM, since sinus rhythm co-occurs with
  most of them); ``meta['paper8_ambiguous']`` marks those records. Records whose
  codes hit none of the mapped codes are OTHER.
- ``scored``: the 27 classes scored by the Challenge 2020, with its equivalent
  codes merged (24 classes; 733534002 complete LBBB joins LBBB as in 2021),
  multi-label. Records with none of them are kept with an all-zero label row:
  they are true negatives for every scored class, and dropping them would skew
  the class balance.

Any numeric code is accepted (codes outside both lists simply map to nothing);
an empty or missing ``Dx`` line is a BadRecord. There are no official folds: the
split is stratified (on the paper8 class, so both tasks share one split) with
``cfg.split_seed`` and written to ``<cache entry>.split.csv`` (``split_file``).
Records are cropped (centre) or zero-padded to ``cfg.length_s`` seconds,
10 s by default; the published code cut CPSC to its first 2 s.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from erts.data.cache import cached, entry_path
from erts.data.preprocess import BadRecord, BadRecordLog, check_rate, preprocess
from erts.data.records import RecordSet
from erts.data.splits import preprocess_key, stratified_split
from erts.data.wfdb_io import Source, decode_challenge_mat, parse_dx, parse_header, progress
from erts.errors import ConfigError, DataError

log = logging.getLogger(__name__)

VERSION = 2  # bump when the prepared arrays change for the same inputs (2: a header at another rate is skipped)
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
NATIVE_FS = 500.0
TASKS = ("paper8", "scored")

# The ERTS paper's mapping (METHOD.md section 6).
PAPER8_CODES: dict[str, tuple[str, ...]] = {
    "NORM": ("426783006",),
    "AF": ("164889003", "164890007"),
    "AVB": ("270492004", "195042002", "27885002"),
    "LBBB": ("164909002",),
    "RBBB": ("59118001", "713427006"),
    "ST": ("429622005", "164931005"),
    "PVC_PAC": ("284470004", "63593006", "427172004", "17338001"),
}
PAPER8_CLASSES = [*PAPER8_CODES, "OTHER"]
# Which class wins when a record's codes hit several: rhythm, then conduction
# blocks, then ectopic beats, then ST changes; NORM (sinus rhythm) last.
PAPER8_PRIORITY = ["AF", "AVB", "LBBB", "RBBB", "PVC_PAC", "ST", "NORM"]

# The 27 SNOMED-CT codes scored by the PhysioNet/CinC Challenge 2020, in the order of
# its weights.csv (github.com/physionetchallenges/evaluation-2020: dx_mapping_scored.csv,
# weights.csv), with the pairs it scores as one diagnosis merged into one class:
# 713427006|59118001, 284470004|63593006, 427172004|17338001; plus the Challenge
# 2021 pair 733534002|164909002 (complete LBBB is LBBB). 24 classes.
SCORED: list[tuple[str, tuple[str, ...]]] = [
    ("IAVB", ("270492004",)),
    ("AF", ("164889003",)),
    ("AFL", ("164890007",)),
    ("Brady", ("426627000",)),
    ("RBBB", ("713427006", "59118001")),
    ("IRBBB", ("713426002",)),
    ("LAnFB", ("445118002",)),
    ("LAD", ("39732003",)),
    ("LBBB", ("164909002", "733534002")),
    ("LQRSV", ("251146004",)),
    ("NSIVCB", ("698252002",)),
    ("PR", ("10370003",)),
    ("PAC", ("284470004", "63593006")),
    ("PVC", ("427172004", "17338001")),
    ("LPR", ("164947007",)),
    ("LQT", ("111975006",)),
    ("QAb", ("164917005",)),
    ("RAD", ("47665007",)),
    ("SA", ("427393009",)),
    ("SB", ("426177001",)),
    ("NSR", ("426783006",)),
    ("STach", ("427084000",)),
    ("TAb", ("164934002",)),
    ("TInv", ("59931005",)),
]
SCORED_CLASSES = [name for name, _ in SCORED]


# --------------------------------------------------------------------------- labels

def paper8_matches(codes: list[str]) -> list[str]:
    """The paper8 classes (other than OTHER) that a record's codes hit, in priority order."""
    hit = {cls for cls, cc in PAPER8_CODES.items() if set(cc) & set(codes)}
    return [c for c in PAPER8_PRIORITY if c in hit]


def paper8_label(codes: list[str]) -> str:
    """One class per record: the highest-priority hit, OTHER when nothing is hit."""
    hits = paper8_matches(codes)
    return hits[0] if hits else "OTHER"


def scored_labels(codes: list[str]) -> np.ndarray:
    """(24,) multi-hot over SCORED_CLASSES (all zero when no scored code is present)."""
    return np.array([float(bool(set(cc) & set(codes))) for _, cc in SCORED], dtype=np.float32)


def header_dx(comments: list[str], record_id: str) -> list[str]:
    """The record's Dx codes; a missing/empty Dx line or a non-numeric code is a BadRecord."""
    codes = parse_dx(comments)
    if not codes:
        raise BadRecord(record_id, "no diagnosis: the header has no (or an empty) '# Dx:' line")
    bad = [c for c in codes if not c.isdigit()]
    if bad:
        raise BadRecord(record_id, f"Dx code(s) {bad} are not SNOMED-CT numbers")
    return codes


def _comment_field(comments: list[str], key: str) -> str | None:
    for c in comments:
        k, sep, v = c.partition(":")
        if sep and k.strip().lower() == key:
            return v.strip()
    return None


def _age(value: str | None) -> float:
    try:
        return float(value) if value is not None else np.nan
    except ValueError:
        return np.nan


# --------------------------------------------------------------------------- loading

def load_cpsc2018(cfg) -> RecordSet:
    """CPSC 2018 (Challenge 2021 folder ``training/cpsc_2018``, or any folder/zip of its .hea/.mat)."""
    return load_challenge(cfg, "cpsc2018")


def load_georgia(cfg) -> RecordSet:
    """Georgia 12-lead (Challenge 2021 folder ``training/georgia``, or any folder/zip of its .hea/.mat)."""
    return load_challenge(cfg, "georgia")


def _task(cfg) -> str:
    task = "paper8" if cfg.task == "default" else cfg.task
    if task not in TASKS:
        raise ConfigError(f"unknown task {cfg.task!r} for the Challenge datasets; expected one of "
                         f"{', '.join(TASKS)} (or 'default' = paper8)")
    return task


def _key(cfg, name: str, src: Source) -> dict:
    """Everything the prepared arrays depend on: files, task, split seed, preprocessing."""
    return {"dataset": name, "version": VERSION, "files": src.fingerprint(), "task": _task(cfg), **preprocess_key(cfg)}


def load_challenge(cfg, name: str) -> RecordSet:
    """Loads every ``.hea``/``.mat`` record found (recursively) under ``cfg.root``, cached."""
    if not cfg.root:
        raise DataError(f"{name} needs root=<folder of .hea/.mat records>; get it with "
                         f"`erts data download {name} --root data/{name}`")
    task = _task(cfg)
    src = Source(cfg.root)
    names = src.names()
    heas = [n for n in names if n.endswith(".hea")]
    if not heas:
        raise FileNotFoundError(f"no .hea files under {src.root}; " + _layout_hint(name, names))
    rs = cached(name, _key(cfg, name, src), lambda: _build(src, heas, name, task, cfg), cfg.cache_dir)
    log.info("%s: split written to %s", name, rs.split_path)
    return rs


def _layout_hint(name: str, names: list[str]) -> str:
    """What to do about a root without headers: .mat files alone are another release of the data
    (the original CPSC 2018 one: .mat + REFERENCE.csv), not a wrong folder."""
    if any(n.endswith(".mat") for n in names):
        return (f"its .mat files have no .hea header beside them (the original CPSC 2018 release is .mat + "
                f"REFERENCE.csv); erts reads {name} in the PhysioNet/CinC Challenge 2020/21 layout, a .hea "
                f"beside each .mat: `erts data download {name} --root data/{name}` fetches it")
    return f"point root= at the {name} folder (`erts data download {name} --root data/{name}` fetches it)"


def split_file(cfg, name: str) -> Path:
    """Path of the split CSV (columns record, split) of the cache entry ``cfg`` selects."""
    src = Source(cfg.root)
    folder = entry_path(name, _key(cfg, name, src), cfg.cache_dir)
    return folder.with_name(folder.name + ".split.csv")


def _build(src: Source, heas: list[str], name: str, task: str, cfg) -> RecordSet:
    bad = BadRecordLog(cfg.bad_records)
    prep = dataclasses.replace(cfg, fs=float(cfg.fs or NATIVE_FS), length_s=cfg.length_s or 10.0)
    signals = np.empty((len(heas), len(LEADS), int(round(prep.length_s * prep.fs))), dtype=np.float32)
    names = set(src.names())
    ids: list[str] = []
    dx: list[list[str]] = []
    meta_rows: list[dict] = []
    seen: dict[str, str] = {}
    for hea in progress(heas, desc=name):
        rid = PurePosixPath(hea).stem
        if rid in seen:
            raise DataError(f"{name}: record name {rid} appears twice ({seen[rid]} and {hea}); "
                             "point root= at a single dataset folder")
        seen[rid] = hea
        try:
            x, codes, comments = _read_record(src, names, hea, rid, prep, name)
        except BadRecord as e:
            bad.handle(e)
            continue
        signals[len(ids)] = x  # compact in place: no second copy of the array
        ids.append(rid)
        dx.append(codes)
        meta_rows.append({"record": rid, "file": hea, "age": _age(_comment_field(comments, "age")),
                          "sex": _comment_field(comments, "sex"),
                          "paper8_ambiguous": len(paper8_matches(codes)) > 1})
    paper8 = np.array([PAPER8_CLASSES.index(paper8_label(c)) for c in dx], dtype=np.int64)
    if task == "paper8":
        labels, classes = paper8, PAPER8_CLASSES
    else:
        labels = np.stack([scored_labels(c) for c in dx]) if dx else np.zeros((0, len(SCORED)), np.float32)
        classes = SCORED_CLASSES
        log.info("%s: %d of %d records carry no scored class (kept, all-zero labels)",
                 name, int((labels.sum(1) == 0).sum()), len(dx))
    meta = pd.DataFrame(meta_rows, columns=["record", "file", "age", "sex", "paper8_ambiguous"])
    log.info("%s: %d records hit several paper8 classes (resolved by priority %s)",
             name, int(meta.paper8_ambiguous.sum()), PAPER8_PRIORITY)
    return RecordSet(
        name=name, signals=signals[:len(ids)], labels=labels,
        split=stratified_split(paper8, cfg.split_seed), record_ids=np.array(ids, dtype=str),
        class_names=list(classes), fs=prep.fs, lead_names=list(LEADS), multilabel=task == "scored",
        meta=meta, skipped=bad.skipped,
    )


def _read_record(src: Source, names: set[str], hea: str, rid: str, prep,
                 name: str) -> tuple[np.ndarray, list[str], list[str]]:
    """One record of dataset ``name``: (preprocessed signal, Dx codes, header comments). The Dx line
    is checked before the (larger) .mat is read; a header at another rate than 500 Hz is a bad record."""
    text = src.read_text(hea)
    h = parse_header(text, rid)
    codes = header_dx(h.comments, rid)
    mat = str(PurePosixPath(hea).parent / (h.file_names[0] if h.file_names else f"{rid}.mat"))
    if mat not in names:
        raise BadRecord(rid, f"signal file {PurePosixPath(mat).name} not found")
    x, fs, leads, comments = decode_challenge_mat(text, src.read_bytes(mat), rid)
    check_rate(fs, NATIVE_FS, rid, f"(the rate of every {name} record)")
    if [n.lower() for n in leads] != [n.lower() for n in LEADS]:
        raise BadRecord(rid, f"leads {leads} are not the standard 12 in order {LEADS}")
    x, _ = preprocess(x, fs, prep, rid, expected_leads=len(LEADS), lead_names=leads)
    return x, codes, comments
