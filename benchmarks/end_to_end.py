"""End-to-end benchmark: full, DBPD, SMRD, ERTS-DBPD, InfoBatch, ERTS-InfoBatch at the same epoch budget,
loss, data and seeds.

CinC 2017 (default): 100 Hz, random 5-s training windows (centre window for scoring, validation and
test), resnet18_1d, batch 64, 30 epochs at the published proportions (warm-up 0-1, Grad-CAM from 3,
revision from 15; InfoBatch its own: prune until 87.5 % of the epochs). Trained and validated on the
labels first released, tested on the current ones (labels=original-train): 294 records changed label
between the two, real label noise, the premise of ERTS.

Runs are a sweep (`erts sweep` machinery) with ONE worker, so every run has the
machine to itself and wall-clock times are comparable; runs are ordered seed by
seed (full, dbpd, smrd, erts-dbpd for seed 0, then seed 1, ...), so slow drifts of
the machine hit every method alike. Resumable: rerun the same command to finish.

Prints per method: test macro-F1 mean with its 95 % t-interval over seeds (and the
CinC 2017 score F1(N,A,O) when present), effective epochs, median wall-clock
seconds of training (scoring + Grad-CAM + update) and of the whole run, their ratio
to `full`, the same for CPU (process) seconds when the runs recorded them (wall clock
is skewed by other work on the machine, CPU time much less), and the paired difference to `full` (mean, 95 % CI, Holm-adjusted p over
the comparisons with `full`); then each ERTS method against the rule it filters
(erts-dbpd against dbpd, erts-<rule> against <rule>), paired by seed, with its own
Holm adjustment over those comparisons only.

    python benchmarks/end_to_end.py --out ~/erts-sweeps  # CinC 2017, 3 seeds, 6 methods (hours on 2 CPU cores)
    python benchmarks/end_to_end.py --out ~/erts-sweeps --name e2e-cinc2017-prior --methods dbpd,smrd,erts-dbpd kept_weighting=prior
    python benchmarks/end_to_end.py --dataset synthetic --seeds 3 epochs=10
    python benchmarks/end_to_end.py --out ~/erts-sweeps --variant easy_keep=0.3 --summary-only  # so far
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from erts.config import load_config
from erts.eval.paired import METRICS, paired_runs
from erts.eval.bootstrap import bootstrap_macro_auroc
from erts.eval.controls import (budget_share, compared_at_the_cheapest, comparison_families, equal_budget_comparisons,
                                is_control, label_controls)
from erts.eval.stats import group_summary
from erts.report.machine import normalise_cpu, speed_warning, with_probe
from erts.train import runio
from erts.train.costnames import legacy_result_columns
from erts.train.sweep import Grid, config_keys, expand, run_row, run_state, run_sweep

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "cinc2017": {"dataset": "cinc2017", "root": str(ROOT.parent / "shared/data/training2017.zip"), "fs": 100.0,
                 "length_s": 30.0, "crop_s": 5.0, "crop": "random", "labels": "original-train"},
    "mitbih": {"dataset": "mitbih", "root": str(ROOT.parent / "shared/data/mit-bih-arrhythmia-database-1.0.0.zip")},
    "synthetic": {"dataset": "synthetic"},
    # the whole of PTB-XL 1.0.1 at 100 Hz, assembled by ../shared/data/ptbxl/assemble.sh (ERTS_PTBXL: where)
    "ptbxl": {"dataset": "ptbxl", "root": os.environ.get("ERTS_PTBXL", str(Path.home() / "data/ptbxl"))},
}
# the schedule is left to the published proportions of the epochs (30: warm-up 2, Grad-CAM 3, revision 15)
COMMON = {"model": "resnet18_1d", "epochs": 30, "batch_size": 64, "tau": 0.3, "phi": 0.7, "lr": 1e-3}
METHODS = "full,dbpd,smrd,erts-dbpd,infobatch,erts-infobatch"
KEYS = ["dataset", "model", "method"]  # the configuration keys a summary pairs on


def parse_value(v: str):
    import yaml

    return yaml.safe_load(v)


def control_budgets(sweep_dir: Path, seed: int, methods: list[str], which: str = "each") -> list[float]:
    """The equal-budget controls' budgets for ``seed``: each method's measured share of a full run's
    compute (``budget_share``: effective epochs / epochs, rho-loss's irreducible-loss models charged)
    (``each``), or only the cheapest method's (``cheapest``), rounded to 2 decimals (0.3 % of a
    30-epoch budget), so methods of about equal cost share one control."""
    out = [round(budget_share(run_row(sweep_dir / "runs" / f"seed={seed},method={m}", ["method"])), 2)
           for m in methods if m != "full"]
    return sorted(set(out))[:1] if which == "cheapest" else sorted(set(out))


def run_controls(grid: Grid, seeds: list[int], methods: list[str], workers: int, which: str = "each") -> None:
    """full and random at each method's own effective epochs, per seed, in the main sweep folder
    (run names carry the budget; write_all_results finds them there)."""
    for seed in seeds:
        run_budget_controls(grid, seed, control_budgets(grid.sweep_dir, seed, methods, which), workers)


def run_budget_controls(grid: Grid, seed: int, budgets: list[float], workers: int) -> None:
    """full and random of ``seed`` at each of ``budgets``, in ``grid``'s sweep folder with its base
    settings (random where its warm-up and revision leave room)."""
    feasible = [b for b in budgets if random_feasible(grid.base, b)]
    for b in sorted(set(budgets) - set(feasible)):
        print(f"control random at budget {b} (seed {seed}) skipped: its warm-up and revision alone exceed it")
    for method, bs in (("full", budgets), ("random", feasible)):
        if not bs:
            continue
        g = Grid(name=grid.name, out_dir=grid.out_dir, workers=workers, base=grid.base,
                 grid={"seed": [seed], "method": [method], "budget": bs})
        res = run_sweep(g, workers=workers)
        if res.failed:
            raise SystemExit(f"failed control runs: {', '.join(res.failed)}")
    write_all_results(grid)  # run_sweep left the controls' runs alone in results.csv


def random_feasible(base: dict, budget: float) -> bool:
    from erts.config import ConfigError, load_config

    try:
        load_config(overrides={**base, "method": "random", "budget": budget})
        return True
    except ConfigError:
        return False


def write_all_results(main: Grid) -> Path:
    """results.csv of the main sweep folder: the main grid's finished runs and every finished
    equal-budget control in its runs/ folder (named ``...,budget=<b>``). Read from the run folders,
    because each run_sweep call writes only its own grid's runs: a sweep that is still running has
    a results.csv without the controls of the seeds it finished."""
    keys = [*config_keys(main), "budget"]
    runs_dir = main.sweep_dir / "runs"
    dirs = [r.run_dir for r in expand(main)]
    dirs += sorted(d for d in runs_dir.iterdir() if "budget=" in d.name) if runs_dir.is_dir() else []
    rows = [run_row(d, keys) for d in dirs if run_state(d) == "done"]
    path = main.sweep_dir / "results.csv"
    runio.write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def comparison_line(r, method_width: int = 10, base_width: int = 8) -> str:
    """One paired comparison (a row of erts.eval.stats' or .controls' tables): the difference, its CI, pairs, p, Holm's p."""
    return (f"  {r.method:{method_width}s} vs {r.baseline:{base_width}s} {r.mean_diff:+.4f} "
            f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}], {r.n} pairs, p={r.p_ttest:.3f}, p(Holm)={r.p_holm:.3f}")


def control_lines(df: pd.DataFrame, methods: list[str], metric: str = "test_macro_f1",
                  method_width: int = 15, base_width: int = 22, comp: pd.DataFrame | None = None) -> list[str]:
    """Each method against full and random at its own effective epochs (paired by seed, Holm over the family).
    ``comp``: that family's table when already computed (erts.eval.controls.comparison_families)."""
    if comp is None:
        comp = equal_budget_comparisons(df, [*KEYS, "budget"], metric)
    at = ("the cheapest method's effective epochs in each seed (no more than its own)"
          if compared_at_the_cheapest(comp) else "its own effective epochs")
    out = [f"Equal-budget controls: each method against full (schedule compressed) and random (RS2) at {at}, "
           "paired by seed; Holm over these rows:"]
    if comp.empty:
        return out + ["  none finished yet (or --controls none)"]
    for r in comp.itertuples():
        if r.method not in methods:
            continue
        beats = r.p_holm < 0.05 and r.mean_diff > 0
        verdict = "beats it" if beats else ("worse" if r.p_holm < 0.05 else "does not beat it")
        out.append(f"{comparison_line(r, method_width, base_width)}: {verdict}")
    return out


def bootstrap_lines(sweep_dir: Path, df: pd.DataFrame, methods: list[str]) -> list[str]:
    """Each method's per-run test macro-AUROC with its record bootstrap 95 % interval (1,000 resamples
    with every class present, as the PTB-XL benchmark draws them), read from predictions_test.npz."""
    import numpy as np

    out = ["Test macro-AUROC per run with its bootstrap 95 % CI over test records (seed: point [low, high]):"]
    labelled = label_controls(df)
    for m in methods:
        parts = []
        for r in labelled[labelled["method"] == m].sort_values("seed").itertuples():
            npz = sweep_dir / "runs" / r.run / "predictions_test.npz"
            if npz.exists():
                with np.load(npz) as z:
                    b = bootstrap_macro_auroc(z["y_true"], z["probs"], n_boot=1000, seed=0)
                parts.append(f"s{r.seed}: {b['macro_auroc']:.4f} [{b['ci_low']:.4f}, {b['ci_high']:.4f}]")
        out.append(f"  {m:22s} " + "; ".join(parts))
    return out


def record_paired_lines(df: pd.DataFrame, methods: list[str], metric: str, n_boot: int = 2000,
                        families: dict[str, pd.DataFrame] | None = None) -> list[str]:
    """The comparison families again (by default erts.eval.controls.comparison_families), each difference now paired
    over the test records as well as the seeds (erts.eval.paired: one draw of the records for both
    configurations and every seed, the seeds drawn too). ``df``: results with ``run_dir``."""
    if metric.removeprefix("test_") not in METRICS or "run_dir" not in df:
        return []
    df = df.rename(columns=legacy_result_columns(df.columns))  # erts <= 0.2 names
    if families is None:
        families = comparison_families(df, KEYS, metric)
    plain = label_controls(df)
    out = [f"Paired over test records and seeds ({metric.removeprefix('test_')}; two-level bootstrap, "
           f"{n_boot} draws of the test records and the seeds; Holm within each family):"]
    few = False
    for name, pairs in families.items():
        if pairs.empty:
            continue
        res = paired_runs(pairs[pairs["method"].isin(methods)], plain, metric, n_boot=n_boot)
        if res.empty:
            continue
        out.append(f"  {name}:")
        mw, bw = res["method"].str.len().max(), res["baseline"].str.len().max()
        out += [f"    {r.method:{mw}s} vs {r.baseline:{bw}s} {r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], "
                f"{r.n_seeds} seeds, p={r.p:.3f}, p(Holm)={r.p_holm:.3f}" for r in res.itertuples()]
        few = few or bool((res["n_seeds"] < 2).any())
    if len(out) == 1:
        out.append("  none yet: a pair needs both configurations finished in a seed")
    if few:
        out.append("  (a row of 1 seed holds the test records' sampling only, not the training's randomness: "
                   "two seeds of one configuration may differ by more)")
    return out


def summary_lines(df: pd.DataFrame, methods: list[str], title: str, metric: str = "test_macro_f1",
                  families: dict[str, pd.DataFrame] | None = None) -> list[str]:
    """The printed summary of a results.csv: one line per method (the controls labelled full@<method>,
    random@<method>), each method against its equal-budget controls, then each ERTS method against its
    rule. ``families``: erts.eval.controls.comparison_families when already computed."""
    df = df.rename(columns=legacy_result_columns(df.columns))  # erts <= 0.2 names
    if families is None:
        families = comparison_families(df, KEYS, metric)
    controls_df = df
    df = label_controls(df)
    methods = [m for m in methods if m in set(df["method"])]  # mid-sweep: those with a finished run
    if "full" not in methods:
        return [title, "  no finished full run yet: nothing to compare with"]
    methods = methods + [m for m in dict.fromkeys(df["method"]) if is_control(m)]
    df = df.assign(seconds_train=df[[c for c in ("seconds_scoring", "seconds_gradcam", "seconds_update",
                                                 "seconds_irreducible") if c in df]].sum(axis=1))
    metrics = list(dict.fromkeys([metric, "test_macro_f1", "effective_epochs"])) + (["test_f1_nao"] if "test_f1_nao" in df else [])
    summary = group_summary(df, ["method"], metrics).set_index("method").loc[methods]
    med = df.groupby("method")[["seconds_train", "seconds_total"]].median().loc[methods]
    pairs = families["against full"]
    pairs = pairs.set_index("method") if not pairs.empty else pd.DataFrame()
    f1_too = metric != "test_macro_f1" and "test_macro_f1" in df  # e.g. PTB-XL: AUROC compared, F1 beside it
    out = [title + " (seconds: median over seeds, x full: ratio of medians)", f"{'method':10s} {metric.removeprefix('test_') + ' [95% CI]':>26s} " + ("{:>8s} ".format("F1 NAO") if "test_f1_nao" in df else "") + ("{:>8s} ".format("macro-F1") if f1_too else "")
           + f"{'EE':>6s} {'train s':>8s} {'x full':>7s} {'total s':>8s} {'x full':>7s}  diff vs full [95% CI], p(Holm)"]
    cpu = {"cpu_seconds_train", "cpu_seconds_total"} <= set(df)
    norm = cpu and "cpu_seconds_total_norm" in df and df["cpu_seconds_total_norm"].notna().all()
    if cpu:
        cols = ["cpu_seconds_train", "cpu_seconds_total"] + (["cpu_seconds_total_norm"] if norm else [])
        cmed = df.groupby("method")[cols].median().loc[methods]
        out[1] += "  CPU train s, x full, CPU total s, x full" + (", x full at one speed" if norm else "")
    for m in methods:
        s = summary.loc[m]
        line = (f"{m:10s} {s[metric + '_mean']:.4f} [{s[metric + '_ci_low']:.4f}, {s[metric + '_ci_high']:.4f}] "
                + (f"{s.test_f1_nao_mean:8.4f} " if "test_f1_nao" in df else "")
                + (f"{s.test_macro_f1_mean:8.4f} " if f1_too else "")
                + f"{s.effective_epochs_mean:6.2f} {med.loc[m].seconds_train:8.1f} "
                  f"{med.loc[m].seconds_train / med.loc['full'].seconds_train:7.3f} {med.loc[m].seconds_total:8.1f} "
                  f"{med.loc[m].seconds_total / med.loc['full'].seconds_total:7.3f}")
        if m in pairs.index:
            p = pairs.loc[m]
            line += f"  {p.mean_diff:+.4f} [{p.ci_low:+.4f}, {p.ci_high:+.4f}], p={p.p_holm:.3f}"
        if cpu:
            c, cf = cmed.loc[m], cmed.loc["full"]
            line += (f"  cpu {c.cpu_seconds_train:.1f} x{c.cpu_seconds_train / cf.cpu_seconds_train:.3f} "
                     f"{c.cpu_seconds_total:.1f} x{c.cpu_seconds_total / cf.cpu_seconds_total:.3f}")
            if norm:
                line += f" x{c.cpu_seconds_total_norm / cf.cpu_seconds_total_norm:.3f}"
        out.append(line)
    if norm:
        out.append("CPU x full at one speed: each run's CPU time scaled by the median CPU time of the validation "
                   "pass (the same work in every run) over its own, so machine speed drift between runs cancels.")
        out += [w for w in [speed_warning(df, ["dataset", "model"])] if w]
    out += control_lines(controls_df, methods, metric, comp=families["against the equal-budget controls"])
    erts = families["ERTS against its rule"]
    erts = erts[erts["method"].isin(methods) & erts["baseline"].isin(methods)] if not erts.empty else erts
    out.append("ERTS against the rule it filters (paired by seed; Holm over these rows only, not with the rows above):")
    if erts.empty:
        out.append("  none: an erts-<rule> method needs <rule> in --methods, both finished for a seed")
    for r in erts.itertuples():
        out.append(comparison_line(r))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="extra erts config key=value for every run")
    ap.add_argument("--dataset", default="cinc2017", choices=sorted(DATASETS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--name", help="sweep folder name (default e2e-<dataset>); a variant of the grid needs its own")
    ap.add_argument("--workers", type=int, default=1, help="runs side by side (wall clock then shares the cores)")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                    help="also run --variant-methods with this setting (its own sweep folder), seed by seed "
                         "alongside the main grid; shown as <method>+<KEY=VALUE> against the main grid's full")
    ap.add_argument("--variant-methods", default="dbpd,erts-dbpd")
    ap.add_argument("--controls", default="each", choices=["each", "cheapest", "none"],
                    help="equal-budget controls, full and random, at each method's effective epochs, at the "
                         "cheapest method's only, or none")
    ap.add_argument("--metric", default="test_macro_f1", help="the metric compared (e.g. test_macro_auroc)")
    ap.add_argument("--preset", help="an erts preset applied to every run (e.g. ptbxl-benchmark)")
    ap.add_argument("--summary-only", action="store_true",
                    help="start no run: summarise the runs finished so far (safe while the sweep is running)")
    args = ap.parse_args()
    common = {"preset": args.preset} if args.preset else COMMON  # a preset brings its own model and optimiser
    base = {**DATASETS[args.dataset], **common,
            **{k: parse_value(v) for k, v in (o.split("=", 1) for o in args.overrides)}}
    methods = args.methods.split(",")
    name = args.name or f"e2e-{args.dataset}"
    variants = [(v, {k: parse_value(x) for k, x in [v.split("=", 1)]}) for v in args.variant]
    results: dict[str, Path] = {}
    for last_seed in range(args.seeds):  # seed by seed: every configuration's first seed comes first
        seeds = list(range(last_seed + 1))
        grids = [(name, "", base, methods)] + [(f"{name}-{_slug(v)}", f"+{v}", {**base, **kv},
                                                 args.variant_methods.split(",")) for v, kv in variants]
        for grid_name, suffix, grid_base, grid_methods in grids:
            grid = Grid(name=grid_name, out_dir=args.out, workers=args.workers, base=grid_base,
                        grid={"seed": seeds, "method": grid_methods})
            if args.summary_only:
                if not suffix and (grid.sweep_dir / "runs").is_dir():
                    results[suffix] = write_all_results(grid)  # with the controls, also mid-sweep
                elif (grid.sweep_dir / "results.csv").exists():
                    results[suffix] = grid.sweep_dir / "results.csv"
                continue
            res = run_sweep(grid, workers=args.workers)
            if res.failed:
                raise SystemExit(f"failed runs: {', '.join(res.failed)}")
            results[suffix] = res.results_csv
            if not suffix and args.controls != "none":  # the main grid: its methods' controls, seed by seed
                run_controls(grid, seeds, grid_methods, args.workers, args.controls)
                results[suffix] = write_all_results(grid)
    frames = [with_probe(pd.read_csv(path), path.parent / "runs").assign(
                  method=lambda d, sfx=sfx: d["method"] + sfx,
                  run_dir=lambda d, runs=path.parent / "runs": [str(runs / r) for r in d["run"]])
              for sfx, path in results.items()]
    df = pd.concat(frames, ignore_index=True)
    if "cpu_seconds_total" in df:  # every run of every grid here shares the validation work
        df = normalise_cpu(df, ["dataset", "model"])
    shown = methods + [m + sfx for sfx in results if sfx for m in args.variant_methods.split(",")]
    cfg = load_config(overrides=base)  # a preset's model and epochs resolved as the runs resolved them
    done = df["seed"].nunique()  # --summary-only mid-sweep: the seeds with a finished run
    seeds = f"{args.seeds} seeds" if done >= args.seeds else f"{done} of {args.seeds} seeds finished"
    title = f"{args.dataset}: {cfg.model.model}, {cfg.train.epochs} epochs, {seeds}, same loss/data/budget"
    families = comparison_families(df.rename(columns=legacy_result_columns(df.columns)), KEYS, args.metric)
    print("\n" + "\n".join(summary_lines(df, shown, title, args.metric, families)))
    print("\n".join(record_paired_lines(df, shown, args.metric, families=families)))
    if args.metric == "test_macro_auroc" and "" in results:
        print("\n".join(bootstrap_lines(results[""].parent, pd.read_csv(results[""]), methods)))
    for path in results.values():
        print(f"results table: {path}")


def _slug(text: str) -> str:
    return text.replace("=", "").replace(".", "")


if __name__ == "__main__":
    main()
