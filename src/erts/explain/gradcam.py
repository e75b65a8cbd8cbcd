"""Grad-CAM for ECGClassifier models, batched, with an exact backward-free fast path.

Definition (Selvaraju et al. 2017): for target layer activations A (B, C, *S)
and a score y, alpha_k = mean over S of dy/dA_k and map = ReLU(sum_k alpha_k A_k).
The score is ``sum_c target[b, c] * logits[b, c]``: a class index gives the
logit of that class; a multi-hot (B, K) target gives the sum of the positive
classes' logits (the multi-label definition). For 2-D backbones S = (H', T')
(rows of the lead image by time): ``maps_2d`` keeps it and ``maps`` is its
mean over rows, ReLU first.

Fast path: when A is the last conv stage, which the head averages over S,
dy/dA_k(s) = (1/|S|) dy/dz_k with z the pooled vector, constant over S. So
alpha = (1/|S|) dy/dz: for a linear head the target-weighted fc rows (CAM from
the forward pass alone), for the MLP head the closed-form head gradient. The
concat-pool head (max and mean) has a gradient that is not constant over S,
but alpha only needs its sum over S, (dy/dz_max + dy/dz_avg), also in closed
form. Each head's ``grad_pooled`` returns that sum; this equals the autograd
result exactly, up to float rounding.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class GradCAMResult:
    maps: Tensor  # (B, T') map over time (2-D backbones: mean of maps_2d over rows)
    maps_2d: Optional[Tensor]  # (B, H', T') lead-row-by-time map; None for 1-D backbones
    logits: Tensor  # (B, K)


def target_weights(target: Tensor, batch: int, num_classes: int) -> Tensor:
    """(B,) class indices or (B, K) class weights -> (B, K) float weights of the logits in the score."""
    if target.ndim == 1 and not target.is_floating_point():
        if target.shape[0] != batch:
            raise ValueError(f"target has {target.shape[0]} class indices for a batch of {batch}")
        if target.numel() and (target.min() < 0 or target.max() >= num_classes):
            raise ValueError(f"target class indices must be in [0, {num_classes}), got {target.tolist()}")
        return F.one_hot(target.long(), num_classes).float()
    if target.ndim == 2 and target.shape == (batch, num_classes):
        return target.float() if not target.is_floating_point() else target
    raise ValueError(
        f"target must be (B,) class indices or (B, K) class weights with B={batch}, K={num_classes}; "
        f"got {target.dtype} of shape {tuple(target.shape)}"
    )


def _cam(alpha: Tensor, acts: Tensor) -> tuple[Tensor, Optional[Tensor]]:
    """ReLU(sum_k alpha_k A_k) -> (map over time, map over rows x time or None)."""
    cam = F.relu(torch.einsum("bc,bc...->b...", alpha, acts))
    if cam.ndim == 3:
        return cam.mean(1), cam
    if cam.ndim == 2:
        return cam, None
    raise ValueError(f"target layer activation must be (B, C, T) or (B, C, H, T), got {tuple(acts.shape)}")


def cam_from_features(model: nn.Module, feats: Tensor, target: Tensor) -> tuple[Tensor, Optional[Tensor]]:
    """Grad-CAM at the last conv stage from ``feats = model.forward_features(x)``, with no extra forward.

    Works on features computed under ``torch.inference_mode()`` or ``no_grad``:
    nothing here needs autograd (the MLP and concat heads' gradients are computed
    in closed form, see ``ClassifierHead.grad_pooled`` and ``ConcatPoolHead.grad_pooled``). The head is treated as in eval
    mode (dropout off), which is how Grad-CAM is defined here.
    """
    head = model.head
    dtype = torch.promote_types(feats.dtype, torch.float32)  # bf16 autocast features -> fp32 maps
    with torch.no_grad(), torch.autocast(feats.device.type, enabled=False):
        a = feats.to(dtype)
        w = target_weights(target.to(a.device), a.shape[0], head.num_classes)
        spatial = a[0, 0].numel()
        alpha = head.grad_pooled(head.pool(a), w) / spatial
        return _cam(alpha, a)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Puts every submodule in eval mode and restores each one's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _autograd_cam(model: nn.Module, x: Tensor, w: Tensor, layer: nn.Module) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Partial backward from the score to the layer's activation only (no parameter gradients)."""
    captured: dict[str, Tensor] = {}

    def hook(_module: nn.Module, _inputs: object, out: Tensor) -> Tensor:
        # A fresh leaf: the backward stops here, and nothing before the layer is differentiated.
        # The clone lets later in-place ops (e.g. ReLU(inplace)) run without touching A.
        captured["A"] = out.detach().requires_grad_(True)
        return captured["A"].clone()

    handle = layer.register_forward_hook(hook)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            # tensors made under a caller's inference_mode cannot be saved for backward: copy them out
            x, w = (t.clone() if t.is_inference() else t for t in (x, w))
            logits = model(x)
            if "A" not in captured:
                raise RuntimeError("the target layer did not run in the forward pass")
            score = (logits * w.to(logits.dtype)).sum()
            (grad,) = torch.autograd.grad(score, captured["A"])
    finally:
        handle.remove()
    dtype = torch.promote_types(grad.dtype, torch.float32)
    alpha = grad.to(dtype).flatten(2).mean(-1)
    maps, maps_2d = _cam(alpha, captured["A"].detach().to(dtype))
    return logits.detach(), maps, maps_2d


def gradcam(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    layer: Union[str, nn.Module] = "last",
    fast: bool = True,
) -> GradCAMResult:
    """Batched Grad-CAM of ``target`` at ``layer`` ("last", "published", a layer name, or a module).

    Runs with the model in eval mode and restores every module's mode after.
    ``fast=True`` uses the backward-free path when the layer is the last conv
    stage; otherwise a partial backward to the layer activation is run.
    """
    module = model.get_layer(layer) if isinstance(layer, str) else layer
    with eval_mode(model):
        w = target_weights(target.to(x.device), x.shape[0], model.num_classes)
        if fast and module is model.get_layer("last"):
            with torch.no_grad():
                feats = model.forward_features(x)
                logits = model.forward_head(feats)
            maps, maps_2d = cam_from_features(model, feats, w)
        else:
            logits, maps, maps_2d = _autograd_cam(model, x, w, module)
    return GradCAMResult(maps=maps, maps_2d=maps_2d, logits=logits)


def upsample_to(maps: Tensor, length: int) -> Tensor:
    """Linear interpolation of (B, T') or (B, H', T') maps along time to ``length`` samples (for plotting)."""
    if maps.ndim == 2:
        return F.interpolate(maps.unsqueeze(1), size=length, mode="linear", align_corners=False).squeeze(1)
    if maps.ndim == 3:
        return F.interpolate(maps, size=length, mode="linear", align_corners=False)
    raise ValueError(f"maps must be (B, T') or (B, H', T'), got {tuple(maps.shape)}")


def _top_k(n: int, q: float) -> int:
    """k = int(q * n), at least one: the published ``max(1, W // 10)`` for q = 0.1."""
    if not 0.0 < q <= 1.0:
        raise ValueError(f"focus q={q} must be in (0, 1]")
    if n == 0:
        raise ValueError("a focus measure needs maps with at least one value per sample")
    return max(1, min(n, int(q * n + 1e-9)))


def focus_score(maps: Tensor, q: float = 0.1) -> Tensor:
    """(B, ...) maps -> (B,) mean of the top q fraction of each min-max normalised map (the paper's score).

    k = int(q * n) of the n map values, at least one. A constant map normalises to zeros
    and scores 0. What it measures: how strong the strongest q of the map is relative to
    its range, not how concentrated the map is: a broad plateau scores as high as (or
    higher than) a narrow peak. ``focus_mass`` and ``focus_entropy`` measure concentration.
    """
    flat = maps.flatten(1).to(torch.promote_types(maps.dtype, torch.float32))
    k = _top_k(flat.shape[1], q)
    lo = flat.min(1, keepdim=True).values
    span = flat.max(1, keepdim=True).values - lo
    norm = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    return norm.topk(k, dim=1).values.mean(1)


def focus_mass(maps: Tensor, q: float = 0.1) -> Tensor:
    """Share of each map's total mass in its top q positions: 1 for a single peak, q for a flat
    map, 0 for an all-zero map (no positive evidence). Maps are ReLU outputs (>= 0)."""
    flat = maps.flatten(1).to(torch.promote_types(maps.dtype, torch.float32)).clamp_min(0)
    k = _top_k(flat.shape[1], q)
    total = flat.sum(1)
    top = flat.topk(k, dim=1).values.sum(1)
    return torch.where(total > 0, top / total.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(total))


def focus_entropy(maps: Tensor, q: float = 0.1) -> Tensor:
    """1 - normalised entropy of each map read as a distribution over positions: 1 for a single
    peak, 0 for a flat map, 0 for an all-zero map. ``q`` is unused (one signature for all)."""
    flat = maps.flatten(1).to(torch.promote_types(maps.dtype, torch.float32)).clamp_min(0)
    n = flat.shape[1]
    total = flat.sum(1, keepdim=True)
    if n < 2:
        return torch.zeros(flat.shape[0], dtype=flat.dtype, device=flat.device)
    prob = flat / total.clamp_min(torch.finfo(flat.dtype).tiny)
    entropy = -(torch.special.xlogy(prob, prob)).sum(1)
    score = 1 - entropy / math.log(n)
    return torch.where(total.squeeze(1) > 0, score.clamp(0, 1), torch.zeros_like(score))


FOCUS_MEASURES = {"topq": focus_score, "mass": focus_mass, "entropy": focus_entropy}


def focus_measure(maps: Tensor, measure: str = "topq", q: float = 0.1) -> Tensor:
    """(B, ...) Grad-CAM maps -> (B,) focus by the named measure (``focus_measure=`` setting)."""
    if measure not in FOCUS_MEASURES:
        raise ValueError(f"unknown focus measure {measure!r}; expected one of {', '.join(FOCUS_MEASURES)}")
    return FOCUS_MEASURES[measure](maps, q)
