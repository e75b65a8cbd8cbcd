"""Selective-Backprop: erts' loss-topk against the official code, driven by the same losses and draws.

The official code (angelajiang/SelectiveBackprop, ``lib/calculators.py``: BatchedRelativeProbabilityCalculator
over an UnboundedHistogram of 1,024 losses; ``lib/trainer.py``: Trainer.get_batch, the backprop queue) is
imported from a checkout you point at (its code is not part of erts). Both see the same per-sample losses,
pool by pool, and the same uniform draws. Printed: how many keep decisions differ (erts' Selector.loss_rule
against the official probability and the same draw), and then, with those decisions, each side's optimiser
steps per epoch and samples back-propagated per epoch: the official queue lives across epochs (a rest left
after its last full batch waits for the next epoch), erts' queue (update_batches=full) steps on it at the
epoch's end.

    python benchmarks/selective_backprop_side_by_side.py --official ~/SelectiveBackprop
"""
from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import numpy as np
import torch

from erts.config import SelectionConfig
from erts.distributed import Dist
from erts.selection import PoolScores, Selector
from erts.selection.queue import UpdateQueue
from erts.train.loop import Trainer


def pool_losses(epochs: int, pools: int, batch_size: int, seed: int) -> np.ndarray:
    """(epochs, pools, batch) float32 losses that fall over epochs at each sample's own pace."""
    rng = np.random.default_rng(seed)
    n = pools * batch_size
    difficulty = rng.lognormal(0.0, 1.0, n)
    t = np.arange(epochs)[:, None]
    losses = difficulty * np.exp(-t / (3 + 10 * rng.random(n))) * rng.uniform(0.8, 1.2, (epochs, n))
    return losses.astype(np.float32).reshape(epochs, pools, batch_size)


def keep_decisions(official_lib, losses: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """erts' keep masks, and how many decisions the official probability with the same draw would change."""
    calc = official_lib.calculators.BatchedRelativeProbabilityCalculator("cpu", 0, 1024, 1)
    selector = Selector(SelectionConfig(method="loss-topk"), epochs=losses.shape[0])
    gen = torch.Generator().manual_seed(seed)
    keeps, differ = np.zeros(losses.shape, dtype=bool), 0
    for e in range(losses.shape[0]):
        for b, pool in enumerate(losses[e]):
            loss = torch.from_numpy(pool)
            draws = torch.rand(len(pool), generator=torch.Generator().set_state(gen.get_state()))
            scores = PoolScores(p=torch.zeros(len(pool)), correct=torch.zeros(len(pool), dtype=torch.bool),
                                member=torch.zeros(len(pool), 1, dtype=torch.bool), loss=loss)
            keep, _, _ = selector.loss_rule(scores, gen)
            ems = [SimpleNamespace(example=SimpleNamespace(loss=float(v))) for v in pool]
            prob = np.array(calc.get_probability(ems))
            differ += int(((draws.numpy() < prob) != keep.numpy()).sum())
            keeps[e, b] = keep.numpy()
    return keeps, differ


def official_steps(official_lib, keeps: np.ndarray, batch_size: int) -> list[list[int]]:
    """Samples back-propagated per step, per epoch, by the official Trainer.get_batch (its queue kept across epochs)."""
    trainer = official_lib.trainer.Trainer.__new__(official_lib.trainer.Trainer)
    trainer.backprop_queue, trainer.batch_size = [], batch_size
    out = []
    for epoch in keeps:
        steps = []
        for b, pool in enumerate(epoch):
            trainer.backprop_queue += [SimpleNamespace(example=SimpleNamespace(select=bool(k))) for k in pool]
            batch = trainer.get_batch(final=b == len(epoch) - 1)
            if batch:
                steps.append(sum(em.example.select for em in batch))
        out.append(steps)
    return out


def erts_steps(keeps: np.ndarray, batch_size: int) -> list[list[int]]:
    """The same with erts' queue and the trainer's step rule (update_batches=full)."""
    trainer = SimpleNamespace(cfg=SimpleNamespace(optim=SimpleNamespace(batch_size=batch_size)), dist=Dist())
    out, next_id = [], 0
    for epoch in keeps:
        queue, steps = UpdateQueue(), []
        for b, pool in enumerate(epoch):
            k = int(pool.sum())
            ids = torch.arange(next_id, next_id + k)
            next_id += k
            queue.put(ids, ids[:, None].float())
            steps += [len(i) for i, _, _ in Trainer._full_batches(trainer, queue, rest=b == len(epoch) - 1)]
        out.append(steps)
    return out


def load_official(root: str):
    sys.path.insert(0, root)
    import lib.calculators
    import lib.trainer

    return lib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", required=True, help="a SelectiveBackprop checkout (the folder holding lib/)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--pools", type=int, default=60, help="mini-batches per epoch")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    lib = load_official(args.official)
    losses = pool_losses(args.epochs, args.pools, args.batch_size, args.seed)
    keeps, differ = keep_decisions(lib, losses, args.seed)
    print(f"{keeps.size} keep decisions ({args.epochs} epochs x {args.pools} pools x {args.batch_size}): "
          f"{differ} differ from the official probability with the same draw; kept {keeps.mean():.3f}")
    theirs, ours = official_steps(lib, keeps, args.batch_size), erts_steps(keeps, args.batch_size)
    print(f"{'epoch':>5} {'kept':>6} {'official steps':>15} {'erts steps':>11} {'official samples':>17} "
          f"{'erts samples':>13} {'official last':>14} {'erts last':>10}")
    for e, (t, o) in enumerate(zip(theirs, ours)):
        print(f"{e:5d} {int(keeps[e].sum()):6d} {len(t):15d} {len(o):11d} {sum(t):17d} {sum(o):13d} "
              f"{t[-1] if t else 0:14d} {o[-1] if o else 0:10d}")
    full_t = sum(s == args.batch_size for t in theirs for s in t)
    full_o = sum(s == args.batch_size for o in ours for s in o)
    print(f"total: official {sum(map(len, theirs))} steps ({full_t} full), {sum(map(sum, theirs))} samples; "
          f"erts {sum(map(len, ours))} steps ({full_o} full), {sum(map(sum, ours))} samples "
          f"(the official queue still holds {int(keeps.sum()) - sum(map(sum, theirs))})")


if __name__ == "__main__":
    main()
