"""erts.eval.stats against scipy.stats / sklearn on hand-made numbers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from erts.eval import stats as es
from erts.eval.metrics import compute_metrics


def test_summarize_matches_scipy_t_interval():
    x = [0.71, 0.74, 0.69, 0.75, 0.72]
    s = es.summarize(x)
    mean, sd = np.mean(x), np.std(x, ddof=1)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=mean, scale=sd / math.sqrt(len(x)))
    assert s["n"] == 5
    assert s["mean"] == pytest.approx(0.722)
    assert s["std"] == pytest.approx(sd)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))
    # hand computation: t_{0.975, 4} = 2.7764451
    half = 2.7764451 * sd / math.sqrt(5)
    assert s["ci_high"] - s["mean"] == pytest.approx(half, rel=1e-6)


def test_summarize_small_n_and_constant():
    one = es.summarize([0.5])
    assert one["n"] == 1 and one["mean"] == 0.5 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    const = es.summarize([0.3, 0.3, 0.3])
    assert const["std"] == 0 and const["ci_low"] == const["ci_high"] == pytest.approx(0.3)


def test_paired_test_matches_scipy():
    a = np.array([0.80, 0.82, 0.79, 0.85, 0.81, 0.84, 0.83])
    b = np.array([0.78, 0.80, 0.80, 0.82, 0.79, 0.81, 0.80])
    r = es.paired_test(a, b)
    d = a - b
    assert r["n"] == 7
    assert r["mean_diff"] == pytest.approx(d.mean())
    assert r["p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert r["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert r["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    lo, hi = stats.t.interval(0.95, 6, loc=d.mean(), scale=stats.sem(d))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))
    # the t statistic is d_z * sqrt(n): the two must agree
    assert stats.ttest_rel(a, b).statistic == pytest.approx(r["d_z"] * math.sqrt(7))


def test_paired_test_small_n_has_no_wilcoxon():
    r = es.paired_test([0.8, 0.82, 0.85], [0.79, 0.8, 0.81])
    assert math.isnan(r["p_wilcoxon"])
    assert r["p_ttest"] == pytest.approx(stats.ttest_rel([0.8, 0.82, 0.85], [0.79, 0.8, 0.81]).pvalue)
    with pytest.raises(ValueError, match="baseline"):
        es.paired_test([1, 2], [1, 2, 3])


def test_holm_by_hand():
    p = [0.01, 0.04, np.nan, 0.03]
    # sorted: 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> cummax 0.06
    assert es.holm(p) == pytest.approx([0.03, 0.06, np.nan, 0.06], nan_ok=True)


def _grid_frame() -> pd.DataFrame:
    rows = []
    f1 = {("full", "a"): [0.70, 0.72, 0.71], ("dbpd", "a"): [0.71, 0.74, 0.72],
          ("full", "b"): [0.60, 0.61, 0.65], ("dbpd", "b"): [0.58, 0.60, 0.62]}
    for (method, model), vals in f1.items():
        for seed, v in enumerate(vals):
            rows.append({"method": method, "model": model, "seed": seed, "test_macro_f1": v})
    # a run without a partner seed: must be left out of the pairing
    rows.append({"method": "dbpd", "model": "a", "seed": 9, "test_macro_f1": 0.99})
    return pd.DataFrame(rows)


def test_group_summary_and_paired_comparisons():
    df = _grid_frame()
    g = es.group_summary(df, ["method", "model"], ["test_macro_f1"])
    row = g[(g.method == "full") & (g.model == "b")].iloc[0]
    assert row["n"] == 3
    assert row["test_macro_f1_mean"] == pytest.approx(np.mean([0.60, 0.61, 0.65]))
    assert row["test_macro_f1_std"] == pytest.approx(np.std([0.60, 0.61, 0.65], ddof=1))

    c = es.paired_comparisons(df, ["method", "model", "seed"])
    assert list(c["model"]) == ["a", "b"] and set(c["method"]) == {"dbpd"}
    a = c[c.model == "a"].iloc[0]
    assert a["n"] == 3  # seed 9 has no baseline partner
    assert a["p_ttest"] == pytest.approx(stats.ttest_rel([0.71, 0.74, 0.72], [0.70, 0.72, 0.71]).pvalue)
    b = c[c.model == "b"].iloc[0]
    assert b["mean_diff"] == pytest.approx(np.mean([-0.02, -0.01, -0.03]))
    assert list(c["p_holm"]) == pytest.approx(list(es.holm(c["p_ttest"])))


def test_macro_f1_from_counts_matches_sklearn_on_resamples():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 60)
    probs = rng.random((60, 4))
    pred = probs.argmax(1)
    t, p = es._indicators(y, pred, 4)
    idx = rng.integers(0, 60, (5, 60))
    w = np.stack([np.bincount(i, minlength=60) for i in idx]).astype(float)
    got = es.macro_f1_from_counts(w, t, p)
    want = [f1_score(y[i], pred[i], average="macro", labels=range(4), zero_division=0) for i in idx]
    assert got == pytest.approx(want)
    # a class missing from a resample's truth and predictions scores 0, as in erts.eval.metrics
    only = np.where(y != 3)[0]
    w1 = np.bincount(only, minlength=60)[None].astype(float)
    p_no3 = np.where(pred == 3, 0, pred)
    t3, pp3 = es._indicators(y, p_no3, 4)
    assert es.macro_f1_from_counts(w1, t3, pp3)[0] == pytest.approx(
        f1_score(y[only], p_no3[only], average=None, labels=range(3)).sum() / 4)


def test_macro_f1_multilabel_matches_sklearn():
    rng = np.random.default_rng(2)
    y = (rng.random((40, 3)) < 0.4).astype(int)
    y[:, 2] = 0  # a class with no positives and (with a high threshold) no predictions scores 0
    probs = rng.random((40, 3))
    th = np.array([0.5, 0.3, 1.1])
    r = es.bootstrap_macro_f1(y, probs, multilabel=True, thresholds=th, n_boot=50)
    assert r["macro_f1"] == pytest.approx(f1_score(y, (probs >= th).astype(int), average="macro", zero_division=0))


def test_bootstrap_ci_agrees_with_scipy_bootstrap(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 3, n)
    probs = rng.random((n, 3))
    probs[np.arange(n), y] += 0.6 * (rng.random(n) < 0.7)  # ~75 % accurate
    r = es.bootstrap_macro_f1(y, probs, n_boot=4000, seed=0)
    pred = probs.argmax(1)
    assert r["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert r["macro_f1"] == pytest.approx(compute_metrics(y, probs, ["a", "b", "c"])["macro_f1"])

    def macro_f1(a, b, axis=-1):  # vectorised over scipy's resamples: F1_c = 2 tp / (n_true + n_pred)
        f = [2 * ((a == c) & (b == c)).sum(axis) / ((a == c).sum(axis) + (b == c).sum(axis)) for c in range(3)]
        return np.mean(f, axis=0)

    assert macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro"))
    ref = stats.bootstrap((y, pred), macro_f1, paired=True, vectorized=True, n_resamples=4000,
                          method="percentile", random_state=np.random.default_rng(1)).confidence_interval
    # two Monte-Carlo estimates of the same percentiles: agree to within resampling noise
    assert r["ci_low"] == pytest.approx(ref.low, abs=0.015)
    assert r["ci_high"] == pytest.approx(ref.high, abs=0.015)
    assert r["ci_low"] < r["macro_f1"] < r["ci_high"]
    # deterministic for a seed, and read back from a predictions file
    path = tmp_path / "predictions_test.npz"
    np.savez(path, record_ids=np.array([f"r{i}" for i in range(n)]), y_true=y, probs=probs.astype(np.float32))
    again = es.bootstrap_run(str(path), n_boot=4000, seed=0)
    assert again["ci_low"] == pytest.approx(r["ci_low"], abs=1e-6)
    assert again["ci_high"] == pytest.approx(r["ci_high"], abs=1e-6)
    with pytest.raises(ValueError, match="prediction rows"):
        es.bootstrap_macro_f1(y[:5], probs)
