"""Classifier heads: global average pooling, then a linear or a small MLP classifier.

Why a separate module: the Grad-CAM fast path needs to know exactly what sits
between the last conv stage and the logits (a mean over space, then ``fc`` or
``fc1 -> ReLU -> Dropout -> fc``), so the head is kept small and explicit.
"""
from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

HEADS = ("linear", "mlp")


class ClassifierHead(nn.Module):
    """Global average pooling over every axis after the channels, then a classifier.

    ``kind="linear"``: Dropout(p) -> Linear(C, K).
    ``kind="mlp"`` (the published head): Linear(C, hidden) -> ReLU -> Dropout(p) -> Linear(hidden, K).
    ``fc`` is always the final Linear (its rows are the class weights the CAM uses).
    """

    def __init__(self, in_features: int, num_classes: int, kind: str = "linear", hidden: int = 128, dropout: float = 0.0):
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"unknown head {kind!r}; available: {', '.join(HEADS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
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


def build_head(in_features: int, num_classes: int, kind: str, hidden: int, dropout: float) -> ClassifierHead:
    """Validated constructor used by ``create_model``."""
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be >= 1")
    if kind == "mlp" and hidden < 1:
        raise ValueError(f"head_hidden={hidden} must be >= 1 for the mlp head")
    return ClassifierHead(in_features, num_classes, kind=kind, hidden=hidden, dropout=dropout)
