"""Statistics for comparing runs: seed-level summaries, paired tests, bootstrap CIs.

Why paired: runs of two methods that share a seed share the data split order,
the initial weights and the batch order, so their difference is far less noisy
than either result alone. Comparing a method with its baseline seed by seed
(paired t-test, Wilcoxon signed-rank) is the honest test of a small gain; the
published 0.002-0.01 macro-F1 gains came from single runs.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

# Smallest number of pairs for which a two-sided exact Wilcoxon signed-rank
# test can reach p < 0.05 (n = 6 gives p = 2 / 2**6 = 0.031); below it the
# test cannot reject anything, so it is not reported.
WILCOXON_MIN_N = 6

BASELINE = "full"
ERTS_PREFIX = "erts-"
# metrics that live in [0, 1]: their confidence intervals are clipped to it
_BOUNDED = re.compile(r"(^|_)(macro_f1|accuracy|macro_auroc|auroc|f1|f1_.+|frac|fraction|.+_frac|share)$")


def is_bounded(metric: str) -> bool:
    """True for metrics bounded to [0, 1]: F1 (macro, per class, subsets), accuracy, AUROC, fractions."""
    return bool(_BOUNDED.search(metric))


def finite(values: Sequence[float]) -> np.ndarray:
    """The finite values (NaN and +-inf dropped): a run whose metric is undefined does not count."""
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


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


def summarize(values: Sequence[float], confidence: float = 0.95,
              bounds: tuple[float, float] | None = None) -> dict[str, float]:
    """Mean, sample std (ddof=1), t-based CI and n of one configuration's seeds.

    Only finite values count, in every aggregate: n is the number of finite
    values, and mean, std and CI are computed from them alone (a run whose
    metric is undefined, e.g. NaN macro-F1, is neither a zero nor a seed).
    bounds: (low, high) range of the metric; the CI is clipped to it (a t
    interval of an F1 near 1 can otherwise reach past 1).
    """
    x = finite(values)
    n = len(x)
    lo, hi = t_interval(x, confidence)
    if bounds is not None and n > 1:
        lo, hi = float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))
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

    Columns: the keys, ``runs`` (rows of the configuration), ``n`` (runs with a
    finite value of the first metric), and for each metric ``<metric>_n`` (runs
    with a finite value of that metric), ``_mean``, ``_std``, ``_ci_low``,
    ``_ci_high``. CIs of metrics bounded to [0, 1] (``is_bounded``) are clipped
    to [0, 1].
    """
    rows = []
    groups = df.groupby(list(keys), sort=False, dropna=False) if keys else [((), df)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        row: dict = dict(zip(keys, key))
        row["runs"] = len(g)
        row["n"] = 0
        for i, m in enumerate(metrics):
            s = summarize(g[m].to_numpy(dtype=float), confidence, (0.0, 1.0) if is_bounded(m) else None)
            if i == 0:
                row["n"] = s["n"]
            row.update({f"{m}_{k}": v for k, v in s.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def paired_test(method: Sequence[float], baseline: Sequence[float],
                confidence: float = 0.95, bound: float | None = None) -> dict[str, float]:
    """Paired comparison of two equally long, seed-aligned result lists (method - baseline).

    bound: the differences' range is [-bound, bound] (1 for metrics in [0, 1]);
    the CI of the mean difference is clipped to it.

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
    if bound is not None:
        out["ci_low"], out["ci_high"] = (float(np.clip(out["ci_low"], -bound, bound)),
                                         float(np.clip(out["ci_high"], -bound, bound)))
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


def erts_base(method: str) -> str | None:
    """The rule an ERTS method filters: 'erts-dbpd' -> 'dbpd', 'erts-infobatch' -> 'infobatch'; else None."""
    m = str(method)
    return m[len(ERTS_PREFIX):] if m.startswith(ERTS_PREFIX) and len(m) > len(ERTS_PREFIX) else None


def _matches(col: pd.Series, value) -> pd.Series:
    """col == value, with a missing value matching a missing value (NaN != NaN otherwise)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return col.isna()
    return col == value


def paired_against(df: pd.DataFrame, keys: Sequence[str], baseline_of: Callable[[str], str | None],
                   metric: str = "test_macro_f1", method_key: str = "method", seed_key: str = "seed",
                   confidence: float = 0.95) -> pd.DataFrame:
    """Each configuration against the configuration of ``baseline_of(method)``, paired by seed.

    The partner has method ``baseline_of(method)`` and the same value for every
    other key in ``keys`` (model, dataset, phi, ...); configurations for which
    ``baseline_of`` returns None, or whose partner has no run, are left out.
    Only seeds present in both with finite values enter the test. ``p_holm`` is
    the Holm-adjusted paired t-test p over the rows of the returned table: the
    table is the family.
    """
    keys = [k for k in keys if k != seed_key]
    if method_key not in keys:
        raise ValueError(f"paired comparisons: {method_key!r} must be one of the configuration keys {keys}")
    others = [k for k in keys if k != method_key]
    bound = 1.0 if is_bounded(metric) else None
    rows = []
    for key, g in df.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cfg = dict(zip(keys, key))
        base_method = baseline_of(cfg[method_key])
        if base_method is None:
            continue
        b = df[df[method_key] == base_method]
        for k in others:
            b = b[_matches(b[k], cfg[k])]
        if b.empty:
            continue
        pairs = g[[seed_key, metric]].merge(b[[seed_key, metric]], on=seed_key, suffixes=("", "_base"))
        ok = np.isfinite(pairs[metric].to_numpy(dtype=float)) & np.isfinite(pairs[f"{metric}_base"].to_numpy(dtype=float))
        pairs = pairs[ok].sort_values(seed_key)
        res = paired_test(pairs[metric].to_numpy(dtype=float), pairs[f"{metric}_base"].to_numpy(dtype=float),
                          confidence, bound)
        rows.append({**cfg, "baseline": base_method, **res})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["p_holm"] = holm(out["p_ttest"].to_numpy())
    return out


def paired_comparisons(df: pd.DataFrame, keys: Sequence[str], metric: str = "test_macro_f1",
                       method_key: str = "method", baseline: str = BASELINE, seed_key: str = "seed",
                       confidence: float = 0.95) -> pd.DataFrame:
    """Every non-baseline configuration against its baseline (``full``), paired by seed.

    The baseline of a configuration is the one with ``method_key == baseline``
    and the same value for every other key in ``keys``. Only seeds present in
    both enter the test. Adds ``p_holm``: Holm over the family of all
    method-vs-baseline rows of this table. Configurations with no baseline run
    are left out.
    """
    return paired_against(df, keys, lambda m: None if m == baseline else baseline, metric, method_key,
                          seed_key, confidence)


def erts_comparisons(df: pd.DataFrame, keys: Sequence[str], metric: str = "test_macro_f1",
                     method_key: str = "method", seed_key: str = "seed",
                     confidence: float = 0.95) -> pd.DataFrame:
    """Every ERTS method against the rule it filters (``erts-X`` vs ``X``), paired by seed.

    The paper's claim: the focus filter adds something on top of its dropout
    rule. ``erts-dbpd`` is paired with ``dbpd``, ``erts-smrd`` with ``smrd``,
    ``erts-<rule>`` with ``<rule>`` for any rule, with every other key equal.
    ``p_holm`` is Holm over this family only (the ERTS-X vs X rows), separate
    from the family of comparisons with ``full``.
    """
    return paired_against(df, keys, erts_base, metric, method_key, seed_key, confidence)


# --- equal-budget controls --------------------------------------------------------------

CONTROL_METHODS = ("full", "random")
CHEAPEST = "cheapest"  # full@cheapest: a control at the cheapest method's budget of its seed (at_the_cheapest)


def is_control(method: str) -> bool:
    """A labelled equal-budget control: 'full@dbpd', 'random@erts-infobatch'."""
    return "@" in str(method)


def budget_share(row) -> float | np.ndarray:
    """A run's share of a full run's compute, the budget its equal-budget controls get: effective epochs
    / epochs, with rho-loss's irreducible-loss models charged as more effective epochs (their sample
    backwards, ``backwards_irreducible``, in units of the run's own, ``backwards_update`` = EE x N).
    ``row``: a results row (dict) or a results table (then one share per row)."""
    def col(name: str) -> np.ndarray:
        v = row.get(name, 0.0)
        return np.nan_to_num(np.asarray(v, dtype=float))

    ee, bi, bu = np.asarray(row["effective_epochs"], dtype=float), col("backwards_irreducible"), col("backwards_update")
    share = ee * (1 + np.where(bu > 0, bi / np.maximum(bu, 1e-12), 0.0)) / np.asarray(row["epochs"], dtype=float)
    return float(share) if share.ndim == 0 else share


def label_controls(df: pd.DataFrame, tolerance: float = 6e-3, seed_key: str = "seed") -> pd.DataFrame:
    """Names each equal-budget control run after the method it matches: a ``full`` or ``random`` run
    with a ``budget`` becomes ``full@<m>`` / ``random@<m>`` where ``m`` is a method of the same seed
    (and dataset and model) whose ``budget_share`` (effective epochs / epochs) equals that budget (within
    ``tolerance``: budgets are given to 2 decimals; one control may match several methods of
    about equal cost: it is then repeated for each; of two controls of one kind that match one method
    in one seed, the one nearer its share counts). Controls matching nothing keep the name
    ``<method>@<budget>``. Other rows unchanged."""
    if "budget" not in df.columns:
        return df
    budget = pd.to_numeric(df["budget"], errors="coerce")
    ctrl = df["method"].isin(CONTROL_METHODS) & budget.notna()
    if not ctrl.any():
        return df
    same = [k for k in ("dataset", "model", seed_key) if k in df.columns]
    methods = df[~ctrl & ~df["method"].isin(CONTROL_METHODS)]
    share = pd.Series(budget_share(methods), index=methods.index)
    labelled = []
    for i, r in df[ctrl].iterrows():
        gap = (share - float(budget[i])).abs()
        match = methods[gap <= tolerance]
        for k in same:
            match = match[_matches(match[k], r[k])]
        if match.empty:
            labelled.append({**r.to_dict(), "method": f"{r['method']}@{float(budget[i]):g}", "_gap": 0.0})
        labelled += [{**r.to_dict(), "method": f"{r['method']}@{m}", "_gap": float(gap[j])}
                     for j, m in match["method"].items()]
    ctrl_rows = pd.DataFrame(labelled).sort_values("_gap", kind="stable")
    ctrl_rows = ctrl_rows.drop_duplicates(["method", *same]).sort_index().drop(columns="_gap")
    if at_the_cheapest(df[ctrl], budget[ctrl], methods, share, same, tolerance):
        ctrl_rows = df[ctrl].assign(method=df.loc[ctrl, "method"] + "@" + CHEAPEST)
    return pd.concat([df[~ctrl], ctrl_rows], ignore_index=True)


def at_the_cheapest(controls: pd.DataFrame, budget: pd.Series, methods: pd.DataFrame, share: pd.Series,
                    same: list[str], tolerance: float) -> bool:
    """The controls were run at one budget per seed, a method's, while other methods cost more
    (``--controls cheapest``: the cheapest method's budget). Which method is cheapest may change from
    seed to seed; the controls are then one configuration, ``full@cheapest``, that costs no more than
    the methods it is compared with. Controls at each method's own budget (several budgets per seed,
    or methods all of one cost) keep their methods' names."""
    dearer = False
    for key, g in controls.groupby(same, dropna=False) if same else [((), controls)]:
        if g.groupby("method").size().max() > 1 or budget[g.index].nunique() > 1:
            return False
        mine = methods
        for k, v in zip(same, key if isinstance(key, tuple) else (key,)):
            mine = mine[_matches(mine[k], v)]
        gap = share[mine.index] - float(budget[g.index].iloc[0])
        if not (gap.abs() <= tolerance).any():
            return False
        dearer = dearer or bool((gap > tolerance).any())
    return dearer


def equal_budget_comparisons(df: pd.DataFrame, keys: Sequence[str], metric: str = "test_macro_f1",
                             method_key: str = "method", seed_key: str = "seed",
                             confidence: float = 0.95) -> pd.DataFrame:
    """Every method against ``full`` and ``random`` trained at the method's own effective epochs
    (``label_controls``), paired by seed; ``p_holm`` is Holm over this family (both controls of
    every method). A method that does not beat them spends its compute no better than training
    less, or on a random subset."""
    labelled = label_controls(df, seed_key=seed_key)
    keys = [k for k in keys if k != "budget"]
    cheapest = labelled[method_key].astype(str).str.endswith("@" + CHEAPEST).any()
    if cheapest:  # a method cheaper than the controls (e.g. a variant run beside the grid) has none
        labelled = labelled[~_cheaper_than_the_controls(labelled, method_key, seed_key)]
    parts = [paired_against(labelled, keys, lambda m, c=c: None if is_control(m) or m in CONTROL_METHODS
                            else f"{c}@{CHEAPEST if cheapest else m}", metric, method_key, seed_key, confidence)
             for c in CONTROL_METHODS]
    out = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) \
        else pd.DataFrame()
    if not out.empty:
        out["p_holm"] = holm(out["p_ttest"].to_numpy())
    return out


def compared_at_the_cheapest(comparisons: pd.DataFrame) -> bool:
    """An equal_budget_comparisons table against controls at the cheapest method's budget (full@cheapest)."""
    return not comparisons.empty and bool(comparisons["baseline"].astype(str).str.endswith("@" + CHEAPEST).any())


def _cheaper_than_the_controls(labelled: pd.DataFrame, method_key: str, seed_key: str,
                               tolerance: float = 6e-3) -> pd.Series:
    """Rows of methods whose share is below their seed's control budget (full@cheapest)."""
    same = [k for k in ("dataset", "model", seed_key) if k in labelled.columns]
    ctrl = labelled[method_key].map(is_control)
    runs = labelled[~ctrl & ~labelled[method_key].isin(CONTROL_METHODS)]
    control_budget = {tuple(r[same]): float(r["budget"]) for _, r in labelled[ctrl].iterrows()}
    b = pd.Series([control_budget.get(tuple(r), np.nan) for r in runs[same].itertuples(index=False)],
                  index=runs.index)
    below = pd.Series(budget_share(runs), index=runs.index) < b - tolerance
    return below.reindex(labelled.index, fill_value=False)


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
    t, p = _indicators(y_true, _predict(probs, multilabel, thresholds), c)
    point = float(macro_f1_from_counts(np.ones((1, n)), t, p)[0])
    reps = np.concatenate([macro_f1_from_counts(w, t, p) for w in resample_counts(n, n_boot, seed)])
    reps = finite(reps)  # a resample with no present class (multi-label only) has no macro-F1
    lo, hi = percentile_interval(reps, confidence)
    return {"macro_f1": point, "ci_low": lo, "ci_high": hi,
            "std": float(reps.std(ddof=1)) if len(reps) > 1 else math.nan, "n_boot": int(n_boot)}


def resample_counts(n: int, n_boot: int, seed: int = 0, chunk: int = 500):
    """Bootstrap resamples of n records as (b, n) float multiplicities, ``chunk`` at a time (memory
    bounded at chunk x n): one multinomial draw per resample, so a statistic written for weights
    scores a whole chunk of resamples with array operations."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, chunk):
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, n_boot - start)).astype(np.float64)


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
