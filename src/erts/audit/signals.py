"""Per-record audit signals: training dynamics, out-of-fold confidence, Grad-CAM focus, signal
quality, and the one combined score.

Every signal is a column of the audit table; ``SIGNALS`` says how each is read as a
suspicion score (higher = more suspicious). Orientations are fixed here, from what
each signal measures, never from ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from erts.audit.crossfit import FoldScores
from erts.data.records import RecordSet
from erts.errors import ConfigError


@dataclass(frozen=True)
class Signal:
    name: str          # row name in the evaluation table
    column: str        # the audit table's column it reads
    family: str        # dynamics | out-of-fold | Grad-CAM | signal quality | combined
    suspicious: str    # "high" or "low": which end is suspicious
    meaning: str

    def score(self, table: pd.DataFrame) -> np.ndarray:
        """Suspicion (higher = more suspicious) from the table's column."""
        v = table[self.column].to_numpy(dtype=float)
        return v if self.suspicious == "high" else -v


SIGNALS = [
    Signal("mean p", "mean_p", "dynamics", "low", "p of the given label, mean over epochs and in-training folds"),
    Signal("AUM", "aum", "dynamics", "low", "area under the margin: given logit minus largest other, mean over epochs"),
    Signal("forgetting", "forgetting", "dynamics", "high",
           "correct-to-wrong transitions between epochs (never learned: one per epoch)"),
    Signal("EL2N", "el2n", "dynamics", "high", "norm of probabilities minus the one-hot label, mean over epochs"),
    Signal("OOF self-confidence", "p_oof", "out-of-fold", "low",
           "held-out model's p of the given label over the whole signal (cleanlab self_confidence)"),
    Signal("OOF centre window", "p_oof_centre", "out-of-fold", "low",
           "held-out model's p of the given label on the centre window only"),
    Signal("OOF p(noise class)", "p_noise", "out-of-fold", "high",
           "held-out model's p of the dataset's noise class (CinC 2017: ~) for records not labelled noise"),
    Signal("cleanlab issue", "cleanlab_issue", "out-of-fold", "high",
           "flagged by cleanlab find_label_issues (prune by noise rate)"),
    Signal("focus topq (paper), low", "cam_topq", "Grad-CAM", "low",
           "paper's focus: mean of the top 10 % of the min-max normalised map; low = weak evidence"),
    Signal("focus topq, high", "cam_topq", "Grad-CAM", "high", "the paper's focus read the other way round"),
    Signal("concentration mass, high", "cam_mass", "Grad-CAM", "high",
           "share of the map's mass in its top 10 %; high = the map locks onto a small region"),
    Signal("concentration mass, low", "cam_mass", "Grad-CAM", "low", "mass read the other way round (diffuse map)"),
    Signal("concentration entropy, high", "cam_entropy", "Grad-CAM", "high", "1 - normalised entropy of the map"),
    Signal("concentration entropy, low", "cam_entropy", "Grad-CAM", "low", "entropy measure read the other way round"),
    Signal("record length (short)", "record_s", "signal quality", "low",
           "seconds of the original recording (short recordings are suspect: the control)"),
    Signal("flat leads", "flat_frac", "signal quality", "high", "share of samples without change in the flattest lead"),
    Signal("saturated leads", "saturated_frac", "signal quality", "high",
           "share of samples at the lead's extremes (clipping) in the worst lead"),
    Signal("amplitude outlier", "amplitude_outlier", "signal quality", "high",
           "|robust z| of the log amplitude range against all audited records"),
    Signal("low kurtosis", "kurtosis", "signal quality", "low",
           "kurtosis of the least peaked lead (kSQI: an ECG is peaked, noise is not)"),
]
CONTROL = "record length (short)"

# The combined score: the mean of the rank-normalised suspicion of one signal per kind of
# evidence, equal weights, nothing fitted: the held-out model doubts the given label
# (confident learning), it reads the record as the dataset's noise class (skipped where the
# dataset has none), the Grad-CAM map locks onto a small region (artefacts), the recording is
# short. docs/audit.md tells how it was chosen: COMBINED_V1 was fixed before any evaluation;
# after CinC 2017 seed 0 showed AUM adding nothing beside the out-of-fold confidence and the
# noise-class probability finding most relabels, it became COMBINED (both stay in the tables).
COMBINED = ("OOF self-confidence", "OOF p(noise class)", "concentration mass, high", "record length (short)")
COMBINED_V1 = ("OOF self-confidence", "AUM", "concentration mass, high", "record length (short)")


def by_name(name: str) -> Signal:
    return next(s for s in SIGNALS if s.name == name)


def rank01(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to (0, 1] (ties share their mean rank; NaN ranks lowest, as least suspicious)."""
    x = np.where(np.isfinite(x), x, -np.inf)
    return stats.rankdata(x, method="average") / len(x)


def combined_score(table: pd.DataFrame, names: tuple[str, ...] = COMBINED) -> np.ndarray:
    """Mean of the rank-normalised suspicion of ``names`` (signals the table lacks or has no value
    of at all are skipped)."""
    used = [by_name(n) for n in names if by_name(n).column in table and np.isfinite(table[by_name(n).column]).any()]
    parts = [rank01(s.score(table)) for s in used]
    return np.mean(parts, axis=0) if parts else np.full(len(table), np.nan)


def combined_signals() -> list[Signal]:
    """The combined scores as rows of the evaluation table (column ``combined``, ``combined_v1``)."""
    return [Signal("combined", "combined", "combined", "high", "mean rank of " + ", ".join(COMBINED)),
            Signal("combined v1 (fixed before evaluation)", "combined_v1", "combined", "high",
                   "mean rank of " + ", ".join(COMBINED_V1))]


def ranking_signal(spec: str) -> Signal:
    """The signal a ranking reads: ``combined`` (the default), ``combined_v1``, or an audit.csv signal
    column, optionally ``:high`` or ``:low`` for the end that is suspicious (default: the column's first
    reading in ``SIGNALS``, e.g. ``cam_topq`` low as the paper reads it).

    Why: the combined score is built for CinC 2017's relabels to its noise class; for label flips
    between classes the out-of-fold self-confidence alone ranks better (docs/audit.md), as cleanlab
    ranks by it (``return_indices_ranked_by``)."""
    column, _, end = spec.partition(":")
    found = [s for s in [*combined_signals(), *SIGNALS] if s.column == column and end in ("", s.suspicious)]
    if not found:
        columns = list(dict.fromkeys(s.column for s in [*combined_signals(), *SIGNALS]))
        raise ConfigError(f"--rank-by {spec}: not a signal of the audit (one of {', '.join(columns)}; "
                         "optionally :high or :low, the suspicious end)")
    return found[0]


def noise_probability(probs: np.ndarray, labels: np.ndarray, noise: int | None) -> np.ndarray:
    """p of the noise class for records given another label; 0 for records labelled noise (the
    model agreeing with their label is no suspicion); NaN everywhere without a noise class."""
    if noise is None:
        return np.full(len(labels), np.nan)
    return np.where(labels == noise, 0.0, probs[:, noise])


# ---------------------------------------------------------------- from the folds

def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """(E, N) 0/1 correctness over epochs -> (N,) correct-to-wrong transitions (Toneva et al. 2019);
    a record never classified correctly counts E (it ranks above any record that was learned)."""
    c = correct > 0.5
    events = (c[:-1] & ~c[1:]).sum(0).astype(float)
    return np.where(c.any(0), events, float(len(c)))


def dynamics_signals(folds: list[FoldScores]) -> dict[str, np.ndarray]:
    """Per record, each dynamics and CAM signal averaged over the folds that trained on it."""
    n = len(folds[0].held_out)
    sums: dict[str, np.ndarray] = {}
    count = np.zeros(n)
    for f in folds:
        trained = ~f.held_out
        e = f.epochs
        per_fold = {"mean_p": e["p"].mean(0), "aum": e["margin"].mean(0), "el2n": e["el2n"].mean(0),
                    "forgetting": forgetting_events(e["correct"]),
                    **{c: e[c].mean(0) for c in ("cam_topq", "cam_mass", "cam_entropy")}}
        for k, v in per_fold.items():
            sums.setdefault(k, np.zeros(n))[trained] += v[trained]
        count[trained] += 1
    return {k: np.where(count > 0, v / np.maximum(count, 1), np.nan) for k, v in sums.items()}


def oof_probs(folds: list[FoldScores]) -> tuple[np.ndarray, np.ndarray]:
    """(whole-signal, centre-window) out-of-fold probabilities: each record's from its held-out fold."""
    whole = np.full_like(folds[0].probs_oof, np.nan)
    centre = np.full_like(folds[0].probs_centre, np.nan)
    for f in folds:
        whole[f.held_out] = f.probs_oof[f.held_out]
        centre[f.held_out] = f.probs_centre[f.held_out]
    return whole, centre


def cleanlab_signals(labels: np.ndarray, probs: np.ndarray, warn: Callable[[str], None]) -> dict[str, np.ndarray]:
    """cleanlab's self-confidence label quality and its find_label_issues flags on out-of-fold
    probabilities (the use cleanlab is built for). Flags are NaN when cleanlab cannot run (e.g. a
    class with no record), with a warning."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    try:
        flags = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1).astype(float)
    except (ValueError, AssertionError) as e:
        warn(f"cleanlab find_label_issues could not run ({e}); its flags are left empty")
        flags = np.full(len(labels), np.nan)
    return {"p_oof": quality, "cleanlab_issue": flags}


# ---------------------------------------------------------------- signal quality

def quality_features(rs: RecordSet, ids: np.ndarray, chunk: int = 256) -> dict[str, np.ndarray]:
    """Simple signal-quality features of each record's real signal (never its zero padding):
    seconds of signal, flat share, saturated share, amplitude range and kurtosis, each over the
    worst lead. Amplitudes are in the prepared records' units (mV, or std units when
    standardised per record)."""
    lengths = rs.signal_lengths[ids]
    out = {k: np.zeros(len(ids)) for k in ("flat_frac", "saturated_frac", "amplitude", "kurtosis")}
    for start in range(0, len(ids), chunk):
        block = np.asarray(rs.signals[ids[start:start + chunk]], dtype=np.float64)
        for j, x in enumerate(block):
            f = record_quality(x[:, :max(int(lengths[start + j]), 2)])
            for k, v in f.items():
                out[k][start + j] = v
    seconds = lengths / rs.fs
    out["signal_s"] = seconds
    out["record_s"] = (rs.meta["length_s"].to_numpy(dtype=float)[ids] if "length_s" in rs.meta.columns
                       else seconds.astype(float))
    log_amp = np.log(np.maximum(out["amplitude"], 1e-12))
    mad = stats.median_abs_deviation(log_amp, scale="normal")
    out["amplitude_outlier"] = np.abs(log_amp - np.median(log_amp)) / (mad if mad > 0 else 1.0)
    return out


def record_quality(x: np.ndarray) -> dict[str, float]:
    """(leads, T) real signal -> flat share (steps below 0.1 % of the lead's std), saturated share
    (samples within 1 % of the lead's range from its min or max), amplitude (0.5-99.5 percentile
    range) and Pearson kurtosis (3 for Gaussian noise): the worst lead of each."""
    std = x.std(1, keepdims=True)
    flat = (np.abs(np.diff(x, axis=1)) <= 1e-3 * np.maximum(std, 1e-12)).mean(1)
    lo, hi = x.min(1, keepdims=True), x.max(1, keepdims=True)
    band = 0.01 * (hi - lo)
    sat = ((x <= lo + band) | (x >= hi - band)).mean(1)
    p_lo, p_hi = np.percentile(x, [0.5, 99.5], axis=1)
    kurt = np.where(std[:, 0] > 0, stats.kurtosis(x, axis=1, fisher=False), 0.0)
    return {"flat_frac": float(flat.max()), "saturated_frac": float(sat.max()),
            "amplitude": float((p_hi - p_lo).max()), "kurtosis": float(np.nan_to_num(kurt).min())}
