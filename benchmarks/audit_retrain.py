"""Audit, then train again without the top suspects: does pruning what `erts audit` ranks first pay?

For one label setting of benchmarks/noise_filter.py (CinC 2017 with injected or real label noise) and
one seed, three `full` runs under the noise benchmark's settings (30 epochs, resnet18_1d; the
validation and test labels clean) differ only in the training records they leave out:

- `full`: none (or --baseline, the noise sweep's own `full` run of the setting and seed);
- `pruned`: the audit's K most suspicious (``exclude_records=<audit.csv> exclude_top=K``, the
  combined rank); with ``--rank-by p_oof`` also `pruned-p_oof`: the K most suspicious by that one
  signal column of audit.csv (its orientation from erts.audit.signals; the docs' advice for label
  flips between classes, written before these runs: the out-of-fold self-confidence);
- `random`: K training records drawn at random (the control: the same number left out, so the same
  compute, without the audit's choice).

K is fixed before any run: the number of records cleanlab's `find_label_issues` flags on the audit's
out-of-fold probabilities (its estimate of how many labels are wrong, `cleanlab_issue`), or --top.
The summary gives the share of the pruned (and of the random) records whose label is wrong, each
run's test macro-F1, the record-paired differences (erts.eval.paired: one seed, so the test records'
sampling only), and the cost: the audit's CPU seconds beside each run's.

    python benchmarks/audit_retrain.py --audit ~/erts-sweeps/audit-sym20/<audit folder> --setting sym20 \\
        --out ~/erts-sweeps/retrain --baseline ~/erts-sweeps/noise-cinc2017-bf16-sym20/runs/seed=0,method=full \\
        bf16=true
Resumable: a finished run is read, a started one resumed. Seeds 1-2 (evidence_chain.sh step 6) reuse the
seed-0 audit: the injected noise is the same in every seed (label_noise_seed). Then, training nothing:

    python benchmarks/audit_retrain.py --audit <the same> --setting sym20 --summary-seeds 0,1,2 --rank-by p_oof \
        --baseline '~/erts-sweeps/noise-cinc2017-bf16-sym20/runs/seed={seed},method=full' --out ~/erts-sweeps

puts each arm's seeds in one row (mean [t-interval] and each seed's F1) and pairs the differences over
the seeds and the test records (two-level bootstrap), in summary-s0-1-2.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the noise benchmark's settings, beside this file

from noise_filter import SETTINGS, setting_base  # noqa: E402
from end_to_end import parse_value  # noqa: E402
from erts.audit.signals import ranking_signal  # noqa: E402
from erts.config import load_config  # noqa: E402
from erts.errors import ConfigError  # noqa: E402
from erts.eval.paired import load_predictions, paired_bootstrap  # noqa: E402
from erts.eval.stats import summarize  # noqa: E402
from erts.train.loop import is_finished, resume, train  # noqa: E402
from erts.train.sweep import run_row  # noqa: E402


def suspects_count(audit: pd.DataFrame, top: int | None) -> int:
    """K: --top, else the number of records cleanlab flags (fixed before any run is trained)."""
    k = top if top is not None else int(np.nansum(audit["cleanlab_issue"]))
    if not 0 < k < len(audit):
        raise SystemExit(f"K={k}: expected between 1 and {len(audit) - 1} of the {len(audit)} audited records")
    return k


def random_list(audit: pd.DataFrame, k: int, seed: int, path: Path) -> Path:
    """K audited (training) records drawn at random, seeded by the run seed, written as a record_id CSV."""
    rng = np.random.default_rng([seed, 2024])
    return write_list(rng.choice(audit["record_id"].to_numpy(dtype=str), size=k, replace=False), path)


def signal_list(audit: pd.DataFrame, column: str, k: int, path: Path) -> Path:
    """The K most suspicious records by one signal column of audit.csv, written as a record_id CSV."""
    try:
        signal = ranking_signal(column)  # the order `erts audit --rank-by` gives
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    order = np.argsort(-signal.score(audit), kind="stable")[:k]
    return write_list(audit["record_id"].to_numpy(dtype=str)[order], path)


def write_list(ids: np.ndarray, path: Path) -> Path:
    """``ids`` as a record_id CSV, the form exclude_records= reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"record_id": ids}).to_csv(path, index=False)
    return path


def train_or_read(overrides: dict, out: Path, name: str) -> Path:
    """The run ``out/name``: trained, resumed, or read when it has finished."""
    run = out / name
    if (run / "config.yaml").exists():  # erts' resume: a finished run is read, a started one continued
        print(f"{name}: {'finished, read' if is_finished(run) else 'resuming'}")
        resume(run)
    else:
        print(f"{name}: training")
        train(load_config(overrides={**overrides, "out_dir": str(out), "name": name}))
    return run


def summary(arms: dict[str, list[Path]], audit: pd.DataFrame, audit_info: dict, truth: str, k: int,
            n_boot: int) -> str:
    """The table and the record-paired differences; ``arms``: name -> its runs, one per seed, in one order."""
    wrong = dict(zip(audit["record_id"].astype(str), audit["wrong"].astype(bool)))
    n_wrong, n_seeds = int(sum(wrong.values())), len(next(iter(arms.values())))
    lines = [f"K = {k} records left out of {len(audit)} training records ({n_wrong} with a wrong label, {truth}); "
             f"audit: {audit_info.get('folds', '?')} folds x {audit_info.get('epochs', '?')} epochs, "
             f"{sum(audit_info.get('fold_cpu_seconds', [0])):.0f} CPU s", "",
             "| run | left out | of them wrong | test macro-F1 | CPU s (training) | optimiser steps |",
             "|---|---|---|---|---|---|"]
    if n_seeds > 1:
        lines[-2:] = [f"{n_seeds} seeds: left out and wrong are means over the seeds, the test macro-F1 their mean "
                      "[95 % t-interval] and each seed's, CPU s and steps medians.", "", *lines[-2:]]
    for name, runs in arms.items():
        rows = [run_row(run, ["method"]) for run in runs]
        left = [excluded(run) for run in runs]
        bad = [sum(wrong.get(r, False) for r in ids) for ids in left]
        n_left = np.mean([len(ids) for ids in left])
        share = f"{np.mean(bad):.0f} ({np.sum(bad) / max(1, sum(map(len, left))):.1%})" if n_left else ""
        f1 = [r["test_macro_f1"] for r in rows]
        steps = [r.get("optimizer_steps") for r in rows]
        lines.append(f"| {name} | {n_left:.0f} | {share} | {f1_text(f1)} "
                     f"| {np.median([r.get('cpu_seconds_train', np.nan) for r in rows]):.0f} "
                     f"| {int(np.median(steps)) if all(steps) else ''} |")
    scope = "one seed: the test records' sampling only" if n_seeds == 1 else \
        f"{n_seeds} seeds: two-level bootstrap over the seeds and the test records"
    lines += ["", f"Record-paired test macro-F1 differences ({scope}):", ""]
    preds = {name: [load_predictions(run) for run in runs] for name, runs in arms.items()}
    pruned = [name for name in arms if name.startswith("pruned")]
    for a, b in [(p, "full") for p in pruned] + [(p, "random") for p in pruned] + [("random", "full")]:
        y = preds[a][0][0]
        if not all(np.array_equal(y, pr[0]) for pr in preds[a] + preds[b]):
            raise SystemExit(f"{a} and {b} were tested on different records")
        d = paired_bootstrap(y, [pr[1] for pr in preds[a]], [pr[1] for pr in preds[b]], metric="macro_f1",
                             n_boot=n_boot)
        lines.append(f"- {a} - {b}: {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], p {d['p']:.3f}")
    return "\n".join(lines)


def excluded(run: Path) -> list[str]:
    """The records the run left out (its excluded_records.csv; none without one)."""
    path = run / "excluded_records.csv"
    return pd.read_csv(path, dtype={"record_id": str}).record_id.tolist() if path.exists() else []


def f1_text(values: list[float]) -> str:
    """'0.677' for one seed; 'mean [t-interval] (each seed's)' for several."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    s = summarize(np.asarray(values, dtype=float))
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}] ({', '.join(f'{v:.3f}' for v in values)})"


def arm_runs(args, audit: pd.DataFrame, audit_dir: Path, k: int, seed: int, out: Path, overrides: dict,
             read_only: bool) -> dict[str, Path]:
    """One seed's runs of every arm: trained or resumed, or (``read_only``) found finished."""
    def run(name: str, extra: dict) -> Path:
        if read_only:
            if not is_finished(out / name):
                raise SystemExit(f"{out / name}: not finished (train it first: --seed {seed})")
            return out / name
        return train_or_read({**base, **extra}, out, name)

    base = {**setting_base("cinc2017", args.setting, ["N", "O"], overrides), "method": "full", "seed": seed}
    baseline = Path(args.baseline.format(seed=seed)) if args.baseline else None
    if baseline is not None and not is_finished(baseline):
        raise SystemExit(f"--baseline {baseline}: not a finished run")
    runs = {"full": baseline or run(f"full-s{seed}", {})}
    runs["pruned"] = run(f"pruned{k}-s{seed}", {"exclude_records": str(audit_dir / "audit.csv"), "exclude_top": k})
    for column in filter(None, args.rank_by.split(",")):
        ranked = signal_list(audit, column, k, out / f"pruned{k}-{column}-s{seed}.csv")
        runs[f"pruned-{column}"] = run(f"pruned{k}-{column}-s{seed}", {"exclude_records": str(ranked)})
    rand = random_list(audit, k, seed, out / f"random{k}-s{seed}.csv")
    runs["random"] = run(f"random{k}-s{seed}", {"exclude_records": str(rand)})
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="extra erts config key=value for every run (e.g. bf16=true)")
    ap.add_argument("--audit", required=True, help="an `erts audit` folder (audit.csv, audit.json)")
    ap.add_argument("--setting", required=True, choices=sorted(SETTINGS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--summary-seeds", default="",
                    help="train nothing: summarise these seeds' finished runs together (e.g. 0,1,2)")
    ap.add_argument("--top", type=int, default=None, help="K (default: the records cleanlab flags)")
    ap.add_argument("--rank-by", default="", help="also prune the top K by these audit.csv signal columns (e.g. p_oof)")
    ap.add_argument("--baseline", default=None,
                    help="the setting's `full` run of this seed, if it exists ({seed} is replaced by the seed)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    audit_dir, out = Path(args.audit), Path(args.out) / f"retrain-cinc2017-{args.setting}"
    audit = pd.read_csv(audit_dir / "audit.csv", dtype={"record_id": str})
    if "wrong" not in audit.columns:
        raise SystemExit(f"{audit_dir}/audit.csv has no ground truth (wrong): audit a run with label noise")
    audit_info = json.loads((audit_dir / "audit.json").read_text())
    k = suspects_count(audit, args.top)
    overrides = {k_: parse_value(v) for k_, v in (o.split("=", 1) for o in args.overrides)}
    seeds = [int(x) for x in args.summary_seeds.split(",")] if args.summary_seeds else [args.seed]
    arms: dict[str, list[Path]] = {}
    for seed in seeds:
        for name, run in arm_runs(args, audit, audit_dir, k, seed, out, overrides, bool(args.summary_seeds)).items():
            arms.setdefault(name, []).append(run)
    tag = "-".join(map(str, seeds))
    text = (f"# {args.setting}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: "
            f"train again without the audit's top {k}\n\n" + summary(arms, audit, audit_info, SETTINGS[args.setting][1],
                                                                   k, args.n_boot))
    print(text)
    (out / f"summary-s{tag}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
