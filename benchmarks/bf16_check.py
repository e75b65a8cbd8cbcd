"""Is bf16 autocast safe for this setting? Train a finished fp32 run's exact config again in bf16 and compare.

Why: on a CPU with avx512_bf16 (and on GPUs) bf16 autocast runs an epoch about 2x faster, but what it
does to accuracy depends on the model and data. The rule this project follows (issue 22): rely on
bf16 for a setting only if the same config and seed trained in bf16 scores inside the fp32 run's
bootstrap 95 % interval over test records. This script does that check for one run:

1. reads ``RUN/config.yaml`` (the fp32 run, finished: ``metrics.json``, ``predictions_test.npz``);
2. trains the same config with ``bf16=true`` into ``--out`` (name ``<run>-bf16``; resumes if killed);
3. prints both runs' test macro-F1 and macro-AUROC, the fp32 run's record-bootstrap interval of each
   (``erts.eval.bootstrap``: ``bootstrap_run``, ``bootstrap_macro_auroc``), whether the bf16 value lies
   inside, and the training CPU and wall seconds of both (CPU time: other work on the machine skews
   it far less; the fp32 run's were measured whenever it ran, so the time ratio is only as fair as
   the two runs' conditions were alike).

Exit status 0 when every compared metric of the bf16 run lies inside the fp32 interval, 1 when not.

    python benchmarks/bf16_check.py ~/erts-sweeps/e2e-cinc2017-controls/runs/seed=0,method=full --out ~/erts-sweeps/bf16
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from erts.config import load_config
from erts.eval.bootstrap import bootstrap_macro_auroc, bootstrap_run
from erts.train.loop import train
from erts.train.sweep import run_state

METRICS = ("macro_f1", "macro_auroc")


def intervals(run_dir: Path, n_boot: int) -> dict[str, tuple[float, float, float]]:
    """metric -> (point, low, high) of the run's test predictions, record bootstrap 95 %."""
    pred = run_dir / "predictions_test.npz"
    f1 = bootstrap_run(str(pred), n_boot=n_boot, seed=0)
    with np.load(pred, allow_pickle=False) as z:
        auc = bootstrap_macro_auroc(z["y_true"], z["probs"], n_boot=n_boot, seed=0)
    return {"macro_f1": (f1["macro_f1"], f1["ci_low"], f1["ci_high"]),
            "macro_auroc": (auc["macro_auroc"], auc["ci_low"], auc["ci_high"])}


def settings(run_dir: Path) -> dict:
    """A run's resolved settings, less the precision and where the run was written."""
    cfg = dataclasses.asdict(load_config(str(run_dir / "config.yaml")))
    cfg["train"] = {k: v for k, v in cfg["train"].items() if k not in ("bf16", "name", "out_dir", "quiet")}
    return cfg


def train_bf16(fp32_run: Path, out: Path) -> Path:
    """The fp32 run's config with bf16=true, trained into ``out`` (resumed when it was started; a run
    already there must be of the same settings, else this stops rather than compare two configs)."""
    name = f"{fp32_run.name}-bf16"
    run_dir = out / name
    state = run_state(run_dir)
    if state != "new" and settings(run_dir) != settings(fp32_run):
        raise SystemExit(f"{run_dir} holds a bf16 run of other settings than {fp32_run}; give another --out")
    if state == "done":
        return run_dir
    if state == "resume":
        from erts.train.loop import resume

        resume(str(run_dir))
        return run_dir
    cfg = load_config(str(fp32_run / "config.yaml"), overrides={"bf16": True, "out_dir": str(out), "name": name})
    train(cfg)
    return run_dir


def cost(run_dir: Path) -> tuple[float, float]:
    """(CPU s, wall s) of training: every training phase (scoring, Grad-CAM, update, ...), no evaluation."""
    c = json.loads((run_dir / "metrics.json").read_text())["cost"]
    return float(c["cpu_seconds"].get("train", np.nan)), float(c["seconds"].get("train", np.nan))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished fp32 run folder")
    ap.add_argument("--out", type=Path, required=True, help="where the bf16 run goes")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    if run_state(args.run) != "done" or not (args.run / "predictions_test.npz").exists():
        raise SystemExit(f"{args.run}: not a finished run (metrics.json and predictions_test.npz needed)")
    if load_config(str(args.run / "config.yaml")).train.bf16:
        raise SystemExit(f"{args.run}: this run already trained in bf16; give the fp32 one")
    bf16_run = train_bf16(args.run, args.out)
    ref, new = intervals(args.run, args.n_boot), intervals(bf16_run, args.n_boot)
    ok = True
    print(f"fp32: {args.run}\nbf16: {bf16_run}")
    for m in METRICS:
        point, lo, hi = ref[m]
        inside = lo <= new[m][0] <= hi
        ok &= inside
        print(f"test {m:12s} fp32 {point:.4f} [{lo:.4f}, {hi:.4f}]  bf16 {new[m][0]:.4f}  "
              f"{'inside' if inside else 'OUTSIDE'} the fp32 interval")
    (c32, w32), (c16, w16) = cost(args.run), cost(bf16_run)
    print(f"training CPU s  fp32 {c32:.0f}  bf16 {c16:.0f}  ratio {c16 / c32:.3f}")
    print(f"training wall s fp32 {w32:.0f}  bf16 {w16:.0f}  ratio {w16 / w32:.3f}")
    print("verdict: " + ("bf16 is within the fp32 run's interval on every metric" if ok
                         else "bf16 changes the result beyond the fp32 run's interval: keep fp32 for this setting"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
