"""Builders: the only place where config values turn into objects.

The training loop never reads raw settings for these parts; it receives the
device, model, loss, optimiser and schedule built here (torchtune's rule).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from erts.config import Config, trained_epochs
from erts.errors import ConfigError
from erts.data.records import RecordSet


def seed_for(seed: int, epoch: int, stream: int) -> int:
    """Independent, reproducible seeds per (run seed, epoch, purpose): the run's one seed becomes
    every generator's (shuffle, dropout, crops, the IL models), so a resumed run draws alike."""
    return (seed * 1_000_003 + epoch * 1009 + stream) % (2**63)


def resolve_device(name: str) -> torch.device:
    """device=auto picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA device is available; use device=auto or device=cpu")
    return torch.device(name)


def resolve_score_batch_size(requested: int, device: torch.device, steps: int, image_rows: int = 0) -> int:
    """Batch size of the no-grad passes (scoring, Grad-CAM, evaluation); ``requested`` 0 means auto.

    A GPU wants big batches. A CPU does not: past a few MB of activations per batch the
    forward falls out of cache, and an inference forward of resnet18_1d at 1 x 1,000 costs
    ~25 % more per sample at batch 256 than at 64 (benchmarks/README.md). So on CPU the batch
    holds about 65,536 time steps (64 x 1,000, 256 x 250); a 2-D image of ``image_rows``
    rows counts as rows/8 times its length (16 records of 32 x 1,000).
    """
    if requested:
        return requested
    if device.type != "cpu":
        return 512
    per_sample = steps * max(image_rows / 8, 1.0)
    power = round(float(np.log2(max(65536 / max(per_sample, 1.0), 1.0))))
    return int(min(max(2**power, 8), 256))


# Devices where memory_format=auto runs the 2-D backbones channels_last. CPU: measured faster there
# for all three backbones, scoring and update (benchmarks/backbones.py --bench format, numbers in
# docs/models.md). CUDA: cuDNN's recommended layout for convnets; not measured here.
CHANNELS_LAST_DEVICES = ("cpu", "cuda")


def resolve_memory_format(requested: str, is_2d: bool, device: torch.device | str | None = None) -> str:
    """The memory format a model runs in: ``requested`` unless "auto"; 1-D backbones always "contiguous".

    auto: "channels_last" for a 2-D backbone on a device in ``CHANNELS_LAST_DEVICES``, else
    "contiguous". ``device`` None means the CPU; a string goes through ``resolve_device``.
    """
    if requested not in ("auto", "contiguous", "channels_last"):
        raise ConfigError(f"memory_format={requested!r}: expected auto, contiguous or channels_last")
    if not is_2d:
        return "contiguous"  # (B, C, T) tensors: channels_last is a 4-D layout and does not apply
    if requested != "auto":
        return requested
    dev = torch.device("cpu") if device is None else resolve_device(device) if isinstance(device, str) else device
    return "channels_last" if dev.type in CHANNELS_LAST_DEVICES else "contiguous"


def build_model(cfg: Config, rs: RecordSet, device: torch.device | str | None = None) -> torch.nn.Module:
    """The configured model, on the CPU, in the memory format ``cfg.model.memory_format`` resolves to for
    ``device`` (the device it will run on; None: the CPU rule). Move it with ``.to(device)``, which keeps it."""
    from erts.models import create_model

    m = cfg.model
    model = create_model(m.model, in_channels=rs.num_leads, num_classes=rs.num_classes, dropout=m.dropout,
                         head=m.head, head_hidden=m.head_hidden, lead_rows=m.lead_rows, lead_pad=m.lead_pad)
    return model.set_memory_format(resolve_memory_format(m.memory_format, model.is_2d, device))


def apply_batchnorm(model: torch.nn.Module, mode: str, device: torch.device, distributed: bool) -> torch.nn.Module:
    """BatchNorm as ``model.batchnorm`` says. ``sync``: SyncBatchNorm (PyTorch's, CUDA only), so a
    step under torchrun normalises by the global batch as one process would; in one process it is
    plain BatchNorm. ``frozen``: every BatchNorm layer runs in eval mode, with running statistics
    that training never changes (a pre-hook sets it before each forward, whatever ``train()`` said),
    so a step does not depend on how a batch is split across processes."""
    if mode == "sync":
        if device.type != "cuda":
            raise ConfigError("batchnorm=sync needs CUDA (PyTorch's SyncBatchNorm works on GPUs only); "
                              "on CPU use batchnorm=batch (per process) or batchnorm=frozen")
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) if distributed else model
    if mode == "frozen":
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.register_forward_pre_hook(lambda module, args: setattr(module, "training", False))
    return model


def resolve_loss_name(cfg: Config, multilabel: bool) -> str:
    loss = cfg.optim.loss
    if cfg.optim.loss_policy == "published" and not multilabel:
        return "ce" if cfg.selection.method == "full" else "cb_ce"
    if loss == "auto":
        return "bce" if multilabel else "ce"
    if multilabel and loss != "bce":
        raise ConfigError(f"loss={loss!r} cannot train a multi-label task; use loss=bce (or auto)")
    if not multilabel and loss == "bce":
        raise ConfigError("loss='bce' is for multi-label tasks; use loss=ce, balanced_ce or cb_ce for single-label data")
    return loss


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Class-balanced weights n / (K * n_c) from the training labels (absent classes get weight 0)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def effective_number_weights(labels: np.ndarray, num_classes: int, beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights by effective number (Cui et al. 2019), as the published code computes
    them: (1 - beta) / (1 - beta^n_c), normalised to sum to K (an absent class's 1e-8 floor kept)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = (1.0 - beta) / np.maximum(1.0 - np.power(beta, counts), 1e-8)
    return torch.tensor(w / w.sum() * num_classes, dtype=torch.float32)


class Loss:
    """A run's loss: ``per_sample(logits, y)`` (what InfoBatch and loss-topk rank, the score bank
    keeps) and the reduced training loss ``(logits, y, weight)``.

    ce, cb_ce, bce: the mean over samples of weight * per-sample loss (cb_ce: w_y * CE, the
    published plain mean). balanced_ce: PyTorch's weighted mean, sum(weight * w_y * CE) / sum(w_y).
    ``denom``: divide the weighted sum by this many samples instead (InfoBatch per batch: the pool
    size, so the expected gradient is the full batch's)."""

    def __init__(self, name: str, class_weight: torch.Tensor | None = None):
        self.name, self.class_weight = name, class_weight

    def per_sample(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.name == "bce":
            return F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1)
        return F.cross_entropy(logits, y, weight=self.class_weight, reduction="none")

    def normaliser(self, y: torch.Tensor, n: int, denom: int | None = None) -> float:
        """What the weighted sum of ``n`` per-sample losses is divided by: ``denom``, the sum of
        the class weights (balanced_ce) or ``n``. A sum over samples, so distributed ranks add
        theirs up to the global batch's (0 for an empty share)."""
        if denom is not None:
            return float(denom)
        if self.name == "balanced_ce":
            return float(self.class_weight[y].sum()) if n else 0.0
        return float(n)

    def reduce(self, per_sample: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None,
               denom: int | None = None) -> torch.Tensor:
        total = (per_sample * weight).sum() if weight is not None else per_sample.sum()
        return total / max(self.normaliser(y, len(per_sample), denom), 1e-12)

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.reduce(self.per_sample(logits, y), y, weight)

    def of_probs(self, probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The reduced loss of predicted probabilities (softmax, or per-class sigmoid for bce):
        what evaluation reports when a record's prediction aggregates several windows."""
        p = probs.float().clamp(1e-7, 1 - 1e-7)
        if self.name == "bce":
            per_sample = -(y * p.log() + (1 - y) * (1 - p).log()).mean(1)
        else:
            per_sample = -p.gather(1, y[:, None]).squeeze(1).log()
            if self.class_weight is not None:
                per_sample = per_sample * self.class_weight[y]
        return self.reduce(per_sample, y)


def build_loss(name: str, train_labels: np.ndarray, num_classes: int, device: torch.device) -> Loss:
    """One loss per run, used by every method (the published code's confound is not repeated)."""
    if name == "cb_ce":
        return Loss(name, effective_number_weights(train_labels, num_classes).to(device))
    if name == "balanced_ce":
        return Loss(name, class_weights(train_labels, num_classes).to(device))
    return Loss(name)


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (CPU and CUDA): one pass over all parameters per step.

    PyTorch's default on CPU loops over the tensors: 22 ms a step for resnet18_1d on a
    2-core EPYC against 4.4 ms fused. A step costs the same whatever the batch size, so
    it weighs most on per-batch selection, which back-propagates about a third of each
    batch in as many steps as a full epoch (benchmarks/README.md).
    """
    params = list(model.parameters())
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, fused=fused)


def build_scheduler(cfg: Config, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch, over the epochs the run trains (full with a budget: the whole
    schedule compressed to them, as in budgeted training, Li et al. 2020)."""
    s = cfg.optim.schedule
    if s == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=trained_epochs(cfg))
    if s == "step":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.optim.step_gamma)
    if s == "onecycle":  # total_steps + 1: the loop also steps after the last epoch
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.optim.lr, total_steps=trained_epochs(cfg) + 1,
                                                   pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
                                                   base_momentum=0.85, max_momentum=0.95)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
