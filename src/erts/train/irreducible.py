"""RHO-LOSS's irreducible losses (Mindermann et al., ICML 2022), computed once before training.

Why: RHO-LOSS trains on the samples whose loss the model can still reduce, the training loss
minus the *irreducible* loss, the loss of a model that never trained on the sample. A record
with a wrong label or no usable signal has a high loss under both models (low reducible
loss: skipped), a learnt one a low training loss (skipped too). The paper trains the
irreducible-loss (IL) model on held-out data; erts holds out nothing beyond the training
split, so it does what the paper does without a holdout set: the training ids are split in
two seeded halves (stratified by class), an IL model is trained on each half, and each record
gets the loss of the model trained on the *other* half.

The IL models are the run's architecture (``rho_il_model`` chooses another), trained
``rho_il_epochs`` epochs with the run's optimiser, learning-rate schedule type (compressed to
those epochs), batch size, loss and training windows; the weights of the epoch with the lowest
validation loss score, as in the official code (``rho_il_checkpoint=last``: the last epoch's). A
record's IL loss is taken on its centre window, once (the paper computes it once too), so
with ``crop=random`` per-batch selection compares a random window's training loss with the
centre window's IL loss. All of it is counted in the cost meter's ``irreducible`` phase:
training steps (forwards and backwards) and scoring forwards, FLOPs measured for each kind.
"""
from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from typing import Any, Protocol

import torch

from erts.config import Config
from erts.data.records import RecordSet
from erts.distributed import Dist, all_sum
from erts.train.builders import Loss, apply_batchnorm, build_model, build_optimizer, build_scheduler, seed_for
from erts.train.cost import CostMeter


class Run(Protocol):
    """What the IL models need of the run: erts.train.loop.Trainer has all of it."""

    cfg: Config
    rs: RecordSet
    device: torch.device
    data: Any  # erts.data.tensors.Tensors: x(ids, train=...), y, multilabel, generator
    cost: CostMeter
    loss_fn: Loss
    score_bs: int
    idx: dict[str, torch.Tensor]
    dist: Dist

    def autocast(self) -> AbstractContextManager: ...

IL_STREAM = 41  # seed_for stream of the halves and the IL models (the loop's epochs use 1-3)


def _seed(seed: int, k: int, stream: int = IL_STREAM) -> int:
    return seed_for(seed, k, stream)


def holdout_halves(train_ids: torch.Tensor, labels: torch.Tensor | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The training ids in two seeded halves, each id in exactly one, sorted. With single-label
    ``labels`` (the ids' classes) each class is split evenly (alternately in a seeded order), so
    neither IL model misses a rare class; the halves' sizes differ by at most one per class."""
    gen = torch.Generator().manual_seed(_seed(seed, 0))
    order = torch.randperm(len(train_ids), generator=gen).to(train_ids.device)
    if labels is not None and labels.ndim == 1:
        order = order[torch.sort(labels[order], stable=True).indices]
    ids = train_ids[order]
    return ids[0::2].sort().values, ids[1::2].sort().values


def il_config(cfg: Config) -> Config:
    """The IL models' config: the run's, as ``full`` for ``rho_il_epochs`` epochs (the learning-rate
    schedule compressed to them), with ``rho_il_model``'s architecture when set."""
    c = copy.deepcopy(cfg)
    c.train.epochs = cfg.selection.rho_il_epochs
    c.selection.method, c.selection.budget = "full", None
    if cfg.selection.rho_il_model:
        c.model.model = cfg.selection.rho_il_model
    return c


def train_il_model(trainer: Run, ids: torch.Tensor, seed: int) -> torch.nn.Module:
    """An IL model trained on ``ids`` only (seeded init, order, windows and dropout; counted as
    ``irreducible`` training steps). With ``rho_il_checkpoint=best`` (the official code's checkpoint) the
    weights of the epoch with the lowest validation loss (centre windows; ``irreducible`` forwards)."""
    cfg, device, data = il_config(trainer.cfg), trainer.device, trainer.data
    torch.manual_seed(seed)
    model = apply_batchnorm(build_model(cfg, trainer.rs, device).to(device), cfg.model.batchnorm, device, False)
    opt = build_optimizer(cfg, model)
    sched = build_scheduler(cfg, opt)
    gen = torch.Generator().manual_seed(seed)
    best, best_loss = None, float("inf")
    model.train()
    for epoch in range(cfg.train.epochs):
        data.generator.manual_seed(_seed(seed, epoch, 3))  # its random training windows
        order = ids[torch.randperm(len(ids), generator=gen).to(ids.device)]
        for batch in order.split(cfg.optim.batch_size):
            with trainer.cost.phase("irreducible", len(batch), forward=True, backward=True, work="train"):
                with trainer.autocast():
                    logits = model(data.x(batch, train=True)).float()
                loss = trainer.loss_fn(logits, data.y[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        sched.step()
        if cfg.selection.rho_il_checkpoint == "best":
            val_loss = float(il_losses(trainer, model.eval(), trainer.idx["val"]).mean())
            if val_loss < best_loss:
                best, best_loss = copy.deepcopy(model.state_dict()), val_loss
            model.train()
    if best is not None:
        model.load_state_dict(best)
    return model.eval()


def il_losses(trainer: Run, model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Per-sample loss of ``model`` on ``ids`` (centre windows, eval mode; ``irreducible`` forwards)."""
    out = []
    for chunk in ids.split(trainer.score_bs):
        with trainer.cost.phase("irreducible", len(chunk), work="score"), torch.inference_mode():
            with trainer.autocast():
                logits = model(trainer.data.x(chunk)).float()
            out.append(trainer.loss_fn.per_sample(logits, trainer.data.y[chunk]).float())
    return torch.cat(out) if out else torch.empty(0, device=ids.device)


def irreducible_losses(trainer: Run) -> torch.Tensor:
    """(n_train,) each training record's irreducible loss, in the order of ``trainer.idx["train"]``:
    the loss of the IL model trained on the other half. Under torchrun every process computes
    them (each counts its own work) and rank 0's are used, so every rank selects alike."""
    train_ids, seed = trainer.idx["train"], trainer.cfg.train.seed
    labels = None if trainer.data.multilabel else trainer.data.y[train_ids]
    halves = holdout_halves(train_ids, labels, seed)
    by_id = torch.full((int(train_ids.max()) + 1,), float("nan"), device=train_ids.device)
    for k, (fit_on, score_on) in enumerate((halves, halves[::-1])):
        model = train_il_model(trainer, fit_on, _seed(seed, k + 1))
        by_id[score_on] = il_losses(trainer, model, score_on)
    losses = by_id[train_ids]
    d = trainer.dist
    if d.enabled:  # rank 0's losses on every rank
        losses = all_sum(losses if d.main else torch.zeros_like(losses), d)
    return losses
