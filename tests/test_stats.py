"""erts.eval.stats, .controls and .bootstrap against scipy.stats / sklearn on hand-made numbers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from erts.eval import bootstrap as eb
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


def test_summarize_counts_finite_values_only_and_clips_bounded_cis():
    s = es.summarize([0.7, np.nan, 0.8, np.inf])
    assert s["n"] == 2 and s["mean"] == pytest.approx(0.75)
    # hand: sd = 0.0707107, sem = 0.05, t(0.975, 1) = 12.7062047 -> 0.75 -+ 0.635310
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((0.75 - 0.6353102, 0.75 + 0.6353102), abs=1e-6)
    c = es.summarize([0.7, np.nan, 0.8, np.inf], bounds=(0.0, 1.0))
    assert c["ci_low"] == pytest.approx(0.1146898, abs=1e-6) and c["ci_high"] == 1.0
    assert es.summarize([np.nan, np.nan])["n"] == 0


def test_group_summary_n_per_metric_and_clipping():
    df = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
                       "test_macro_f1": [0.95, 0.99, np.nan, 0.5, 0.6, 0.7],
                       "seconds_total": [1.0, 9.0, 5.0, 2.0, 2.0, 2.0]})
    g = es.group_summary(df, ["method"], ["test_macro_f1", "seconds_total"]).set_index("method")
    assert g.loc["a", "runs"] == 3 and g.loc["a", "n"] == 2 and g.loc["a", "test_macro_f1_n"] == 2
    assert g.loc["a", "seconds_total_n"] == 3
    assert g.loc["a", "test_macro_f1_mean"] == pytest.approx(0.97)  # the NaN run is not a zero
    # hand: sd 0.0282843, sem 0.02, half 12.7062 * 0.02 = 0.254124 -> [0.715876, 1.224124] -> high clipped to 1
    assert g.loc["a", "test_macro_f1_ci_low"] == pytest.approx(0.715876, abs=1e-6)
    assert g.loc["a", "test_macro_f1_ci_high"] == 1.0
    # seconds are not bounded: mean 5, sd 4, sem 2.309401, t(0.975, 2) = 4.3026527 -> low 5 - 9.936551 < 0 kept
    assert g.loc["a", "seconds_total_ci_low"] == pytest.approx(5 - 9.936551, abs=1e-5)
    assert g.loc["b", "n"] == 3


def test_bounded_metric_names():
    for m in ("test_macro_f1", "val_accuracy", "test_macro_auroc", "test_f1_nao", "test_f1_NORM", "kept_frac"):
        assert es.is_bounded(m), m
    for m in ("effective_epochs", "seconds_total", "flops_total", "forwards_update", "best_epoch"):
        assert not es.is_bounded(m), m


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
    # d = 1, 0, 1: mean 2/3, sd 0.57735, half 4.3026527 * 0.57735 / sqrt(3) = 1.434218 -> high clipped to 1
    r = es.paired_test([1.0, 0.0, 1.0], [0.0, 0.0, 0.0], bound=1.0)
    assert r["ci_low"] == pytest.approx(2 / 3 - 1.434218, abs=1e-5) and r["ci_high"] == 1.0


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


def _erts_frame() -> pd.DataFrame:
    f1 = {("full", "a"): [0.70, 0.72, 0.71], ("dbpd", "a"): [0.66, 0.69, 0.67],
          ("erts-dbpd", "a"): [0.68, 0.72, 0.70], ("smrd", "a"): [0.69, 0.70, 0.72],
          ("erts-smrd", "a"): [0.69, 0.71, np.nan],  # seed 2 undefined: not a pair
          ("erts-infobatch", "a"): [0.7, 0.7, 0.7],  # no infobatch run: nothing to pair with
          ("dbpd", "b"): [0.60, 0.61, 0.65], ("erts-dbpd", "b"): [0.58, 0.60, 0.62]}
    rows = [{"dataset": "syn", "model": model, "phi": None if model == "a" else 0.7, "method": method, "seed": seed,
             "test_macro_f1": v} for (method, model), vals in f1.items() for seed, v in enumerate(vals)]
    rows.append({"dataset": "syn", "model": "a", "phi": None, "method": "erts-dbpd", "seed": 7, "test_macro_f1": 0.9})
    return pd.DataFrame(rows)


def test_erts_base_names_the_filtered_rule():
    assert [es.erts_base(m) for m in ("erts-dbpd", "erts-smrd", "erts-srd", "erts-infobatch", "dbpd", "full", "erts-")] \
        == ["dbpd", "smrd", "srd", "infobatch", None, None, None]


def test_erts_comparisons_pair_each_erts_method_with_its_rule():
    df = _erts_frame()
    c = es.erts_comparisons(df, ["dataset", "model", "phi", "method"])
    got = [(r.method, r.model, r.baseline, r.n) for r in c.itertuples()]
    # erts-infobatch has no partner; seed 7 and erts-smrd's NaN seed have none either
    assert got == [("erts-dbpd", "a", "dbpd", 3), ("erts-smrd", "a", "smrd", 2), ("erts-dbpd", "b", "dbpd", 3)]
    r = c.iloc[0]
    assert r["mean_diff"] == pytest.approx(np.mean([0.02, 0.03, 0.03]))
    assert r["p_ttest"] == pytest.approx(stats.ttest_rel([0.68, 0.72, 0.70], [0.66, 0.69, 0.67]).pvalue)
    assert c.iloc[1]["mean_diff"] == pytest.approx(np.mean([0.0, 0.01]))
    assert c.iloc[2]["mean_diff"] == pytest.approx(np.mean([-0.02, -0.01, -0.03]))
    # Holm over this family of three, by hand
    p = c["p_ttest"].to_numpy()
    order = np.argsort(p)
    want = np.empty(3)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * p[i]))
        want[i] = running
    assert c["p_holm"].to_numpy() == pytest.approx(want)
    # the family against full is a different table, with its own Holm adjustment
    f = es.paired_comparisons(df, ["dataset", "model", "phi", "method"])
    assert set(f["baseline"]) == {"full"} and set(f["model"]) == {"a"}  # model b has no full run
    assert len(f) == 5 and f.set_index("method").loc["erts-dbpd", "n"] == 3


def test_macro_f1_from_counts_matches_sklearn_on_resamples():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 60)
    probs = rng.random((60, 4))
    pred = probs.argmax(1)
    t, p = eb.indicators(y, pred, 4)
    idx = rng.integers(0, 60, (5, 60))
    w = np.stack([np.bincount(i, minlength=60) for i in idx]).astype(float)
    got = eb.macro_f1_from_counts(w, t, p)
    want = [f1_score(y[i], pred[i], average="macro", labels=np.unique(y[i]), zero_division=0) for i in idx]
    assert got == pytest.approx(want)
    # a class missing from a resample's truth is left out of the average, as in erts.eval.metrics
    only = np.where(y != 3)[0]
    w1 = np.bincount(only, minlength=60)[None].astype(float)
    t3, pp3 = eb.indicators(y, pred, 4)  # class 3 still predicted: its false positives hurt the others' recall
    assert eb.macro_f1_from_counts(w1, t3, pp3)[0] == pytest.approx(
        f1_score(y[only], pred[only], average=None, labels=range(3)).sum() / 3)
    assert eb.macro_f1_from_counts(w1, t3, pp3)[0] == pytest.approx(
        compute_metrics(y[only], np.eye(4)[pred[only]], list("abcd"))["macro_f1"])


def test_macro_f1_multilabel_matches_sklearn():
    rng = np.random.default_rng(2)
    y = (rng.random((40, 3)) < 0.4).astype(int)
    y[:, 2] = 0  # a class with no positives is undefined and left out
    probs = rng.random((40, 3))
    th = np.array([0.5, 0.3, 0.6])
    r = eb.bootstrap_macro_f1(y, probs, multilabel=True, thresholds=th, n_boot=50)
    pred = (probs >= th).astype(int)
    assert r["macro_f1"] == pytest.approx(f1_score(y[:, :2], pred[:, :2], average="macro", zero_division=0))
    assert r["macro_f1"] == pytest.approx(compute_metrics(y, probs, list("abc"), multilabel=True,
                                                          thresholds=th)["macro_f1"])


def test_bootstrap_ci_agrees_with_scipy_bootstrap(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 3, n)
    probs = rng.random((n, 3))
    probs[np.arange(n), y] += 0.6 * (rng.random(n) < 0.7)  # ~75 % accurate
    r = eb.bootstrap_macro_f1(y, probs, n_boot=4000, seed=0)
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
    again = eb.bootstrap_run(str(path), n_boot=4000, seed=0)
    assert again["ci_low"] == pytest.approx(r["ci_low"], abs=1e-6)
    assert again["ci_high"] == pytest.approx(r["ci_high"], abs=1e-6)
    with pytest.raises(ValueError, match="prediction rows"):
        eb.bootstrap_macro_f1(y[:5], probs)


def test_equal_budget_controls_pair_each_method_with_full_and_random_at_its_own_budget():
    from scipy import stats as sps

    from erts.eval.controls import equal_budget_comparisons, label_controls

    rows = []
    f1 = {"dbpd": [0.60, 0.62, 0.61], "infobatch": [0.64, 0.66, 0.65], "full": [0.63, 0.64, 0.65],
          "full@dbpd": [0.61, 0.60, 0.62], "random@dbpd": [0.58, 0.57, 0.59],
          "full@infobatch": [0.62, 0.63, 0.61], "random@infobatch": [0.60, 0.61, 0.62]}
    ee = {"dbpd": [18.3, 18.4, 18.2], "infobatch": [20.5, 20.6, 20.4]}
    for seed in range(3):
        rows.append({"run": f"full{seed}", "dataset": "d", "method": "full", "budget": None, "seed": seed,
                     "test_macro_f1": f1["full"][seed], "effective_epochs": 30.0, "epochs": 30})
        for m in ("dbpd", "infobatch"):
            b = round(ee[m][seed] / 30, 4)
            rows.append({"run": f"{m}{seed}", "dataset": "d", "method": m, "budget": None, "seed": seed,
                         "test_macro_f1": f1[m][seed], "effective_epochs": ee[m][seed], "epochs": 30})
            for c in ("full", "random"):
                rows.append({"run": f"{c}{m}{seed}", "dataset": "d", "method": c, "budget": b, "seed": seed,
                             "test_macro_f1": f1[f"{c}@{m}"][seed], "effective_epochs": b * 30,
                             "epochs": 19 if c == "full" else 30})
    df = pd.DataFrame(rows)
    labelled = label_controls(df)
    assert sorted(set(labelled["method"])) == sorted(f1)
    comp = equal_budget_comparisons(df, ["dataset", "method", "budget"]).set_index(["method", "baseline"])
    assert len(comp) == 4
    for m in ("dbpd", "infobatch"):
        for c in ("full", "random"):
            r = comp.loc[(m, f"{c}@{m}")]
            d = np.array(f1[m]) - np.array(f1[f"{c}@{m}"])
            assert r.mean_diff == pytest.approx(d.mean())
            assert r.p_ttest == pytest.approx(sps.ttest_rel(f1[m], f1[f"{c}@{m}"]).pvalue)
    p = np.sort(comp["p_ttest"].to_numpy())
    assert comp["p_holm"].min() == pytest.approx(min(1.0, 4 * p[0]))


def test_rho_loss_controls_are_charged_its_irreducible_loss_models():
    """rho-loss trains two irreducible-loss models (rho_il_epochs x N sample backwards): its controls get
    (EE + those backwards / N) / epochs, and a control at that budget is labelled as its own."""
    from erts.eval.controls import budget_share, label_controls

    n = 200
    rho = {"run": "r", "dataset": "d", "method": "rho-loss", "budget": None, "seed": 0, "effective_epochs": 10.0,
           "epochs": 30, "backwards_update": 10.0 * n, "backwards_irreducible": 4.0 * n}
    assert budget_share(rho) == pytest.approx(14 / 30)
    assert budget_share({**rho, "backwards_irreducible": 0.0}) == pytest.approx(10 / 30)
    assert budget_share({"effective_epochs": 12.0, "epochs": 30}) == pytest.approx(0.4)  # older results: no columns
    # a budgeted full run trains ceil(0.74 x 30) = 23 epochs of the schedule's 30: its share is 0.74, not 22.2 / 23
    assert budget_share({"effective_epochs": 22.2, "epochs": 23, "reference_epochs": 30}) == pytest.approx(0.74)
    ctrl = {"run": "c", "dataset": "d", "method": "full", "budget": 0.47, "seed": 0, "effective_epochs": 14.1,
            "epochs": 15, "backwards_update": 14.1 * n, "backwards_irreducible": 0.0}
    labelled = label_controls(pd.DataFrame([rho, ctrl]))
    assert sorted(labelled["method"]) == ["full@rho-loss", "rho-loss"]
    # uncharged, the same control would match nothing
    bare = label_controls(pd.DataFrame([{**rho, "backwards_irreducible": 0.0}, ctrl]))
    assert sorted(bare["method"]) == ["full@0.47", "rho-loss"]


def test_a_method_between_two_budgets_is_paired_with_the_nearer_control_only():
    """Two configurations of about equal cost get controls at 0.79 and 0.80; a method at 0.7955 is within
    the tolerance of both, and only the control at 0.80 is its own (one pair per seed, not two)."""
    from erts.eval.controls import label_controls

    base = {"dataset": "d", "seed": 0, "epochs": 30, "test_macro_f1": 0.5}
    df = pd.DataFrame([{**base, "run": "a", "method": "a", "budget": None, "effective_epochs": 0.7955 * 30},
                       {**base, "run": "b", "method": "b", "budget": None, "effective_epochs": 0.791 * 30},
                       {**base, "run": "c79", "method": "full", "budget": 0.79, "effective_epochs": 0.79 * 30},
                       {**base, "run": "c80", "method": "full", "budget": 0.80, "effective_epochs": 0.80 * 30}])
    got = sorted(zip(label_controls(df)["method"], label_controls(df)["run"]))
    assert got == [("a", "a"), ("b", "b"), ("full@a", "c80"), ("full@b", "c79")]


def test_bootstrap_macro_auroc_resamples_records_with_every_class_present():
    from sklearn.metrics import roc_auc_score

    from erts.eval.bootstrap import bootstrap_macro_auroc

    rng = np.random.default_rng(0)
    y = (rng.random((400, 3)) < [0.5, 0.2, 0.05]).astype(int)
    probs = np.clip(y * 0.3 + rng.random((400, 3)) * 0.7, 0, 1)
    r = bootstrap_macro_auroc(y, probs, n_boot=300, seed=1)
    assert r["macro_auroc"] == pytest.approx(roc_auc_score(y, probs, average="macro"))
    assert r["ci_low"] < r["macro_auroc"] < r["ci_high"]
    # independently: the replicates' spread shrinks like 1/sqrt(n) (4x the records, about half the width)
    big = bootstrap_macro_auroc(np.tile(y, (4, 1)), np.tile(probs, (4, 1)), n_boot=300, seed=1)
    ratio = (big["ci_high"] - big["ci_low"]) / (r["ci_high"] - r["ci_low"])
    assert 0.35 < ratio < 0.7


def test_controls_at_the_cheapest_method_are_one_configuration_whichever_method_is_cheapest():
    """--controls cheapest: one budget per seed, the cheapest method's, and the cheapest method changes
    from seed to seed. Every method is paired with the same controls in every seed (3 pairs each), not
    with a label that exists in one seed only; a variant cheaper than the controls gets none."""
    from scipy import stats as sps

    from erts.eval.controls import equal_budget_comparisons, label_controls

    ee = {"dbpd": [18.9, 18.3, 19.0], "erts-dbpd": [18.5, 18.9, 18.6], "infobatch": [21.7, 21.5, 21.6],
          "dbpd+update": [18.0, 17.9, 18.1]}
    auc = {"dbpd": [0.9281, 0.9263, 0.9297], "erts-dbpd": [0.9256, 0.9251, 0.9242],
           "infobatch": [0.9306, 0.9287, 0.9302], "dbpd+update": [0.9133, 0.9151, 0.9124],
           "full": [0.9317, 0.9311, 0.9335], "full@cheapest": [0.9310, 0.9296, 0.9289],
           "random@cheapest": [0.9288, 0.9279, 0.9301]}
    rows = []
    for seed in range(3):
        rows.append({"run": f"full{seed}", "dataset": "d", "method": "full", "budget": None, "seed": seed,
                     "auc": auc["full"][seed], "effective_epochs": 30.0, "epochs": 30})
        for m in ee:
            rows.append({"run": f"{m}{seed}", "dataset": "d", "method": m, "budget": None, "seed": seed,
                         "auc": auc[m][seed], "effective_epochs": ee[m][seed], "epochs": 30})
        cheapest = round(min(ee[m][seed] for m in ("dbpd", "erts-dbpd", "infobatch")) / 30, 2)
        for c in ("full", "random"):
            rows.append({"run": f"{c}{seed}", "dataset": "d", "method": c, "budget": cheapest, "seed": seed,
                         "auc": auc[f"{c}@cheapest"][seed], "effective_epochs": cheapest * 30, "epochs": 30})
    df = pd.DataFrame(rows)
    labelled = label_controls(df)
    assert sorted(set(labelled["method"]) - set(ee) - {"full"}) == ["full@cheapest", "random@cheapest"]
    comp = equal_budget_comparisons(df, ["dataset", "method", "budget"], "auc").set_index(["method", "baseline"])
    assert len(comp) == 6 and (comp["n"] == 3).all()
    assert "dbpd+update" not in comp.index.get_level_values(0)
    for m in ("dbpd", "erts-dbpd", "infobatch"):
        for c in ("full", "random"):
            r = comp.loc[(m, f"{c}@cheapest")]
            assert r.mean_diff == pytest.approx(np.mean(np.array(auc[m]) - auc[f"{c}@cheapest"]))
            assert r.p_ttest == pytest.approx(sps.ttest_rel(auc[m], auc[f"{c}@cheapest"]).pvalue)
    # every method of one cost, one control budget per seed: the controls are that method's own
    same_cost = df[df["method"].isin(["full", "random", "erts-dbpd"])].copy()
    same_cost.loc[same_cost["method"] == "erts-dbpd", "effective_epochs"] = \
        same_cost.loc[same_cost["method"] == "random", "budget"].to_numpy() * 30
    assert sorted(set(label_controls(same_cost)["method"])) == ["erts-dbpd", "full", "full@erts-dbpd",
                                                                "random@erts-dbpd"]
