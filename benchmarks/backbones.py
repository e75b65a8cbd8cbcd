"""2-D (published, torchvision) backbones against their 1-D versions: seconds per epoch and peak memory.

Each backbone trains in its own subprocess (so peak memory is its own) on the same
records of the built-in dataset (12 leads, 100 Hz x 10 s, the PTB-XL shape), with
erts' loop (`method=full`), for `--samples` training samples; seconds per epoch are
scaled from the measured samples per second to the full training split (3,500
records of the default 5,000). Peak memory is the process's maximum resident set
size (CPU) or `torch.cuda.max_memory_allocated` (GPU).

    python benchmarks/backbones.py                   # all six, 256 samples each
    python benchmarks/backbones.py --models resnet18_1d,resnet18 --samples 512
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PAIRS = [("resnet18_1d", "resnet18"), ("mobilenetv2_1d", "mobilenet_v2"), ("efficientnetv2s_1d", "efficientnet_v2_s")]


def measure(model: str, samples: int, batch: int, threads: int) -> dict:
    """Runs in the child: one partial epoch of erts' loop; returns seconds/sample and peak memory."""
    import tempfile
    from pathlib import Path

    import torch

    from erts.config import load_config
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    torch.set_num_threads(threads)
    cfg = load_config(overrides=[f"model={model}", f"batch_size={batch}", "quiet=true", "head=mlp"])
    rs = load_dataset(cfg.data)
    t = Trainer(cfg, rs, Path(tempfile.mkdtemp()), progress=False)
    n_train = len(t.idx["train"])
    t.idx["train"] = t.idx["train"][:batch]
    t.run_epoch(0)  # warm-up batch (allocator, oneDNN primitives, FLOP counter)
    t.idx["train"] = torch.arange(samples) % n_train
    start = time.perf_counter()
    t.run_epoch(1)
    sec = time.perf_counter() - start
    if t.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": model, "sec_per_sample": sec / samples, "epoch_s": sec / samples * n_train,
            "n_train": n_train, "peak_mb": peak, "params": sum(p.numel() for p in t.model.parameters()),
            "device": str(t.device)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(m for pair in PAIRS for m in pair))
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.samples, args.batch, args.threads)))
        return
    rows = {}
    for model in args.models.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", model, "--samples", str(args.samples),
                              "--batch", str(args.batch), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        rows[model] = json.loads(out.stdout.strip().splitlines()[-1])
        r = rows[model]
        print(f"{model:20s} {r['params'] / 1e6:6.2f} M params  {r['epoch_s']:8.1f} s/epoch ({r['n_train']} records)  "
              f"peak {r['peak_mb']:7.0f} MB  [{r['device']}]", flush=True)
    print("\n2-D / 1-D ratios (same data, same loop, batch %d):" % args.batch)
    for one_d, two_d in PAIRS:
        if one_d in rows and two_d in rows:
            a, b = rows[one_d], rows[two_d]
            print(f"{two_d:20s} vs {one_d:20s} time x{b['epoch_s'] / a['epoch_s']:.2f}  "
                  f"peak memory x{b['peak_mb'] / a['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
