"""Model zoo: a timm-style registry of ECG classifiers built from one backbone and one head.

    >>> from erts.models import create_model, list_models
    >>> model = create_model("resnet18_1d", in_channels=12, num_classes=5)
    >>> logits = model(torch.randn(8, 12, 1000))

Every model is an ``ECGClassifier``: ``backbone`` (conv feature extractor ending
at the last conv stage, no pooling) then ``head`` (global average pooling and a
linear or MLP classifier, or the PTB-XL benchmark's concat-pool head). The split
is what Grad-CAM needs: the last-stage activation and the head that pools it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from erts.models.efficientnet1d import efficientnetv2s_1d
from erts.models.heads import HEADS, ClassifierHead, ConcatPoolHead, Head, build_head
from erts.models.mobilenet1d import mobilenetv2_1d
from erts.models.resnet1d import resnet1d_wang, resnet18_1d
from erts.models.tv2d import efficientnet_v2_s_2d, leads_to_image, mobilenet_v2_2d, resnet18_2d
from erts.models.xresnet1d import xresnet1d101


@dataclass(frozen=True)
class _Entry:
    build: Callable[..., tuple[nn.Sequential, int]]  # (in_channels, **kwargs) -> (backbone, out_channels)
    is_2d: bool
    published: str  # the Grad-CAM layer of the published code (a middle layer for the PTB-XL anchors)
    head: str = "linear"  # create_model's default head and dropout for this model
    dropout: float = 0.0


# Memory formats a model can run in. channels_last is a 4-D layout (NHWC): it applies to the 2-D
# backbones only; a 1-D model is (B, C, T) throughout and always runs contiguous.
MEMORY_FORMATS: dict[str, torch.memory_format] = {
    "contiguous": torch.contiguous_format, "channels_last": torch.channels_last}

# "published": ResNet-18 layer3; MobileNetV2 features.17 = features[-2], the last inverted-residual
# block (320 ch) before the 1x1 conv to 1280; EfficientNetV2-S features.6 = features[-2], the last
# MBConv stage (15 blocks, 256 ch) before the 1x1 conv to 1280. The PTB-XL benchmark's anchors (no
# published Grad-CAM layer) keep their concat-pool head with lin_ftrs_head=[128], ps_head=0.5; their
# middle layer is the second-to-last stage, as for the others: resnet1d_wang layer2 (128 ch, stride 2
# of 4), xresnet1d101 layer3 (23 blocks, 256 ch, stride 16 of 32, ResNet-18's layer3 in depth order).
_MODELS: dict[str, _Entry] = {
    "resnet18_1d": _Entry(resnet18_1d, False, "layer3"),
    "mobilenetv2_1d": _Entry(mobilenetv2_1d, False, "features.17"),
    "efficientnetv2s_1d": _Entry(efficientnetv2s_1d, False, "features.6"),
    "resnet18": _Entry(resnet18_2d, True, "layer3"),
    "mobilenet_v2": _Entry(mobilenet_v2_2d, True, "features.17"),
    "efficientnet_v2_s": _Entry(efficientnet_v2_s_2d, True, "features.6"),
    "resnet1d_wang": _Entry(resnet1d_wang, False, "layer2", head="concat", dropout=0.5),
    "xresnet1d101": _Entry(xresnet1d101, False, "layer3", head="concat", dropout=0.5),
}


def list_models() -> list[str]:
    """Names accepted by ``create_model``."""
    return list(_MODELS)


class ECGClassifier(nn.Module):
    """backbone -> head (``ClassifierHead`` or ``ConcatPoolHead``), with named Grad-CAM target layers.

    1-D backbones take (B, leads, T). 2-D backbones take (B, leads, T), padded
    here to the one-channel image (B, 1, lead_rows, T), or that image directly.
    """

    def __init__(
        self,
        backbone: nn.Sequential,
        head: Head,
        *,
        name: str,
        in_channels: int,
        is_2d: bool,
        published_layer: str,
        lead_rows: int = 32,
        lead_pad: str = "below",
        memory_format: str = "contiguous",
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.name = name
        self.in_channels = in_channels
        self.is_2d = is_2d
        self.lead_rows = lead_rows
        self.lead_pad = lead_pad
        self.num_classes = head.num_classes
        self._published = published_layer
        self.memory_format = "contiguous"
        self.set_memory_format(memory_format)

    def set_memory_format(self, memory_format: str) -> "ECGClassifier":
        """Runs a 2-D backbone in ``memory_format`` ("contiguous" or "channels_last"); returns self.

        The 4-D conv weights are converted here and the input image in ``forward_features``, so
        every pass (training, scoring, evaluation, Grad-CAM) runs in it. A 1-D model ignores
        channels_last (its tensors are 3-D) and stays contiguous.
        """
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory_format={memory_format!r}: expected one of {', '.join(MEMORY_FORMATS)}")
        self.memory_format = memory_format if self.is_2d else "contiguous"
        return self.to(memory_format=MEMORY_FORMATS[self.memory_format])

    def _as_input(self, x: Tensor) -> Tensor:
        """Checks the input shape (and pads leads to an image for 2-D backbones) with a clear error."""
        if x.ndim == 3 and x.shape[1] == self.in_channels:
            if not self.is_2d:
                return x
            x = leads_to_image(x, self.lead_rows, self.lead_pad)
        elif not (self.is_2d and x.ndim == 4 and x.shape[1] == 1 and x.shape[2] == self.lead_rows):
            want = f"(B, {self.in_channels}, T)" + (f" or (B, 1, {self.lead_rows}, T)" if self.is_2d else "")
            raise ValueError(f"{self.name}: expected input of shape {want}, got {tuple(x.shape)}")
        return x.contiguous(memory_format=MEMORY_FORMATS[self.memory_format])

    def forward_features(self, x: Tensor) -> Tensor:
        """Last conv stage activation: (B, C, T') for 1-D, (B, C, H', T') for 2-D backbones."""
        return self.backbone(self._as_input(x))

    def forward_head(self, feats: Tensor) -> Tensor:
        return self.head(feats)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def _stage_names(self) -> list[str]:
        if hasattr(self.backbone, "features"):
            return [f"features.{i}" for i in range(len(self.backbone.features))]
        return [n for n, _ in self.backbone.named_children() if n.startswith("layer")]  # ResNets: layer1..

    def gradcam_layers(self) -> dict[str, nn.Module]:
        """Named Grad-CAM target layers, shallow to deep, plus the aliases "last" and "published"."""
        layers = {n: self.backbone.get_submodule(n) for n in self._stage_names()}
        layers["last"] = layers[self._stage_names()[-1]]
        layers["published"] = layers[self._published]
        return layers

    def get_layer(self, name: str) -> nn.Module:
        """A target layer by name: an entry of ``gradcam_layers()`` or any backbone submodule path."""
        layers = self.gradcam_layers()
        if name in layers:
            return layers[name]
        try:
            return self.backbone.get_submodule(name)
        except AttributeError:
            raise ValueError(
                f"{self.name} has no layer {name!r}; valid names: {', '.join(layers)} "
                "(or any submodule path of model.backbone, e.g. 'layer3.1.conv2')"
            ) from None


def create_model(
    name: str,
    in_channels: int,
    num_classes: int,
    *,
    dropout: Optional[float] = None,
    head: Optional[str] = None,
    head_hidden: int = 128,
    lead_rows: int = 32,
    lead_pad: str = "below",
    memory_format: str = "contiguous",
    **backbone_kwargs: Any,
) -> ECGClassifier:
    """Builds a registered model (randomly initialised; seed torch first for determinism).

    ``head`` and ``dropout`` default (None) to the model's own: ``linear`` and 0.0, except the
    PTB-XL benchmark's ``resnet1d_wang`` and ``xresnet1d101``: ``concat`` and 0.5, their reference
    head. (A run config passes its own ``head``/``dropout``, ``linear``/0.0 unless set.)

    ``memory_format`` ("contiguous" or "channels_last") is the layout a 2-D backbone runs in
    (``ECGClassifier.set_memory_format``); the run config's ``memory_format=auto`` picks it per
    device (``erts.train.builders.resolve_memory_format``).

    ``backbone_kwargs`` go to the backbone builder (e.g. ``stochastic_depth_prob``
    for the EfficientNets); an argument a builder does not take is a TypeError.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(_MODELS)}")
    if in_channels < 1:
        raise ValueError(f"in_channels={in_channels} must be >= 1")
    if lead_pad not in ("below", "center"):
        raise ValueError(f"lead_pad={lead_pad!r}: expected 'below' or 'center'")
    entry = _MODELS[name]
    if entry.is_2d and in_channels > lead_rows:
        raise ValueError(f"{name}: {in_channels} leads do not fit in lead_rows={lead_rows}")
    backbone, out_channels = entry.build(in_channels, **backbone_kwargs)
    head = entry.head if head is None else head
    dropout = entry.dropout if dropout is None else dropout
    return ECGClassifier(
        backbone,
        build_head(out_channels, num_classes, head, head_hidden, dropout),
        name=name,
        in_channels=in_channels,
        is_2d=entry.is_2d,
        published_layer=entry.published,
        lead_rows=lead_rows,
        lead_pad=lead_pad,
        memory_format=memory_format,
    )


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ECGClassifier", "ClassifierHead", "ConcatPoolHead", "HEADS", "MEMORY_FORMATS", "create_model", "list_models", "count_params"]
