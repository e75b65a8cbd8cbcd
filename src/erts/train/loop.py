"""The one training loop. Every method (full, PDD rules, ERTS) runs through it.

Per epoch: the Selector says whether the epoch needs a scoring pass and Grad-CAM;
the pool (a mini-batch, or the whole epoch) is scored in eval/inference mode,
the rule and the focus filter give keep-masks, and only kept samples are
back-propagated. Everything is counted by the CostMeter and logged per sample in
``selection/epoch_XXX.npz``.

Determinism: model init, the epoch's shuffle, the rule's randomness and dropout
all derive from (seed, epoch), so a resumed run repeats an uninterrupted one.
"""
from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from erts import distributed
from erts.config import Config, config_from_dict, dump_config
from erts.data import load_dataset
from erts.data.exclude import set_aside_text
from erts.data.records import EXCLUDED, RecordSet
from erts.data.tensors import Tensors, aggregate, eval_stride_s, fit_standardizer
from erts.distributed import Dist, all_sum, gather_cat, gather_pool, global_batches, rank_seed, rank_slice, shard
from erts.errors import DataError
from erts.progress import progress as progress_bar  # alias: self.progress / train(progress=) shadow the name
from erts.eval.metrics import compute_metrics, tune_thresholds
from erts.selection import PoolScores, Selector
from erts.selection.dropout import LOG_FIELDS, DataDropout
from erts.selection.queue import UpdateQueue
from erts.selection.dropout import confidence, el2n  # noqa: F401 (re-exported)
from erts.train import runio
from erts.train.builders import (apply_batchnorm, build_loss, build_model, build_optimizer, build_scheduler,
                                 resolve_device, resolve_loss_name, resolve_score_batch_size, seed_for)
from erts.train.cost import CostMeter, epoch_row
from erts.train.costnames import legacy_log_columns

EXCLUDED_FILE = "excluded_records.csv"  # the training records exclude_records= set aside, in the run folder
# ground-truth columns copied to train_records.csv when a dataset has them (never model input)
GROUND_TRUTH_COLUMNS = ("corruption", "true_class", "label_changed", "label_original", "label_current",
                        "noise_flipped", "label_clean")

# what select() logs per sample of a pool (the loop adds index and updated)
POOL_FIELDS = tuple(k for k in LOG_FIELDS if k not in ("index", "updated"))


class FeaturesAndLogits(torch.nn.Module):
    """The model's forward as (last-stage features, logits): what DistributedDataParallel wraps,
    so the update's features (score_source=update, fast Grad-CAM) come from the synced forward."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.forward_features(x)
        return feats, self.model.forward_head(feats)


class Trainer:
    """Holds the run's state; ``fit`` runs the epochs, ``finish`` evaluates the best model once on test.

    Under torchrun (``dist``: world > 1) every rank holds a Trainer: the model is wrapped in
    DistributedDataParallel for the update, each rank trains on its share of every global batch,
    shared pools (per-epoch selection, evaluation) are scored in shares and gathered, and only
    rank 0 writes run files."""

    def __init__(self, cfg: Config, rs: RecordSet, run_dir: Path, *, progress: bool = True, dist: Dist | None = None):
        self.cfg, self.rs, self.run_dir = cfg, rs, run_dir
        self.dist = dist if dist is not None else Dist()
        self.progress = progress and self.dist.main
        self.device = distributed.local_device(resolve_device(cfg.train.device), self.dist)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        torch.manual_seed(cfg.train.seed)
        self.model = apply_batchnorm(build_model(cfg, rs, self.device).to(self.device), cfg.model.batchnorm,
                                     self.device, self.dist.enabled)
        scale = fit_standardizer(rs) if cfg.data.standardize == "train" else (0.0, 1.0)
        stride_s = eval_stride_s(cfg.data) if cfg.data.eval_windows == "sliding" else None
        self.data = Tensors.from_recordset(rs, self.device, cfg.data.crop_s, cfg.data.crop, scale, stride_s)
        self.score_bs = resolve_score_batch_size(cfg.selection.score_batch_size, self.device, self.data.length,
                                                 cfg.model.lead_rows if self.model.is_2d else 0)
        self.idx = {s: torch.from_numpy(rs.indices(s)).to(self.device) for s in ("train", "val", "test")}
        if len(self.idx["train"]) == 0 or len(self.idx["val"]) == 0:
            raise DataError(f"{rs.name}: the training and validation splits must not be empty")
        self.loss_name = resolve_loss_name(cfg, rs.multilabel)
        self.loss_fn = build_loss(self.loss_name, rs.labels[rs.indices("train")], rs.num_classes, self.device)
        self.ddp = None  # distributed: the update's forward, through DDP (one process: self.model directly)
        if self.dist.enabled:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                FeaturesAndLogits(self.model), device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.opt = build_optimizer(cfg, self.model)
        self.sched = build_scheduler(cfg, self.opt)
        self.cost = CostMeter(self.device)
        # selection: the same DataDropout a user puts in their own loop (an unknown Grad-CAM layer fails here)
        self.dd = DataDropout(self.model, num_samples=len(rs.labels), epochs=cfg.train.epochs,
                              multilabel=rs.multilabel, device=self.device, per_sample_loss=self.loss_fn.per_sample,
                              score_batch_size=self.score_bs, seed=cfg.train.seed, bf16=cfg.train.bf16,
                              cost=self.cost, selection=cfg.selection, dist=self.dist,
                              input_length=self.data.length)
        self.replay = load_kept_counts(cfg.selection.smrd_schedule, self) if cfg.selection.smrd_schedule else None
        self.start_epoch, self.best_f1, self.best_epoch = 0, -1.0, -1
        self.n_steps = 0  # optimiser steps taken by this process (log.csv: per epoch)
        self.log_rows: list[dict] = []

    # ---------------------------------------------------------------- helpers
    @property
    def selector(self) -> Selector:
        return self.dd.selector

    @property
    def bank(self):
        return self.dd.bank

    @property
    def cam_fast(self) -> bool:
        """Grad-CAM at the last stage: computed from the scoring pass's own features."""
        return self.dd.cam_fast

    def autocast(self):
        return self.dd.autocast()

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model(x).float()

    def _inputs(self, ids: torch.Tensor, x: torch.Tensor | None):
        """Positions of a pool -> its inputs: the caller's ``x`` (per batch: the very windows the
        update trains on), else each record's centre window."""
        return (lambda pos: x[pos]) if x is not None else (lambda pos: self.data.x(ids[pos]))

    def prepare_irreducible(self) -> None:
        """rho-loss: every training record's irreducible loss, once, before the first epoch trains
        (a resumed run has them from its checkpoint's score bank). Counted as ``irreducible``."""
        if self.dd.needs_irreducible:
            from erts.train.irreducible import irreducible_losses

            if self.progress:
                sel = self.cfg.selection
                weights = "lowest validation loss" if sel.rho_il_checkpoint == "best" else "last epoch"
                print(f"irreducible  2 models x {sel.rho_il_epochs} epochs, each on half of the training split "
                      f"({weights}), then each half's losses from the other half's model", flush=True)
            self.dd.set_irreducible_loss(self.idx["train"], irreducible_losses(self))

    # ---------------------------------------------------------------- scoring and selection (DataDropout)
    def score(self, ids: torch.Tensor, want_focus: bool, x: torch.Tensor | None = None, epoch: int = -1) -> PoolScores:
        """Scoring pass over ``ids``: p, correct, loss, EL2N (and the fast-path focus) per sample."""
        return self.dd.score(ids, self.data.y[ids], self.data.member[ids], self._inputs(ids, x), want_focus, epoch,
                             self.idx["train"])

    def focus(self, ids: torch.Tensor, scores: PoolScores, candidates: torch.Tensor,
              x: torch.Tensor | None = None) -> None:
        """Grad-CAM focus of the candidates into ``scores.focus`` (NaN for the others)."""
        self.dd.focus(ids, self.data.y[ids], scores, candidates, self._inputs(ids, x), self.rs.num_classes)

    def focus_of(self, maps: torch.Tensor) -> torch.Tensor:
        return self.dd.focus_of(maps, self.data.length)

    def select(self, epoch: int, ids: torch.Tensor, gen: torch.Generator, x: torch.Tensor | None = None,
               count: int | None = None, shared: bool = False) -> tuple[torch.Tensor, dict]:
        """Keep-mask over ``ids`` plus the per-sample log fields (``x``: the pool's inputs if already
        cut; ``count``: SMRD's replayed size; ``shared``: the pool is the same on every rank)."""
        result, log = self.dd.select_pool(epoch, ids, self.data.y[ids], self.data.member[ids], self._inputs(ids, x),
                                          gen, self.rs.num_classes, count=count, train_ids=self.idx["train"],
                                          length=self.data.length, shared=shared)
        return result.keep, log

    # ---------------------------------------------------------------- update
    def update(self, ids: torch.Tensor, x: torch.Tensor | None = None, weight: torch.Tensor | None = None,
               denom: int | None = None, epoch: int = -1) -> float:
        """One optimiser step on ``ids`` (inputs ``x`` if given, else fresh training windows), the
        per-sample losses scaled by ``weight`` (InfoBatch). With ``score_source=update`` the
        forward's own p, loss, EL2N (and fast-path focus for ERTS) go to the score bank.

        Distributed: every rank takes part in every step, an empty share too (a forward of no
        samples, so DDP's gradient all-reduce has all ranks; it adds nothing to the gradient).
        The loss is the weighted sum over all ranks' samples divided by the global normaliser
        (one scalar all-reduce), so a rank with fewer kept samples weighs each of them the same
        as the others do, and InfoBatch's rescaled loss stays unbiased over the global batch.
        Returns this rank's loss (NaN for an empty share)."""
        self.model.train()
        y = self.data.y[ids]
        local_norm = self.loss_fn.normaliser(y, len(ids), denom)
        norm = local_norm if not self.dist.enabled else \
            float(all_sum(torch.tensor([local_norm], dtype=torch.float64, device=self.device), self.dist))
        if norm == 0:  # nothing kept anywhere (every rank sees the same global sum): no step
            return float("nan")
        with self.cost.phase("update", len(ids), forward=True, backward=True):
            with self.autocast():
                net = self.ddp if self.ddp is not None else FeaturesAndLogits(self.model)
                feats, logits = net(self.data.x(ids, train=True) if x is None else x)
                logits = logits.float()
            per_sample = self.loss_fn.per_sample(logits, y)
            total = (per_sample * weight).sum() if weight is not None else per_sample.sum()
            loss = total * self.dist.world / norm  # DDP averages over the ranks: sum over all / global norm
            # score_source=update: before the step, the weights that made the forward
            if len(ids):
                self.dd.record_update(ids, feats.detach(), logits.detach(), per_sample.detach(), y, epoch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.n_steps += 1
        self.cost.updated += len(ids)
        return float(total.detach()) / local_norm if len(ids) else float("nan")

    # ---------------------------------------------------------------- epoch
    def run_epoch(self, epoch: int) -> dict:
        """One epoch. The order is the same on every rank; it is cut into global batches of
        ``batch_size`` per rank, and each rank trains on (per batch: selects within) its share.
        Per-epoch selection runs on the whole order, shared by the ranks."""
        cfg, d = self.cfg, self.dist
        gen = torch.Generator().manual_seed(seed_for(cfg.train.seed, epoch, 1))
        torch.manual_seed(rank_seed(seed_for(cfg.train.seed, epoch, 2), d))  # dropout / stochastic depth
        self.data.generator.manual_seed(rank_seed(seed_for(cfg.train.seed, epoch, 3), d))  # random training crops
        train_ids = self.idx["train"]
        order = train_ids[torch.randperm(len(train_ids), generator=gen).to(self.device)]
        # a per-batch rule's own draws: this rank's (the order above is everyone's)
        local_gen = gen if not d.enabled else torch.Generator().manual_seed(rank_seed(seed_for(cfg.train.seed, epoch, 1), d))
        bs = cfg.optim.batch_size
        fields = {k: [] for k in LOG_FIELDS}
        losses: list[tuple[float, int]] = []
        counts = self.replay.get(epoch) if self.replay is not None else None

        def record(ids, log, kept):
            fields["index"].append(ids)
            for k in POOL_FIELDS:
                fields[k].append(log[k])
            fields["updated"].append(kept)

        if cfg.selection.granularity == "epoch":
            keep, log = self.select(epoch, order, gen, count=None if counts is None else int(counts.sum()), shared=True)
            record(order, log, keep)
            weights = log["weight"] if self.selector.reweights(epoch) else None
            kept_pos = torch.nonzero(keep).squeeze(1)
            batches = [(order[rank_slice(pos, d)], None, None if weights is None else weights[rank_slice(pos, d)])
                       for pos in global_batches(kept_pos, bs, d)]
        else:
            batches = [(rank_slice(b, d), "select", None) for b in global_batches(order, bs, d)]
        # update_batches=full: the kept samples of the pools gather until a batch is full (Selective-Backprop)
        queue = UpdateQueue(self.device) if cfg.selection.granularity == "batch" and self.fills_batches(epoch) else None
        steps_before = self.n_steps
        bar = progress_bar(batches, f"epoch {epoch}", unit="batch", disable=not self.progress, every=0, interval=30)
        for b, (ids, mode, weight) in enumerate(bar):
            x, denom = None, None
            if mode == "select" and not len(ids):  # a rank's empty share of a short last batch: it still steps
                record(ids, self._empty_pool_log(), torch.zeros(0, dtype=torch.bool, device=self.device))
            elif mode == "select":
                x = self.data.x(ids, train=True)  # scored, explained and updated: the very same windows
                count = None if counts is None else int(counts[b * d.world + d.rank])
                keep, log = self.select(epoch, ids, local_gen, x, count=count)
                record(ids, log, keep)
                if self.selector.reweights(epoch):
                    weight = log["weight"][keep]
                    # InfoBatch per batch: the weighted sum over the pool size, an unbiased batch gradient
                    denom = len(ids) if self.selector.importance_weighted else None
                ids, x = ids[keep], x[keep]
            if queue is not None:  # after the epoch's last pool, what is left: a smaller step (as the official trainer)
                queue.put(ids, x, weight)
                losses += [(self.update(i, w, wt, None, epoch), len(i))
                           for i, w, wt in self._full_batches(queue, rest=b == len(batches) - 1)]
            elif len(ids) or d.enabled:  # distributed: every rank steps together, an empty share too
                losses.append((self.update(ids, x, weight, denom, epoch), len(ids)))
        self.sched.step()
        self.bank.sync(d)
        local = {k: torch.cat(v) for k, v in fields.items()}
        selection = {k: v.cpu().numpy() for k, v in
                     (local if cfg.selection.granularity == "epoch" else self._gather_pools(local, fields["index"])).items()}
        if d.main:
            runio.write_npz(self.run_dir / "selection" / f"epoch_{epoch:03d}.npz", **selection)
        sums = torch.tensor([sum(l * n for l, n in losses if n), sum(n for _, n in losses)], dtype=torch.float64,
                            device=self.device)
        loss_sum, n_loss = map(float, all_sum(sums, d))  # over every rank's updates
        return {
            "train_loss": loss_sum / n_loss if n_loss else float("nan"),
            "n_steps": self.n_steps - steps_before,  # optimiser steps (the ranks step together)
            "n_train": len(train_ids),
            "n_scored": int(np.isfinite(selection["p"]).sum()),
            "n_pdd_kept": int(selection["pdd_keep"].sum()),
            "n_erts_kept": int(selection["erts_keep"].sum()),
            "n_rescued": int(selection["rescued"].sum()),
            "n_updated": int(selection["updated"].sum()),
        }

    def fills_batches(self, epoch: int) -> bool:
        """update_batches=full in a select epoch (the other epochs' batches are full already)."""
        return self.cfg.selection.update_batches == "full" and self.selector.phase(epoch) == "select"

    def _full_batches(self, queue: UpdateQueue, rest: bool = False):
        """Each full batch waiting in ``queue`` (``rest``: then what is left), as this rank's share.
        Distributed: every rank steps once the ranks together hold ``batch_size`` x world samples,
        each on up to ``batch_size`` of its own queue (a rank with fewer steps on fewer, or none)."""
        bs, d = self.cfg.optim.batch_size, self.dist
        while True:
            waiting = len(queue) if not d.enabled else \
                int(all_sum(torch.tensor([len(queue)], dtype=torch.float64, device=self.device), d))
            if waiting == 0 or (waiting < bs * d.world and not rest):
                return
            yield queue.take(bs)

    def _empty_pool_log(self) -> dict[str, torch.Tensor]:
        flags = ("pdd_keep", "erts_keep", "rescued", "filter_cand")
        return {k: torch.zeros(0, dtype=torch.bool if k in flags else torch.float32, device=self.device)
                for k in POOL_FIELDS}

    def _gather_pools(self, local: dict[str, torch.Tensor], pools: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-batch selection log of all ranks, in the epoch's order: for each global batch, rank
        0's share, then rank 1's, ... (each rank logged its own pools)."""
        d = self.dist
        if not d.enabled:
            return local
        sizes = gather_cat(torch.tensor([len(p) for p in pools], device=self.device), d).view(d.world, -1)
        rows = {k: gather_cat(v, d) for k, v in local.items()}
        starts = torch.cat([sizes.new_zeros(1), sizes.sum(1).cumsum(0)[:-1]])  # each rank's first row
        offsets = starts[:, None] + torch.cat([sizes.new_zeros(d.world, 1), sizes.cumsum(1)[:, :-1]], 1)
        perm = torch.cat([torch.arange(int(o), int(o) + int(n), device=self.device)
                          for o, n in zip(offsets.T.reshape(-1), sizes.T.reshape(-1))])
        return {k: v[perm] for k, v in rows.items()}

    # ---------------------------------------------------------------- evaluation
    def predict(self, split: str) -> tuple[np.ndarray, float]:
        """Probabilities and mean loss on a split (eval mode, inference mode), from each record's
        centre window, or (``eval_windows=sliding``) the mean or max of its windows' probabilities
        (``eval_aggregate``); the loss is taken on the aggregated probabilities. Distributed, each
        rank predicts its share and every rank gets the whole split."""
        self.model.eval()
        ids, d = self.idx[split], self.dist
        mine = ids[shard(len(ids), d, ids.device)] if d.enabled else ids
        probs, loss_sum = [], torch.zeros((), dtype=torch.float64, device=self.device)
        chunk_records = max(1, self.score_bs // self.windows_per_record)
        with self.cost.phase("eval", len(mine)), torch.inference_mode():
            for chunk in mine.split(chunk_records):
                x, owner = self.data.eval_windows(chunk)
                logits = torch.cat([self.forward_logits(part) for part in x.split(self.score_bs)])
                p = aggregate(self._probs(logits), owner, len(chunk), self.cfg.data.eval_aggregate)
                loss_sum += self.loss_fn.of_probs(p, self.data.y[chunk]).double() * len(chunk)
                probs.append(p)
        k = self.rs.num_classes
        probs = torch.cat(probs) if probs else torch.empty((0, k), device=self.device)
        if d.enabled:
            probs, loss_sum = gather_pool(probs, len(ids), d), all_sum(loss_sum, d)
        return probs.cpu().numpy(), float(loss_sum) / max(len(ids), 1)

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.data.multilabel else torch.softmax(logits, 1)

    @property
    def windows_per_record(self) -> int:
        """Windows of a full-length record at evaluation (1: the centre window)."""
        t, w, stride = self.data.signals.shape[-1], self.data.window, self.data.stride
        if not stride or not w or w >= t:
            return 1
        return (t - w) // stride + 1 + int((t - w) % stride != 0)

    def evaluate(self, split: str, thresholds: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
        probs, loss = self.predict(split)
        y = self.rs.labels[self.rs.indices(split)]
        if self.rs.multilabel and thresholds is None:
            thresholds = tune_thresholds(y, probs)
        m = compute_metrics(y, probs, self.rs.class_names, multilabel=self.rs.multilabel, thresholds=thresholds)
        m["loss"] = loss
        return m, probs

    # ---------------------------------------------------------------- state
    def state(self, epoch: int) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "epoch": epoch, "best_f1": self.best_f1,
                "best_epoch": self.best_epoch, "cost": self.cost.snapshot(), **self.dd.state_dict()}

    def load_state(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.cost.restore(ckpt["cost"])
        if "bank" in ckpt:  # runs of erts <= 0.1 have none
            self.dd.load_state_dict(ckpt)
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best_f1, self.best_epoch = float(ckpt["best_f1"]), int(ckpt["best_epoch"])
        rows = runio.read_csv(self.run_dir / "log.csv")
        legacy = legacy_log_columns(rows[0]) if rows else {}  # a run started before the cost-column scheme
        self.log_rows = [{legacy.get(k, k): v for k, v in r.items()} for r in rows if int(r["epoch"]) < self.start_epoch]

    def fit(self) -> None:
        """Runs the remaining epochs. Each epoch's seconds add up to its wall clock: time no phase
        measured (rules, log and checkpoint writes, the previous epoch's last.pt) is ``other``, and
        the run's totals add up to the wall clock of fit()."""
        ckpt_dir = self.run_dir / "checkpoints"
        total = self.selector.epochs  # full with a budget: the compressed count
        epochs = range(self.start_epoch, total)
        main = self.dist.main
        if main:
            print(f"schedule   {self.selector.schedule.describe()}", flush=True)
            aside = set_aside_text(self.rs)
            if aside:
                print(f"excluded   {aside}", flush=True)
        desc = "epochs"
        if self.start_epoch and main:  # resumed: the bar counts the epochs left, and says which they are
            desc = f"epochs {self.start_epoch}-{total - 1} of 0-{total - 1}" if len(epochs) else "epochs"
            print(f"resumed    epochs 0-{self.start_epoch - 1} of 0-{total - 1} done; "
                  + (f"{len(epochs)} to go" if len(epochs) else "only the final evaluation is left"), flush=True)
        bar = progress_bar(epochs, desc, unit="epoch", disable=not self.progress, every=1, leave=True)
        mark, cpu_mark = time.perf_counter(), time.process_time()
        for epoch in bar:
            before = self.cost.snapshot()
            lr = self.opt.param_groups[0]["lr"]
            self.prepare_irreducible()  # rho-loss: in the first epoch's row
            stats = self.run_epoch(epoch)
            val, _ = self.evaluate("val")
            self.cost.add_other(time.perf_counter() - mark, before, time.process_time() - cpu_mark)
            mark, cpu_mark = time.perf_counter(), time.process_time()
            self._sum_counts_over_ranks(before)
            after = self.cost.snapshot()
            row = {"epoch": epoch, "phase": self.selector.phase(epoch), "lr": lr, "train_loss": stats.pop("train_loss"),
                   "val_loss": val["loss"], "val_macro_f1": val["macro_f1"], "val_accuracy": val["accuracy"],
                   "val_macro_auroc": val["macro_auroc"], **stats,
                   "kept_frac": stats["n_updated"] / stats["n_train"],
                   "effective_epochs": after["updated"] / stats["n_train"],
                   **epoch_row(before, after)}
            self.log_rows.append(row)
            if val["macro_f1"] > self.best_f1:  # val is gathered: every rank decides alike
                self.best_f1, self.best_epoch = val["macro_f1"], epoch
                if main:
                    runio.save_checkpoint(ckpt_dir / "best.pt", {"model": self.model.state_dict(), "epoch": epoch})
            if main:
                runio.write_csv(self.run_dir / "log.csv", self.log_rows)
                runio.save_checkpoint(ckpt_dir / "last.pt", self.state(epoch))
            bar.set_postfix(val_f1=f"{val['macro_f1']:.3f}", kept=f"{row['kept_frac']:.2f}")
        if len(epochs):  # the last epoch's closing writes: in the run's totals (metrics.json), not in its row
            self.cost.add_other(time.perf_counter() - mark, self.cost.snapshot(), time.process_time() - cpu_mark)
        distributed.barrier(self.dist)  # rank 0's best.pt is on disk before any rank loads it

    def _sum_counts_over_ranks(self, before: dict) -> None:
        """Distributed: this epoch's sample counts and FLOPs (and samples updated) summed over the
        ranks into every rank's meter, so log.csv, checkpoints and effective epochs are global.
        Seconds stay each rank's own (rank 0's are logged; metrics.json lists every rank's)."""
        if not self.dist.enabled:
            return
        cost, groups = self.cost, ("forwards", "backwards", "flops")
        keys = [(g, p) for g in groups for p in getattr(cost, g)]
        mine = torch.tensor([getattr(cost, g)[p] - before[g][p] for g, p in keys] + [cost.updated - before["updated"]],
                            dtype=torch.float64, device=self.device)
        extra = (all_sum(mine, self.dist) - mine).tolist()
        for (g, p), v in zip(keys, extra):
            getattr(cost, g)[p] += v
        cost.updated += extra[-1]

    def optimizer_steps(self) -> int | None:
        """The run's optimiser steps (log.csv's n_steps summed; None for a run resumed from a log without them)."""
        steps = [r.get("n_steps") for r in self.log_rows]
        return None if any(v is None or v == "" for v in steps) else int(sum(int(float(v)) for v in steps))

    def finish(self) -> dict:
        """Loads the best epoch, tunes multi-label thresholds on val, evaluates test once."""
        best = runio.load_checkpoint(self.run_dir / "checkpoints" / "best.pt", self.device)
        self.model.load_state_dict(best["model"])
        val, _ = self.evaluate("val")
        test, probs = self.evaluate("test", np.array(val["thresholds"]) if self.rs.multilabel else None)
        test_idx = self.rs.indices("test")
        d = self.dist
        rank_seconds = gather_cat(torch.tensor([sum(self.cost.seconds.values())], dtype=torch.float64,
                                               device=self.device), d).tolist()
        if d.main:
            runio.write_npz(self.run_dir / "predictions_test.npz", record_ids=self.rs.record_ids[test_idx].astype(str),
                            y_true=self.rs.labels[test_idx], probs=probs.astype(np.float32),
                            **({"thresholds": np.array(val["thresholds"], dtype=np.float32)} if self.rs.multilabel else {}))
        cfg = self.cfg
        metrics = {"run": self.run_dir.name, "dataset": cfg.data.dataset, "model": cfg.model.model,
                   "method": cfg.selection.method, "granularity": cfg.selection.granularity, "seed": cfg.train.seed,
                   "loss": self.loss_name, "class_names": list(self.rs.class_names), "multilabel": self.rs.multilabel,
                   "epochs": self.selector.epochs, "budget": cfg.selection.budget,
                   "reference_epochs": cfg.train.epochs, "best_epoch": self.best_epoch, "val": val, "test": test,
                   "optimizer_steps": self.optimizer_steps(),
                   "cost": self.cost.summary(len(self.idx["train"])),
                   "device": str(self.device), "world_size": d.world, "rank_seconds": rank_seconds,
                   "skipped_records": len(self.rs.skipped),
                   "excluded_records": len(self.rs.indices(EXCLUDED)),
                   "provenance": runio.read_provenance(self.run_dir)}
        if d.main:
            runio.write_json(self.run_dir / "metrics.json", metrics)
        return metrics


def load_kept_counts(run_dir: str, trainer: Trainer) -> dict[int, np.ndarray]:
    """Per select epoch, the per-pool counts of the rule's kept samples (``pdd_keep``) of another
    run, for SMRD to replay exactly (``smrd_schedule``): one count per batch of that run, or one
    per epoch for per-epoch selection. The runs must share the training set, the schedule and,
    per batch, the batch size, the granularity and the number of processes."""
    from erts.errors import ConfigError

    ref = Path(run_dir)
    if not (ref / "config.yaml").exists():
        raise ConfigError(f"smrd_schedule={run_dir}: not a run folder (no config.yaml)")
    ref_cfg = load_config_from_run(ref)
    ours, theirs = trainer.selector.schedule, Selector(ref_cfg.selection, ref_cfg.train.epochs).schedule
    if (ours.warmup, ours.revision) != (theirs.warmup, theirs.revision):
        raise ConfigError(f"smrd_schedule={run_dir}: its select epochs ({theirs.describe()}) differ from "
                          f"this run's ({ours.describe()})")
    per_batch = trainer.cfg.selection.granularity == "batch"
    if per_batch and (ref_cfg.selection.granularity != "batch" or ref_cfg.optim.batch_size != trainer.cfg.optim.batch_size):
        raise ConfigError(f"smrd_schedule={run_dir}: per-batch replay needs a per-batch run with "
                          f"batch_size={trainer.cfg.optim.batch_size}")
    n_train, bs, world = len(trainer.idx["train"]), ref_cfg.optim.batch_size, trainer.dist.world
    # the pools of this run's epochs: one per rank and global batch (one process: the batches)
    pools = [len(rank_slice(gb, Dist(world, r))) for gb in global_batches(torch.arange(n_train), bs, Dist(world))
             for r in range(world)]
    counts: dict[int, np.ndarray] = {}
    for epoch in ours.epochs_in("select"):
        f = ref / "selection" / f"epoch_{epoch:03d}.npz"
        if not f.exists():
            raise ConfigError(f"smrd_schedule={run_dir}: no selection log for epoch {epoch} ({f.name})")
        kept = np.load(f)["pdd_keep"]
        if len(kept) != n_train:
            raise ConfigError(f"smrd_schedule={run_dir}: epoch {epoch} logged {len(kept)} samples, "
                              f"this run trains on {n_train}")
        counts[epoch] = np.array([c.sum() for c in np.split(kept, np.cumsum(pools)[:-1])]) if per_batch \
            else np.array([kept.sum()])
    return counts


def label_names(rs: RecordSet, idx: np.ndarray) -> list[str]:
    """The given labels of rows ``idx`` as class names (multi-label: joined by ';')."""
    names = np.array(rs.class_names)
    if rs.multilabel:
        return [";".join(names[row > 0.5]) for row in rs.labels[idx]]
    return list(names[rs.labels[idx]])


def write_train_records(rs: RecordSet, path: Path) -> None:
    """One row per training record with any ground-truth columns (for analyses, never model input)."""
    import pandas as pd

    idx = rs.indices("train")
    df = pd.DataFrame({"index": idx, "record_id": rs.record_ids[idx], "label": label_names(rs, idx)})
    for col in GROUND_TRUTH_COLUMNS:
        if col in rs.meta.columns:
            df[col] = rs.meta[col].to_numpy()[idx]
    runio.write_text(path, df.to_csv(index=False))


def write_excluded_records(rs: RecordSet, path: Path) -> None:
    """The training records a list set aside (exclude_records=), so the run folder says what it left
    out and reopens with the same list however the user's file changes (load_config_from_run)."""
    import pandas as pd

    idx = rs.indices(EXCLUDED)
    if len(idx):
        df = pd.DataFrame({"record_id": rs.record_ids[idx], "label": label_names(rs, idx)})
        runio.write_text(path, df.to_csv(index=False))


def run_dir_for(cfg: Config) -> Path:
    return Path(cfg.train.out_dir) / cfg.run_name()


def train(cfg: Config, *, resume: bool = False, progress: bool | None = None) -> dict:
    """Trains (or resumes) one run and returns its final metrics (also in metrics.json)."""
    run_dir = run_dir_for(cfg)
    progress = not cfg.train.quiet if progress is None else progress
    last = run_dir / "checkpoints" / "last.pt"
    if not resume and (run_dir / "log.csv").exists():
        raise FileExistsError(f"{run_dir} already holds a run; use `erts train --resume {run_dir}` "
                              f"to continue it, or choose another name=")
    owner = not torch.distributed.is_initialized()  # a caller's own process group is left to the caller
    dist = distributed.setup(resolve_device(cfg.train.device))  # torchrun: join the job (else world 1)
    try:
        if not dist.main:
            distributed.barrier(dist)  # rank 0 prepares the dataset cache first; the others then read it
        rs = load_dataset(cfg.data)
        if dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            runio.write_text(run_dir / "config.yaml", dump_config(cfg))
            runio.record_start(run_dir, resumed=resume, world_size=dist.world)  # run.json: version, commit, command
            distributed.barrier(dist)
        trainer = Trainer(cfg, rs, run_dir, progress=progress, dist=dist)
        if resume and dist.main:
            warn_other_world_size(run_dir, dist.world)
        if resume and last.exists():
            trainer.load_state(runio.load_checkpoint(last, trainer.device))
        elif dist.main:
            write_train_records(rs, run_dir / "train_records.csv")
            write_excluded_records(rs, run_dir / EXCLUDED_FILE)
        trainer.fit()
        return trainer.finish()
    finally:
        # Free the trainer now, not whenever the cyclic garbage collector next runs: a module's first
        # import during model building leaves the calling frames, Trainer.__init__'s among them, in a
        # reference cycle (measured). Left to the interpreter's exit, the model's DDP wrapper frees
        # the gloo process group during finalization, where a rank can abort ("terminate called
        # without an active exception") after a finished run; in a sweep or a notebook it keeps the
        # model's (GPU) memory held into the next run.
        trainer = None  # noqa: F841
        gc.collect()
        if owner:
            distributed.shutdown()


def warn_other_world_size(run_dir: Path, world: int) -> None:
    """A run resumed with another number of processes continues correctly (its state is global),
    but not as it would have: other shares, other per-rank random draws. Say so."""
    info = runio.read_provenance(run_dir) or {}
    before = [r.get("world_size") for r in info.get("resumes", [])[:-1]][-1:] or [info.get("world_size")]
    if before[0] is not None and before[0] != world:
        print(f"erts: warning: {run_dir} ran with {before[0]} process(es) before and resumes with {world}; "
              f"it continues, but its numbers will differ from an uninterrupted run", flush=True)


def load_config_from_run(run_dir: str | Path) -> Config:
    """The run's config; a run that set records aside reads them from its own copy of the list."""
    cfg = config_from_dict(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()))
    if cfg.data.exclude_records and (Path(run_dir) / EXCLUDED_FILE).exists():
        cfg.data.exclude_records, cfg.data.exclude_top = str(Path(run_dir) / EXCLUDED_FILE), None
    return cfg


def is_finished(run_dir: str | Path) -> bool:
    """The run completed: its final metrics.json (written after the test evaluation) exists."""
    return (Path(run_dir) / "metrics.json").exists()


def resume(run_dir: str | Path, *, progress: bool | None = None) -> dict:
    """Continues a killed run from its last completed epoch; a finished run's metrics are returned
    as they are (nothing is retrained or re-evaluated)."""
    if is_finished(run_dir):
        import json

        return json.loads((Path(run_dir) / "metrics.json").read_text())
    cfg = load_config_from_run(run_dir)
    cfg.train.out_dir, cfg.train.name = str(Path(run_dir).parent), Path(run_dir).name
    return train(cfg, resume=True, progress=progress)


def load_run(run_dir: str | Path, which: str = "best") -> tuple[Config, torch.nn.Module, RecordSet]:
    """The run's config, its model with the ``which`` checkpoint loaded (eval mode, CPU), and its dataset."""
    cfg = load_config_from_run(run_dir)
    rs = load_dataset(cfg.data)
    model = build_model(cfg, rs)
    model.load_state_dict(runio.load_checkpoint(Path(run_dir) / "checkpoints" / f"{which}.pt")["model"])
    return cfg, model.eval(), rs
