"""MobileNetV2 over time: torchvision's MobileNetV2 with every k x k conv turned into a k-tap Conv1d.

Same structure as ``torchvision.models.mobilenet_v2`` (width 1.0): a 32-channel
3-tap stride-2 stem, 17 inverted-residual blocks with the (t, c, n, s) table
below (expansion t, depthwise 3-tap conv, linear 1x1 projection, residual when
stride 1 and shapes match), a final 1x1 conv to 1280 channels, ReLU6,
BatchNorm, kaiming fan-out init. ``features`` has 19 entries: 0 = stem,
1..17 = blocks, 18 = final 1x1 conv. Total downsampling is 32.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

from torch import Tensor, nn

# t (expansion), c (channels), n (blocks), s (stride of the first block): torchvision's table
INVERTED_RESIDUAL_SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


def conv_bn_act(
    cin: int,
    cout: int,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
    act: Optional[Callable[..., nn.Module]] = nn.ReLU6,
    bn_eps: float = 1e-5,
) -> nn.Sequential:
    """Conv1d (same padding, no bias) -> BatchNorm1d -> activation: torchvision's Conv2dNormActivation in 1-D."""
    layers: list[nn.Module] = [
        nn.Conv1d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm1d(cout, eps=bn_eps),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


def init_conv_bn(module: nn.Module, mode: str = "fan_out") -> None:
    """torchvision's init for these families: kaiming convs (fan-out; the PTB-XL benchmark's
    ``weight_init`` is fan-in), unit/zero BatchNorm."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.kaiming_normal_(m.weight, mode=mode)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class InvertedResidual1d(nn.Module):
    """1x1 expand (skipped when t = 1) -> 3-tap depthwise -> linear 1x1 project, residual if shapes match."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(inp, hidden, kernel=1))
        layers += [
            conv_bn_act(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv1d(hidden, oup, 1, bias=False),
            nn.BatchNorm1d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenetv2_1d(in_channels: int) -> tuple[nn.Sequential, int]:
    """Returns (backbone whose ``features`` end at the 1x1 conv to 1280 channels, 1280)."""
    cin, last = 32, 1280
    features: list[nn.Module] = [conv_bn_act(in_channels, cin, stride=2)]
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        for i in range(n):
            features.append(InvertedResidual1d(cin, c, s if i == 0 else 1, t))
            cin = c
    features.append(conv_bn_act(cin, last, kernel=1))
    backbone = nn.Sequential(OrderedDict(features=nn.Sequential(*features)))
    init_conv_bn(backbone)
    return backbone, last
