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
Resumable: a finished run is read, a started one resumed.
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
from erts.audit.signals import SIGNALS  # noqa: E402
from erts.config import load_config  # noqa: E402
from erts.eval.paired import load_predictions, paired_bootstrap  # noqa: E402
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
    signal = next((s for s in SIGNALS if s.column == column), None)
    if signal is None:
        raise SystemExit(f"--rank-by {column}: not a signal column of audit.csv "
                         f"({', '.join(sorted({s.column for s in SIGNALS}))})")
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


def summary(runs: dict[str, Path], audit: pd.DataFrame, audit_info: dict, truth: str, k: int, n_boot: int) -> str:
    wrong = dict(zip(audit["record_id"].astype(str), audit["wrong"].astype(bool)))
    n_wrong = int(sum(wrong.values()))
    lines = [f"K = {k} records left out of {len(audit)} training records ({n_wrong} with a wrong label, {truth}); "
             f"audit: {audit_info.get('folds', '?')} folds x {audit_info.get('epochs', '?')} epochs, "
             f"{sum(audit_info.get('fold_cpu_seconds', [0])):.0f} CPU s", "",
             "| run | left out | of them wrong | test macro-F1 | CPU s (training) | optimiser steps |", "|---|---|---|---|---|---|"]
    rows = {name: run_row(run, ["method"]) for name, run in runs.items()}
    for name, run in runs.items():
        left = pd.read_csv(run / "excluded_records.csv", dtype={"record_id": str}).record_id \
            if (run / "excluded_records.csv").exists() else pd.Series([], dtype=str)
        bad = int(sum(wrong.get(r, False) for r in left))
        share = f"{bad} ({bad / len(left):.1%})" if len(left) else ""
        r = rows[name]
        lines.append(f"| {name} | {len(left)} | {share} | {r['test_macro_f1']:.3f} | {r.get('cpu_seconds_train', float('nan')):.0f} "
                     f"| {r.get('optimizer_steps') or ''} |")
    lines += ["", "Record-paired test macro-F1 differences (one seed: the test records' sampling only):", ""]
    preds = {name: load_predictions(run) for name, run in runs.items()}
    pruned = [name for name in runs if name.startswith("pruned")]
    for a, b in [(p, "full") for p in pruned] + [(p, "random") for p in pruned] + [("random", "full")]:
        y, pa, _ = preds[a]
        yb, pb, _ = preds[b]
        if not np.array_equal(y, yb):
            raise SystemExit(f"{a} and {b} were tested on different records")
        d = paired_bootstrap(y, [pa], [pb], metric="macro_f1", n_boot=n_boot)
        lines.append(f"- {a} - {b}: {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], p {d['p']:.3f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="extra erts config key=value for every run (e.g. bf16=true)")
    ap.add_argument("--audit", required=True, help="an `erts audit` folder (audit.csv, audit.json)")
    ap.add_argument("--setting", required=True, choices=sorted(SETTINGS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top", type=int, default=None, help="K (default: the records cleanlab flags)")
    ap.add_argument("--rank-by", default="", help="also prune the top K by these audit.csv signal columns (e.g. p_oof)")
    ap.add_argument("--baseline", default=None, help="the setting's `full` run of this seed, if it exists")
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
    base = {**setting_base("cinc2017", args.setting, ["N", "O"], overrides), "method": "full", "seed": args.seed}
    runs = {"full": Path(args.baseline) if args.baseline else train_or_read(base, out, f"full-s{args.seed}")}
    runs["pruned"] = train_or_read({**base, "exclude_records": str(audit_dir / "audit.csv"), "exclude_top": k},
                                   out, f"pruned{k}-s{args.seed}")
    for column in filter(None, args.rank_by.split(",")):
        ranked = signal_list(audit, column, k, out / f"pruned{k}-{column}-s{args.seed}.csv")
        runs[f"pruned-{column}"] = train_or_read({**base, "exclude_records": str(ranked)}, out,
                                                 f"pruned{k}-{column}-s{args.seed}")
    rand = random_list(audit, k, args.seed, out / f"random{k}-s{args.seed}.csv")
    runs["random"] = train_or_read({**base, "exclude_records": str(rand)}, out, f"random{k}-s{args.seed}")
    truth = SETTINGS[args.setting][1]
    text = f"# {args.setting}, seed {args.seed}: train again without the audit's top {k}\n\n" + \
        summary(runs, audit, audit_info, truth, k, args.n_boot)
    print(text)
    (out / f"summary-s{args.seed}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
