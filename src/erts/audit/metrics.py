"""How well a suspicion score finds the records known to be wrong: AUROC, average precision and
the precision of the top few percent, with percentile bootstrap intervals.

One implementation for the point estimate and the resamples: every metric is written for
record multiplicities (weights), so a plain evaluation is the all-ones weight and 1,000
bootstrap resamples are a few array operations. Ties are scored as scikit-learn scores them
(AUROC counts a tie as half, AP takes tied scores as one threshold); the top-k precision
takes the expected precision over random orders within the tie at the cut.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from erts.eval.bootstrap import percentile_interval, resample_counts

TOP_FRAC = 0.05


def _groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Records ordered by score, descending, and where each run of tied scores starts."""
    order = np.argsort(-score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return order, starts


def weighted_metrics(weights: np.ndarray, truth: np.ndarray, score: np.ndarray,
                     frac: float = TOP_FRAC) -> dict[str, np.ndarray]:
    """AUROC, AP and top-``frac`` precision of ``score`` (higher = more suspicious) for each row of
    ``weights`` (b, n): how often each record occurs in that resample. NaN where a resample has
    no positive or no negative record."""
    order, starts = _groups(score)
    w = weights[:, order]
    y = truth[order].astype(float)
    wp = np.add.reduceat(w * y, starts, axis=1)           # (b, G) positives per tie group, descending
    wn = np.add.reduceat(w * (1 - y), starts, axis=1)
    n_pos, n_neg = wp.sum(1), wn.sum(1)
    ok = (n_pos > 0) & (n_neg > 0)
    neg_below = n_neg[:, None] - np.cumsum(wn, 1)          # negatives scored strictly lower
    auroc = (wp * (neg_below + 0.5 * wn)).sum(1) / np.where(ok, n_pos * n_neg, 1)
    tp, fp = np.cumsum(wp, 1), np.cumsum(wn, 1)
    precision = tp / np.maximum(tp + fp, 1e-300)
    ap = (wp * precision).sum(1) / np.where(n_pos > 0, n_pos, 1)
    total = wp + wn
    cum = np.cumsum(total, 1)
    k = np.ceil(frac * cum[:, -1] - 1e-9)
    g = np.argmax(cum >= k[:, None], axis=1)               # the tie group the cut falls in
    rows = np.arange(len(w))
    before = cum[rows, g] - total[rows, g]
    pos_before = tp[rows, g] - wp[rows, g]
    top = (pos_before + (k - before) * wp[rows, g] / np.maximum(total[rows, g], 1e-300)) / np.maximum(k, 1)
    nan = np.full(len(w), np.nan)
    return {"auroc": np.where(ok, auroc, nan), "ap": np.where(n_pos > 0, ap, nan), "top_precision": top}


def ranking_metrics(truth: np.ndarray, score: np.ndarray, frac: float = TOP_FRAC) -> dict[str, float]:
    """AUROC, average precision and top-``frac`` precision of one score over all records."""
    truth, score = _check(truth, score)
    m = weighted_metrics(np.ones((1, len(truth))), truth, score, frac)
    return {k: float(v[0]) for k, v in m.items()}


def bootstrap_ranking(truth: np.ndarray, score: np.ndarray, *, frac: float = TOP_FRAC, n_boot: int = 1000,
                      seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """``ranking_metrics`` with percentile bootstrap intervals (records resampled with replacement;
    the same resamples for every score when ``seed`` is the same, so intervals are comparable)."""
    truth, score = _check(truth, score)
    out = ranking_metrics(truth, score, frac)
    reps: dict[str, list] = {k: [] for k in out}
    for w in resample_counts(len(truth), n_boot, seed, chunk=250):
        for k, v in weighted_metrics(w, truth, score, frac).items():
            reps[k].append(v)
    for k in list(out):
        out[f"{k}_low"], out[f"{k}_high"] = percentile_interval(np.concatenate(reps[k]), confidence)
    return out


def length_matched_auroc(truth: np.ndarray, score: np.ndarray, length: np.ndarray, bins: int = 20) -> float:
    """AUROC over the (wrong, right) pairs of records of about the same length only (quantile bins
    of ``length``; bins that coincide are merged): how well a score ranks beyond what record
    length alone tells (on CinC 2017, 20 bins take record length itself from 0.68 to 0.50). NaN
    when no bin holds both kinds."""
    length = np.asarray(length, dtype=float)
    edges = (pd.qcut(length, bins, labels=False, duplicates="drop") if len(np.unique(length)) > 1
             else np.zeros(len(length)))
    known = ~np.isnan(edges)  # a record without a length is in no bin
    return matched_auroc(np.asarray(truth)[known], np.asarray(score)[known], edges[known])


def label_matched_auroc(truth: np.ndarray, score: np.ndarray, labels: np.ndarray) -> float:
    """AUROC over the (wrong, right) pairs of records with the same given label only: how well a score
    ranks beyond finding the labels where the errors sit (20 % random flips leave 69 % of CinC 2017's
    ``~`` records wrong and 5 % of its N records; a score that only ranks ``~`` first looks good)."""
    return matched_auroc(truth, score, np.asarray(labels).astype(str))


def matched_auroc(truth: np.ndarray, score: np.ndarray, strata: np.ndarray) -> float:
    """AUROC of the (wrong, right) pairs within each stratum, pooled (weighted by the stratum's pairs);
    NaN when no stratum holds both kinds."""
    truth, score = _check(truth, score)
    strata = np.asarray(strata)
    num = den = 0.0
    for b in np.unique(strata):
        sel = strata == b
        pairs = truth[sel].sum() * (~truth[sel]).sum()
        if pairs:
            num += ranking_metrics(truth[sel], score[sel])["auroc"] * pairs
            den += pairs
    return num / den if den else math.nan


def _check(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth).astype(bool)
    score = np.asarray(score, dtype=float)
    if truth.shape != score.shape or truth.ndim != 1:
        raise ValueError(f"truth {truth.shape} and score {score.shape} must be equally long vectors")
    return truth, np.where(np.isfinite(score), score, -np.inf)


def fmt_interval(v: float, lo: float, hi: float) -> str:
    return "-" if not np.isfinite(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def metrics_view(m: pd.DataFrame) -> pd.DataFrame:
    """The evaluation table as shown: one row per signal, each metric with its interval."""
    return pd.DataFrame({
        "signal": m["signal"], "family": m["family"], "suspicious": m["suspicious"],
        "AUROC [95% CI]": [fmt_interval(*r) for r in m[["auroc", "auroc_low", "auroc_high"]].to_numpy()],
        "AP [95% CI]": [fmt_interval(*r) for r in m[["ap", "ap_low", "ap_high"]].to_numpy()],
        f"top-{TOP_FRAC:.0%} precision [95% CI]": [fmt_interval(*r) for r in
                                                  m[["top_precision", "top_precision_low", "top_precision_high"]].to_numpy()],
        "AUROC length-matched": [f"{v:.3f}" if np.isfinite(v) else "-" for v in m["auroc_length_matched"]],
        **({"AUROC label-matched": [f"{v:.3f}" if np.isfinite(v) else "-" for v in m["auroc_label_matched"]]}
           if "auroc_label_matched" in m.columns else {}),
    })


def metrics_markdown(m: pd.DataFrame, what: str) -> str:
    from erts.report.build import md_table

    head = (f"Ground truth: {int(m['n_wrong'].iloc[0])} of {int(m['n'].iloc[0])} training records "
            f"{what} (base rate {m['base_rate'].iloc[0]:.3f}: the top-{TOP_FRAC:.0%} precision of a random order).")
    return head + "\n\n" + md_table(metrics_view(m)) + "\n"
