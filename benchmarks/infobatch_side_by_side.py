"""InfoBatch: erts against the official code, driven by the same loss sequences.

The official sampler (NUS-HPC-AI-Lab/InfoBatch, ``infobatch/infobatch.py``) is imported from a
checkout you point at (its code is not part of erts). Both samplers see the same synthetic
per-sample losses (each sample's loss falls at its own pace); each trains its own kept samples,
whose scores are overwritten with their loss of that epoch, exactly as in training. Printed per
run: the samples each epoch trains, the epochs that train on everything, the total samples
trained (the optimizer steps, at a fixed batch) as a ratio, the weighted loss share
sum(w l) / sum(l) of a pruned epoch, and how many samples the official code still weighs
1 / keep_ratio in its full-data epochs (a bias erts does not have, docs/selection.md).

    python benchmarks/infobatch_side_by_side.py --official ~/InfoBatch/infobatch/infobatch.py
"""
from __future__ import annotations

import argparse
import importlib.util

import numpy as np
import torch
from torch import nn

from erts import DataDropout


def loss_sequences(n: int, epochs: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    difficulty = rng.lognormal(0.0, 1.0, n)
    t = np.arange(epochs)[:, None]
    return difficulty * np.exp(-t / (3 + 10 * rng.random(n))) * rng.uniform(0.8, 1.2, (epochs, n))


def official(path: str, losses: np.ndarray, r: float, delta: float) -> list[tuple[np.ndarray, np.ndarray]]:
    spec = importlib.util.spec_from_file_location("infobatch_official", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    epochs, n = losses.shape
    ds = mod.InfoBatch(torch.utils.data.TensorDataset(torch.zeros(n)), epochs, r, delta)
    sampler = ds.sampler  # what a DataLoader iterates, once per epoch
    out = []
    for e in range(epochs):
        it, idx = sampler.__iter__(), []
        while True:
            try:
                idx.append(it.__next__())
            except StopIteration:
                break
        idx = np.array(idx)
        out.append((idx, ds.weights[idx].numpy().copy()))
        ds.set_active_indices(torch.tensor(idx))
        ds.update(torch.tensor(losses[e][idx], dtype=torch.float32))
    return out


def ours(losses: np.ndarray, r: float, delta: float) -> list[tuple[np.ndarray, np.ndarray]]:
    epochs, n = losses.shape
    dataset = torch.utils.data.TensorDataset(torch.zeros(n, 1, 4), torch.zeros(n, dtype=torch.long))
    dd = DataDropout(nn.Linear(1, 1), "infobatch", num_samples=n, epochs=epochs, infobatch_r=r, infobatch_delta=delta)
    out = []
    for e in range(epochs):
        kept = dd.epoch_indices(e, dataset, num_classes=2)
        out.append((kept.numpy(), dd.weights[kept].numpy().copy()))
        dd.bank.write(kept, e, p=torch.zeros(len(kept)), correct=torch.zeros(len(kept), dtype=torch.bool),
                      loss=torch.tensor(losses[e][kept.numpy()], dtype=torch.float32), el2n=torch.zeros(len(kept)))
        dd.epoch_end(e)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, help="path of the official infobatch/infobatch.py")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--epochs", default="30,7,40")
    ap.add_argument("--r", type=float, default=0.5)
    ap.add_argument("--delta", type=float, default=0.875)
    args = ap.parse_args()
    for epochs in map(int, args.epochs.split(",")):
        losses = loss_sequences(args.samples, epochs)
        theirs, mine = official(args.official, losses, args.r, args.delta), ours(losses, args.r, args.delta)
        n = args.samples
        print(f"\n{epochs} epochs, {n} samples, r={args.r}, delta={args.delta}")
        print("  official trains per epoch:", [len(k) for k, _ in theirs])
        print("  erts     trains per epoch:", [len(k) for k, _ in mine])
        full_t = [e for e, (k, _) in enumerate(theirs) if len(k) == n]
        full_o = [e for e, (k, _) in enumerate(mine) if len(k) == n]
        print(f"  full-data epochs: official {full_t}, erts {full_o}")
        total = sum(len(k) for k, _ in mine) / sum(len(k) for k, _ in theirs)
        worst = max(abs(len(a) - len(b)) / n for (a, _), (b, _) in zip(mine, theirs))
        print(f"  samples trained, erts / official: {total:.4f}; largest per-epoch difference {worst:.2%} of n")
        e = 5 if epochs > 6 else 1
        share = [float((w * losses[e - 1][k]).sum() / losses[e - 1].sum()) for k, w in (theirs[e], mine[e])]
        print(f"  epoch {e}: sum(w l) / sum(l), official {share[0]:.4f}, erts {share[1]:.4f}")
        print("  official samples still weighted in its full-data epochs:",
              [int((w > 1).sum()) for k, w in theirs if len(k) == n])


if __name__ == "__main__":
    main()
