"""ResNet-18 over time: torchvision's ResNet-18 with every k x k conv turned into a k-tap Conv1d.

Same structure as ``torchvision.models.resnet18``: a 7-tap stride-2 stem, a
stride-2 max-pool, four stages of two BasicBlocks with 64/128/256/512 channels
(stride 1/2/2/2, 1x1 projection shortcuts where the shape changes), ReLU and
BatchNorm, kaiming fan-out init. Leads are the input channels. Total
downsampling is 32 (1000 samples -> 32 time steps at ``layer4``).
"""
from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn


class BasicBlock1d(nn.Module):
    """conv3-bn-relu-conv3-bn plus shortcut, then ReLU (torchvision's BasicBlock in 1-D)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv1d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv1d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm1d(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock1d(inplanes, planes, stride), *[BasicBlock1d(planes, planes) for _ in range(blocks - 1)])


def resnet18_1d(in_channels: int) -> tuple[nn.Sequential, int]:
    """Returns (backbone ending at ``layer4``, its output channels = 512)."""
    backbone = nn.Sequential(OrderedDict(
        conv1=nn.Conv1d(in_channels, 64, 7, stride=2, padding=3, bias=False),
        bn1=nn.BatchNorm1d(64),
        relu=nn.ReLU(inplace=True),
        maxpool=nn.MaxPool1d(3, stride=2, padding=1),
        layer1=_stage(64, 64, 2, 1),
        layer2=_stage(64, 128, 2, 2),
        layer3=_stage(128, 256, 2, 2),
        layer4=_stage(256, 512, 2, 2),
    ))
    for m in backbone.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return backbone, 512
