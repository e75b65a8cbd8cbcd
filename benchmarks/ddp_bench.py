"""Distributed scaling: one full epoch and one ERTS-DBPD epoch with 1 process and with N processes
(torchrun, gloo on CPU / NCCL on CUDA), side by side in one run; then the communication volume
per epoch on paper.

Each configuration is one `erts train` of 2 epochs: epoch 0 trains on everything (warm-up), epoch 1
is an ERTS-DBPD epoch (per-epoch pool: every rank scores its share, the scores are all-gathered,
the rule runs on the whole pool, the kept set is sharded again). Seconds per epoch come from the
runs' own log.csv (rank 0's wall clock); the all-gather is inside `scoring` and `other`.

On CPU the processes share the machine's cores, so the fair comparison is at equal cores: one
process with all threads against N processes with cores/N threads each (plus one process with
cores/N threads, the per-process speed). On GPUs, each process has its own card.

    python benchmarks/ddp_bench.py                        # CinC 2017 (../shared/data), 1 vs 2 processes
    python benchmarks/ddp_bench.py --procs 4 device=cuda  # 1 vs 4 GPUs
    python benchmarks/ddp_bench.py --paper-only           # the communication table alone
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CINC = [f"root={ROOT.parent / 'shared/data/training2017.zip'}", "dataset=cinc2017", "fs=100", "length_s=30",
        "crop_s=10", "crop=random"]
COMMON = ["model=resnet18_1d", "method=erts-dbpd", "granularity=epoch", "epochs=2", "warmup_epochs=1",
          "gradcam_start=1", "revision_epoch=2", "batch_size=64", "tau=0.3", "phi=0.7", "quiet=true"]


def train(out: Path, name: str, procs: int, threads: int, extra: list[str]) -> pd.DataFrame:
    args = [*CINC, *COMMON, *extra, f"out_dir={out}", f"name={name}", f"num_threads={threads}"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] \
        if procs > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([*launcher, "-m", "erts", "train", *args], check=True, env=env, stdout=subprocess.DEVNULL)
    return pd.read_csv(out / name / "log.csv")


def paper_table(params: int, world_sizes=(8, 16), n_train: int = 17_418, batch: int = 64) -> str:
    """Bytes a rank sends per epoch: the per-epoch selection's all-gather (6 float32 per sample of
    the pool: p, correct, loss, EL2N, focus, plus the bank's sync) against DDP's ring all-reduce of
    the gradients (2 (W-1)/W x parameters x 4 bytes per step)."""
    lines = [f"communication per epoch, per rank (N = {n_train:,} training samples, PTB-XL's folds 1-8; "
             f"{params / 1e6:.2f} M parameters; batch {batch} per rank)",
             f"{'world':>16} {'steps':>6} {'gradients (all-reduce)':>24} {'selection (all-gather)':>24} {'share':>8}"]
    for w in world_sizes:
        steps = -(-n_train // (batch * w))
        grads = steps * 2 * (w - 1) / w * params * 4
        gather = 6 * 4 * n_train * (w - 1) / w  # every rank receives the others' shares
        label = f"{w} GPUs" if w <= 8 else f"{w // 8} nodes x 8 GPUs"
        lines.append(f"{label:>16} {steps:>6} {grads / 1e9:>20.2f} GB {gather / 1e6:>21.2f} MB "
                     f"{gather / grads:>7.4%}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=2, help="processes of the distributed runs (default 2)")
    ap.add_argument("--paper-only", action="store_true", help="print the communication table and stop")
    ap.add_argument("overrides", nargs="*", help="extra `erts train` settings (e.g. device=cuda)")
    args = ap.parse_args()
    from erts.models import create_model

    params = sum(p.numel() for p in create_model("resnet18_1d", in_channels=12, num_classes=5).parameters())
    if not args.paper_only:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        gpu = any(o.startswith("device=cuda") for o in args.overrides)
        per_proc = cores if gpu else max(cores // args.procs, 1)
        configs = [("1 process", 1, cores), (f"1 process, {per_proc} thread(s)", 1, per_proc),
                   (f"{args.procs} processes", args.procs, per_proc)]
        if gpu or per_proc == cores:
            configs = [configs[0], configs[2]]
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, (label, procs, threads) in enumerate(configs):
                log = train(Path(tmp), f"run{i}", procs, threads, args.overrides)
                full, erts = log.iloc[0], log.iloc[1]
                rows.append({"config": label, "threads": threads, "full epoch s": full["seconds_epoch"],
                             "erts epoch s": erts["seconds_epoch"], "erts scoring s": erts["seconds_scoring"],
                             "erts kept": int(erts["n_updated"]), "n_train": int(erts["n_train"])})
        df = pd.DataFrame(rows)
        base = df.iloc[0]
        df["full x 1p"] = df["full epoch s"] / base["full epoch s"]
        df["erts x 1p"] = df["erts epoch s"] / base["erts epoch s"]
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print()
    print(paper_table(params))


if __name__ == "__main__":
    main()
