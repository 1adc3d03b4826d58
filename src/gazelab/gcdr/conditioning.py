"""What the heatmap diffusion model is conditioned on: the person's scene encoding as one context map per UNet level.

GCDR encodes (image, head channel, face crop) with the VAT spatial model's encoder — scene and face trunks plus
the head-position attention, up to the 2048x7x7 attended encoding, initialised from VAT weights and trained end
to end — and turns it into a pyramid: Conv1x1 (no bias) BN ReLU to the deepest level's width, nearest resize
7x7 -> 8x8, then ConvTranspose 2x2/2 + BN + ReLU per level up to 64x64. The UNet adds ``context[l]`` inside every
ResBlock of level ``l``.

The VAT encoder is the trunk code of :mod:`gazelab.models.vat` (the same modules and parameter names, without
the heatmap decoder and in/out branch, which GCDR's feature extractor does not have). A small CNN encoder
stands in for it in tests and on synthetic data, where two ResNet-50s would only cost time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from gazelab.data.targets import head_channel
from gazelab.models.backbones.resnet_vat import ChongTrunks
from gazelab.models.gaze_field import FIELD_GAMMAS, HeadCropDirection, gaze_field
from gazelab.models.gazelle import IMAGENET_MEAN, IMAGENET_STD
from gazelab.models.vat import CELLS, INPUT_SIZE, ChongModel, expand_heads
from gazelab.train.losses import heatmap_centre_of_mass

FEATURES = 2048
"""Width of the VAT attended encoding (1024 attended scene + 1024 face channels)."""


class VATEncoder(ChongTrunks):
    """VAT spatial encoder: scene trunk on image + head channel, face trunk, head-position attention."""

    def __init__(self) -> None:
        super().__init__(scene_channels=4)
        self.attn = nn.Linear(784 + 1024, CELLS * CELLS)

    # The very attention code of the VAT model (it only uses ``trunk`` and ``attn``, which this class has).
    attended_features = ChongModel.attended_features

    def forward(self, scene: Tensor, head: Tensor, face: Tensor) -> Tensor:
        """scene [N, 3, 224, 224], head [N, 1, 224, 224], face [N, 3, 224, 224] -> [N, 2048, 7, 7]."""
        features, _ = self.attended_features(scene, head, face)
        return features


class SimpleEncoder(nn.Module):
    """A few strided convolutions on image + head channel, pooled to 7x7 (tests, synthetic data).

    With ``direction``, the face crop also enters, as in the VAT encoder's face pathway: a small CNN
    (:class:`~gazelab.models.gaze_field.HeadCropDirection`) reads a 2-D gaze direction from it, and the gaze field
    it casts from the head (:func:`~gazelab.models.gaze_field.gaze_field`, three sharpnesses) joins the input
    channels. Without it the encoder cannot tell which object a person faces (a synthetic head is a few pixels
    wide in the 64 px scene), so the denoiser can only sharpen the prior where it is; the direction is trained by
    an auxiliary angular loss (:meth:`gaze_direction`, used by :class:`~gazelab.gcdr.lightning.DiffusionModule`).

    With ``guide``, a supervised gaze model's heatmap of the person is one more input channel
    (:mod:`gazelab.gcdr.guide`).
    """

    def __init__(self, channels: int = 64, layers: int = 4, direction: bool = False, guide: bool = False) -> None:
        super().__init__()
        self.direction = HeadCropDirection() if direction else None
        self.guide = guide
        self.in_channels = width = 4 + (len(FIELD_GAMMAS) if direction else 0) + int(guide)
        blocks: list[nn.Module] = []
        for i in range(layers):
            out = channels if i == layers - 1 else max(16, channels // 2 ** (layers - 1 - i))
            blocks += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            width = out
        self.net = nn.Sequential(*blocks)

    def gaze_direction(self, face: Tensor) -> Tensor | None:
        """Unit 2-D gaze directions [N, 2] read from the face crops (None without the direction branch)."""
        return None if self.direction is None else self.direction(face)

    def stack(self, scene: Tensor, head: Tensor, face: Tensor, guide: Tensor | None = None) -> Tensor:
        """The encoder's input channels at ``input_size``: scene, head channel (the gaze field, the guide map)."""
        if self.guide != (guide is not None):
            raise ValueError("this encoder needs a guide map" if self.guide else "this encoder takes no guide map")
        inputs = [scene, head]
        if self.direction is not None:
            # Detached: the direction learns from its own angular loss only. The denoising loss, reaching it through
            # the field, swamps that signal (measured: 78 deg median error on the training people, vs 11 deg held
            # out with the angular loss alone).
            inputs.append(_field_from_head(head, self.direction(face).detach()))
        if guide is not None:
            inputs.append(F.interpolate(guide.to(scene.dtype), size=scene.shape[-2:], mode="bilinear"))
        return torch.cat(inputs, dim=1)

    def encode(self, stack: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.net(stack), CELLS)

    def forward(self, scene: Tensor, head: Tensor, face: Tensor, guide: Tensor | None = None) -> Tensor:
        return self.encode(self.stack(scene, head, face, guide))


def _field_from_head(head: Tensor, direction: Tensor) -> Tensor:
    """The gaze field [N, 3, S, S] cast from the centre of each binary head channel [N, 1, S, S]."""
    size = head.shape[-1]
    centre = heatmap_centre_of_mass(head[:, 0]).to(direction.dtype)
    return gaze_field(centre.repeat(1, 2), direction, size, size, FIELD_GAMMAS)


class ContextEncoder(nn.Module):
    """Encoder + pyramid: prepared inputs -> context maps, finest level first (``[N, widths[l], 64/2**l, ...]``).

    Pyramid parameter names are the official ones (``compress_conv1``, ``upsample_2``, ``upsample2_bn`` ...).
    """

    def __init__(
        self, encoder: nn.Module, features: int, widths: Sequence[int], size: int = 64, fine: bool = False
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.levels = len(widths)
        self.base = size // 2 ** (self.levels - 1)
        self.compress_conv1 = nn.Conv2d(features, widths[-1], 1, bias=False)
        self.compress_bn1 = nn.BatchNorm2d(widths[-1])
        for level in reversed(range(self.levels - 1)):
            setattr(self, f"upsample_{level}", nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
            setattr(self, f"upsample{level}_bn", nn.BatchNorm2d(widths[level]))
        self.fine: nn.ModuleList | None = None
        if fine:
            self.fine = nn.ModuleList(nn.Conv2d(encoder.in_channels, width, 3, padding=1) for width in widths)

    def forward(self, scene: Tensor, head: Tensor, face: Tensor, guide: Tensor | None = None) -> list[Tensor]:
        """``guide`` [N, 1, h, w]: the guide model's heatmaps, for an encoder built with one."""
        extra = {} if guide is None else {"guide": guide}
        if self.fine is None:
            features = self.encoder(scene, head, face, **extra)
        else:
            stack = self.encoder.stack(scene, head, face, **extra)
            features = self.encoder.encode(stack)
        x = F.relu(self.compress_bn1(self.compress_conv1(features)))
        maps = [F.interpolate(x, size=(self.base, self.base), mode="nearest")]
        for level in reversed(range(self.levels - 1)):
            up = getattr(self, f"upsample_{level}")
            maps.insert(0, F.relu(getattr(self, f"upsample{level}_bn")(up(maps[0]))))
        if self.fine is not None:
            maps = [m + conv(F.adaptive_avg_pool2d(stack, m.shape[-2:])) for m, conv in zip(maps, self.fine)]
        return maps


def _normalise(picture: Tensor, size: int) -> Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=picture.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=picture.device)[:, None, None]
    resized = TF.resize(picture, [size, size], antialias=True)
    return (resized.float() / 255 - mean) / std


def prepare_inputs(images: Tensor | Sequence[Tensor], boxes: Tensor, size: int = INPUT_SIZE) -> dict[str, Tensor]:
    """uint8 pictures [3, H, W] (one per person) and normalized head boxes [N, 4] -> the encoder's inputs.

    As the VAT model prepares them (GCDR reads data with Chong's loaders): the box widened by 10% per side
    (:func:`~gazelab.models.vat.expand_heads`), ``scene`` resized to ``size`` and ImageNet-normalised, the binary
    ``head`` channel, and the head crop as ``face`` (zero-padded outside the picture; the whole picture when the
    box is NaN).
    """
    widened = expand_heads(boxes.detach().cpu().to(torch.float64))
    scenes, faces = [], []
    for picture, box in zip(images, widened.tolist(), strict=True):
        height, width = picture.shape[-2:]
        scenes.append(_normalise(picture, size))
        if box[0] == box[0]:  # not NaN
            x1, y1 = int(box[0] * width), int(box[1] * height)
            x2, y2 = max(int(box[2] * width), x1 + 1), max(int(box[3] * height), y1 + 1)
            picture = TF.crop(picture, y1, x1, y2 - y1, x2 - x1)
        faces.append(_normalise(picture, size))
    head = head_channel(widened, size)[:, None]
    device = boxes.device
    return {"scene": torch.stack(scenes).to(device), "head": head.to(device), "face": torch.stack(faces).to(device)}
