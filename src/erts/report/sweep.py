"""The sweep report: every configuration over its seeds, compared with the baseline and with the rule ERTS filters."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from erts.errors import DataError
from erts.eval.controls import compared_at_the_cheapest, comparison_families, label_controls
from erts.eval.paired import METRICS, paired_runs
from erts.report import plots
from erts.report.dropping import selection_sections, with_label_noise
from erts.report.examples import add_examples, pick_example_run
from erts.report.folders import read_metrics
from erts.report.machine import shared_cores_warnings, speed_columns, speed_warning
from erts.report.format import Report, Section, config_label
from erts.report.provenance import provenance_section, sweep_config_section
from erts.report.tables import (BASELINE, PARETO_COSTS, TIME_SPREAD_LIMIT, comparison_section, headline,
                                pareto_input, pareto_time, record_paired_table, results_table, summary_warnings,
                                sweep_summary)
from erts.train.costnames import legacy_result_columns

SWEEP_SECTIONS = ["Results", "Paired comparisons with the baseline", "Equal-budget controls",
                  "ERTS against the rule it filters", "Paired over test records and seeds",
                  "Accuracy against cost", "Kept fraction per epoch", "Which classes are dropped", "Focus scores",
                  "Example records", "Configuration", "Provenance"]


def config_columns(results: pd.DataFrame) -> list[str]:
    """results.csv lists run, then the configuration keys, then seed, then metrics."""
    cols = list(results.columns)
    if "run" not in cols or "seed" not in cols:
        raise DataError("results.csv needs the columns 'run' and 'seed' (written by erts sweep)")
    return cols[cols.index("run") + 1: cols.index("seed")]


def varying(results: pd.DataFrame, keys: list[str]) -> list[str]:
    return [k for k in keys if results[k].nunique(dropna=False) > 1]


def multilabel_runs(sweep_dir: Path, runs: pd.Series) -> bool:
    """True when every finished run's metrics.json says multi-label (thresholds decide its F1)."""
    flags = []
    for r in runs:
        d = sweep_dir / "runs" / str(r)
        flags.append((d / "metrics.json").exists() and bool(read_metrics(d).get("multilabel", False)))
    return bool(flags) and all(flags)


def resolve_metric(metric: str, sweep_dir: Path, results: pd.DataFrame) -> str:
    """``auto``: test macro-AUROC for multi-label runs (the PTB-XL benchmark's metric; threshold-free),
    else test macro-F1; any other value is a results.csv column, used as given."""
    if metric != "auto":
        return metric
    if "test_macro_auroc" in results.columns and multilabel_runs(sweep_dir, results["run"]):
        return "test_macro_auroc"
    return "test_macro_f1"


def record_paired_section(s: Section, runs: pd.DataFrame, keys: list[str], shown: list[str], metric: str,
                          n_boot: int, families: dict[str, pd.DataFrame]) -> None:
    """The three families again, each difference paired over the test records as well as the seeds."""
    if metric.removeprefix("test_") not in METRICS:
        s.text(f"Not available for {headline(metric)} (macro-AUROC and macro-F1 only).")
        return
    tables = [record_paired_table(paired_runs(f, runs, metric, keys, n_boot=n_boot), shown, name, metric)
              for name, f in families.items() if not f.empty]
    tables = [t for t in tables if not t.empty]
    if not tables:
        s.text("No pair of configurations has test predictions (predictions_test.npz) of the same seeds.")
        return
    s.text(f"Every run is tested on the same records, so each of {n_boot} bootstrap replicates draws the test "
           "records once and the seeds once (with replacement) and scores both configurations of every drawn "
           "seed on that draw (erts.eval.paired): records hard for both cancel, the training randomness stays "
           "in the interval through the seed draw. p: two-sided bootstrap p of no difference; Holm within each "
           "family. With few seeds the seed level is coarse (3 seeds: 10 distinct draws; 1 seed: test-record "
           "sampling only): read it beside the t-tests above, not instead of them.")
    s.table(pd.concat(tables, ignore_index=True), "record_paired")


def build_sweep_report(sweep_dir: Path, *, examples: int = 2, max_leads: int = 3, n_boot: int = 2000,
                       metric: str = "auto") -> Report:
    """The sweep report; ``metric``: the one compared (a results.csv column, or ``auto``: resolve_metric)."""
    results = pd.read_csv(sweep_dir / "results.csv")
    results = results.rename(columns=legacy_result_columns(results.columns))
    if results.empty:
        raise DataError(f"{sweep_dir}/results.csv has no finished runs yet")
    keys = config_columns(results)
    if "method" not in keys:
        raise DataError(f"{sweep_dir}/results.csv: column 'method' is missing from the configuration keys {keys}")
    metric = resolve_metric(metric, sweep_dir, results)
    name = headline(metric)
    speed_keys = [k for k in keys if k not in ("method", "budget")]  # runs that share the validation work
    results = speed_columns(results, sweep_dir / "runs", speed_keys)
    budget_runs, budget_keys = results.copy(), list(keys)
    results = label_controls(results)  # full / random at a budget -> full@<method> / random@<method>
    keys = [k for k in keys if k != "budget"]  # a control's budget is in its label (it differs by seed)
    shown = [k for k in keys if k == "method" or k in varying(results, keys)]
    secs = {h: Section(h) for h in SWEEP_SECTIONS}
    summary = sweep_summary(results, keys, metric)
    s = secs["Results"]
    s.text(f"{len(results)} finished runs in {len(summary)} configurations. Compared metric: {name} (erts report "
           f"--metric). {name[0].upper() + name[1:]}: mean and 95% CI over seeds (t distribution, clipped to [0, 1]); "
           f"n counts the runs with a defined (finite) value. Cost "
           "columns are means; ratios are relative to the full-data baseline with the same other settings. "
           f"Time spread: slowest over fastest seed's wall clock, minus 1; above {TIME_SPREAD_LIMIT:.0%} it is "
           "flagged as machine noise, and FLOPs / full is the machine-independent cost ratio to read instead. "
           "CPU / full compares process CPU time (all threads), which other work on the machine skews far less "
           "than the wall clock; CPU / full at one speed scales each run's CPU time by the median CPU time of the "
           "validation pass (the same work in every run) over the run's own, so a machine that changed speed "
           "between runs does not pass for a cheaper or dearer method.")
    s.table(results_table(summary, shown, metric), "results")
    warnings = summary_warnings(summary, shown, metric)
    warnings += [w for w in [speed_warning(results, speed_keys)] if w]
    families = comparison_families(budget_runs, budget_keys, metric)
    comp, controls, erts = families.values()
    comparison_section(secs["Paired comparisons with the baseline"], comp, shown,
                       "Each method against the full-data baseline (full) with the same other settings, paired by "
                       "seed: does dropping data cost accuracy?",
                       "every method against full",
                       "No method could be paired with a full-data baseline run (same settings, same seeds).",
                       "comparisons", BASELINE, metric)
    comparison_section(secs["Equal-budget controls"], controls, [k for k in shown if k != "budget"],
                       "Each method against the simple ways of spending its compute: full trained for the method's "
                       "own effective epochs, its schedule compressed (full@<method>), and a fresh random subset each "
                       "epoch at the same effective epochs (random@<method>, RS2), paired by seed"
                       + (" (full@cheapest, random@cheapest: controls at the cheapest method's effective epochs of "
                          "each seed, no more than any method's)" if compared_at_the_cheapest(controls) else "") + ". A method whose "
                       "difference is not above zero does not beat them: its saving is also had without it.",
                       "every method against both of its equal-budget controls",
                       "No equal-budget control runs (method=full or random with budget = the method's effective "
                       "epochs / epochs; benchmarks/end_to_end.py runs them).", "equal_budget", "its control", metric)
    comparison_section(secs["ERTS against the rule it filters"], erts, shown,
                       "The paper's claim: the focus filter improves on the dropout rule it filters. Each ERTS method "
                       "against that rule (erts-X against X: erts-dbpd against dbpd, erts-smrd against smrd, ...) "
                       "with the same other settings, paired by seed.",
                       "every ERTS method against its rule (erts-X against X), a family separate from the "
                       "comparisons with full",
                       "No ERTS method could be paired with the rule it filters (erts-X needs X in the sweep, with the "
                       "same other settings and seeds).", "erts_comparisons", "its rule", metric)
    record_paired_section(secs["Paired over test records and seeds"], results.assign(
        run_dir=[str(sweep_dir / "runs" / r) for r in results["run"]]), keys, shown, metric, n_boot, families)
    label_keys = [k for k in shown if k != "dataset"]
    datasets = list(dict.fromkeys(results["dataset"])) if "dataset" in results.columns else [None]
    for ds in datasets:
        sub = summary if ds is None else summary[summary["dataset"] == ds]
        scope = ds or sweep_dir.name
        time_col = pareto_time(sub)
        time = PARETO_COSTS[time_col]
        points = pareto_input(sub, label_keys, time_col, metric)
        secs["Accuracy against cost"].figure(
            f"pareto_{scope}", plots.pareto_figure(points, f"{scope}: accuracy against cost", time, name),
            f"{name[0].upper() + name[1:]} (mean over seeds, bars: 95% CI) against {time} per run in seconds (left) and effective "
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
    warnings += shared_cores_warnings(config_groups)
    intro = f"Sweep folder: {sweep_dir}. Configuration keys: {', '.join(keys)}; seeds: " \
            f"{', '.join(map(str, sorted(results['seed'].unique())))}."
    sections = with_label_noise([secs[h] for h in SWEEP_SECTIONS], config_groups, n_boot)
    return Report(f"erts sweep report: {sweep_dir.name}", intro, sections, warnings)
