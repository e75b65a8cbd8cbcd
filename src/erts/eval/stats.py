"""Statistics for comparing runs: seed-level summaries and paired tests (equal-budget controls:
controls.py; one run's bootstrap interval: bootstrap.py; pairs over test records: paired.py).

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
