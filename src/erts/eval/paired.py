"""Paired bootstrap of the difference between two configurations tested on the same records.

Why: with 3 seeds the paired t-test over seeds has 2 degrees of freedom and sees only the seed
means. Every run of a sweep is tested on the same records, so each replicate here draws the test
records once (a multinomial resample, as for one run's interval) and the seeds once (with
replacement), and scores both configurations of every drawn seed on that one draw: the records
that are hard for both cancel, the training randomness stays in the interval. The interval is a
percentile interval of the mean over seeds of (A - B); p is the two-sided bootstrap p of no
difference. With few seeds the seed level of the bootstrap is coarse (3 seeds give 10 distinct
draws): read it beside the t-test over seeds, not instead of it.

Metrics: macro-AUROC (one-vs-rest, as erts.eval.metrics; a replicate in which a class has no
positive or no negative record is drawn again, as the PTB-XL benchmark draws its resamples) and
macro-F1 at each run's own decision rule (argmax, or its validation thresholds).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from erts.eval.bootstrap import indicators, macro_f1_from_counts, percentile_interval, predicted, resample_counts
from erts.eval.stats import _matches, holm

METRICS = ("macro_auroc", "macro_f1")


def weighted_auroc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one class under B weighted resamples at once: (B,), NaN where a resample has no
    positive or no negative. ``y``: (N,) 0/1; ``scores``: (N,); ``weights``: (B, N) multiplicities.
    Ties count one half, as in roc_auc_score (the Mann-Whitney statistic)."""
    order = np.argsort(scores, kind="stable")
    s, pos = scores[order], np.asarray(y, dtype=bool)[order]
    w = weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # one group per distinct score
    p_g = np.add.reduceat(w * pos, starts, axis=1)
    n_g = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(n_g, axis=1) - n_g  # negatives scored lower than each group
    num = (p_g * (below + 0.5 * n_g)).sum(1)
    den = p_g.sum(1) * n_g.sum(1)
    return np.divide(num, den, out=np.full(len(den), np.nan), where=den > 0)


def weighted_macro_auroc(y: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over ``y``'s columns of weighted_auroc: (B,), NaN where a class lacks a positive or a negative."""
    return np.mean([weighted_auroc(y[:, k], probs[:, k], weights) for k in range(y.shape[1])], axis=0)


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    y = np.asarray(y)
    return y.astype(np.float64) if y.ndim == 2 else np.eye(k)[y]


def paired_bootstrap(y_true: np.ndarray, probs_a: Sequence[np.ndarray], probs_b: Sequence[np.ndarray], *,
                     metric: str = "macro_auroc", thresholds_a: Sequence[np.ndarray | None] | None = None,
                     thresholds_b: Sequence[np.ndarray | None] | None = None, n_boot: int = 2000,
                     seed: int = 0, confidence: float = 0.95, chunk: int = 250) -> dict[str, float]:
    """The mean over seeds of metric(A) - metric(B), with its two-level bootstrap interval and p.

    ``probs_a[i]`` and ``probs_b[i]``: the test probabilities of seed i's runs of A and B, rows in
    the order of ``y_true`` (labels (N,) or multi-hot (N, K)). ``thresholds_*``: per seed, the
    run's validation thresholds (multi-label macro-F1; None: 0.5). Returns diff, ci_low, ci_high,
    p (two-sided), n_seeds, n_boot."""
    if metric not in METRICS:
        raise ValueError(f"paired_bootstrap: metric {metric!r} is not one of {METRICS}")
    if len(probs_a) != len(probs_b) or not len(probs_a):
        raise ValueError(f"paired_bootstrap: {len(probs_a)} runs of A against {len(probs_b)} of B; "
                         "one of each per seed is needed")
    n, k = len(y_true), np.asarray(probs_a[0]).shape[1]
    for p in [*probs_a, *probs_b]:
        if np.asarray(p).shape != (n, k):
            raise ValueError(f"paired_bootstrap: predictions of shape {np.asarray(p).shape}, the labels "
                             f"need ({n}, {k}): were the runs tested on the same records?")
    multilabel = np.asarray(y_true).ndim == 2
    y = _one_hot(y_true, k)
    usable = (y.sum(0) > 0) & (y.sum(0) < n)  # classes macro-AUROC is defined on (erts.eval.metrics)

    def scorer(probs: np.ndarray, th: np.ndarray | None):
        """One run's metric as a function of the resample weights (what does not depend on them, once)."""
        probs = np.asarray(probs, dtype=float)
        if metric == "macro_auroc":
            return lambda w: weighted_macro_auroc(y[:, usable], probs[:, usable], w)
        t, p = indicators(np.asarray(y_true), predicted(probs, multilabel, th), k)
        return lambda w: macro_f1_from_counts(w, t, p)

    th_a = list(thresholds_a) if thresholds_a is not None else [None] * len(probs_a)
    th_b = list(thresholds_b) if thresholds_b is not None else [None] * len(probs_b)
    pairs = [(scorer(a, ta), scorer(b, tb)) for a, b, ta, tb in zip(probs_a, probs_b, th_a, th_b)]

    def diffs(w: np.ndarray) -> np.ndarray:  # (seeds, B)
        return np.stack([score_a(w) - score_b(w) for score_a, score_b in pairs])

    point = float(diffs(np.ones((1, n))).mean())
    seed_rng = np.random.default_rng([seed, 1])  # the seeds' draws, apart from the records'
    s = len(probs_a)
    reps: list[np.ndarray] = []
    drawn, got = 0, 0
    for w in resample_counts(n, None, seed, chunk):
        d = diffs(w)
        pick = seed_rng.integers(0, s, size=(chunk, s))  # the seeds of each replicate
        rep = d[pick, np.arange(chunk)[:, None]].mean(1)
        rep = rep[np.isfinite(rep)]
        reps.append(rep)
        drawn, got = drawn + chunk, got + len(rep)
        if got >= n_boot or drawn >= 20 * n_boot:  # a class too rare to be drawn every time ends it
            break
    r = np.concatenate(reps)[:n_boot] if reps else np.array([])
    lo, hi = percentile_interval(r, confidence)
    p_value = min(1.0, 2 * min((np.sum(r <= 0) + 1) / (len(r) + 1), (np.sum(r >= 0) + 1) / (len(r) + 1))) \
        if len(r) else math.nan
    return {"diff": point, "ci_low": lo, "ci_high": hi, "p": float(p_value), "n_seeds": s, "n_boot": int(len(r))}


def load_predictions(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A run's test labels, probabilities and validation thresholds (None: single-label)."""
    with np.load(Path(run_dir) / "predictions_test.npz", allow_pickle=False) as z:
        return z["y_true"], z["probs"], (z["thresholds"] if "thresholds" in z.files else None)


def paired_runs(pairs: pd.DataFrame, runs: pd.DataFrame, metric: str, keys: Sequence[str] = ("method",), *,
                n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """paired_bootstrap for each row of ``pairs`` (a comparison table of erts.eval.stats: the
    configuration keys, ``method`` and ``baseline``), over the seeds where both have a run folder with
    test predictions in ``runs`` (the configuration keys, seed, run_dir); the partner has the
    baseline's method and every other key of ``keys`` equal. ``metric``: a results column
    (test_macro_auroc, test_macro_f1). Returns the keys, baseline, diff, ci_low, ci_high, p, n_seeds
    and p_holm (Holm over the rows: ``pairs`` is the family)."""
    name = metric.removeprefix("test_")
    if name not in METRICS:
        raise ValueError(f"paired_runs: no paired bootstrap for {metric!r} (one of test_{', test_'.join(METRICS)})")
    keys = list(dict.fromkeys(["method", *keys]))
    have = runs[runs["run_dir"].map(lambda d: Path(d, "predictions_test.npz").exists()).astype(bool)]
    rows = []
    for _, r in pairs.iterrows():
        a, b = have, have
        for k in keys:
            a = a[_matches(a[k], r[k])]
            b = b[_matches(b[k], r["baseline"] if k == "method" else r[k])]
        a, b = a.set_index("seed")["run_dir"], b.set_index("seed")["run_dir"]
        seeds = sorted(set(a.index) & set(b.index))
        if not seeds:
            continue
        pa, pb = [load_predictions(a[s]) for s in seeds], [load_predictions(b[s]) for s in seeds]
        y = pa[0][0]
        if any(not np.array_equal(p[0], y) for p in pa + pb):
            raise ValueError(f"paired_runs: {r['method']} and {r['baseline']} were not tested on the same records")
        res = paired_bootstrap(y, [p[1] for p in pa], [p[1] for p in pb], metric=name, n_boot=n_boot, seed=seed,
                               thresholds_a=[p[2] for p in pa], thresholds_b=[p[2] for p in pb])
        rows.append({**{k: r[k] for k in keys}, "baseline": r["baseline"], **res})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["p_holm"] = holm(out["p"].to_numpy())
    return out
