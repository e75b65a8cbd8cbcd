"""Bootstrap intervals of one run's test metric, resampling its test records.

Why records: a run's test score is one draw of the test set; its interval says how far another
draw of the same size could move it (not how far another training seed could: use seeds for that).
"""
from __future__ import annotations

import math

import numpy as np

from erts.eval.stats import finite

def predicted(probs: np.ndarray, multilabel: bool, thresholds: np.ndarray | None) -> np.ndarray:
    if not multilabel:
        return probs.argmax(1)
    th = 0.5 if thresholds is None else np.asarray(thresholds, dtype=float)
    return (probs >= th).astype(np.int8)


def indicators(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) 0/1 matrices of true and predicted class membership."""
    if y_true.ndim == 2:
        return y_true.astype(np.float64), y_pred.astype(np.float64)
    eye = np.eye(num_classes)
    return eye[y_true], eye[y_pred]


def macro_f1_from_counts(weights: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Macro-F1 of B weighted resamples at once.

    weights: (B, N) how often each record occurs in each resample; t, p: (N, C)
    true/predicted indicators. Same definition as erts.eval.metrics: the mean
    F1 over the classes present (with a true record) in the resample; a class
    absent from the resample is left out, not scored 0. NaN for a resample
    without any present class.
    """
    tp = weights @ (t * p)
    n_true = weights @ t
    denom = n_true + weights @ p
    present = n_true > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    k = present.sum(1)
    total = np.where(present, f1, 0.0).sum(1)
    return np.divide(total, k, out=np.full(len(total), np.nan), where=k > 0)


def bootstrap_macro_f1(y_true: np.ndarray, probs: np.ndarray, *, multilabel: bool = False,
                       thresholds: np.ndarray | None = None, n_boot: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> dict[str, float]:
    """Percentile bootstrap CI of the test macro-F1 of one run, resampling test records.

    All resamples are drawn at once as multinomial record counts and scored with
    matrix products, so 2000 resamples of a few thousand records take well
    under a second. Returns macro_f1 (on the full test set), ci_low, ci_high,
    std (of the bootstrap replicates) and n_boot.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=float)
    if len(y_true) != len(probs):
        raise ValueError(f"bootstrap_macro_f1: {len(y_true)} labels but {len(probs)} prediction rows")
    if len(y_true) == 0:
        raise ValueError("bootstrap_macro_f1: empty test set")
    n, c = probs.shape
    t, p = indicators(y_true, predicted(probs, multilabel, thresholds), c)
    point = float(macro_f1_from_counts(np.ones((1, n)), t, p)[0])
    reps = np.concatenate([macro_f1_from_counts(w, t, p) for w in resample_counts(n, n_boot, seed)])
    reps = finite(reps)  # a resample with no present class (multi-label only) has no macro-F1
    lo, hi = percentile_interval(reps, confidence)
    return {"macro_f1": point, "ci_low": lo, "ci_high": hi,
            "std": float(reps.std(ddof=1)) if len(reps) > 1 else math.nan, "n_boot": int(n_boot)}


def resample_counts(n: int, n_boot: int | None, seed: int = 0, chunk: int = 500):
    """Bootstrap resamples of n records as (b, n) float multiplicities, ``chunk`` at a time (memory
    bounded at chunk x n): one multinomial draw per resample, so a statistic written for weights
    scores a whole chunk of resamples with array operations. ``n_boot`` None: without end (the
    caller stops once it has enough usable resamples)."""
    rng = np.random.default_rng(seed)
    start = 0
    while n_boot is None or start < n_boot:
        size = chunk if n_boot is None else min(chunk, n_boot - start)
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)
        start += size


def percentile_interval(reps: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the finite replicates (NaN, NaN when there are none)."""
    reps = finite(reps)
    if not len(reps):
        return (math.nan, math.nan)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def bootstrap_run(predictions_npz: str, *, n_boot: int = 2000, seed: int = 0,
                  confidence: float = 0.95) -> dict[str, float]:
    """bootstrap_macro_f1 on a run's ``predictions_test.npz``."""
    with np.load(predictions_npz, allow_pickle=False) as z:
        y = z["y_true"]
        probs = z["probs"]
        th = z["thresholds"] if "thresholds" in z.files else None
    return bootstrap_macro_f1(y, probs, multilabel=y.ndim == 2, thresholds=th,
                              n_boot=n_boot, seed=seed, confidence=confidence)


def bootstrap_macro_auroc(y_true: np.ndarray, probs: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                          confidence: float = 0.95) -> dict[str, float]:
    """Percentile bootstrap CI of one run's macro-AUROC over the classes, resampling test records,
    as the PTB-XL benchmark does (Strodthoff et al. 2021, utils.py ``get_appropriate_bootstrap_
    samples``): a resample in which some class has no positive (or no negative) is drawn again, so
    every replicate averages over every class. Single-label labels are one-vs-rest."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true)
    probs = np.asarray(probs, dtype=float)
    if y.ndim == 1:
        y = np.eye(probs.shape[1], dtype=int)[y]
    usable = (y.sum(0) > 0) & (y.sum(0) < len(y))
    y, probs = y[:, usable], probs[:, usable]
    point = float(roc_auc_score(y, probs, average="macro"))
    rng = np.random.default_rng(seed)
    reps: list[float] = []
    while len(reps) < n_boot:
        idx = rng.integers(0, len(y), len(y))
        pos = y[idx].sum(0)
        if pos.min() == 0 or pos.max() == len(idx):
            continue
        reps.append(roc_auc_score(y[idx], probs[idx], average="macro"))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return {"macro_auroc": point, "ci_low": float(lo), "ci_high": float(hi), "std": float(np.std(reps, ddof=1)),
            "n_boot": int(n_boot)}
