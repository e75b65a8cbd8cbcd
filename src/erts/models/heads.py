"""Classifier heads: a pooling over space, then a linear or a small MLP classifier.

Why a separate module: the Grad-CAM fast path needs to know exactly what sits
between the last conv stage and the logits (a mean over space, then ``fc`` or
``fc1 -> ReLU -> Dropout -> fc``; or the PTB-XL benchmark's concat-pool head),
so the heads are kept small and explicit. Each exposes ``pool(feats)``,
``from_pooled(z)`` and ``grad_pooled(z, weights)``: the sum over positions s of
d(score)/dA(s) per channel, in closed form, which Grad-CAM divides by |S| to
get its alpha.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

AVG_HEADS = ("linear", "mlp")
HEADS = (*AVG_HEADS, "concat")


class ClassifierHead(nn.Module):
    """Global average pooling over every axis after the channels, then a classifier.

    ``kind="linear"``: Dropout(p) -> Linear(C, K).
    ``kind="mlp"`` (the published head): Linear(C, hidden) -> ReLU -> Dropout(p) -> Linear(hidden, K).
    ``fc`` is always the final Linear (its rows are the class weights the CAM uses).
    """

    def __init__(self, in_features: int, num_classes: int, kind: str = "linear", hidden: int = 128, dropout: float = 0.0):
        super().__init__()
        if kind not in AVG_HEADS:
            raise ValueError(f"unknown head {kind!r}; available: {', '.join(AVG_HEADS)}")
        _check_dropout(dropout)
        self.kind = kind
        self.in_features = in_features
        self.num_classes = num_classes
        if kind == "mlp":
            self.fc1 = nn.Linear(in_features, hidden)
            self.act = nn.ReLU()
            self.drop = nn.Dropout(dropout)
            self.fc = nn.Linear(hidden, num_classes)
        else:
            self.drop = nn.Dropout(dropout)
            self.fc = nn.Linear(in_features, num_classes)

    @staticmethod
    def pool(feats: Tensor) -> Tensor:
        """(B, C, T) or (B, C, H, T) -> (B, C): the mean over every spatial position."""
        return feats.flatten(2).mean(-1)

    def from_pooled(self, z: Tensor) -> Tensor:
        """(B, C) pooled features -> (B, K) logits."""
        if self.kind == "mlp":
            return self.fc(self.drop(self.act(self.fc1(z))))
        return self.fc(self.drop(z))

    def forward(self, feats: Tensor) -> Tensor:
        return self.from_pooled(self.pool(feats))

    def grad_pooled(self, z: Tensor, weights: Tensor) -> Tensor:
        """d(sum_c weights[b, c] * logits[b, c]) / dz in closed form (eval mode: dropout is the identity).

        With average pooling this is also the sum over positions of d(score)/dA, what Grad-CAM needs.

        Why closed form and not autograd: the training loop computes its features
        under ``torch.inference_mode()``, where autograd cannot run. For the MLP
        head the gradient is W1^T (relu'(h) * (W2^T w)), with relu'(0) = 0 as in
        autograd; for the linear head it is W^T w. Both are exact.
        """
        g = weights.to(z.dtype) @ self.fc.weight.to(z.dtype)  # (B, hidden) or (B, C)
        if self.kind == "mlp":
            w1 = self.fc1.weight.to(z.dtype)
            h = F.linear(z, w1, self.fc1.bias.to(z.dtype))
            g = (g * (h > 0).to(g.dtype)) @ w1
        return g

    def extra_repr(self) -> str:
        return f"kind={self.kind}"


def _check_dropout(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout={p} must be in [0, 1)")


def _eval_bn(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """(scale, shift) of a BatchNorm in eval mode: bn(x) = x * scale + shift, from its running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class ConcatPoolHead(nn.Module):
    """The PTB-XL benchmark's head (fastai ``create_head1d`` with ``lin_ftrs=[hidden]``, ``ps=dropout``).

    [max, mean] over every axis after the channels (B, 2C) -> BatchNorm -> Dropout(p/2) ->
    Linear(2C, hidden) -> ReLU -> BatchNorm -> Dropout(p) -> Linear(hidden, K) (``fc``).
    Init as the benchmark's ``weight_init``: kaiming fan-in Linear weights, zero biases.
    """

    kind = "concat"

    def __init__(self, in_features: int, num_classes: int, hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        _check_dropout(dropout)
        self.in_features = in_features
        self.num_classes = num_classes
        self.bn1 = nn.BatchNorm1d(2 * in_features)
        self.drop1 = nn.Dropout(dropout / 2)  # fastai halves ps for every layer but the last
        self.fc1 = nn.Linear(2 * in_features, hidden)
        self.act = nn.ReLU()
        self.bn2 = nn.BatchNorm1d(hidden)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)
        for fc in (self.fc1, self.fc):
            nn.init.kaiming_normal_(fc.weight)
            nn.init.zeros_(fc.bias)

    @staticmethod
    def pool(feats: Tensor) -> Tensor:
        """(B, C, T) or (B, C, H, T) -> (B, 2C): the max, then the mean, over every spatial position."""
        f = feats.flatten(2)
        return torch.cat([f.amax(-1), f.mean(-1)], 1)

    def _norm(self, bn: nn.Module, z: Tensor) -> Tensor:
        if self.training and z.shape[0] == 1:
            # one sample has no batch variance (BatchNorm1d raises): use the running statistics,
            # untouched. The benchmark's loader drops such batches; erts' selection can keep one sample.
            scale, shift = _eval_bn(bn)
            return z * scale + shift
        return bn(z)

    def from_pooled(self, z: Tensor) -> Tensor:
        """(B, 2C) pooled features -> (B, K) logits."""
        h = self.act(self.fc1(self.drop1(self._norm(self.bn1, z))))
        return self.fc(self.drop(self._norm(self.bn2, h)))

    def forward(self, feats: Tensor) -> Tensor:
        return self.from_pooled(self.pool(feats))

    def grad_pooled(self, z: Tensor, weights: Tensor) -> Tensor:
        """(B, 2C) pooled z -> (B, C): the sum over positions s of d(score)/dA(s) per channel (eval mode).

        Why exact despite the max: d(score)/dA_k(s) is g_avg[k] / |S| at every s plus g_max[k] at
        the argmax (split over ties, summing to g_max[k]), so its sum over s is g_avg[k] + g_max[k],
        with g = dy/dz from the chain rule through the eval-mode BatchNorms (fixed affine maps),
        the ReLU (relu'(0) = 0, as autograd) and the two Linears. Grad-CAM's alpha only needs that
        sum; the gradient itself is not constant over space, so this is not dy/dA.
        """
        dt = z.dtype
        s1, t1 = (v.to(dt) for v in _eval_bn(self.bn1))
        s2, _ = (v.to(dt) for v in _eval_bn(self.bn2))
        h = F.linear(z * s1 + t1, self.fc1.weight.to(dt), self.fc1.bias.to(dt))
        g = (weights.to(dt) @ self.fc.weight.to(dt)) * s2 * (h > 0).to(dt)
        g = (g @ self.fc1.weight.to(dt)) * s1  # dy/dz, (B, 2C): [max half, mean half]
        g_max, g_avg = g.chunk(2, dim=1)
        return g_max + g_avg

    def extra_repr(self) -> str:
        return f"kind={self.kind}"


Head = Union[ClassifierHead, ConcatPoolHead]


def build_head(in_features: int, num_classes: int, kind: str, hidden: int, dropout: float) -> Head:
    """Validated constructor used by ``create_model``."""
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be >= 1")
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; available: {', '.join(HEADS)}")
    if kind in ("mlp", "concat") and hidden < 1:
        raise ValueError(f"head_hidden={hidden} must be >= 1 for the {kind} head")
    if kind == "concat":
        return ConcatPoolHead(in_features, num_classes, hidden=hidden, dropout=dropout)
    return ClassifierHead(in_features, num_classes, kind=kind, hidden=hidden, dropout=dropout)
