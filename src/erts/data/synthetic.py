"""Built-in synthetic 12-lead ECG: five PTB-XL-like superclasses plus corrupted records.

Why: every part of erts (training, PDD/ERTS selection, Grad-CAM focus, reports)
must run and be testable without downloading anything, and the selection methods
need records whose badness is *known*. Each beat is a vectorcardiogram (VCG) made
of Gaussian waves (P, septal q, R, S, T and the class-specific extras), projected
onto I, II and V1-V6 with the inverse Dower matrix; III, aVR, aVL and aVF are then
derived from I and II exactly as a recorder does, so lead relations hold even
with noise. A fraction of records is corrupted on purpose and the ground truth is
kept in ``meta`` (never model input). See docs/synthetic.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from erts.data.cache import cached
from erts.data.preprocess import bandpass, standardize
from erts.data.records import SPLITS, RecordSet
from erts.errors import ConfigError

GENERATOR_VERSION = 1  # bump whenever generated arrays change, so old cache entries are not reused
CLASS_NAMES = ["NORM", "MI", "STTC", "CD", "HYP"]
NORM, MI, STTC, CD, HYP = range(5)
LEAD_NAMES = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
CLASS_FRACTIONS = (0.40, 0.15, 0.15, 0.15, 0.15)
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
CORRUPTIONS = ("label_flip", "noise", "ambiguous")
COOCCUR_FRAC = 0.3  # multi-label: share of eligible abnormal records that get a second condition
PARTNERS = {MI: (STTC, CD), STTC: (MI, CD, HYP), CD: (MI, STTC, HYP), HYP: (STTC, CD)}
DEFAULT_FS = 100.0
DEFAULT_LENGTH_S = 10.0
CHUNK = 256  # records synthesised per block (fixed: the output must not depend on it)
CLEAN_STRENGTH = (0.3, 1.0)  # how strongly a labelled condition is expressed (1 = textbook)
AMBIGUOUS_STRENGTH = (0.35, 0.6)  # both classes of an "ambiguous" record
CLEAN_SNR_DB = (5.0, 30.0)  # nominal SNR of ordinary records
NOISE_SNR_DB = (-12.0, -6.0)  # nominal SNR of "noise" corrupted records

# Inverse Dower transform (Edenbrandt & Pahlm 1988): VCG (X left, Y feet, Z back) -> I, II, V1..V6.
DOWER = np.array([
    [0.632, -0.235, 0.059],   # I
    [0.235, 1.066, -0.132],   # II
    [-0.515, 0.157, -0.917],  # V1
    [0.044, 0.164, -1.387],   # V2
    [0.882, 0.098, -1.277],   # V3
    [1.213, 0.127, -0.601],   # V4
    [1.125, 0.127, -0.086],   # V5
    [0.831, 0.076, 0.230],    # V6
])
WAVES = ("P", "q", "R", "R2", "S", "Qmi", "T1", "T2")  # Gaussian waves of one beat
AFTER_R = ("T1", "T2")  # evaluated on the beat before each sample only
BEFORE_R = ("P",)  # evaluated on the beat after each sample only


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# VCG directions (unit vectors) of the waves and of the class cues.
DIR = {
    "P": _unit([0.55, 0.8, 0.15]),
    "q": _unit([-0.5, 0.1, -0.65]),       # septal activation: rightward, anterior
    "R": _unit([1.0, 0.8, 0.6]),          # main QRS axis: left, inferior, posterior
    "S": _unit([-0.45, -0.35, 0.6]),      # terminal forces
    "T": _unit([0.6, 0.55, -0.35]),
    "lvh": _unit([1.0, 0.3, 0.8]),        # LVH: leftward-posterior, tall R V5/V6, deep S V1
    "lvh_s": _unit([-0.3, -0.2, 0.9]),
    "rbbb": _unit([-0.6, 0.05, -0.8]),    # late rightward-anterior forces: R' in V1
    "lbbb": _unit([0.75, 0.25, 0.85]),    # slow leftward-posterior: broad notched R in V6, QS in V1
    "inferior": _unit([0.0, 1.0, 0.1]),   # MI territories: II, III, aVF ...
    "anterior": _unit([0.25, 0.0, -1.0]),  # ... or V1-V4
    "ischemia": _unit([0.7, 0.6, -0.1]),  # STTC: ST depression in I, II, aVF, V4-V6 (elevation in aVR)
}
TERRITORIES = ("inferior", "anterior")


@dataclass
class Waves:
    """Per-record parameters of one beat (arrays over records); times are seconds from the R peak."""

    center: dict[str, np.ndarray]  # (N,)
    width: dict[str, np.ndarray]  # (N,) Gaussian sigma
    vec: dict[str, np.ndarray]  # (N, 3) direction times amplitude (mV)
    st: np.ndarray  # (N, 3) ST-segment shift vector (mV)
    j: np.ndarray  # (N,) J point: where the ST segment starts
    st_end: np.ndarray  # (N,) where the ST shift has merged into the T wave


def load(cfg) -> RecordSet:
    """Loads the synthetic dataset described by a DataConfig, from the cache when possible."""
    if cfg.task != "default":
        raise ValueError(f"synthetic: task={cfg.task!r} is not accepted; the synthetic dataset has only task 'default' "
                         "(use multilabel=true for the multi-label variant)")
    fs = float(cfg.fs or DEFAULT_FS)
    length_s = float(cfg.length_s or DEFAULT_LENGTH_S)
    key = {
        "generator": GENERATOR_VERSION, "n_records": cfg.n_records, "corrupt_frac": cfg.corrupt_frac,
        "multilabel": cfg.multilabel, "seed": cfg.split_seed, "fs": fs, "length_s": length_s,
        "standardize": cfg.standardize == "record", "bandpass": cfg.bandpass,
    }

    def build() -> RecordSet:
        rs = generate(cfg.n_records, seed=cfg.split_seed, corrupt_frac=cfg.corrupt_frac,
                      multilabel=cfg.multilabel, fs=fs, length_s=length_s)
        if cfg.bandpass:
            rs.signals = bandpass(rs.signals, fs, cfg.bandpass[0], cfg.bandpass[1])
        if cfg.standardize == "record":
            rs.signals = standardize(rs.signals)
        return rs

    return cached("synthetic", key, build, cfg.cache_dir)


def generate(n_records: int, *, seed: int = 0, corrupt_frac: float = 0.1, multilabel: bool = False,
             fs: float = DEFAULT_FS, length_s: float = DEFAULT_LENGTH_S) -> RecordSet:
    """Generates the record set in millivolts (no cache, no standardisation); same seed, same arrays.
    Settings it cannot honour are a ConfigError (one line at the command line)."""
    if n_records < 10:
        raise ConfigError(f"synthetic: n_records={n_records} is too small; need at least 10 for a 70/15/15 split")
    if not 0.0 <= corrupt_frac < 1.0:
        raise ConfigError(f"synthetic: corrupt_frac={corrupt_frac} must be in [0, 1)")
    if fs < 50 or length_s < 2:
        raise ConfigError(f"synthetic: fs={fs} Hz and length_s={length_s} s are too low (need fs >= 50, length_s >= 2)")
    rng = np.random.default_rng(seed)
    n = n_records
    cls = rng.permutation(np.repeat(np.arange(5), _exact_counts(n, CLASS_FRACTIONS)))
    corruption = _assign_corruption(rng, n, corrupt_frac)
    second = _assign_second(rng, cls, corruption) if multilabel else np.full(n, -1)
    strength, mixed = _strengths(rng, cls, second, corruption)
    true = np.zeros((n, 5), bool)
    true[np.arange(n), cls] = True
    true[second >= 0, second[second >= 0]] = True
    observed = _flip(rng, true, corruption == "label_flip")

    hr = np.clip(rng.normal(72.0, 14.0, n), 45.0, 125.0)
    territory = np.array(TERRITORIES)[rng.integers(0, 2, n)]
    lbbb = rng.random(n) < 0.5
    waves = _morphology(rng, strength, hr, territory, lbbb)
    r_times, beat_amp = _beat_times(rng, hr, length_s)
    lead_mix = _lead_matrices(rng, n)
    snr = np.where(corruption == "noise", rng.uniform(*NOISE_SNR_DB, n), rng.uniform(*CLEAN_SNR_DB, n))

    n_samples = int(round(length_s * fs))
    signals = np.empty((n, 12, n_samples), np.float32)
    children = np.random.SeedSequence(seed).spawn((n + CHUNK - 1) // CHUNK)
    for c, start in enumerate(range(0, n, CHUNK)):
        sl = slice(start, min(start + CHUNK, n))
        vcg = _synthesise(_take(waves, sl), r_times[sl], beat_amp[sl], fs, n_samples)
        clean = np.matmul(lead_mix[sl], vcg)  # (B, 8, T): I, II, V1..V6
        noisy = clean + _noise(np.random.default_rng(children[c]), clean, snr[sl], corruption[sl] == "noise", fs)
        signals[sl] = _twelve_leads(noisy)

    primary = np.where(corruption == "label_flip", observed.argmax(1), cls)
    meta = pd.DataFrame({
        "true_class": ["+".join(CLASS_NAMES[k] for k in np.flatnonzero(row)) for row in true],
        "corruption": corruption,
        "mixed_with": [CLASS_NAMES[m] if m >= 0 else "none" for m in mixed],
        "heart_rate": np.round(_heart_rate(r_times, length_s), 1),
        "snr_db": np.round(snr, 1),
        "mi_territory": np.where(strength[:, MI] > 0, territory, "none"),
        "bbb": np.where(strength[:, CD] > 0, np.where(lbbb, "LBBB", "RBBB"), "none"),
    })
    return RecordSet(
        name="synthetic",
        signals=signals,
        labels=observed.astype(np.float32) if multilabel else observed.argmax(1).astype(np.int64),
        split=_stratified_split(rng, _kind_index(corruption) * 5 + primary),
        record_ids=np.array([f"syn{i + 1:05d}" for i in range(n)]),
        class_names=list(CLASS_NAMES),
        fs=float(fs),
        lead_names=list(LEAD_NAMES),
        multilabel=multilabel,
        meta=meta,
    )


# ---------------------------------------------------------------- labels, corruption, splits

def _exact_counts(n: int, fractions) -> np.ndarray:
    """Integer counts summing to n (largest remainder), so class sizes are exact, not sampled."""
    raw = np.asarray(fractions, dtype=np.float64) * n
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def _assign_corruption(rng: np.random.Generator, n: int, frac: float) -> np.ndarray:
    """Exactly round(frac*n) corrupted records, split into equal thirds of the three kinds."""
    n_bad = int(np.floor(frac * n + 0.5))
    kinds = np.full(n, "none", dtype=object)
    kinds[rng.permutation(n)[:n_bad]] = np.repeat(CORRUPTIONS, _exact_counts(n_bad, (1 / 3,) * 3))
    return kinds.astype(str)


def _kind_index(corruption: np.ndarray) -> np.ndarray:
    """Corruption kind as an integer (none first, then CORRUPTIONS order), for grouping."""
    kinds = ("none", *CORRUPTIONS)
    return np.array([kinds.index(k) for k in corruption], dtype=np.int64)


def _assign_second(rng: np.random.Generator, cls: np.ndarray, corruption: np.ndarray) -> np.ndarray:
    """Multi-label: a co-occurring condition for exactly round(COOCCUR_FRAC * eligible) records."""
    second = np.full(len(cls), -1)
    eligible = np.flatnonzero((cls != NORM) & (corruption != "ambiguous"))
    pick = rng.permutation(eligible)[: int(np.floor(COOCCUR_FRAC * len(eligible) + 0.5))]
    choice = rng.integers(0, 6, len(pick))  # 6 is a multiple of every partner count (2 or 3)
    second[pick] = [PARTNERS[k][j % len(PARTNERS[k])] for k, j in zip(cls[pick], choice)]
    return second


def _strengths(rng: np.random.Generator, cls: np.ndarray, second: np.ndarray,
               corruption: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How strongly each class morphology is expressed, (N, 5) in [0, 1]; NORM is the absence of all.

    Ambiguous records mix the labelled class with another one, both at about half strength.
    """
    n = len(cls)
    s = np.zeros((n, 5))
    rows = np.arange(n)
    s[rows, cls] = rng.uniform(*CLEAN_STRENGTH, n)
    has2 = second >= 0
    s[rows[has2], second[has2]] = rng.uniform(*CLEAN_STRENGTH, has2.sum())
    amb = np.flatnonzero(corruption == "ambiguous")
    mixed = np.full(n, -1)
    mixed[amb] = (cls[amb] + rng.integers(1, 5, len(amb))) % 5
    half = rng.uniform(*AMBIGUOUS_STRENGTH, (n, 2))
    s[amb, cls[amb]] = half[amb, 0]
    s[amb, mixed[amb]] = half[amb, 1]
    s[:, NORM] = 0.0
    return s, mixed


def _flip(rng: np.random.Generator, true: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Observed labels: flipped records get one class that is not among their true classes."""
    observed = true.copy()
    for i in np.flatnonzero(flip):
        others = np.flatnonzero(~true[i])
        observed[i] = False
        observed[i, others[rng.integers(0, len(others))]] = True
    return observed


def _stratified_split(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """70/15/15 within every group, with exact totals even for groups of one or two records.

    Records are lined up group after group (shuffled within each group) and dealt
    train/val/test from one evenly interleaved sequence, so small groups (a few
    corrupted records of one class) are spread over the splits instead of all
    rounding into train.
    """
    order = np.concatenate([rng.permutation(np.flatnonzero(groups == g)) for g in np.unique(groups)])
    target = np.asarray(SPLIT_FRACTIONS)
    dealt = np.zeros(len(SPLITS), dtype=np.int64)
    sequence = np.empty(len(groups), dtype=np.int64)
    for i in range(len(groups)):  # largest deficit first: T T V T T E T ... (Bresenham-like)
        sequence[i] = np.argmax(target * (i + 1) - dealt)
        dealt[sequence[i]] += 1
    split = np.empty(len(groups), dtype="<U5")
    split[order] = np.array(SPLITS)[sequence]
    return split


# ---------------------------------------------------------------- morphology

def _steer(vec: np.ndarray, target: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Turns each vector towards ``target`` by fraction ``a`` (per record), keeping its length."""
    mag = np.linalg.norm(vec, axis=1, keepdims=True)
    mix = (1 - a)[:, None] * vec / np.maximum(mag, 1e-9) + a[:, None] * target
    return mag * _unit(mix)


def _morphology(rng: np.random.Generator, s: np.ndarray, hr: np.ndarray, territory: np.ndarray,
                lbbb: np.ndarray) -> Waves:
    """Normal beat with per-record variation, then the class cues scaled by their strengths."""
    n = len(hr)

    def u(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    rr = 60.0 / hr
    t_peak = 0.40 * rr ** (1 / 3) - 0.12 + rng.normal(0, 0.01, n)  # Fridericia-like QT adaptation
    center = {"P": -u(0.13, 0.18), "q": np.full(n, -0.027), "R": np.zeros(n), "R2": np.full(n, 0.04),
              "S": u(0.022, 0.028), "Qmi": np.full(n, -0.018), "T1": t_peak - 0.02, "T2": t_peak + 0.025}
    width = {"P": u(0.018, 0.026), "q": u(0.006, 0.008), "R": u(0.009, 0.012), "R2": np.full(n, 0.012),
             "S": u(0.008, 0.011), "Qmi": u(0.012, 0.016), "T1": 0.05 * rr ** (1 / 3), "T2": 0.03 * rr ** (1 / 3)}
    t_amp = u(0.15, 0.5)[:, None]
    vec = {"P": u(0.10, 0.20)[:, None] * DIR["P"], "q": u(0.10, 0.25)[:, None] * DIR["q"],
           "R": 1.4 * rng.lognormal(0, 0.25, n)[:, None] * DIR["R"], "R2": np.zeros((n, 3)),
           "S": u(0.2, 0.45)[:, None] * DIR["S"], "Qmi": np.zeros((n, 3)),
           "T1": 0.7 * t_amp * DIR["T"], "T2": 0.5 * t_amp * DIR["T"]}
    w = Waves(center, width, vec, st=np.zeros((n, 3)), j=u(0.04, 0.05), st_end=t_peak)
    _benign_variants(rng, w)
    _hyp(rng, w, s[:, HYP])
    _cd(rng, w, s[:, CD], lbbb)
    _mi(rng, w, s[:, MI], territory)
    _sttc(rng, w, s[:, STTC])
    return w


def _benign_variants(rng: np.random.Generator, w: Waves) -> None:
    """Normal variants that mimic the class cues, so no class is separable by one threshold.

    Early repolarisation (diffuse mild ST elevation) in 15% of records, an incomplete
    right bundle-branch pattern (small R' in V1, normal QRS width) in 10%.
    """
    n = len(w.j)
    early = rng.uniform(0.04, 0.12, n) * (rng.random(n) < 0.15)
    w.st = w.st + early[:, None] * DIR["T"]
    w.vec["R2"] = (rng.uniform(0.1, 0.3, n) * (rng.random(n) < 0.10))[:, None] * DIR["rbbb"]


def _hyp(rng: np.random.Generator, w: Waves, s: np.ndarray) -> None:
    """LVH: raised QRS voltage (tall R in V5/V6, deep S in V1/V2), slightly wider QRS, strain in some."""
    n = len(s)
    w.vec["R"] = _steer(w.vec["R"], DIR["lvh"], 0.6 * s) * (1 + s * rng.uniform(0.7, 1.1, n))[:, None]
    w.vec["S"] = _steer(w.vec["S"], DIR["lvh_s"], 0.7 * s) * (1 + s * rng.uniform(0.8, 1.5, n))[:, None]
    for name in ("R", "S"):
        w.width[name] = w.width[name] * (1 + 0.15 * s)
    strain = s * (rng.random(n) < 0.3)
    for name in ("T1", "T2"):
        w.vec[name] = w.vec[name] * (1 - 1.4 * strain)[:, None]
    w.st = w.st - (0.06 * strain)[:, None] * DIR["lvh"]


def _cd(rng: np.random.Generator, w: Waves, s: np.ndarray, lbbb: np.ndarray) -> None:
    """Bundle-branch block: QRS > 120 ms; RBBB adds a late R' in V1, LBBB a broad notched R in V6."""
    n = len(s)
    r, l = s * ~lbbb, s * lbbb
    # RBBB: terminal rightward-anterior wave (rsR' in V1, wide S in I/V6), discordant T in V1-V2.
    w.center["R2"] = np.where(s == 0, w.center["R2"], np.where(lbbb, 0.035 + 0.015 * l, 0.055 + 0.015 * r))
    w.width["R2"] = np.where(s == 0, w.width["R2"], np.where(lbbb, w.width["R"] * (1 + 0.9 * l), 0.016 + 0.006 * r))
    rprime = (r * rng.uniform(0.5, 0.9, n))[:, None] * DIR["rbbb"]
    w.width["S"] = w.width["S"] * (1 + 0.6 * r)
    w.center["S"] = w.center["S"] + 0.01 * r
    # LBBB: no septal q, no S, slow leftward-posterior R in two humps, discordant ST-T.
    w.vec["q"] = w.vec["q"] * (1 - l)[:, None]
    w.vec["S"] = w.vec["S"] * (1 - l)[:, None]
    w.vec["R"] = _steer(w.vec["R"], DIR["lbbb"], l)
    w.width["R"] = w.width["R"] * (1 + 0.9 * l)
    w.vec["R2"] = w.vec["R2"] * (1 - s)[:, None] + rprime + (0.8 * l)[:, None] * w.vec["R"]
    for name in ("T1", "T2"):
        w.vec[name] = (w.vec[name] * (1 - l)[:, None] - (0.35 * l)[:, None] * DIR["lbbb"]
                       + (0.15 * r)[:, None] * -DIR["rbbb"])
    w.st = w.st - (0.1 * l)[:, None] * DIR["lbbb"]
    w.j = w.j + 0.05 * s


def _mi(rng: np.random.Generator, w: Waves, s: np.ndarray, territory: np.ndarray) -> None:
    """MI: pathological Q waves (initial forces away from the territory) and ST elevation towards it."""
    n = len(s)
    u = np.where((territory == "inferior")[:, None], DIR["inferior"], DIR["anterior"])
    w.vec["Qmi"] = -(s * rng.uniform(0.35, 0.6, n))[:, None] * u
    along = np.maximum((w.vec["R"] * u).sum(1), 0.0)
    w.vec["R"] = w.vec["R"] - (0.6 * s * along)[:, None] * u
    w.vec["q"] = w.vec["q"] * (1 - s * (territory == "anterior"))[:, None]  # septal r in V1 is lost
    w.st = w.st + (s * rng.uniform(0.15, 0.35, n))[:, None] * u


def _sttc(rng: np.random.Generator, w: Waves, s: np.ndarray) -> None:
    """ST/T change: ST depression in the lateral/inferior leads and flattened or inverted T waves."""
    n = len(s)
    t_scale = 1 - s * (0.8 + 0.9 * rng.random(n))
    for name in ("T1", "T2"):
        w.vec[name] = w.vec[name] * t_scale[:, None]
    w.st = w.st - (s * rng.uniform(0.06, 0.18, n))[:, None] * DIR["ischemia"]


def _take(w: Waves, sl: slice) -> Waves:
    return Waves({k: v[sl] for k, v in w.center.items()}, {k: v[sl] for k, v in w.width.items()},
                 {k: v[sl] for k, v in w.vec.items()}, w.st[sl], w.j[sl], w.st_end[sl])


# ---------------------------------------------------------------- rhythm and synthesis

def _beat_times(rng: np.random.Generator, hr: np.ndarray, length_s: float) -> tuple[np.ndarray, np.ndarray]:
    """R-peak times (N, K) with respiratory sinus arrhythmia and random RR jitter, and per-beat amplitude."""
    n = len(hr)
    rr = 60.0 / hr
    k_beats = int(np.ceil((length_s + 3.0) / (0.8 * rr.min()))) + 2
    k = np.arange(k_beats)
    f_resp = rng.uniform(0.15, 0.35, n)[:, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None]
    resp = np.sin(2 * np.pi * f_resp * k * rr[:, None] + phase)
    rsa = rng.uniform(0.01, 0.05, n)[:, None]
    jitter = rng.uniform(0.005, 0.025, n)[:, None] * rng.standard_normal((n, k_beats))
    intervals = rr[:, None] * (1 + rsa * resp + np.clip(jitter, -0.08, 0.08))
    r_times = -rng.uniform(0.5, 1.5, n)[:, None] * rr[:, None] + np.cumsum(intervals, axis=1) - intervals[:, :1]
    assert (r_times[:, -1] > length_s + 0.5).all(), "not enough beats generated"
    beat_amp = 1 + 0.05 * resp + 0.02 * rng.standard_normal((n, k_beats))
    return r_times, beat_amp


def _heart_rate(r_times: np.ndarray, length_s: float) -> np.ndarray:
    """Mean heart rate (bpm) over the RR intervals that overlap the recorded window."""
    rr = np.diff(r_times, axis=1)
    seen = (r_times[:, 1:] > 0) & (r_times[:, :-1] < length_s)
    return 60.0 * seen.sum(1) / (rr * seen).sum(1)


def _lead_matrices(rng: np.random.Generator, n: int) -> np.ndarray:
    """(N, 8, 3) VCG -> I, II, V1..V6: inverse Dower after a random heart rotation, with precordial gains."""
    a = np.deg2rad(np.clip(rng.normal(0, 15, n), -35, 35))  # frontal plane (X-Y)
    b = np.deg2rad(np.clip(rng.normal(0, 15, n), -35, 35))  # horizontal plane (X-Z)
    rot_f = np.zeros((n, 3, 3))
    rot_f[:, 0, 0] = rot_f[:, 1, 1] = np.cos(a)
    rot_f[:, 0, 1], rot_f[:, 1, 0] = -np.sin(a), np.sin(a)
    rot_f[:, 2, 2] = 1
    rot_h = np.zeros((n, 3, 3))
    rot_h[:, 0, 0] = rot_h[:, 2, 2] = np.cos(b)
    rot_h[:, 0, 2], rot_h[:, 2, 0] = -np.sin(b), np.sin(b)
    rot_h[:, 1, 1] = 1
    gains = np.ones((n, 8))
    gains[:, 2:] = rng.lognormal(0, 0.1, (n, 6))  # electrode placement; limb leads stay exact
    return (gains[:, :, None] * (DOWER @ rot_f @ rot_h)).astype(np.float32)


def _synthesise(w: Waves, r_times: np.ndarray, beat_amp: np.ndarray, fs: float, n_samples: int) -> np.ndarray:
    """(B, 3, T) VCG: every sample sums the waves of the beat before it and the beat after it."""
    b = len(r_times)
    t = np.arange(n_samples) / fs
    stride = max(r_times.max(), t[-1]) - min(r_times.min(), 0.0) + 1.0
    offset = (np.arange(b) * stride)[:, None]
    flat = np.searchsorted((r_times + offset).ravel(), (t + offset).ravel(), side="right")
    nxt = flat.reshape(b, n_samples) - np.arange(b)[:, None] * r_times.shape[1]
    rows = np.arange(b)[:, None]
    taus = {"prev": (t - r_times[rows, nxt - 1]).astype(np.float32),
            "next": (t - r_times[rows, nxt]).astype(np.float32)}
    amps = {"prev": beat_amp[rows, nxt - 1].astype(np.float32), "next": beat_amp[rows, nxt].astype(np.float32)}
    vcg = np.zeros((b, 3, n_samples), np.float32)
    for name in WAVES:
        vec = w.vec[name].astype(np.float32)
        if not vec.any():
            continue
        c = w.center[name].astype(np.float32)[:, None]
        sd = w.width[name].astype(np.float32)[:, None]
        sides = ("prev",) if name in AFTER_R else ("next",) if name in BEFORE_R else ("prev", "next")
        g = sum(amps[k] * np.exp(-0.5 * ((taus[k] - c) / sd) ** 2) for k in sides)
        vcg += vec[:, :, None] * g[:, None, :]
    if w.st.any():
        tau = taus["prev"]
        box = _sigmoid((tau - w.j[:, None]) / 0.005) * _sigmoid((w.st_end[:, None] - tau) / 0.03)
        vcg += w.st.astype(np.float32)[:, :, None] * (amps["prev"] * box)[:, None, :]
    return vcg


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1 + np.tanh(0.5 * x))).astype(np.float32)


def _twelve_leads(x8: np.ndarray) -> np.ndarray:
    """I, II, V1..V6 -> the 12 standard leads; limb leads derived as a recorder does (Einthoven, Goldberger)."""
    i, ii = x8[:, 0], x8[:, 1]
    limb = np.stack([i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2], axis=1)
    return np.concatenate([limb, x8[:, 2:]], axis=1).astype(np.float32)


# ---------------------------------------------------------------- noise

def _noise(rng: np.random.Generator, clean: np.ndarray, snr_db: np.ndarray, heavy: np.ndarray,
           fs: float) -> np.ndarray:
    """Baseline wander + EMG + mains hum + electrode-motion bursts, scaled to a per-record SNR.

    Each component has unit RMS; the mixing weights differ per record. ``heavy``
    records (noise corruption) are dominated by EMG and motion artefacts, which
    hide the morphology, rather than by baseline wander, which does not.
    """
    b, _, n_samples = clean.shape
    t = (np.arange(n_samples) / fs).astype(np.float32)
    parts = [_baseline(rng, b, t), _emg(rng, b, t, fs), _mains(rng, b, t, fs), _motion(rng, b, t)]
    alpha_light, alpha_heavy = np.array([2.0, 1.5, 0.7, 1.0]), np.array([0.5, 3.0, 0.3, 2.0])
    weights = rng.gamma(np.where(heavy[:, None], alpha_heavy, alpha_light))  # Dirichlet, up to scale
    weights[:, 3] *= heavy | (rng.random(b) < 0.3)  # motion bursts in 30% of ordinary records
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    signal_rms = np.sqrt((clean.astype(np.float64) ** 2).mean(axis=(1, 2)))
    scale = signal_rms * 10 ** (-snr_db / 20)
    noise = sum((scale * weights[:, k])[:, None, None] * parts[k] for k in range(4))
    return noise.astype(np.float32)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt((x.astype(np.float64) ** 2).mean(axis=(1, 2), keepdims=True))
    return (x / np.maximum(rms, 1e-12)).astype(np.float32)


def _baseline(rng: np.random.Generator, b: int, t: np.ndarray) -> np.ndarray:
    """Baseline wander: three slow sinusoids (0.05-0.5 Hz, respiration and movement) mixed over leads."""
    f = rng.uniform(0.05, 0.5, (b, 3, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (b, 3, 1)).astype(np.float32)
    src = np.sin(2 * np.pi * f * t + phase) * (0.1 / f)  # larger swings at lower frequencies
    mix = rng.standard_normal((b, 8, 3)).astype(np.float32)
    return _unit_rms(np.matmul(mix, src))


def _emg(rng: np.random.Generator, b: int, t: np.ndarray, fs: float) -> np.ndarray:
    """Muscle noise: band-limited white noise (10 Hz up to the recorder's band edge) with a slow envelope."""
    from scipy import signal as sps  # here, not at import: a load from the cache never generates

    sos = sps.butter(2, [10.0, min(150.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    white = rng.standard_normal((b, 8, len(t)), dtype=np.float32)
    band = sps.sosfilt(sos, white, axis=-1).astype(np.float32)
    f_env = rng.uniform(0.1, 0.5, (b, 1, 1)).astype(np.float32)
    envelope = 1 + 0.7 * np.sin(2 * np.pi * f_env * t + rng.uniform(0, 2 * np.pi, (b, 1, 1)).astype(np.float32))
    gains = rng.lognormal(0, 0.5, (b, 8, 1)).astype(np.float32)
    return _unit_rms(band * envelope * gains)


def _mains(rng: np.random.Generator, b: int, t: np.ndarray, fs: float) -> np.ndarray:
    """Mains hum (50 or 60 Hz) as a recorder sampling at ``fs`` records it.

    A sinusoid through the recorder's anti-alias low-pass (4th-order Butterworth at
    0.45*fs) is still a sinusoid, attenuated by the filter's gain, and sampling it
    aliases it exactly as here. At 100 Hz, 50 Hz hum sits at Nyquist (gain ~0.55,
    a slowly beating alternation) and 60 Hz folds to 40 Hz (gain ~0.30); at 500 Hz
    both pass unchanged. The unit RMS is set before the filter, so the attenuation is kept.
    """
    f = np.where(rng.random(b) < 0.5, 50.0, 60.0) + rng.normal(0, 0.05, b)
    gain = 1 / np.sqrt(1 + (f / (0.45 * fs)) ** 8)
    phase = rng.uniform(0, 2 * np.pi, b)
    wave = np.cos(2 * np.pi * f[:, None] * t.astype(np.float64) + phase[:, None]) * (np.sqrt(2) * gain)[:, None]
    lead_amp = rng.uniform(0.2, 1.0, (b, 8))
    lead_amp /= np.sqrt((lead_amp ** 2).mean(1, keepdims=True))
    return (lead_amp[:, :, None] * wave[:, None, :]).astype(np.float32)


def _motion(rng: np.random.Generator, b: int, t: np.ndarray) -> np.ndarray:
    """Electrode-motion artefacts: 1-3 large low-frequency bursts (0.1-0.6 s) on a random subset of leads."""
    n_bursts = 3
    present = (np.arange(n_bursts)[None, :] < rng.integers(1, n_bursts + 1, b)[:, None]).astype(np.float32)
    c = rng.uniform(0, t[-1], (b, n_bursts, 1)).astype(np.float32)
    width = rng.uniform(0.1, 0.6, (b, n_bursts, 1)).astype(np.float32)
    f = rng.uniform(0.5, 4.0, (b, n_bursts, 1)).astype(np.float32)
    shift = rng.uniform(-1, 1, (b, n_bursts, 1)).astype(np.float32)
    burst = np.exp(-0.5 * ((t - c) / width) ** 2) * (shift + np.cos(2 * np.pi * f * (t - c)))
    leads = rng.standard_normal((b, 8, n_bursts)) * (rng.random((b, 8, n_bursts)) < 0.5)
    leads[:, 0] += 0.1  # never all-zero, so unit RMS is defined
    return _unit_rms(np.matmul((leads * present[:, None, :]).astype(np.float32), burst))
