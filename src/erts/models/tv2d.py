"""The paper's 2-D backbones, built from torchvision (weights=None, trained from scratch).

The record (B, leads, T) is fed as a one-channel image (B, 1, lead_rows, T):
the leads are rows, zero-padded to ``lead_rows`` (32) rows, below (default) or
centred as the published code does (``lead_pad=center``); the stem conv is replaced by a one-channel conv with the
same kernel, stride and padding. Only the convolutional feature extractor is
kept (no pooling, no classifier): the ECGClassifier head does the rest.

The backbones are built contiguous; ``ECGClassifier.set_memory_format("channels_last")``
converts them and their input image (run setting ``memory_format``, docs/models.md).
"""
from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models


def one_channel_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of ``conv``'s geometry taking one input channel (the ECG image), torchvision-initialised."""
    new = nn.Conv2d(1, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding, bias=conv.bias is not None)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    return new


def leads_to_image(x: Tensor, lead_rows: int, pad: str = "below") -> Tensor:
    """(B, leads, T) -> (B, 1, lead_rows, T): leads as rows, zero rows appended below, or split
    above and below (``pad="center"``, the published 12 -> 10 + 12 + 10 rows)."""
    if x.shape[1] > lead_rows:
        raise ValueError(f"{x.shape[1]} leads do not fit in lead_rows={lead_rows}; raise lead_rows")
    extra = lead_rows - x.shape[1]
    top = extra // 2 if pad == "center" else 0
    return F.pad(x, (0, 0, top, extra - top)).unsqueeze(1)


def resnet18_2d(in_channels: int) -> tuple[nn.Sequential, int]:
    """torchvision ResNet-18 up to ``layer4`` (512 channels, 32x downsampling on both axes)."""
    m = models.resnet18(weights=None)
    backbone = nn.Sequential(OrderedDict(
        conv1=one_channel_conv(m.conv1), bn1=m.bn1, relu=m.relu, maxpool=m.maxpool,
        layer1=m.layer1, layer2=m.layer2, layer3=m.layer3, layer4=m.layer4,
    ))
    return backbone, 512


def _features_backbone(features: nn.Sequential) -> nn.Sequential:
    features[0][0] = one_channel_conv(features[0][0])
    return nn.Sequential(OrderedDict(features=features))


def mobilenet_v2_2d(in_channels: int) -> tuple[nn.Sequential, int]:
    """torchvision MobileNetV2 ``features`` (19 entries, ending at the 1x1 conv to 1280 channels)."""
    return _features_backbone(models.mobilenet_v2(weights=None).features), 1280


def efficientnet_v2_s_2d(in_channels: int, stochastic_depth_prob: float = 0.2) -> tuple[nn.Sequential, int]:
    """torchvision EfficientNetV2-S ``features`` (8 entries, ending at the 1x1 conv to 1280 channels)."""
    m = models.efficientnet_v2_s(weights=None, stochastic_depth_prob=stochastic_depth_prob)
    return _features_backbone(m.features), 1280
