"""Statistics tables: per-configuration summaries over seeds, paired comparisons, cost ratios.

Why apart: the numbers a reader compares (CIs, Holm-adjusted tests, ratios to
the ``full`` baseline, noisy wall clocks) are computed and worded here, the same
for the sweep and the run report.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from erts.eval.stats import group_summary
from erts.report import plots
from erts.errors import DataError
from erts.report.format import Section, config_label, fmt, fmt_metric, fmt_p, fmt_sci, metric_name
from erts.train.costnames import normalize_cost

BASELINE = "full"
MIN_SEEDS = 3  # fewer seeds per configuration: warned about (no usable CI, no test that can reject)
TIME_SPREAD_LIMIT = 0.30  # wall clock of a configuration's seeds: slowest / fastest - 1 above this is flagged


def headline(metric: str) -> str:
    """'test macro-AUROC' for ``test_macro_auroc``: the compared metric in words."""
    split, _, key = metric.partition("_")
    return f"{split} {metric_name(key)}" if split in ("test", "val") else metric_name(metric)


def sweep_summary(results: pd.DataFrame, keys: list[str], metric: str = "test_macro_f1") -> pd.DataFrame:
    """Per configuration: seed statistics of ``metric`` (the compared one), the main metrics and cost
    ratios to the baseline."""
    if metric not in results.columns:
        raise DataError(f"results.csv has no column {metric!r}; metrics it has: "
                        f"{', '.join(c for c in results.columns if c.startswith(('test_', 'val_')))}")
    metrics = [m for m in dict.fromkeys((metric, "test_macro_f1", "test_accuracy", "test_macro_auroc", "val_macro_f1",
                                         "effective_epochs", "optimizer_steps", "seconds_total", "cpu_seconds_total",
                                         "cpu_seconds_total_norm", "flops_total"))
               if m in results.columns]
    s = group_summary(results, keys, metrics)
    others = [k for k in keys if k != "method"]
    for col in ("seconds_total", "cpu_seconds_total", "cpu_seconds_total_norm", "effective_epochs", "flops_total"):
        if f"{col}_mean" not in s.columns:
            continue
        base = s[s["method"] == BASELINE][others + [f"{col}_mean"]].rename(columns={f"{col}_mean": "_base"})
        if others:
            base_vals = s[others].merge(base, on=others, how="left")["_base"].to_numpy()
        else:
            base_vals = np.full(len(s), base["_base"].iloc[0] if len(base) else np.nan)
        s[f"{col}_ratio"] = s[f"{col}_mean"].to_numpy() / base_vals
    if "seconds_total" in results.columns:
        s["seconds_total_spread"] = [time_spread(g["seconds_total"])
                                     for _, g in results.groupby(keys, sort=False, dropna=False)]
    return s


def time_spread(seconds) -> float:
    """Slowest over fastest wall clock of a configuration's seeds, minus 1 (0.3: the slowest took 30 % longer).

    NaN for fewer than two finite, positive values. Seeds of one configuration do
    the same work, so a large spread is the machine (load, thermal, other jobs),
    not the method: time ratios of such a configuration are unreliable.
    """
    x = np.asarray(seconds, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(x.max() / x.min() - 1) if len(x) > 1 else math.nan


def summary_warnings(summary: pd.DataFrame, keys: list[str], metric: str = "test_macro_f1") -> list[str]:
    """Configurations with fewer than MIN_SEEDS seeds (one warning each), and those whose wall clock is
    noisy across seeds (one warning for all of them: on a noisy machine that is most of them)."""
    out, noisy = [], []
    for _, r in summary.iterrows():
        label = config_label(r, keys)
        n = int(r["n"])
        if n < MIN_SEEDS:
            out.append(f"{label}: {n} seed{'s' if n != 1 else ''} with a {headline(metric)} (fewer than {MIN_SEEDS}); "
                       f"its confidence interval is {'undefined' if n < 2 else 'very wide'} and its paired tests "
                       "can hardly reject anything. Add seeds.")
        spread = r.get("seconds_total_spread", math.nan)
        if spread is not None and np.isfinite(spread) and spread > TIME_SPREAD_LIMIT:
            noisy.append(f"{label} {spread:.0%}")
    if noisy:
        which = (f"{noisy[0].rsplit(' ', 1)[0]}: wall clock differs across seeds by {noisy[0].rsplit(' ', 1)[1]}"
                 if len(noisy) == 1 else
                 f"Wall clock differs across seeds in {len(noisy)} of {len(summary)} configurations "
                 f"({', '.join(noisy)})")
        out.append(f"{which} (slowest against fastest, more than {TIME_SPREAD_LIMIT:.0%}): machine noise; "
                   f"{'its' if len(noisy) == 1 else 'their'} time ratios are unreliable. "
                   "FLOPs / full does not depend on the machine.")
    return out


def results_table(summary: pd.DataFrame, show_keys: list[str], metric: str = "test_macro_f1") -> pd.DataFrame:
    rows = []
    for _, r in summary.iterrows():
        row = {k: r[k] for k in show_keys}
        n, runs = int(r["n"]), int(r.get("runs", r["n"]))
        row.update({
            "n seeds": f"{n}" if n == runs else f"{n} (of {runs} runs)",
            f"{headline(metric)} (mean)": fmt_metric(r[f"{metric}_mean"]),
            "95% CI": f"[{fmt(r[f'{metric}_ci_low'])}, {fmt(r[f'{metric}_ci_high'])}]",
            "std": fmt(r[f"{metric}_std"]),
        })
        if metric != "test_macro_f1" and "test_macro_f1_mean" in r:
            row["test macro-F1"] = fmt_metric(r["test_macro_f1_mean"])
        if "test_accuracy_mean" in r:
            row["test accuracy"] = fmt(r["test_accuracy_mean"])
        if "val_macro_f1_mean" in r:
            row["val macro-F1"] = fmt(r["val_macro_f1_mean"])
        if "effective_epochs_mean" in r:
            row["effective epochs"] = fmt(r["effective_epochs_mean"], 2)
            row["EE / full"] = fmt(r.get("effective_epochs_ratio"), 2)
        if np.isfinite(r.get("optimizer_steps_mean", np.nan)):  # per-batch rules step on fewer samples, more often
            row["optimiser steps"] = f"{r['optimizer_steps_mean']:.0f}"
        if "seconds_total_mean" in r:
            row["wall-clock s"] = fmt(r["seconds_total_mean"], 1)
        if "flops_total_mean" in r:
            row["FLOPs"] = fmt_sci(r["flops_total_mean"])
        if "seconds_total_mean" in r:
            row["time / full"] = fmt(r.get("seconds_total_ratio"), 2)
        if "cpu_seconds_total_mean" in r and np.isfinite(r["cpu_seconds_total_mean"]):
            # process CPU time: what other work on the machine skews far less than the wall clock
            row["CPU s"] = fmt(r["cpu_seconds_total_mean"], 1)
            row["CPU / full"] = fmt(r.get("cpu_seconds_total_ratio"), 2)
            if np.isfinite(r.get("cpu_seconds_total_norm_ratio", np.nan)):  # the machine's speed drift taken out
                row["CPU / full at one speed"] = fmt(r["cpu_seconds_total_norm_ratio"], 2)
        if "flops_total_mean" in r:  # next to time / full: the same ratio without machine noise
            row["FLOPs / full"] = fmt(r.get("flops_total_ratio"), 2)
        if "seconds_total_spread" in r:
            sp = r["seconds_total_spread"]
            row["time spread"] = "-" if not np.isfinite(sp) else (
                f"{sp:.0%}" + (" (noisy)" if sp > TIME_SPREAD_LIMIT else ""))
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(r) -> str:
    if math.isnan(r["p_holm"]) or r["p_holm"] >= 0.05:
        return "no clear difference"
    return f"better than {r['baseline']}" if r["mean_diff"] > 0 else f"worse than {r['baseline']}"


def comparisons_table(comp: pd.DataFrame, show_keys: list[str], metric: str = "test_macro_f1") -> pd.DataFrame:
    rows = []
    name = headline(metric).removeprefix("test ")
    for _, r in comp.iterrows():
        row = {k: r[k] for k in show_keys}
        row.update({"against": r["baseline"], "pairs": int(r["n"]), f"Δ {name} (mean)": fmt(r["mean_diff"]),
                    "95% CI of Δ": f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                    "p (paired t)": fmt_p(r["p_ttest"]), "p (Wilcoxon)": fmt_p(r["p_wilcoxon"]),
                    "d_z": fmt(r["d_z"], 2), "p (Holm)": fmt_p(r["p_holm"]), "verdict": verdict(r)})
        rows.append(row)
    return pd.DataFrame(rows)


def record_paired_table(comp: pd.DataFrame, show_keys: list[str], family: str, metric: str) -> pd.DataFrame:
    """erts.eval.paired.paired_runs rows as a table: the configuration, its partner, Δ [CI], seeds, p."""
    name = headline(metric).removeprefix("test ")
    return pd.DataFrame([{"family": family, **{k: r[k] for k in show_keys}, "against": r["baseline"],
                          "seeds": int(r["n_seeds"]), f"Δ {name}": fmt(r["diff"]),
                          "95% CI of Δ": f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                          "p (bootstrap)": fmt_p(r["p"]), "p (Holm)": fmt_p(r["p_holm"])}
                         for _, r in comp.iterrows()])


def forest_figure(comp: pd.DataFrame, labels: list[str], against: str = "full", metric: str = "test_macro_f1"):
    """Mean paired difference with its CI per comparison; the zero line is 'no difference'."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 0.8 + 0.45 * len(comp)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(comp))[::-1]
    for yi, (_, r), label in zip(y, comp.iterrows(), labels):
        color, marker = plots.method_style(r["method"])
        lo, hi = r["ci_low"], r["ci_high"]
        err = [[r["mean_diff"] - lo], [hi - r["mean_diff"]]] if np.isfinite(lo) else None
        ax.errorbar(r["mean_diff"], yi, xerr=err, fmt=marker, color=color, capsize=3)
    ax.axvline(0, color="#999999", ls="--", lw=1)
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"Δ {headline(metric)} against {against}, same seeds (method − {against})")
    ax.set_title("paired differences with 95% CI (t over seeds)")
    ax.grid(alpha=0.3, axis="x")
    return fig


def comparison_section(s: Section, comp: pd.DataFrame, shown: list[str], what: str, family: str, empty: str,
                       slug: str, against: str, metric: str = "test_macro_f1") -> None:
    s.text(what)
    if comp.empty:
        s.text(empty)
        return
    n = len(comp)
    s.text(f"Holm family: {family}. p (Holm) adjusts the paired t-test p-values over the {n} "
           f"comparison{'s' if n != 1 else ''} of this table and no others. Verdict: Holm-adjusted p < 0.05.")
    few = comp[comp["n"] < MIN_SEEDS]
    if len(few):
        s.text(f"{len(few)} comparison{'s have' if len(few) != 1 else ' has'} fewer than {MIN_SEEDS} paired seeds: "
               "no test can reject there; read the CI.")
    s.table(comparisons_table(comp, shown, metric), slug)
    labels = [config_label(r, shown) for _, r in comp.iterrows()]
    s.figure(f"paired_differences_{slug}", forest_figure(comp, labels, against, metric),
             f"Mean paired difference in {headline(metric)} against {against} with its 95% CI; "
             "intervals crossing the dashed zero line are not distinguishable from it.")


# the cost axes of the accuracy-against-cost plot, preferred first, with what their seconds are
PARETO_COSTS = {"cpu_seconds_total_norm": "CPU time at one speed", "cpu_seconds_total": "CPU time",
                "seconds_total": "wall-clock time"}


def pareto_time(summary: pd.DataFrame) -> str:
    """The cost axis of the accuracy-against-cost plot (a PARETO_COSTS key): CPU seconds at one speed
    when every configuration has them (the machine's speed drift taken out), else CPU seconds when
    every one recorded them (other work on the machine skews them far less), else the wall clock."""
    for col in list(PARETO_COSTS)[:-1]:
        v = summary.get(f"{col}_mean")
        if v is not None and np.isfinite(v.to_numpy(float)).all():
            return col
    return "seconds_total"


def pareto_input(summary: pd.DataFrame, label_keys: list[str], time: str, metric: str = "test_macro_f1") -> pd.DataFrame:
    """The points of the accuracy-against-cost plot; ``time``: the cost column (``pareto_time``);
    the ``f1_*`` columns hold ``metric``."""
    return pd.DataFrame({
        "method": summary["method"],
        "label": [config_label(r, label_keys) for _, r in summary.iterrows()],
        "f1_mean": summary[f"{metric}_mean"],
        "f1_err": (summary[f"{metric}_ci_high"] - summary[f"{metric}_ci_low"]) / 2,
        "f1_lo": summary[f"{metric}_ci_low"], "f1_hi": summary[f"{metric}_ci_high"],
        "seconds_mean": summary.get(f"{time}_mean", np.nan), "seconds_std": summary.get(f"{time}_std", np.nan),
        "ee_mean": summary.get("effective_epochs_mean", np.nan), "ee_std": summary.get("effective_epochs_std", np.nan),
    })


def cost_table(cost: dict, epochs, steps: int | None = None) -> pd.DataFrame:
    cost = normalize_cost(cost)
    sec, cpu, fwd, bwd, fl = (cost.get(k, {}) for k in ("seconds", "cpu_seconds", "forwards", "backwards", "flops"))
    rows = [{"cost": "effective epochs", "value": f"{fmt(cost.get('effective_epochs'), 2)} of {epochs}"}]
    rows += [{"cost": "optimiser steps", "value": f"{steps}"}] if steps is not None else []
    rows += [{"cost": f"wall-clock s, {k}", "value": fmt(v, 1)} for k, v in sec.items()]
    rows += [{"cost": f"CPU s (all threads), {k}", "value": fmt(v, 1)} for k, v in cpu.items()]
    rows += [{"cost": f"sample forwards, {k}", "value": f"{v:.0f}"} for k, v in fwd.items()]
    rows += [{"cost": f"sample backwards, {k}", "value": f"{v:.0f}"} for k, v in bwd.items()]
    rows += [{"cost": f"FLOPs, {k}", "value": fmt_sci(v)} for k, v in fl.items()]
    return pd.DataFrame(rows)
