"""XResNet-101 over time, as the PTB-XL benchmark builds it: ``xresnet1d101``.

The "bag of tricks" ResNet (He et al. 2019; fastai's XResNet) in 1-D, following
Strodthoff et al. 2021, ``code/models/xresnet1d.py`` (``xresnet1d101`` =
expansion 4, blocks [3, 4, 23, 3]) with the arguments its ``fastai_model`` passes:

- stem (ResNet-C): three 5-tap conv-BN-ReLU, 12 -> 32 (stride 2) -> 32 -> 64,
  then a 3-tap stride-2 max-pool;
- bottleneck blocks: 1x1 -> 5-tap (carries the stride, ResNet-B) -> 1x1 x4,
  the last without ReLU; ReLU after the sum;
- shortcut (ResNet-D): a 2-wide average pool (ceil mode) when strided, then
  1x1 conv + BN where the channels change (only the very first block);
- every stage is 64 wide (256 channels out): the benchmark's widths (its
  ``block_szs = [64, 64, 64, 64]``), not the 64/128/256/512 of the image XResNet.

Total downsampling is 32 (250 samples -> 8 time steps at ``layer4``).
"""
from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from erts.models.mobilenet1d import conv_bn_act, init_conv_bn

EXPANSION = 4
WIDTH = 64  # bottleneck width of every stage
KERNEL = 5  # fastai_model's kernel_size: the stem convs and each block's middle conv


class XBottleneck1d(nn.Module):
    """``convs`` (1x1, k-tap with the stride, 1x1 to 4x width, no ReLU) + ``shortcut``, then ReLU."""

    def __init__(self, cin: int, width: int, stride: int, kernel: int = KERNEL):
        super().__init__()
        cout = width * EXPANSION
        self.convs = nn.Sequential(
            conv_bn_act(cin, width, 1, act=nn.ReLU),
            conv_bn_act(width, width, kernel, stride=stride, act=nn.ReLU),
            conv_bn_act(width, cout, 1, act=None),
        )
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool1d(2, ceil_mode=True))
        if cin != cout:
            shortcut.append(conv_bn_act(cin, cout, 1, act=None))
        self.shortcut = nn.Sequential(*shortcut)  # empty: the identity
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


def _xresnet1d(in_channels: int, layers: list[int], zero_init_residual: bool) -> tuple[nn.Sequential, int]:
    stem_widths = [in_channels, 32, 32, 64]
    stem = nn.Sequential(*[conv_bn_act(stem_widths[i], stem_widths[i + 1], KERNEL, stride=2 if i == 0 else 1, act=nn.ReLU)
                           for i in range(3)])
    stages: "OrderedDict[str, nn.Module]" = OrderedDict()
    cin = stem_widths[-1]
    for i, n in enumerate(layers):
        blocks = [XBottleneck1d(cin if j == 0 else WIDTH * EXPANSION, WIDTH, (1 if i == 0 else 2) if j == 0 else 1)
                  for j in range(n)]
        stages[f"layer{i + 1}"] = nn.Sequential(*blocks)
        cin = WIDTH * EXPANSION
    backbone = nn.Sequential(OrderedDict(stem=stem, maxpool=nn.MaxPool1d(3, stride=2, padding=1), **stages))
    init_conv_bn(backbone, mode="fan_in")
    if zero_init_residual:
        for m in backbone.modules():
            if isinstance(m, XBottleneck1d):
                nn.init.zeros_(m.convs[-1][1].weight)
    return backbone, cin


def xresnet1d101(in_channels: int, zero_init_residual: bool = False) -> tuple[nn.Sequential, int]:
    """Returns (backbone ending at ``layer4``, 256).

    Init: the benchmark's ``weight_init`` (kaiming fan-in convs, unit/zero BatchNorm), which
    ``fastai_model.fit`` applies over the XResNet's own init, so every block's last BN starts at
    1. ``zero_init_residual=True`` restores the XResNet constructor's zero gamma there (each block
    starts as the identity), the bag-of-tricks init the benchmark's training did not use.
    """
    return _xresnet1d(in_channels, [3, 4, 23, 3], zero_init_residual)
