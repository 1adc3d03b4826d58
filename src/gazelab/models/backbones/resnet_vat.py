"""The ResNet-50-like trunks of Chong et al. 2020 (scene and face), shared by VAT, PDP and GCDR's student.

Standard bottlenecks (expansion 4, stride on the 3x3) in stages [3, 4, 6, 3] plus a fifth stage ``layer5`` of
two stride-1 bottlenecks (planes 256) that brings 2048 channels down to 1024 at 7x7. Module names are those of
the released checkpoints (``conv1_scene``, ``layer3_face.2.bn1``, ...), so their weights load without renaming.

``width`` (the stem's channels, 64 in the published models) scales every stage; a narrow trunk keeps the real
geometry (224 px in, 7x7 out) at a fraction of the cost, for tests and synthetic-data runs.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2), (256, 2, 1))
"""(planes, blocks, stride) of layer1..layer5 at the published width."""
EXPANSION = 4
WIDTH = 64
"""The published stem width; every channel count of the Chong models is proportional to it."""


def scaled(channels: int, width: int) -> int:
    """``channels`` of the published model at stem width ``width``."""
    return channels * width // WIDTH


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 with a residual.

    ``extra_bn`` adds the ``bn_ds`` BatchNorm of the ConvLSTM-era checkpoints: the reference applies it once
    more after the downsample branch (whose own BatchNorm stays), and carries an unused one in blocks without
    a downsample — kept so those files load strictly.
    """

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: bool, extra_bn: bool) -> None:
        super().__init__()
        out = planes * EXPANSION
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = (
            nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
            if downsample
            else None
        )
        self.bn_ds = nn.BatchNorm2d(out) if extra_bn else None

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.downsample is None:
            return F.relu(y + x)
        residual = self.downsample(x)
        return F.relu(y + (residual if self.bn_ds is None else self.bn_ds(residual)))


def make_stages(
    in_channels: int, extra_bn: bool, width: int = WIDTH
) -> tuple[nn.Module, nn.BatchNorm2d, list[nn.Sequential]]:
    """Stem conv (7x7, stride 2) for ``in_channels``, its BatchNorm, and layer1..layer5."""
    conv = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
    stages = []
    inplanes = width
    for base_planes, blocks, stride in STAGES:
        planes = scaled(base_planes, width)
        layers = []
        for index in range(blocks):
            downsample = index == 0 and (stride != 1 or inplanes != planes * EXPANSION)
            layers.append(Bottleneck(inplanes, planes, stride if index == 0 else 1, downsample, extra_bn))
            inplanes = planes * EXPANSION
        stages.append(nn.Sequential(*layers))
    return conv, nn.BatchNorm2d(width), stages


class ChongTrunks(nn.Module):
    """Scene trunk (on image + extra channels) and face trunk; both end at 1024x7x7 for 224 px inputs
    (``16 * width`` channels in general).

    Subclasses are the model classes themselves, so parameter names stay flat as in the checkpoints.
    """

    def __init__(self, scene_channels: int, extra_bn: bool = False, width: int = WIDTH) -> None:
        super().__init__()
        self.width = width
        for part, channels in (("scene", scene_channels), ("face", 3)):
            conv, bn, stages = make_stages(channels, extra_bn, width)
            setattr(self, f"conv1_{part}", conv)
            setattr(self, f"bn1_{part}", bn)
            for number, stage in enumerate(stages, start=1):
                setattr(self, f"layer{number}_{part}", stage)

    def trunk(self, part: str, x: Tensor) -> Tensor:
        """Run the ``scene`` or ``face`` trunk."""
        x = F.relu(getattr(self, f"bn1_{part}")(getattr(self, f"conv1_{part}")(x)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        for number in range(1, 6):
            x = getattr(self, f"layer{number}_{part}")(x)
        return x

    @property
    def backbone(self) -> nn.ModuleDict:
        """Both trunks as one module (to freeze or count them); built on access, so parameter names stay flat."""
        parts = [f"{kind}_{part}" for part in ("scene", "face") for kind in ("conv1", "bn1")]
        parts += [f"layer{number}_{part}" for part in ("scene", "face") for number in range(1, 6)]
        return nn.ModuleDict({name: getattr(self, name) for name in parts})
