"""EfficientNetV2-S over time: torchvision's EfficientNetV2-S with every k x k conv turned into a k-tap Conv1d.

Same structure as ``torchvision.models.efficientnet_v2_s``: a 24-channel 3-tap
stride-2 stem, six stages (three of Fused-MBConv, three of MBConv with
squeeze-and-excitation) with the table below, a final 1x1 conv to 1280
channels, SiLU, BatchNorm(eps=1e-3), stochastic depth rising linearly to
``stochastic_depth_prob`` (0.2 as in torchvision) over the 39 blocks, kaiming
fan-out init. ``features`` has 8 entries: 0 = stem, 1..6 = stages, 7 = final
1x1 conv. Total downsampling is 32.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from erts.models.mobilenet1d import conv_bn_act, init_conv_bn

# (block, expand_ratio, kernel, stride, in_channels, out_channels, num_layers): torchvision's efficientnet_v2_s table
STAGES = [
    ("fused", 1, 3, 1, 24, 24, 2),
    ("fused", 4, 3, 2, 24, 48, 4),
    ("fused", 4, 3, 2, 48, 64, 4),
    ("mb", 4, 3, 2, 64, 128, 6),
    ("mb", 6, 3, 1, 128, 160, 9),
    ("mb", 6, 3, 2, 160, 256, 15),
]
BN_EPS = 1e-3
_cba = partial(conv_bn_act, act=nn.SiLU, bn_eps=BN_EPS)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Rounds channels to a multiple of 8, never more than 10 % down (torchvision's _make_divisible)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class SqueezeExcitation1d(nn.Module):
    """Channel gate: mean over time -> 1x1 conv -> SiLU -> 1x1 conv -> sigmoid -> scale."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv1d(channels, squeeze, 1)
        self.fc2 = nn.Conv1d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = self.fc2(self.activation(self.fc1(x.mean(-1, keepdim=True))))
        return x * self.scale_activation(s)


class StochasticResidual(nn.Module):
    """block(x), plus x with stochastic depth when the shapes allow a residual (torchvision's MBConv rule)."""

    def __init__(self, block: nn.Sequential, residual: bool, sd_prob: float):
        super().__init__()
        self.block = block
        self.use_res_connect = residual
        self.stochastic_depth = StochasticDepth(sd_prob, "row")

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + self.stochastic_depth(out) if self.use_res_connect else out


def mbconv1d(expand: float, kernel: int, stride: int, cin: int, cout: int, sd_prob: float) -> StochasticResidual:
    """1x1 expand -> depthwise k-tap -> SE -> linear 1x1 project, stochastic-depth residual."""
    hidden = make_divisible(cin * expand)
    layers: list[nn.Module] = [_cba(cin, hidden, kernel=1)] if hidden != cin else []
    layers += [
        _cba(hidden, hidden, kernel=kernel, stride=stride, groups=hidden),
        SqueezeExcitation1d(hidden, max(1, cin // 4)),
        _cba(hidden, cout, kernel=1, act=None),
    ]
    return StochasticResidual(nn.Sequential(*layers), stride == 1 and cin == cout, sd_prob)


def fused_mbconv1d(expand: float, kernel: int, stride: int, cin: int, cout: int, sd_prob: float) -> StochasticResidual:
    """k-tap expand conv (replaces 1x1 expand + depthwise) -> linear 1x1 project, stochastic-depth residual."""
    hidden = make_divisible(cin * expand)
    if hidden != cin:
        layers = [_cba(cin, hidden, kernel=kernel, stride=stride), _cba(hidden, cout, kernel=1, act=None)]
    else:
        layers = [_cba(cin, cout, kernel=kernel, stride=stride)]
    return StochasticResidual(nn.Sequential(*layers), stride == 1 and cin == cout, sd_prob)


def efficientnetv2s_1d(in_channels: int, stochastic_depth_prob: float = 0.2) -> tuple[nn.Sequential, int]:
    """Returns (backbone whose ``features`` end at the 1x1 conv to 1280 channels, 1280)."""
    last = 1280
    total = sum(s[-1] for s in STAGES)
    features: list[nn.Module] = [_cba(in_channels, STAGES[0][4], stride=2)]
    block_id = 0
    for kind, expand, kernel, stride, cin, cout, n in STAGES:
        cls = fused_mbconv1d if kind == "fused" else mbconv1d
        stage = []
        for i in range(n):
            sd = stochastic_depth_prob * block_id / total
            stage.append(cls(expand, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout, sd))
            block_id += 1
        features.append(nn.Sequential(*stage))
    features.append(_cba(STAGES[-1][5], last, kernel=1))
    backbone = nn.Sequential(OrderedDict(features=nn.Sequential(*features)))
    init_conv_bn(backbone)
    return backbone, last
