"""ResNets over time: ``resnet18_1d`` (torchvision's ResNet-18 in 1-D) and ``resnet1d_wang``.

``resnet18_1d``: the structure of ``torchvision.models.resnet18`` with every
k x k conv turned into a k-tap Conv1d: a 7-tap stride-2 stem, a stride-2
max-pool, four stages of two BasicBlocks with 64/128/256/512 channels (stride
1/2/2/2, 1x1 projection shortcuts where the shape changes), ReLU and
BatchNorm, kaiming fan-out init. Leads are the input channels. Total
downsampling is 32 (1000 samples -> 32 time steps at ``layer4``).

``resnet1d_wang``: the PTB-XL benchmark's ResNet (Strodthoff et al. 2021,
``code/models/resnet1d.py``: ``resnet1d_wang``, after Wang et al. 2017) as
its ``fastai_model`` builds it: a 7-tap stride-1 stem to 128 channels, no
max-pool, three stages of one BasicBlock each (5-tap then 3-tap convs, 128
channels throughout, stride 1/2/2). Total downsampling is 4.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from erts.models.mobilenet1d import init_conv_bn


class BasicBlock1d(nn.Module):
    """conv-bn-relu-conv-bn plus shortcut, then ReLU (torchvision's BasicBlock in 1-D).

    ``kernels``: the taps of the two convs (3, 3 in torchvision; 5, 3 in the PTB-XL benchmark).
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, kernels: tuple[int, int] = (3, 3)):
        super().__init__()
        k1, k2 = kernels
        self.conv1 = nn.Conv1d(inplanes, planes, k1, stride=stride, padding=(k1 - 1) // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(planes, planes, k2, padding=(k2 - 1) // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv1d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm1d(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _stage(inplanes: int, planes: int, blocks: int, stride: int, kernels: tuple[int, int] = (3, 3)) -> nn.Sequential:
    return nn.Sequential(BasicBlock1d(inplanes, planes, stride, kernels),
                         *[BasicBlock1d(planes, planes, kernels=kernels) for _ in range(blocks - 1)])


def _stem(in_channels: int, width: int, kernel: int, stride: int) -> "OrderedDict[str, nn.Module]":
    return OrderedDict(conv1=nn.Conv1d(in_channels, width, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False),
                       bn1=nn.BatchNorm1d(width), relu=nn.ReLU(inplace=True))


def resnet18_1d(in_channels: int) -> tuple[nn.Sequential, int]:
    """Returns (backbone ending at ``layer4``, its output channels = 512)."""
    backbone = nn.Sequential(OrderedDict(
        **_stem(in_channels, 64, 7, 2),
        maxpool=nn.MaxPool1d(3, stride=2, padding=1),
        layer1=_stage(64, 64, 2, 1),
        layer2=_stage(64, 128, 2, 2),
        layer3=_stage(128, 256, 2, 2),
        layer4=_stage(256, 512, 2, 2),
    ))
    init_conv_bn(backbone)
    return backbone, 512


def resnet1d_wang(in_channels: int) -> tuple[nn.Sequential, int]:
    """Returns (backbone ending at ``layer3``, 128): the PTB-XL benchmark's ``resnet1d_wang``.

    Why these numbers: ``fastai_model`` passes ``kernel_size=5`` (-> taps 5, 3 in each block) and
    ``resnet1d_wang`` sets a 7-tap stride-1 stem, no stem pooling, ``inplanes=128`` and blocks
    [1, 1, 1] with the default ``fix_feature_dim=True`` (every stage 128 wide). Init: the
    benchmark's ``weight_init`` (kaiming fan-in convs, unit/zero BatchNorm).
    """
    width, kernels = 128, (5, 3)
    backbone = nn.Sequential(OrderedDict(
        **_stem(in_channels, width, 7, 1),
        layer1=_stage(width, width, 1, 1, kernels),
        layer2=_stage(width, width, 1, 2, kernels),
        layer3=_stage(width, width, 1, 2, kernels),
    ))
    init_conv_bn(backbone, mode="fan_in")
    return backbone, width
