"""Epoch micro-benchmark: one filtered epoch at a fixed keep rate, every variant side by side.

Variants (same data, same model weights at the start of each, same process):
  bare          a bare PyTorch loop over the same tensors (full data): the floor for `full`
  full          erts' loop, every sample
  dbpd          per-batch DBPD at a fixed keep rate: the `--keep` fraction of each batch with the lowest p
  erts-dbpd     per-batch DBPD candidates (keep/phi of each batch), focus filter (phi) on top: `--keep`
                of the samples are updated; fast-path Grad-CAM
  erts-dbpd/ep  the same, per-epoch granularity (score everything, then train on the subset)
  published     the published cost structure: scoring in training mode, then a separate
                Grad-CAM forward and *full* backward at the middle layer, then the update
  dbpd/upd, erts-dbpd/upd, erts-dbpd/ep-upd
                the same with score_source=update: p and focus of each sample come from its
                own last training forward (the score bank), no scoring pass
  infobatch, erts-infobatch
                InfoBatch at r = 0.5 (scores from the training forward; the kept fraction is
                InfoBatch's own, about 0.5-0.7), and with the focus filter on its above-mean samples

Printed per variant: median seconds over --repeats, ratio to `full`, fraction of samples
updated, and ratio to the ideal = `full`'s update seconds x fraction updated (the cost of
back-propagating only the kept samples, with no scoring at all), and the process CPU seconds
with their ratio to `full` (less sensitive than the wall clock to other work on the machine).

    python benchmarks/epoch_bench.py                       # CinC 2017 from ../shared/data
    python benchmarks/epoch_bench.py dataset=mitbih root=../shared/data/mit-bih-arrhythmia-database-1.0.0.zip
    python benchmarks/epoch_bench.py dataset=synthetic --repeats 2 bf16=true
    python benchmarks/epoch_bench.py dataset=synthetic device=cuda --variants full,erts-dbpd,infobatch --json e.json

On CUDA the clock is read after torch.cuda.synchronize(), so an epoch's queued kernels are in it.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from erts.config import SelectionConfig, load_config
from erts.data import load_dataset
from erts.explain.gradcam import focus_score
from erts.selection import Selector
from erts.selection.dropout import DataDropout
from erts.train.cost import CostMeter
from erts.train.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {
    "cinc2017": [f"root={ROOT.parent / 'shared/data/training2017.zip'}", "fs=100", "length_s=30", "crop_s=10",
                 "crop=random"],
    "mitbih": [f"root={ROOT.parent / 'shared/data/mit-bih-arrhythmia-database-1.0.0.zip'}"],
}


def sync(t: Trainer) -> None:
    """Waits for the GPU's queued kernels, so a clock read after it counts them (no-op on the CPU)."""
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)


def bare_epoch(t: Trainer) -> tuple[float, float]:
    """The floor: shuffle, index, forward, loss, backward, step. Nothing else."""
    model, opt, y = t.model, t.opt, t.data.y
    model.train()
    ids = t.idx["train"][torch.randperm(len(t.idx["train"]))]
    start, cpu = time.perf_counter(), time.process_time()
    for b in ids.split(t.cfg.optim.batch_size):
        with t.autocast():
            logits = model(t.data.x(b, train=True)).float()
        loss = F.cross_entropy(logits, y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(t)
    return time.perf_counter() - start, time.process_time() - cpu


def published_focus(t: Trainer, ids: torch.Tensor, scores, candidates: torch.Tensor, inputs) -> None:
    """Grad-CAM as the published code pays for it: a training-mode forward of the candidates
    and a full backward (parameter gradients included) to get the middle layer's gradient."""
    layer = t.model.get_layer("published")
    sel = torch.nonzero(candidates).squeeze(1)
    focus = torch.full((len(ids),), float("nan"))
    with t.cost.phase("gradcam", len(sel), forward=True, backward=True):
        for chunk in sel.split(t.cfg.optim.batch_size):
            store = {}

            def hook(_m, _i, out):
                out.retain_grad()
                store["a"] = out

            h = layer.register_forward_hook(hook)
            t.model.train()
            logits = t.model(inputs(chunk))
            h.remove()
            t.model.zero_grad(set_to_none=True)
            logits.gather(1, t.data.y[ids[chunk]][:, None]).sum().backward()
            a = store["a"]
            cam = F.relu((a.grad.mean(-1, keepdim=True) * a).sum(1)).detach()
            t.model.zero_grad(set_to_none=True)
            focus[chunk] = focus_score(cam.reshape(len(chunk), -1))
    scores.focus = focus


class FixedKeepSelector(Selector):
    """DBPD with an exact keep rate: the ``keep`` fraction of each pool with the lowest p.

    DBPD's tau would keep a drifting fraction while the model trains within the
    epoch; a benchmark of cost at a fixed keep rate needs the rate held fixed. Same
    work as DBPD (a scoring pass, a threshold on p), so the same cost structure."""

    def __init__(self, cfg, epochs: int, keep: float):
        super().__init__(cfg, epochs)
        self.keep = keep

    def pdd_candidates(self, epoch, member, scores, generator, count=None):
        n_keep = math.ceil(self.keep * len(scores.p) - 1e-9)
        keep = torch.zeros(len(scores.p), dtype=torch.bool, device=scores.p.device)
        keep[torch.argsort(scores.p, stable=True)[:n_keep]] = True
        return keep, torch.zeros_like(keep)


def run_variant(t: Trainer, base: SelectionConfig, name: str, keep: float, phi: float) -> tuple[float, float, dict]:
    """One epoch of a variant; returns (seconds, fraction updated, cost seconds per phase)."""
    if name == "bare":
        wall, cpu = bare_epoch(t)
        return wall, 1.0, {}, cpu
    method, gran, source = {
        "full": ("full", "batch", "pass"), "dbpd": ("dbpd", "batch", "pass"),
        "erts-dbpd": ("erts-dbpd", "batch", "pass"), "erts-dbpd/ep": ("erts-dbpd", "epoch", "pass"),
        "published": ("erts-dbpd", "batch", "pass"), "dbpd/upd": ("dbpd", "batch", "update"),
        "erts-dbpd/upd": ("erts-dbpd", "batch", "update"), "erts-dbpd/ep-upd": ("erts-dbpd", "epoch", "update"),
        "infobatch": ("infobatch", "batch", "update"), "erts-infobatch": ("erts-infobatch", "batch", "update"),
    }[name]
    sel_cfg = dataclasses.replace(base, method=method, granularity=gran, phi=phi, warmup_epochs=0, score_source=source,
                                  gradcam_start=0, revision_epoch=10**6, class_rescue="off",
                                  score_mode="train" if name == "published" else "eval",
                                  # published: its own Grad-CAM (published_focus), not the fast path
                                  gradcam_layer="published" if name == "published" else base.gradcam_layer)
    t.cfg.selection = t.dd.cfg = sel_cfg
    t.dd.set_model(t.model)  # the variant's Grad-CAM layer
    fixed = method not in ("full", "infobatch", "erts-infobatch")
    t.dd.selector = FixedKeepSelector(sel_cfg, 10, keep) if fixed else Selector(sel_cfg, t.cfg.train.epochs)
    flops = dict(t.cost.flops_per_sample)
    t.cost = t.dd.cost = CostMeter(t.device)
    t.cost.flops_per_sample = flops  # measured in the warm-up run, so timings exclude the FLOP counter
    if name == "published":
        t.dd.focus = lambda ids, y, scores, cand, inputs, k: published_focus(t, ids, scores, cand, inputs)
    else:
        t.dd.focus = DataDropout.focus.__get__(t.dd)
    sync(t)
    start, cpu = time.perf_counter(), time.process_time()
    stats = t.run_epoch(epoch=1)
    sync(t)
    seconds = time.perf_counter() - start
    return seconds, stats["n_updated"] / stats["n_train"], dict(t.cost.seconds), time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="erts config key=value (dataset=, model=, bf16=, batch_size=, ...)")
    ap.add_argument("--keep", type=float, default=0.3, help="fraction of samples updated by dbpd / erts-dbpd")
    ap.add_argument("--phi", type=float, default=0.7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=2000, help="subsample the training split (0: all)")
    ap.add_argument("--json", help="also write the medians per variant here (seconds, x full, updated, cpu s)")
    ap.add_argument("--variants", default="bare,full,dbpd,erts-dbpd,erts-dbpd/ep,published,dbpd/upd,erts-dbpd/upd,"
                                          "erts-dbpd/ep-upd,infobatch,erts-infobatch")
    args = ap.parse_args()
    given = {o.split("=", 1)[0] for o in args.overrides}
    dataset = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("dataset=")), "cinc2017")
    base = [o for o in DEFAULTS.get(dataset, []) if o.split("=", 1)[0] not in given]
    cfg = load_config(overrides=[f"dataset={dataset}", "quiet=true", *base, *args.overrides])
    rs = load_dataset(cfg.data)
    run_dir = Path(tempfile.mkdtemp(prefix="erts-bench-"))
    t = Trainer(cfg, rs, run_dir, progress=False)
    if args.max_train and len(t.idx["train"]) > args.max_train:
        t.idx["train"] = t.idx["train"][torch.randperm(len(t.idx["train"]), generator=torch.Generator().manual_seed(0))[:args.max_train]]
    n = len(t.idx["train"])
    print(f"dataset {rs.name}: {n} training samples of {rs.num_leads} x {rs.length}, model {cfg.model.model}, "
          f"batch {cfg.optim.batch_size}, score batch {t.score_bs}, bf16 {cfg.train.bf16}, threads {torch.get_num_threads()}, device {t.device}")
    # ERTS gets keep/phi candidates so that it updates the same fraction as DBPD
    keep_erts = min(1.0, args.keep / args.phi)
    state = copy.deepcopy(t.model.state_dict()), copy.deepcopy(t.opt.state_dict())
    base_selection = t.cfg.selection  # every variant starts from the user's settings
    variants = args.variants.split(",")
    results: dict[str, list] = {v: [] for v in variants}
    for rep in range(args.repeats + 1):  # round 0 is a warm-up (FLOP counting, allocator, caches)
        for v in variants:
            t.model.load_state_dict(state[0])
            t.opt.load_state_dict(state[1])
            torch.manual_seed(rep)
            out = run_variant(t, base_selection, v, keep_erts if "erts" in v or v == "published" else args.keep, args.phi)
            if rep:
                results[v].append(out)
    full = statistics.median(r[0] for r in results["full"]) if "full" in results else float("nan")
    full_cpu = statistics.median(r[3] for r in results["full"]) if "full" in results else float("nan")
    full_update = statistics.median(r[2]["update"] for r in results["full"]) if "full" in results else float("nan")
    table: dict[str, dict] = {}
    print(f"\n{'variant':14s} {'seconds':>8s} {'x full':>7s} {'updated':>8s} {'x ideal':>8s} "
          f"{'scoring':>8s} {'gradcam':>8s} {'update':>8s} {'gradcam %':>9s} {'cpu s':>8s} {'x full':>7s}")
    for v, rows in results.items():
        sec = statistics.median(r[0] for r in rows)
        kept = statistics.median(r[1] for r in rows)
        ph = {k: statistics.median(r[2].get(k, 0.0) for r in rows) for k in ("scoring", "gradcam", "update")}
        ideal = full_update * kept
        cpu = statistics.median(r[3] for r in rows)
        table[v] = {"seconds": sec, "x_full": sec / full, "updated": kept, "cpu_seconds": cpu,
                    "cpu_x_full": cpu / full_cpu, **{f"{k}_seconds": x for k, x in ph.items()}}
        print(f"{v:14s} {sec:8.2f} {sec / full:7.3f} {kept:8.3f} {sec / ideal:8.3f} "
              f"{ph['scoring']:8.2f} {ph['gradcam']:8.3f} {ph['update']:8.2f} {100 * ph['gradcam'] / sec:8.2f}% "
              f"{cpu:8.2f} {cpu / full_cpu:7.3f}")
    if "bare" in results and "full" in results:
        bare = statistics.median(r[0] for r in results["bare"])
        print(f"\nfull-data epoch vs bare PyTorch loop: {full / bare:.3f}x")
    for v in ("erts-dbpd", "erts-dbpd/upd", "erts-infobatch"):
        if v in results:
            print(f"Grad-CAM share of the {v} epoch: "
                  f"{100 * statistics.median(r[2]['gradcam'] / r[0] for r in results[v]):.2f}%")
    if args.json:
        info = {"dataset": rs.name, "n_train": n, "model": cfg.model.model, "batch_size": cfg.optim.batch_size,
                "bf16": cfg.train.bf16, "device": str(t.device), "repeats": args.repeats, "keep": args.keep,
                "device_name": torch.cuda.get_device_name(t.device) if t.device.type == "cuda" else "cpu"}
        Path(args.json).write_text(json.dumps({**info, "variants": table}, indent=1))


if __name__ == "__main__":
    main()
