"""`erts report DIR`: one self-contained report.html plus report.md for a run or a sweep folder.

The report is assembled as a list of sections holding paragraphs, tables and
figures, then rendered twice: HTML with every PNG embedded as base64 (one file
to mail or archive, no external assets) and Markdown with the PNGs saved next
to it in ``report_files/``. A section whose data is absent says why instead of
disappearing, so a missing analysis is never mistaken for an empty one.
"""
from __future__ import annotations

from erts.errors import DataError

import base64
import html
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from erts.eval.stats import bootstrap_run, erts_comparisons, group_summary, paired_comparisons
from erts.report import plots, reliability
from erts.report.selection import (drop_rates, filter_by_truth, focus_candidates, load_selection_log,
                                   load_train_records, truth_contrast)
from erts.train.costnames import legacy_log_columns, legacy_result_columns, normalize_cost
from erts.train.runio import provenance, read_provenance

SWEEP_SECTIONS = ["Results", "Paired comparisons with the baseline", "ERTS against the rule it filters",
                  "Accuracy against cost", "Kept fraction per epoch", "Which classes are dropped", "Focus scores",
                  "Example records", "Configuration", "Provenance"]
RUN_SECTIONS = ["Results", "Accuracy against cost", "Kept fraction per epoch", "Which classes are dropped",
                "Focus scores", "Example records", "Configuration", "Provenance"]
BASELINE = "full"
FOCUS_SAMPLE = 20000  # focus-score rows per run drawn into the distribution plots
MIN_SEEDS = 3  # fewer seeds per configuration: warned about (no usable CI, no test that can reject)
TIME_SPREAD_LIMIT = 0.30  # wall clock of a configuration's seeds: slowest / fastest - 1 above this is flagged
PER_RUN_SETTINGS = ("train.name", "train.out_dir", "train.seed")  # differ between runs by construction


@dataclass
class Section:
    heading: str
    blocks: list[tuple] = field(default_factory=list)  # ("p", text) | ("table", df, id) | ("fig", name, png, caption)

    def text(self, s: str) -> None:
        self.blocks.append(("p", s))

    def table(self, df: pd.DataFrame, table_id: str) -> None:
        self.blocks.append(("table", df, table_id))

    def figure(self, name: str, fig, caption: str) -> None:
        self.blocks.append(("fig", _slug(name), plots.to_png(fig), caption))


@dataclass
class Report:
    title: str
    intro: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)  # shown on top of the report and printed by build_report


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", s).strip("_")


def fmt(v, digits: int = 4) -> str:
    """Table cell text: fixed digits for floats, '-' for missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}f}"
    return str(v)


METRIC_NAMES = {"macro_f1": "macro-F1", "macro_auroc": "macro-AUROC", "f1_nao": "F1 over N, A, O (CinC 2017 score)"}


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key.replace("_", " "))


def fmt_metric(v, digits: int = 4) -> str:
    """A metric value; NaN is an undefined metric (e.g. F1 of a class absent from the split): 'n/a'."""
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return "n/a"
    return fmt(v, digits)


def fmt_p(p: float) -> str:
    return "-" if p is None or math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def fmt_sci(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


# --- reading folders --------------------------------------------------------------------

def is_run_dir(d: Path) -> bool:
    return (d / "metrics.json").exists() or (d / "log.csv").exists()


def is_sweep_dir(d: Path) -> bool:
    return (d / "results.csv").exists()


def read_log(run_dir: Path) -> pd.DataFrame | None:
    """log.csv, with the cost columns of runs written before the naming scheme renamed to it."""
    p = run_dir / "log.csv"
    if not p.exists():
        return None
    df = pd.read_csv(p)
    return df.rename(columns=legacy_log_columns(df.columns))


def read_metrics(run_dir: Path) -> dict:
    p = run_dir / "metrics.json"
    if not p.exists():
        raise FileNotFoundError(f"{p}: missing; the run has not finished (resume it with erts train --resume {run_dir})")
    m = json.loads(p.read_text())
    if isinstance(m.get("cost"), dict):
        m["cost"] = normalize_cost(m["cost"])
    return m


def config_columns(results: pd.DataFrame) -> list[str]:
    """results.csv lists run, then the configuration keys, then seed, then metrics."""
    cols = list(results.columns)
    if "run" not in cols or "seed" not in cols:
        raise DataError("results.csv needs the columns 'run' and 'seed' (written by erts sweep)")
    return cols[cols.index("run") + 1: cols.index("seed")]


def varying(results: pd.DataFrame, keys: list[str]) -> list[str]:
    return [k for k in keys if results[k].nunique(dropna=False) > 1]


def config_label(row, keys: list[str]) -> str:
    """'erts-dbpd' or 'erts-dbpd, model=resnet18_1d' (method first, then other varying keys)."""
    parts = [str(row["method"])] if "method" in keys else []
    parts += [f"{k}={row[k]}" for k in keys if k != "method"]
    return ", ".join(parts)


# --- sweep report -----------------------------------------------------------------------

def sweep_summary(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per configuration: seed statistics of the main metrics and cost ratios to the baseline."""
    metrics = [m for m in ("test_macro_f1", "test_accuracy", "test_macro_auroc", "val_macro_f1",
                           "effective_epochs", "seconds_total", "cpu_seconds_total", "flops_total")
               if m in results.columns]
    s = group_summary(results, keys, metrics)
    others = [k for k in keys if k != "method"]
    for col in ("seconds_total", "cpu_seconds_total", "effective_epochs", "flops_total"):
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


def summary_warnings(summary: pd.DataFrame, keys: list[str]) -> list[str]:
    """Configurations with fewer than MIN_SEEDS seeds, and those whose wall clock is noisy across seeds."""
    out = []
    for _, r in summary.iterrows():
        label = config_label(r, keys)
        n = int(r["n"])
        if n < MIN_SEEDS:
            out.append(f"{label}: {n} seed{'s' if n != 1 else ''} with a test macro-F1 (fewer than {MIN_SEEDS}); "
                       f"its confidence interval is {'undefined' if n < 2 else 'very wide'} and its paired tests "
                       "can hardly reject anything. Add seeds.")
        spread = r.get("seconds_total_spread", math.nan)
        if spread is not None and np.isfinite(spread) and spread > TIME_SPREAD_LIMIT:
            out.append(f"{label}: wall clock differs across seeds by {spread:.0%} (slowest against fastest, more than "
                       f"{TIME_SPREAD_LIMIT:.0%}): machine noise; its time ratios are unreliable. "
                       "FLOPs / full does not depend on the machine.")
    return out


def results_table(summary: pd.DataFrame, show_keys: list[str]) -> pd.DataFrame:
    rows = []
    for _, r in summary.iterrows():
        row = {k: r[k] for k in show_keys}
        n, runs = int(r["n"]), int(r.get("runs", r["n"]))
        row.update({
            "n seeds": f"{n}" if n == runs else f"{n} (of {runs} runs)",
            "test macro-F1 (mean)": fmt_metric(r["test_macro_f1_mean"]),
            "95% CI": f"[{fmt(r['test_macro_f1_ci_low'])}, {fmt(r['test_macro_f1_ci_high'])}]",
            "std": fmt(r["test_macro_f1_std"]),
        })
        if "test_accuracy_mean" in r:
            row["test accuracy"] = fmt(r["test_accuracy_mean"])
        if "val_macro_f1_mean" in r:
            row["val macro-F1"] = fmt(r["val_macro_f1_mean"])
        if "effective_epochs_mean" in r:
            row["effective epochs"] = fmt(r["effective_epochs_mean"], 2)
            row["EE / full"] = fmt(r.get("effective_epochs_ratio"), 2)
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


def comparisons_table(comp: pd.DataFrame, show_keys: list[str]) -> pd.DataFrame:
    rows = []
    for _, r in comp.iterrows():
        row = {k: r[k] for k in show_keys}
        row.update({"against": r["baseline"], "pairs": int(r["n"]), "Δ macro-F1 (mean)": fmt(r["mean_diff"]),
                    "95% CI of Δ": f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                    "p (paired t)": fmt_p(r["p_ttest"]), "p (Wilcoxon)": fmt_p(r["p_wilcoxon"]),
                    "d_z": fmt(r["d_z"], 2), "p (Holm)": fmt_p(r["p_holm"]), "verdict": verdict(r)})
        rows.append(row)
    return pd.DataFrame(rows)


def forest_figure(comp: pd.DataFrame, labels: list[str], against: str = "full"):
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
    ax.set_xlabel(f"Δ test macro-F1 against {against}, same seeds (method − {against})")
    ax.set_title("paired differences with 95% CI (t over seeds)")
    ax.grid(alpha=0.3, axis="x")
    return fig


def pareto_time(summary: pd.DataFrame) -> str:
    """The cost axis of the accuracy-against-cost plot: CPU seconds when every configuration recorded
    them (other work on the machine skews them far less), else the wall clock."""
    cpu = summary.get("cpu_seconds_total_mean")
    return "cpu_seconds_total" if cpu is not None and np.isfinite(cpu.to_numpy(float)).all() else "seconds_total"


def pareto_input(summary: pd.DataFrame, label_keys: list[str], time: str) -> pd.DataFrame:
    """The points of the accuracy-against-cost plot; ``time``: the cost column (``pareto_time``)."""
    return pd.DataFrame({
        "method": summary["method"],
        "label": [config_label(r, label_keys) for _, r in summary.iterrows()],
        "f1_mean": summary["test_macro_f1_mean"],
        "f1_err": (summary["test_macro_f1_ci_high"] - summary["test_macro_f1_ci_low"]) / 2,
        "f1_lo": summary["test_macro_f1_ci_low"], "f1_hi": summary["test_macro_f1_ci_high"],
        "seconds_mean": summary.get(f"{time}_mean", np.nan), "seconds_std": summary.get(f"{time}_std", np.nan),
        "ee_mean": summary.get("effective_epochs_mean", np.nan), "ee_std": summary.get("effective_epochs_std", np.nan),
    })


def kept_curves(runs: list[Path]) -> pd.DataFrame | None:
    """Mean/min/max kept fraction per epoch over a configuration's seeds."""
    logs = [lg[["epoch", "kept_frac"]] for lg in map(read_log, runs) if lg is not None]
    if not logs:
        return None
    g = pd.concat(logs).groupby("epoch")["kept_frac"]
    return pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max()}).reset_index()


def _selection(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    if not (run_dir / "selection").is_dir() or not (run_dir / "train_records.csv").exists():
        return None
    sel = load_selection_log(run_dir)
    return (sel, load_train_records(run_dir)) if len(sel) else None


def selection_sections(groups: list[tuple[str, str, list[Path]]], scope: str,
                       kept: Section, drops: Section, focus: Section) -> None:
    """Fills the kept-fraction, drop-rate and focus sections for configurations of one dataset.

    groups: (label, method, run dirs of the configuration's seeds).
    """
    curves = [(label, method, c) for label, method, runs in groups if (c := kept_curves(runs)) is not None]
    if curves:
        kept.figure(f"kept_{scope}", plots.kept_fraction_figure(curves, f"kept fraction per epoch ({scope})"),
                    "Share of the training samples that got a gradient update in each epoch (mean over seeds; "
                    "band: min to max). Warm-up and revision epochs train on everything (1.0).")
    else:
        kept.text(f"{scope}: no log.csv found, so no kept fractions.")
    cand_frames, truth_rows, n_drop_figs = [], [], 0
    for label, method, runs in groups:
        if method == BASELINE:  # drops nothing by definition
            continue
        logs = [x for x in map(_selection, runs) if x is not None]
        if not logs:
            continue
        rates = pd.concat([drop_rates(sel, rec) for sel, rec in logs])
        rates = rates.groupby(["epoch", "label"], as_index=False)[["pdd_drop", "focus_drop"]].mean()
        drops.figure(f"drops_{scope}_{label}", plots.drop_rates_figure(rates, f"{label} ({scope}): who is dropped"),
                     f"{label}: per class, the share of its training samples the PDD rule removed each epoch (left) "
                     "and the share of the PDD-kept ones the focus filter then removed (right); mean over seeds.")
        n_drop_figs += 1
        for k, (sel, rec) in enumerate(logs):
            cand = focus_candidates(sel, rec)
            if cand.empty:
                continue
            cand = cand.assign(config=label, run=runs[k].name)
            t = filter_by_truth(cand)
            if not t.empty:
                truth_rows.append(t.assign(config=label, run=runs[k].name))
            cand_frames.append(cand.sample(min(len(cand), FOCUS_SAMPLE), random_state=0))
    if not n_drop_figs:
        drops.text(f"{scope}: no run with data dropout and a selection log (only the full baseline, "
                   "which drops nothing).")
    if cand_frames:
        cand = pd.concat(cand_frames, ignore_index=True)
        configs = ", ".join(dict.fromkeys(cand["config"]))
        focus.figure(f"focus_{scope}", plots.focus_figure(cand, f"focus scores of the filter's candidates ({scope})"),
                     f"Focus score of every candidate the focus filter ranked (all epochs; {configs}). "
                     "Left: per true class. Right: records with known label noise against clean records.")
        if truth_rows:
            t = pd.concat(truth_rows)
            tot = t.assign(dropped=t["filter_drop"] * t["candidates"], fsum=t["mean_focus"] * t["candidates"],
                           zeros=t["zero_focus"] * t["candidates"])
            agg = tot.groupby(["config", "truth"], as_index=False, sort=False)[
                ["candidates", "dropped", "fsum", "zeros"]].sum()
            focus.table(pd.DataFrame({
                "configuration": agg["config"], "ground truth": agg["truth"],
                "candidates (sample-epochs)": agg["candidates"].astype(int),
                "mean focus": [fmt(v, 3) for v in agg["fsum"] / agg["candidates"]],
                "focus 0 (no positive evidence)": [f"{v:.1%}" for v in agg["zeros"] / agg["candidates"]],
                "removed by focus filter": [f"{v:.1%}" for v in agg["dropped"] / agg["candidates"]],
            }), f"focus_truth_{_slug(scope)}")
            focus.text("What the table shows: each row counts the filter's candidates (records the PDD rule kept, "
                       "once per epoch) of one ground-truth group, their mean focus score, the share whose focus "
                       "was 0 (the Grad-CAM map of the true class was flat: no positive evidence for the label "
                       "anywhere in the record), and the share the focus filter removed. The filter does what it "
                       "claims when it removes a larger share of the corrupted records than of the clean ones.")
            for config, g in agg.groupby("config", sort=False):
                focus.text(focus_verdict(config, g))
    else:
        focus.text(f"{scope}: no focus scores (no ERTS method in these runs, or the focus filter never started).")


def focus_verdict(config: str, agg: pd.DataFrame) -> str:
    """One configuration's focus-filter result in words, with the numbers (agg: truth, candidates, dropped)."""
    c = truth_contrast(agg)
    if c is None:
        missing = "clean" if (agg["truth"] != "clean").all() else "corrupted"
        return f"{config}: no {missing} candidates, so no comparison of corrupted with clean records."
    groups = ", ".join(f"{r.truth} {r.dropped / r.candidates:.1%} of {int(r.candidates)}"
                       for r in agg.itertuples() if r.truth != "clean")
    head = (f"{config}: the focus filter removed {c['removed_corrupted']:.1%} of the corrupted candidates "
            f"({groups}) and {c['removed_clean']:.1%} of the {c['n_clean']} clean ones")
    ratio = c["ratio"]
    if not np.isfinite(ratio):
        return head + ("; it removed corrupted records and no clean one." if c["removed_corrupted"] > 0
                       else "; it removed nothing.")
    if ratio > 1:
        return head + (f": corrupted records were removed {ratio:.2f} times as often as clean ones, so the filter "
                       "does remove corrupted records more than clean ones here.")
    return head + (f": corrupted records were removed {ratio:.2f} times as often as clean ones, so the filter does "
                   "not remove corrupted records more than clean ones here.")


def comparison_section(s: Section, comp: pd.DataFrame, shown: list[str], what: str, family: str, empty: str,
                       slug: str, against: str) -> None:
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
    s.table(comparisons_table(comp, shown), slug)
    labels = [config_label(r, shown) for _, r in comp.iterrows()]
    s.figure(f"paired_differences_{slug}", forest_figure(comp, labels, against),
             f"Mean paired difference in test macro-F1 against {against} with its 95% CI; "
             "intervals crossing the dashed zero line are not distinguishable from it.")


def build_sweep_report(sweep_dir: Path, *, examples: int = 2, max_leads: int = 3, n_boot: int = 2000) -> Report:
    results = pd.read_csv(sweep_dir / "results.csv")
    results = results.rename(columns=legacy_result_columns(results.columns))
    if results.empty:
        raise DataError(f"{sweep_dir}/results.csv has no finished runs yet")
    keys = config_columns(results)
    if "method" not in keys:
        raise DataError(f"{sweep_dir}/results.csv: column 'method' is missing from the configuration keys {keys}")
    shown = [k for k in keys if k == "method" or k in varying(results, keys)]
    secs = {h: Section(h) for h in SWEEP_SECTIONS}
    summary = sweep_summary(results, keys)
    s = secs["Results"]
    s.text(f"{len(results)} finished runs in {len(summary)} configurations. Test macro-F1: mean and 95% CI over "
           "seeds (t distribution, clipped to [0, 1]); n counts the runs with a defined (finite) macro-F1. Cost "
           "columns are means; ratios are relative to the full-data baseline with the same other settings. "
           f"Time spread: slowest over fastest seed's wall clock, minus 1; above {TIME_SPREAD_LIMIT:.0%} it is "
           "flagged as machine noise, and FLOPs / full is the machine-independent cost ratio to read instead. "
           "CPU / full compares process CPU time (all threads), which other work on the machine skews far less "
           "than the wall clock.")
    s.table(results_table(summary, shown), "results")
    warnings = summary_warnings(summary, shown)
    comp = paired_comparisons(results, keys)
    comparison_section(secs["Paired comparisons with the baseline"], comp, shown,
                       "Each method against the full-data baseline (full) with the same other settings, paired by "
                       "seed: does dropping data cost accuracy?",
                       "every method against full",
                       "No method could be paired with a full-data baseline run (same settings, same seeds).",
                       "comparisons", BASELINE)
    erts = erts_comparisons(results, keys)
    comparison_section(secs["ERTS against the rule it filters"], erts, shown,
                       "The paper's claim: the focus filter improves on the dropout rule it filters. Each ERTS method "
                       "against that rule (erts-X against X: erts-dbpd against dbpd, erts-smrd against smrd, ...) "
                       "with the same other settings, paired by seed.",
                       "every ERTS method against its rule (erts-X against X), a family separate from the "
                       "comparisons with full",
                       "No ERTS method could be paired with the rule it filters (erts-X needs X in the sweep, with the "
                       "same other settings and seeds).", "erts_comparisons", "its rule")
    label_keys = [k for k in shown if k != "dataset"]
    datasets = list(dict.fromkeys(results["dataset"])) if "dataset" in results.columns else [None]
    for ds in datasets:
        sub = summary if ds is None else summary[summary["dataset"] == ds]
        scope = ds or sweep_dir.name
        time_col = pareto_time(sub)
        time = "CPU time" if time_col == "cpu_seconds_total" else "wall-clock time"
        points = pareto_input(sub, label_keys, time_col)
        secs["Accuracy against cost"].figure(
            f"pareto_{scope}", plots.pareto_figure(points, f"{scope}: accuracy against cost", time),
            f"Test macro-F1 (mean over seeds, bars: 95% CI) against {time} per run in seconds (left) and effective "
            "epochs (right; horizontal bars: std over seeds). Up and left is better; the dashed line joins the "
            "configurations no other one beats on both axes.")
        rows = results if ds is None else results[results["dataset"] == ds]
        groups = []
        for key, g in rows.groupby(keys, sort=False, dropna=False):
            row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
            groups.append((config_label(row, label_keys), row["method"], [sweep_dir / "runs" / r for r in g["run"]]))
        selection_sections(groups, scope, secs["Kept fraction per epoch"], secs["Which classes are dropped"],
                           secs["Focus scores"])
    example_run = pick_example_run(sweep_dir, results)
    add_examples(secs["Example records"], example_run, examples, max_leads)
    config_groups = [(config_label(dict(zip(keys, key if isinstance(key, tuple) else (key,))), shown),
                      [sweep_dir / "runs" / r for r in g["run"]])
                     for key, g in results.groupby(keys, sort=False, dropna=False)]
    sweep_config_section(secs["Configuration"], config_groups)
    provenance_section(secs["Provenance"], [sweep_dir / "runs" / r for r in results["run"]])
    intro = f"Sweep folder: {sweep_dir}. Configuration keys: {', '.join(keys)}; seeds: " \
            f"{', '.join(map(str, sorted(results['seed'].unique())))}."
    sections = with_label_noise([secs[h] for h in SWEEP_SECTIONS], config_groups, n_boot)
    return Report(f"erts sweep report: {sweep_dir.name}", intro, sections, warnings)


def with_label_noise(sections: list[Section], groups: list[tuple[str, list[Path]]], n_boot: int) -> list[Section]:
    """The sections plus, after "Focus scores", the label-noise section (erts.report.reliability) when a
    run has label_changed ground truth (CinC 2017); groups: (configuration label, its seeds' run folders)."""
    if not any(reliability.has_label_truth(r) for _, runs in groups for r in runs):
        return sections
    s = Section(reliability.HEADING)
    reliability.fill_section(s, {label: runs for label, runs in groups}, n_boot=n_boot)
    at = next((i + 1 for i, x in enumerate(sections) if x.heading == "Focus scores"), len(sections))
    return sections[:at] + [s] + sections[at:]


# --- resolved configuration -------------------------------------------------------------

def read_config(run_dir: Path) -> dict | None:
    """A run's config.yaml flattened to dotted keys ('selection.phi': 0.7); None when missing."""
    p = run_dir / "config.yaml"
    if not p.exists():
        return None
    raw = yaml.safe_load(p.read_text()) or {}
    flat = {}
    for section, values in raw.items():
        if isinstance(values, dict):
            flat.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            flat[str(section)] = values
    return flat


def _cell(v) -> str:
    """A setting's value as the YAML file spells it (null, true, [0.5, 40])."""
    return json.dumps(v) if v is None or isinstance(v, (bool, list, dict)) else str(v)


def sweep_config_section(s: Section, groups: list[tuple[str, list[Path]]]) -> None:
    """The runs' resolved config.yaml: settings shared by every run once, then the varying ones per configuration."""
    cfgs = [(label, run, c) for label, runs in groups for run in runs if (c := read_config(run)) is not None]
    missing = sum(len(runs) for _, runs in groups) - len(cfgs)
    if not cfgs:
        s.text("No run folder has a config.yaml, so the resolved configuration cannot be shown.")
        return
    all_keys = list(dict.fromkeys(k for _, _, c in cfgs for k in c))
    values = {k: [_cell(c.get(k, "(absent)")) for _, _, c in cfgs] for k in all_keys}
    shared = [k for k in all_keys if k not in PER_RUN_SETTINGS and len(set(values[k])) == 1]
    varying = [k for k in all_keys if k not in PER_RUN_SETTINGS and k not in shared]
    s.text(f"The resolved configuration of the runs (config.yaml in each run folder; {len(cfgs)} runs"
           + (f", {missing} without a config.yaml" if missing else "") + "). Settings every run shares are listed "
           "once; the settings that differ follow per configuration. Run name, output folder and seed differ "
           "between runs by construction and are left out.")
    s.table(pd.DataFrame({"setting": shared, "value (every run)": [values[k][0] for k in shared]}), "config_shared")
    if not varying:
        s.text("No setting differs between the runs except name, output folder and seed.")
        return
    rows = []
    for label in dict.fromkeys(label for label, _, _ in cfgs):
        mine = [c for lab, _, c in cfgs if lab == label]
        row = {"configuration": label}
        for k in varying:
            vals = list(dict.fromkeys(_cell(c.get(k, "(absent)")) for c in mine))
            row[k] = vals[0] if len(vals) == 1 else " | ".join(vals) + " (differs between seeds)"
        rows.append(row)
    s.table(pd.DataFrame(rows), "config_varying")


def run_config_section(s: Section, run_dir: Path) -> None:
    c = read_config(run_dir)
    if c is None:
        s.text(f"No config.yaml in {run_dir}, so the resolved configuration cannot be shown.")
        return
    s.text("The run's resolved configuration (config.yaml in the run folder): every setting, defaults included.")
    s.table(pd.DataFrame({"setting": list(c), "value": [_cell(v) for v in c.values()]}), "config")


def _command(argv) -> str:
    import shlex

    return shlex.join(map(str, argv)) if isinstance(argv, list) else "-"


def provenance_rows(run_dir: Path) -> list[dict]:
    """The run's provenance (run.json): who started it, then each resume; one row each."""
    p = read_provenance(run_dir)
    if p is None:
        return [{"run": run_dir.name, "what": "-", "erts version": "-", "git commit": "-",
                 "command": "not recorded (a run written before erts recorded its provenance)"}]
    entries = ([("started", p)] if "erts_version" in p else []) + [("resumed", r) for r in p.get("resumes", [])]
    return [{"run": run_dir.name, "what": f"{what} {e.get('time', '')}".strip(),
             "erts version": e.get("erts_version", "-"),
             "git commit": e.get("git_commit") or "not a git checkout", "command": _command(e.get("command"))}
            for what, e in entries]


def provenance_section(s: Section, runs: list[Path]) -> None:
    """What produced the runs (erts version, git commit, command line; run.json in each run folder)
    and this report."""
    s.text("The erts version and git commit each run was trained with, and its command line (run.json in the "
           "run folder; a resumed run lists each resume). A commit ending in +dirty had uncommitted changes "
           "to tracked files; 'not a git checkout' is an installed erts.")
    rows = [r for run in runs for r in provenance_rows(run)]
    s.table(pd.DataFrame(rows), "provenance")
    versions = {(r["erts version"], r["git commit"]) for r in rows if r["erts version"] != "-"}
    if len(versions) > 1:
        s.text(f"The runs were trained by {len(versions)} different erts versions or commits.")
    me = provenance()
    s.text(f"This report: erts {me['erts_version']}, git commit {me['git_commit'] or 'none (not a git checkout)'}, "
           f"command: {_command(me['command'])}, built {me['time']}.")


def pick_example_run(sweep_dir: Path, results: pd.DataFrame) -> Path | None:
    """An ERTS run if there is one (it has kept and filtered samples), else a PDD run, else any; lowest seed."""
    order = results.assign(_rank=[0 if str(m).startswith("erts") else (2 if m == BASELINE else 1)
                                  for m in results["method"]]).sort_values(["_rank", "seed"])
    for run in order["run"]:
        if (sweep_dir / "runs" / run / "checkpoints" / "best.pt").exists():
            return sweep_dir / "runs" / run
    return None


# --- single-run report ------------------------------------------------------------------

def build_run_report(run_dir: Path, *, n_boot: int = 2000, examples: int = 2, max_leads: int = 3) -> Report:
    m = read_metrics(run_dir)
    secs = {h: Section(h) for h in RUN_SECTIONS}
    s = secs["Results"]
    test, val, cost = m["test"], m.get("val", {}), m.get("cost", {})
    pred = run_dir / "predictions_test.npz"
    boot = bootstrap_run(str(pred), n_boot=n_boot) if pred.exists() else None
    rows = [{"metric": "test macro-F1", "value": fmt_metric(test["macro_f1"]),
             "95% CI (bootstrap over test records)": f"[{fmt(boot['ci_low'])}, {fmt(boot['ci_high'])}]" if boot else "-"}]
    for k, v in test.items():
        if k != "macro_f1" and isinstance(v, (int, float)) and not isinstance(v, bool):
            rows.append({"metric": f"test {metric_name(k)}", "value": fmt_metric(v),
                         "95% CI (bootstrap over test records)": ""})
    for k in ("macro_f1", "accuracy", "macro_auroc"):
        if k in val:
            rows.append({"metric": f"val {metric_name(k)} (best epoch {m.get('best_epoch')})", "value": fmt_metric(val[k]),
                         "95% CI (bootstrap over test records)": ""})
    s.text(f"{m.get('method')} on {m.get('dataset')} with {m.get('model')}, seed {m.get('seed')}, "
           f"{m.get('epochs')} epochs; the model of the best validation epoch was evaluated once on test. "
           + (f"The CI resamples the {pred.name} test records {n_boot} times (percentile bootstrap)." if boot
              else f"No {pred.name}, so no bootstrap CI."))
    s.table(pd.DataFrame(rows), "results")
    if test.get("per_class_f1"):
        absent = [c for c, v in test["per_class_f1"].items() if v is None or math.isnan(v)]
        s.table(pd.DataFrame({"class": list(test["per_class_f1"]),
                              "test F1": [fmt_metric(v) for v in test["per_class_f1"].values()]}), "per_class")
        if absent:
            s.text(f"n/a: {', '.join(absent)} ha{'s' if len(absent) == 1 else 've'} no record in the test split, so "
                   "F1 is undefined there; macro-F1 averages the classes present in the split.")
    if cost:
        s.table(cost_table(cost, m.get("epochs")), "cost")
    log = read_log(run_dir)
    title = f"{m.get('dataset')} / {m.get('model')} / {m.get('method')} / seed {m.get('seed')}"
    if log is not None and len(log):
        secs["Accuracy against cost"].figure(
            "curves", plots.curves_figure(log, title),
            "Validation macro-F1 after each epoch against the wall-clock time (left) and the effective epochs "
            "(right) spent so far; the star marks the epoch whose model was tested.")
    else:
        secs["Accuracy against cost"].text("No log.csv in this run folder.")
    selection_sections([(str(m.get("method")), str(m.get("method")), [run_dir])], run_dir.name,
                       secs["Kept fraction per epoch"], secs["Which classes are dropped"], secs["Focus scores"])
    add_examples(secs["Example records"], run_dir, examples, max_leads)
    run_config_section(secs["Configuration"], run_dir)
    provenance_section(secs["Provenance"], [run_dir])
    sections = with_label_noise([secs[h] for h in RUN_SECTIONS], [(str(m.get("method")), [run_dir])], n_boot)
    return Report(f"erts run report: {run_dir.name}", f"Run folder: {run_dir}.", sections)


def cost_table(cost: dict, epochs) -> pd.DataFrame:
    cost = normalize_cost(cost)
    sec, cpu, fwd, bwd, fl = (cost.get(k, {}) for k in ("seconds", "cpu_seconds", "forwards", "backwards", "flops"))
    rows = [{"cost": "effective epochs", "value": f"{fmt(cost.get('effective_epochs'), 2)} of {epochs}"}]
    rows += [{"cost": f"wall-clock s, {k}", "value": fmt(v, 1)} for k, v in sec.items()]
    rows += [{"cost": f"CPU s (all threads), {k}", "value": fmt(v, 1)} for k, v in cpu.items()]
    rows += [{"cost": f"sample forwards, {k}", "value": f"{v:.0f}"} for k, v in fwd.items()]
    rows += [{"cost": f"sample backwards, {k}", "value": f"{v:.0f}"} for k, v in bwd.items()]
    rows += [{"cost": f"FLOPs, {k}", "value": fmt_sci(v)} for k, v in fl.items()]
    return pd.DataFrame(rows)


# --- example records --------------------------------------------------------------------

def pick_examples(sel: pd.DataFrame, k: int) -> tuple[int, pd.DataFrame, pd.DataFrame, str]:
    """(epoch, kept rows, filtered rows, what 'filtered' means) from the last epoch that filtered anything."""
    has_focus = sel["focus"].notna() & (sel["pdd_keep"] & ~sel["erts_keep"])
    if has_focus.any():
        epoch = int(sel.loc[has_focus, "epoch"].max())
        e = sel[sel["epoch"] == epoch]
        kept = e[e["erts_keep"] & e["focus"].notna()].sort_values("focus", ascending=False).head(k)
        filt = e[e["pdd_keep"] & ~e["erts_keep"]].sort_values("focus").head(k)
        return epoch, kept, filt, "removed by the focus filter (lowest focus scores)"
    dropped = ~sel["pdd_keep"]
    epoch = int(sel.loc[dropped, "epoch"].max()) if dropped.any() else int(sel["epoch"].max())
    e = sel[sel["epoch"] == epoch]
    kept = e[e["updated"]].sort_values("p").head(k)  # the hardest kept samples
    filt = e[~e["pdd_keep"]].sort_values("p", ascending=False).head(k)  # the most confident dropped ones
    return epoch, kept, filt, "dropped by the PDD rule (most confident)"


def add_examples(s: Section, run_dir: Path | None, k: int, max_leads: int) -> None:
    if k <= 0:
        s.text("Example records were not requested (--examples 0).")
        return
    if run_dir is None or not (run_dir / "checkpoints" / "best.pt").exists():
        s.text("No run with a checkpoints/best.pt, so no example records (they need the trained model).")
        return
    logs = _selection(run_dir)
    if logs is None:
        s.text(f"{run_dir.name}: no selection log, so no kept or filtered samples to show.")
        return
    try:
        from erts.report.explain import amplitude_unit, record_cam
        from erts.train.loop import load_run

        cfg, model, rs = load_run(run_dir, which="best")
    except (ImportError, FileNotFoundError, ValueError) as e:
        s.text(f"Example records unavailable: could not load the model and dataset of {run_dir.name} ({e}).")
        return
    sel, records = logs
    epoch, kept, filt, filt_what = pick_examples(sel, k)
    layer = cfg.selection.gradcam_layer
    s.text(f"Training records of run {run_dir.name} at epoch {epoch}, drawn as ECG strips (first {max_leads} "
           f"leads) with the Grad-CAM map of the true class (layer '{layer}', best checkpoint) shaded behind. "
           "The maps come from the final model, not the one that made the epoch's decision.")
    names = np.array(rs.class_names)
    for kind, rows, what in [("kept", kept, "kept (got a gradient update)"), ("filtered", filt, filt_what)]:
        if rows.empty:
            s.text(f"No {kind} samples in epoch {epoch}.")
            continue
        for _, r in rows.iterrows():
            i = int(r["index"])
            x = np.asarray(rs.signals[i], dtype=np.float32)
            target = rs.labels[i].astype(np.float32) if rs.multilabel else int(rs.labels[i])
            cam, _ = record_cam(model, x, target, layer)
            leads = min(max_leads, x.shape[0])
            label = ", ".join(names[rs.labels[i] > 0.5]) if rs.multilabel else names[rs.labels[i]]
            focus_txt = fmt(float(r["focus"]), 2) + (" (no positive evidence)" if float(r["focus"]) == 0 else "")
            title = (f"{kind}: record {rs.record_ids[i]}, label {label} - p(true) {fmt(float(r['p']), 2)}, "
                     f"focus {focus_txt} (epoch {epoch})")
            fig = plots.ecg_strip_figure(x[:leads], rs.fs, list(rs.lead_names)[:leads],
                                         cam[:leads] if cam.ndim == 2 else cam, title, amplitude_unit(cfg))
            s.figure(f"example_{kind}_{rs.record_ids[i]}", fig, f"{what}: record {rs.record_ids[i]} ({label}).")


# --- rendering --------------------------------------------------------------------------

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}tr:nth-child(even){background:#fafafa}
figure{margin:1.2em 0}img{max-width:100%}figcaption{color:#555;font-size:.9em}nav a{margin-right:1em}
.warnings{background:#fff4e5;border:1px solid #f0b429;padding:.5em 1em;margin:1em 0}"""


def _anchor(heading: str) -> str:
    return _slug(heading.lower())


def render_html(rep: Report) -> str:
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(rep.title)}</title>"
           f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(rep.title)}</h1>",
           f"<p>{html.escape(rep.intro)}</p>"]
    if rep.warnings:
        out.append("<div class='warnings' id='warnings'><strong>Warnings</strong><ul>"
                   + "".join(f"<li>{html.escape(w)}</li>" for w in rep.warnings) + "</ul></div>")
    out += ["<nav>" + "".join(f"<a href='#{_anchor(s.heading)}'>{html.escape(s.heading)}</a>" for s in rep.sections)
           + "</nav>"]
    for s in rep.sections:
        out.append(f"<h2 id='{_anchor(s.heading)}'>{html.escape(s.heading)}</h2>")
        for b in s.blocks:
            if b[0] == "p":
                out.append(f"<p>{html.escape(b[1])}</p>")
            elif b[0] == "table":
                out.append(b[1].to_html(index=False, table_id=b[2], border=0, escape=True))
            else:
                _, name, png, caption = b
                data = base64.b64encode(png).decode("ascii")
                out.append(f"<figure id='{name}'><img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(caption)}\">"
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def md_table(df: pd.DataFrame) -> str:
    cells = [[str(c).replace("|", "\\|") for c in row] for row in df.astype(str).to_numpy()]
    head = [str(c).replace("|", "\\|") for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def render_markdown(rep: Report, files_dir: Path) -> str:
    """Markdown text; figures are written to files_dir and linked relatively."""
    files_dir.mkdir(parents=True, exist_ok=True)
    out = [f"# {rep.title}", "", rep.intro, ""]
    out += [f"> **Warning:** {w}" + ("\n>" if i < len(rep.warnings) - 1 else "") for i, w in enumerate(rep.warnings)]
    out += [""] if rep.warnings else []
    for s in rep.sections:
        out += [f"## {s.heading}", ""]
        for b in s.blocks:
            if b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "table":
                out += [md_table(b[1]), ""]
            else:
                _, name, png, caption = b
                (files_dir / f"{name}.png").write_bytes(png)
                out += [f"![{name}]({files_dir.name}/{name}.png)", "", f"*{caption}*", ""]
    return "\n".join(out)


def print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def build_report(directory: str | Path, *, out_dir: str | Path | None = None, n_boot: int = 2000,
                 examples: int = 2, max_leads: int = 3,
                 warn: Callable[[str], None] | None = print_warning) -> tuple[Path, Path]:
    """Writes report.html and report.md (+ report_files/) for a run or sweep folder; returns both paths.

    Each of the report's warnings (too few seeds, noisy wall clock) is also passed
    to ``warn`` (default: printed to stderr, so ``erts report`` shows them).
    """
    d = Path(directory)
    if is_sweep_dir(d):
        rep = build_sweep_report(d, examples=examples, max_leads=max_leads, n_boot=n_boot)
    elif is_run_dir(d):
        rep = build_run_report(d, n_boot=n_boot, examples=examples, max_leads=max_leads)
    else:
        raise FileNotFoundError(f"{d} is neither a run folder (metrics.json, log.csv) nor a sweep folder "
                                "(results.csv)")
    out = Path(out_dir) if out_dir else d
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(render_html(rep), encoding="utf-8")
    md_path.write_text(render_markdown(rep, out / "report_files"), encoding="utf-8")
    for w in rep.warnings if warn else ():
        warn(w)
    return html_path, md_path
