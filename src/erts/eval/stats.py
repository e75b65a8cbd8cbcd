"""Statistics for comparing runs: seed-level summaries, paired tests, bootstrap CIs.

Why paired: runs of two methods that share a seed share the data split order,
the initial weights and the batch order, so their difference is far less noisy
than either result alone. Comparing a method with its baseline seed by seed
(paired t-test, Wilcoxon signed-rank) is the honest test of a small gain; the
published 0.002-0.01 macro-F1 gains came from single runs.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

# Smallest number of pairs for which a two-sided exact Wilcoxon signed-rank
# test can reach p < 0.05 (n = 6 gives p = 2 / 2**6 = 0.031); below it the
# test cannot reject anything, so it is not reported.
WILCOXON_MIN_N = 6


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of the mean from the t distribution (n - 1 dof); NaN for n < 2."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return (math.nan, math.nan)
    sem = x.std(ddof=1) / math.sqrt(n)
    if sem == 0:
        return (float(x.mean()), float(x.mean()))
    lo, hi = stats.t.interval(confidence, n - 1, loc=x.mean(), scale=sem)
    return (float(lo), float(hi))


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample std (ddof=1), t-based CI and n of one configuration's seeds."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    lo, hi = t_interval(x, confidence)
    return {
        "n": n,
        "mean": float(x.mean()) if n else math.nan,
        "std": float(x.std(ddof=1)) if n > 1 else math.nan,
        "ci_low": lo,
        "ci_high": hi,
    }


def group_summary(df: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str],
                  confidence: float = 0.95) -> pd.DataFrame:
    """One row per configuration (``keys``, i.e. every grid key but the seed).

    Columns: the keys, ``n``, and for each metric ``<metric>_mean``, ``_std``,
    ``_ci_low``, ``_ci_high``.
    """
    rows = []
    groups = df.groupby(list(keys), sort=False, dropna=False) if keys else [((), df)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        row: dict = dict(zip(keys, key))
        row["n"] = len(g)
        for m in metrics:
            s = summarize(g[m].to_numpy(dtype=float), confidence)
            row.update({f"{m}_{k}": v for k, v in s.items() if k != "n"})
        rows.append(row)
    return pd.DataFrame(rows)


def paired_test(method: Sequence[float], baseline: Sequence[float],
                confidence: float = 0.95) -> dict[str, float]:
    """Paired comparison of two equally long, seed-aligned result lists (method - baseline).

    Returns n, mean_diff, sd_diff, ci_low/ci_high of the mean difference (t),
    p_ttest (two-sided paired t-test), p_wilcoxon (two-sided signed-rank; NaN
    when n < WILCOXON_MIN_N or every difference is zero) and d_z (Cohen's
    effect size of paired data: mean difference / sd of differences).
    """
    a = np.asarray(method, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_test: {a.shape} method results against {b.shape} baseline results")
    d = a - b
    n = len(d)
    out = {"n": n, "mean_diff": float(d.mean()) if n else math.nan,
           "sd_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "p_ttest": math.nan, "p_wilcoxon": math.nan, "d_z": math.nan}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["sd_diff"] = sd
    out["ci_low"], out["ci_high"] = t_interval(d, confidence)
    if sd > 0:
        out["p_ttest"] = float(stats.ttest_rel(a, b).pvalue)
        out["d_z"] = float(d.mean() / sd)
    if n >= WILCOXON_MIN_N and np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(a, b).pvalue)
    return out


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaNs stay NaN and do not count as tests).

    Why: a grid compares many methods with their baselines; at p < 0.05 one in
    twenty true nulls looks like a win. Holm controls the family-wise error.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def paired_comparisons(df: pd.DataFrame, keys: Sequence[str], metric: str = "test_macro_f1",
                       method_key: str = "method", baseline: str = "full", seed_key: str = "seed",
                       confidence: float = 0.95) -> pd.DataFrame:
    """Every non-baseline configuration against its baseline, paired by seed.

    The baseline of a configuration is the one with ``method_key == baseline``
    and the same value for every other key in ``keys``. Only seeds present in
    both enter the test. Adds ``p_holm`` (Holm-adjusted paired t-test p over all
    rows). Configurations with no baseline run are left out.
    """
    keys = [k for k in keys if k != seed_key]
    if method_key not in keys:
        raise ValueError(f"paired_comparisons: {method_key!r} must be one of the configuration keys {keys}")
    others = [k for k in keys if k != method_key]
    base = df[df[method_key] == baseline]
    rows = []
    for key, g in df[df[method_key] != baseline].groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cfg = dict(zip(keys, key))
        b = base
        for k in others:
            b = b[b[k] == cfg[k]]
        if b.empty:
            continue
        pairs = g[[seed_key, metric]].merge(b[[seed_key, metric]], on=seed_key, suffixes=("", "_base"))
        pairs = pairs.dropna().sort_values(seed_key)
        res = paired_test(pairs[metric].to_numpy(), pairs[f"{metric}_base"].to_numpy(), confidence)
        rows.append({**cfg, "baseline": baseline, **res})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["p_holm"] = holm(out["p_ttest"].to_numpy())
    return out


# --- bootstrap CI of a single run's test macro-F1 -----------------------------------------

def _predict(probs: np.ndarray, multilabel: bool, thresholds: np.ndarray | None) -> np.ndarray:
    if not multilabel:
        return probs.argmax(1)
    th = 0.5 if thresholds is None else np.asarray(thresholds, dtype=float)
    return (probs >= th).astype(np.int8)


def _indicators(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) 0/1 matrices of true and predicted class membership."""
    if y_true.ndim == 2:
        return y_true.astype(np.float64), y_pred.astype(np.float64)
    eye = np.eye(num_classes)
    return eye[y_true], eye[y_pred]


def macro_f1_from_counts(weights: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Macro-F1 of B weighted resamples at once.

    weights: (B, N) how often each record occurs in each resample; t, p: (N, C)
    true/predicted indicators. Same definition as erts.eval.metrics (sklearn
    ``f1_score(labels=range(C), zero_division=0)`` averaged over every class):
    a class with no true and no predicted record in a resample scores 0.
    """
    tp = weights @ (t * p)
    denom = weights @ t + weights @ p
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(1)


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
    t, p = _indicators(y_true, _predict(probs, multilabel, thresholds), c)
    point = float(macro_f1_from_counts(np.ones((1, n)), t, p)[0])
    rng = np.random.default_rng(seed)
    reps = []
    for start in range(0, n_boot, 500):  # chunks bound memory at 500 x N counts
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(500, n_boot - start)).astype(np.float64)
        reps.append(macro_f1_from_counts(w, t, p))
    reps = np.concatenate(reps)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return {"macro_f1": point, "ci_low": float(lo), "ci_high": float(hi),
            "std": float(reps.std(ddof=1)), "n_boot": int(n_boot)}


def bootstrap_run(predictions_npz: str, *, n_boot: int = 2000, seed: int = 0,
                  confidence: float = 0.95) -> dict[str, float]:
    """bootstrap_macro_f1 on a run's ``predictions_test.npz``."""
    with np.load(predictions_npz, allow_pickle=False) as z:
        y = z["y_true"]
        probs = z["probs"]
        th = z["thresholds"] if "thresholds" in z.files else None
    return bootstrap_macro_f1(y, probs, multilabel=y.ndim == 2, thresholds=th,
                              n_boot=n_boot, seed=seed, confidence=confidence)
