"""The run report: one run's metrics with a bootstrap CI, its cost, curves and selection."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from erts.eval.bootstrap import bootstrap_run
from erts.report import plots
from erts.report.dropping import selection_sections, with_label_noise
from erts.report.examples import add_examples
from erts.report.folders import read_log, read_metrics
from erts.report.machine import shared_warning
from erts.report.format import Report, Section, fmt, fmt_metric, metric_name
from erts.report.provenance import provenance_section, run_config_section
from erts.report.tables import cost_table

RUN_SECTIONS = ["Results", "Accuracy against cost", "Kept fraction per epoch", "Which classes are dropped",
                "Focus scores", "Example records", "Configuration", "Provenance"]


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
        s.table(cost_table(cost, m.get("epochs"), m.get("optimizer_steps")), "cost")
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
    warnings = [w for w in [shared_warning("this run", [run_dir])] if w]
    return Report(f"erts run report: {run_dir.name}", f"Run folder: {run_dir}.", sections, warnings)
