"""Do the reliability filters skip wrong labels, and what does it cost in test F1? (issue 24, part 3)

CinC 2017 (default): 100 Hz, 30-s records, random 5-s training windows, resnet18_1d, batch 64, 30 epochs at
the published proportions, ``easy_keep=0.3`` for the DBPD rules (docs/selection.md: what to set on CinC).
Three label settings, each its own sweep folders:

- ``sym20``: the current labels with 20 % of the training labels flipped to a random other class
  (``label_noise=symmetric``); ground truth ``noise_flipped``;
- ``pair20``: the current labels with 20 % of the training N records labelled O and 20 % of the O
  records labelled N (``label_noise=pair label_noise_classes=[N,O]``); ground truth ``noise_flipped``;
- ``original-train``: trained and validated on the first-released labels (``labels=original-train``),
  the real label noise; ground truth ``label_changed``.

Validation and test keep the clean labels in every setting (the current ones). Per setting and seed:
``full``; the unfiltered rules (``--rules``: ``dbpd`` and ``rho-loss``); ``erts-<rule>`` for each rule of
``--filter-rules`` under each reliability signal of ``--filters`` (``focus``: the paper's; ``diffuse``:
``reliability=diffuse focus_measure=mass``; ``loss``: ``reliability=loss focus_filter=threshold
loss_quantile=0.9``), shown as ``erts-dbpd+diffuse``; then the equal-budget controls ``full`` and
``random`` at each configuration's own share of a full run's compute (rho-loss charged its
irreducible-loss models; ``--controls cheapest`` runs the cheapest configuration's only). Seed by seed,
one run at a time (``--workers``), resumable: rerun the same command to finish, ``--summary-only`` to
print what has finished.

Printed (and written to ``<out>/<name>-summary.md``) per setting:

1. **Drop ratio**: for each filter, the share of its candidates it dropped among the noisy (flipped /
   relabelled) records and among the clean ones, their ratio with a 95 % two-level bootstrap CI over
   seeds and records (``erts.report.reliability``; candidates = what the filter ranked, ``filter_cand``);
   for the unfiltered rules the same for the rule's own drops among the scored pool. Beside it the ratio
   within labels (Mantel-Haenszel over the given labels): random flips land most in the rare labels, whose
   records a filter may drop more for their label alone, so the pooled ratio can flatter a filter.
2. **Test F1**: macro-F1 (and F1 N/A/O) mean over seeds with its 95 % t-interval, effective epochs (and
   the charged share), CPU seconds of training relative to ``full`` at one speed (each run's CPU time
   scaled by the median validation-pass CPU time over its own: erts.report.machine); each filter against its
   unfiltered rule and each configuration against its equal-budget controls, paired by seed
   (Holm within each family; controls: "beats it", "worse" or "does not beat it" at p(Holm) < 0.05).
3. **The same, paired over the test records and seeds** (erts.eval.paired; runs with test predictions):
   macro-F1 differences with their two-level bootstrap interval, p and Holm within each family.
4. **As a table**: the drop rates and ratios, test macro-F1 over the seeds finished (with their number)
   and FLOPs over ``full``'s, one Markdown row per configuration: what docs/audit.md quotes.

    python benchmarks/noise_filter.py --out ~/erts-sweeps                # CinC 2017, 3 settings x 3 seeds (days on 2 cores)
    python benchmarks/noise_filter.py --out ~/erts-sweeps --settings pair20 --filters focus,diffuse --controls cheapest
    python benchmarks/noise_filter.py --dataset synthetic --pair NORM,MI --settings sym20,pair20 --seeds 1 \\
        --out /tmp/nf epochs=4 n_records=240 length_s=2                  # a smoke test (minutes)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # end_to_end's machinery, beside this file

from end_to_end import (COMMON, DATASETS, comparison_line, control_lines, parse_value, record_paired_lines,  # noqa: E402
                        run_budget_controls, write_all_results)
from erts.eval.controls import budget_share, equal_budget_comparisons, is_control, label_controls  # noqa: E402
from erts.eval.stats import group_summary, paired_against  # noqa: E402
from erts.report import reliability  # noqa: E402
from erts.report.machine import eval_cpu_per_epoch, normalise_cpu, speed_warning  # noqa: E402
from erts.train.sweep import Grid, run_row, run_state, run_sweep  # noqa: E402

SETTINGS = {  # name -> (data settings, ground-truth column of train_records.csv)
    "sym20": ({"labels": "current", "label_noise": "symmetric", "label_noise_rate": 0.2}, "noise_flipped"),
    "pair20": ({"labels": "current", "label_noise": "pair", "label_noise_rate": 0.2}, "noise_flipped"),
    "original-train": ({"labels": "original-train"}, "label_changed"),
}
FILTERS = {
    "focus": {},  # the paper's: (1 - p) * focus, focus_measure=topq
    "diffuse": {"reliability": "diffuse", "focus_measure": "mass"},  # issue 24: a map locked onto one spot is suspicious
    "loss": {"reliability": "loss", "focus_filter": "threshold", "loss_quantile": 0.9},
}
BENCH = {**COMMON, "easy_keep": 0.3}


def setting_base(dataset: str, setting: str, pair: list[str], overrides: dict) -> dict:
    """Every run's settings in ``setting``: the dataset's, the benchmark's, the noise, the command line's."""
    data, _ = SETTINGS[setting]
    data = {k: v for k, v in data.items() if k != "labels" or dataset == "cinc2017"}
    if data.get("label_noise") == "pair":
        data["label_noise_classes"] = pair
    base = {**DATASETS[dataset], **BENCH, **data, **overrides}
    return {k: v for k, v in base.items() if not (k == "labels" and dataset != "cinc2017")}


def grids(name: str, out: str, base: dict, seeds: list[int], rules: list[str], filter_rules: list[str],
          filters: list[str], workers: int) -> list[tuple[str, Grid]]:
    """(label suffix, grid): the main grid (full and the unfiltered rules), then one per filter."""
    out_grids = [("", Grid(name=name, out_dir=out, workers=workers, base=base,
                           grid={"seed": seeds, "method": ["full", *rules]}))]
    for f in filters:
        out_grids.append((f"+{f}", Grid(name=f"{name}-{f}", out_dir=out, workers=workers, base={**base, **FILTERS[f]},
                                        grid={"seed": seeds, "method": [f"erts-{r}" for r in filter_rules]})))
    return out_grids


def configurations(all_grids: list[tuple[str, Grid]], seed: int) -> dict[str, Path]:
    """label -> run folder of ``seed``, for every non-control configuration that finished."""
    out = {}
    for suffix, g in all_grids:
        for m in g.grid["method"]:
            run_dir = g.sweep_dir / "runs" / f"seed={seed},method={m}"
            if run_state(run_dir) == "done":
                out[m + suffix] = run_dir
    return out


def control_budgets(all_grids: list[tuple[str, Grid]], seed: int, which: str) -> list[float]:
    """Each configuration's share of a full run's compute (rho-loss charged its IL models), 2 decimals."""
    shares = sorted({round(budget_share(run_row(d, ["method"])), 2)
                     for label, d in configurations(all_grids, seed).items() if label != "full"})
    return shares[:1] if which == "cheapest" else shares


def results(all_grids: list[tuple[str, Grid]]) -> pd.DataFrame:
    """Every finished run of the setting (controls included), ``method`` = its configuration label."""
    rows = []
    for suffix, g in all_grids:
        runs = g.sweep_dir / "runs"
        for run_dir in sorted(runs.iterdir()) if runs.is_dir() else []:
            if run_state(run_dir) != "done":
                continue
            row = run_row(run_dir, ["dataset", "model", "method", "budget"])
            row["eval_cpu_per_epoch"] = eval_cpu_per_epoch(run_dir)  # the machine's speed during the run
            row["run_dir"] = str(run_dir)
            is_ctrl = row.get("budget") is not None and row["method"] in ("full", "random")
            row["method"] = row["method"] + ("" if is_ctrl else suffix)
            rows.append(row)
    return pd.DataFrame(rows)


def drop_table(all_grids: list[tuple[str, Grid]], seeds: list[int], truth: str, rules: list[str],
               n_boot: int) -> pd.DataFrame:
    """Each filter's (and unfiltered rule's) drop rates of noisy and clean candidates, pooled over seeds."""
    groups: dict[str, list[Path]] = {}
    for seed in seeds:
        for label, d in configurations(all_grids, seed).items():
            if label != "full":
                groups.setdefault(label, []).append(d)
    t = reliability.reliability_table(groups, n_boot=n_boot, truth=truth, rule_methods=tuple(rules))
    return t[t["scope"] == "overall"].set_index("method")


def drop_lines(t: pd.DataFrame, truth: str) -> list[str]:
    """The drop-ratio table in words (``drop_table``)."""
    out = [f"Drop rate of noisy ({truth}) and clean candidates, pooled over seeds; ratio with a 95 % "
           "bootstrap CI (seeds, then records); within labels: the same among records of one given label "
           "at a time (Mantel-Haenszel), since the noise is not spread evenly over the labels:",
           f"  {'configuration':24s} {'dropped by':12s} {'noisy':>16s} {'clean':>17s} {'ratio [95% CI]':>24s}"
           f"  {'within labels [95% CI]':>24s}"]
    for method, r in t.iterrows():
        which = "rule" if r.which == "rule" else "filter"
        out.append(f"  {method:24s} {which:12s} {r.relabelled_drop_rate:6.1%} of {r.n_relabelled_candidates:<7d} "
                   f"{r.unchanged_drop_rate:6.1%} of {r.n_unchanged_candidates:<8d} "
                   f"{r.ratio:6.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]  {reliability.within_text(r):>24s}")
    return out if not t.empty else out[:1] + ["  no finished run with ground truth yet"]


def rule_of(label: str) -> str | None:
    """The unfiltered rule of a filter configuration: 'erts-dbpd+diffuse' -> 'dbpd'."""
    method = label.split("+")[0]
    return method.removeprefix("erts-") if method.startswith("erts-") and not is_control(label) else None


def prepared(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The results with each run's share and CPU time at one speed, and the same with the controls named."""
    probed = "cpu_seconds_train" in df and df["eval_cpu_per_epoch"].notna().all()
    if probed:  # the machine's speed drift between runs taken out (erts.report.machine)
        df = normalise_cpu(df, ["dataset", "model"], "cpu_seconds_train")
    df = df.assign(share=budget_share(df), cpu_train=df.get("cpu_seconds_train_norm" if probed else "cpu_seconds_train"))
    return df, label_controls(df)


def f1_table(df: pd.DataFrame, configs: list[str]) -> pd.DataFrame:
    """One row per configuration shown (``configs`` that finished, then the controls): test macro-F1 (and
    F1 NAO) mean and 95 % t-interval over seeds, ``n`` seeds, effective epochs, share, and FLOPs and
    CPU time of training over ``full``'s (medians; NaN without them)."""
    return prepared_table(*prepared(df), configs)


def prepared_table(df: pd.DataFrame, labelled: pd.DataFrame, configs: list[str]) -> pd.DataFrame:
    """``f1_table`` of results already ``prepared``."""
    shown = [c for c in configs if c in set(labelled["method"])]
    shown += sorted(m for m in set(labelled["method"]) if is_control(m))
    metrics = ["test_macro_f1", "effective_epochs", "share"] + (["test_f1_nao"] if "test_f1_nao" in df else [])
    summary = group_summary(labelled, ["method"], metrics).set_index("method").loc[shown]
    for col, name in (("flops_total", "flops_x"), ("cpu_train", "cpu_x")):
        med = labelled.groupby("method")[col].median() if col in labelled else pd.Series(dtype=float)
        ok = "full" in med.index and med.get("full", 0) > 0
        summary[name] = med.reindex(shown) / med["full"] if ok else float("nan")
    return summary


def f1_lines(df: pd.DataFrame, configs: list[str]) -> list[str]:
    """Test F1 per configuration and its paired comparisons (filter vs rule; vs equal-budget controls)."""
    if df.empty:
        return ["Test F1: no finished run yet"]
    df, labelled = prepared(df)
    table = prepared_table(df, labelled, configs)
    out = ["Test macro-F1 mean [95 % t-interval over seeds], effective epochs, share of full's compute "
           "(rho-loss: its IL models charged; the controls' budget), FLOPs / full's (all the work: scoring "
           "passes, Grad-CAM, IL models and their validation), median CPU s of training / full's at one speed "
           "(each run's CPU time scaled by the median validation-pass CPU time over its own, where every run "
           "recorded one):"]
    out += [w for w in [speed_warning(df, ["dataset", "model"])] if w]
    for m, s in table.iterrows():
        line = (f"  {m:24s} {s.test_macro_f1_mean:.4f} [{s.test_macro_f1_ci_low:.4f}, {s.test_macro_f1_ci_high:.4f}]"
                + (f"  F1 NAO {s.test_f1_nao_mean:.4f}" if "test_f1_nao" in df else "")
                + f"  EE {s.effective_epochs_mean:5.2f}  share {s.share_mean:.3f}")
        line += f"  FLOPs x{s.flops_x:.3f}" if pd.notna(s.flops_x) else ""
        line += f"  CPU x{s.cpu_x:.3f}" if pd.notna(s.cpu_x) else ""
        out.append(line)
    keys = ["dataset", "model", "method"]
    filt = paired_against(labelled[~labelled["method"].map(is_control)], keys, rule_of)
    out.append("Each filter against its unfiltered rule (paired by seed; Holm over these rows):")
    out += [comparison_line(r, 24, 10) for r in filt.itertuples()]
    controls = equal_budget_comparisons(df, [*keys, "budget"]) if "budget" in df else pd.DataFrame()
    out += control_lines(df, configs, method_width=24, base_width=30, comp=controls)
    return out + record_paired_lines(df, configs, "test_macro_f1", families={
        "each filter against its unfiltered rule": filt, "against the equal-budget controls": controls})


def markdown_table(drops: pd.DataFrame, f1: pd.DataFrame, truth: str) -> list[str]:
    """The setting's table as docs/audit.md shows it: drop rates and ratio, test macro-F1 over the seeds
    finished, FLOPs over ``full``'s; one row per configuration of ``f1`` (those with a drop rate too)."""
    noisy = "flipped" if truth == "noise_flipped" else "relabelled"
    out = [f"| configuration | {noisy} / clean dropped | ratio [95 % CI] | within labels [95 % CI] "
           "| test macro-F1 [95 % CI] | seeds | FLOPs x full |", "|---|---|---|---|---|---|---|"]
    for m, s in f1.iterrows():
        d = drops.loc[m] if m in drops.index else None
        dropped = f"{d.relabelled_drop_rate:.1%} / {d.unchanged_drop_rate:.1%}" if d is not None else ""
        ratio = f"{d.ratio:.2f} [{d.ci_low:.2f}, {d.ci_high:.2f}]" if d is not None else ""
        within = reliability.within_text(d) if d is not None else ""
        ci = (f" [{s.test_macro_f1_ci_low:.3f}, {s.test_macro_f1_ci_high:.3f}]"
              if pd.notna(s.test_macro_f1_ci_low) else "")
        flops = f"{s.flops_x:.2f}" if pd.notna(s.flops_x) else ""
        out.append(f"| {m} | {dropped} | {ratio} | {within} | {s.test_macro_f1_mean:.3f}{ci} | {int(s.n)} | {flops} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="extra erts config key=value for every run")
    ap.add_argument("--dataset", default="cinc2017", choices=sorted(DATASETS))
    ap.add_argument("--settings", default="sym20,pair20,original-train")
    ap.add_argument("--pair", default="N,O", help="the two classes label_noise=pair swaps")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rules", default="dbpd,rho-loss", help="the unfiltered rules")
    ap.add_argument("--filter-rules", default="dbpd", help="the rules the filters run on (erts-<rule>)")
    ap.add_argument("--filters", default="focus,diffuse,loss", help=f"of {', '.join(FILTERS)} ('': none)")
    ap.add_argument("--controls", default="each", choices=["each", "cheapest", "none"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--name", default=None, help="sweep folder prefix (default noise-<dataset>)")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of each drop ratio")
    ap.add_argument("--summary-only", action="store_true", help="start no run: summarise what has finished")
    args = ap.parse_args()
    settings, filters = args.settings.split(","), [f for f in args.filters.split(",") if f]  # "": none
    for s in settings:
        if s not in SETTINGS or (s == "original-train" and args.dataset != "cinc2017"):
            raise SystemExit(f"--settings: {s!r} is not one of {', '.join(SETTINGS)} (original-train: cinc2017 only)")
    if set(filters) - set(FILTERS):
        raise SystemExit(f"--filters: expected some of {', '.join(FILTERS)}")
    overrides = {k: parse_value(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    rules, filter_rules = args.rules.split(","), [r for r in args.filter_rules.split(",") if r]
    prefix = args.name or f"noise-{args.dataset}"
    plan = {s: grids(f"{prefix}-{s}", args.out, setting_base(args.dataset, s, args.pair.split(","), overrides),
                     list(range(args.seeds)), rules, filter_rules, filters, args.workers) for s in settings}
    for last in range(args.seeds if not args.summary_only else 0):  # seed by seed over every setting
        for s, all_grids in plan.items():
            for _, g in all_grids:
                g = Grid(name=g.name, out_dir=g.out_dir, workers=g.workers, base=g.base,
                         grid={**g.grid, "seed": list(range(last + 1))})
                res = run_sweep(g, workers=args.workers)
                if res.failed:
                    raise SystemExit(f"failed runs: {', '.join(res.failed)}")
            if args.controls != "none":
                run_budget_controls(all_grids[0][1], last, control_budgets(all_grids, last, args.controls),
                                    args.workers)
    configs = ["full", *rules] + [f"erts-{r}+{f}" for f in filters for r in filter_rules]
    lines = [f"{args.dataset}: {BENCH['model']}, {overrides.get('epochs', BENCH['epochs'])} epochs, {args.seeds} seeds planned"]
    for s, all_grids in plan.items():
        if (all_grids[0][1].sweep_dir / "runs").is_dir():  # its results.csv with the controls (each run_sweep
            write_all_results(all_grids[0][1])            # call writes only its own grid's runs)
        lines += ["", f"## {s}", ""]
        truth, res = SETTINGS[s][1], results(all_grids)
        drops = drop_table(all_grids, list(range(args.seeds)), truth, rules, args.n_boot)
        lines += drop_lines(drops, truth)
        lines += f1_lines(res, configs)
        if not res.empty:
            lines += ["", "As a table:", ""] + markdown_table(drops, f1_table(res, configs), truth)
    text = "\n".join(lines)
    print(text)
    path = Path(args.out) / f"{prefix}-summary.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"\nsummary: {path}")


if __name__ == "__main__":
    main()
