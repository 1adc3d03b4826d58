"""Chong et al. 2020, "Detecting Attended Visual Targets in Video" (VAT): spatial and spatio-temporal models.

Each person is a scene trunk over ``cat(image, head channel)`` and a face trunk over the head crop; a
softmax attention over the 7x7 scene cells (from the 3x max-pooled head channel and the pooled face feature)
weights the scene features, which are concatenated with the face features and decoded into a raw 64x64
heatmap (MSE target, no sigmoid) and an in/out logit. The spatio-temporal model runs a 2-layer ConvLSTM on
the 512x7x7 encoding before the heatmap decoder. Parameter names are those of the released ``.pt`` files.

Because the scene trunk sees the person's head channel, nothing can be shared between people of one image:
:meth:`encode` passes the prepared images through and :meth:`decode` runs everything per person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from gazelab.data.targets import head_channel
from gazelab.models.backbones.resnet_vat import ChongTrunks
from gazelab.models.base import GazeModel, GazeOutput, ImageLike, People, image_tensor
from gazelab.models.convlstm import ConvLSTM, State
from gazelab.models.gazelle import IMAGENET_MEAN, IMAGENET_STD

INPUT_SIZE = 224
CELLS = 7


class ChongOutput(NamedTuple):
    """The reference forward's outputs."""

    heatmap: Tensor
    """[N, 1, 64, 64] raw (MSE-trained, unbounded)."""
    attention: Tensor
    """[N, 1, 7, 7] softmax weights over the scene cells."""
    inout_logit: Tensor
    """[N, 1]; positive means "looking inside the frame"."""


def _bn_relu(bn: nn.Module, x: Tensor) -> Tensor:
    return F.relu(bn(x))


class ChongModel(GazeModel, ChongTrunks):
    """Shared preprocessing, attention and heatmap decoder of the Chong-style families (VAT, PDP)."""

    has_inout = True

    def __init__(self, scene_channels: int, attention_inputs: int, extra_bn: bool = False) -> None:
        super().__init__(scene_channels, extra_bn)
        self.attn = nn.Linear(attention_inputs, CELLS * CELLS)
        self.compress_conv1 = nn.Conv2d(2048, 1024, 1, bias=False)
        self.compress_bn1 = nn.BatchNorm2d(1024)
        self.compress_conv2 = nn.Conv2d(1024, 512, 1, bias=False)
        self.compress_bn2 = nn.BatchNorm2d(512)
        self.deconv1 = nn.ConvTranspose2d(512, 256, 3, stride=2)
        self.deconv_bn1 = nn.BatchNorm2d(256)
        self.deconv2 = nn.ConvTranspose2d(256, 128, 3, stride=2)
        self.deconv_bn2 = nn.BatchNorm2d(128)
        self.deconv3 = nn.ConvTranspose2d(128, 1, 4, stride=2)
        self.deconv_bn3 = nn.BatchNorm2d(1)
        self.conv4 = nn.Conv2d(1, 1, 1)

    def prepare_images(self, images: Sequence[ImageLike] | Tensor) -> Tensor:
        """224 px (antialiased bilinear, aspect ratio not kept, as the reference's ``Resize``), ImageNet-normalised."""
        prepared = [self._normalise(image_tensor(image)) for image in images]
        return torch.stack(prepared) if prepared else torch.empty(0, 3, INPUT_SIZE, INPUT_SIZE, device=self.device)

    def prepare_people(self, boxes: Tensor, image_index: Tensor, images: Sequence[ImageLike] | Tensor) -> People:
        """Adds ``head_channel`` [P, 1, 224, 224] and ``faces`` [P, 3, 224, 224] (the head crop, normalised).

        A person without a box gets an empty head channel and the whole picture as "face", the only crop that
        assumes nothing about where the head is.
        """
        people = super().prepare_people(boxes, image_index, images)
        people.extras["head_channel"] = head_channel(boxes.cpu(), INPUT_SIZE)[:, None].to(self.device)
        faces = []
        for box, index in zip(boxes.tolist(), image_index.tolist(), strict=True):
            picture = image_tensor(images[index])
            height, width = picture.shape[-2:]
            if box[0] == box[0]:  # not NaN
                x1 = min(max(int(box[0] * width), 0), width - 1)
                y1 = min(max(int(box[1] * height), 0), height - 1)
                x2, y2 = max(int(box[2] * width), x1 + 1), max(int(box[3] * height), y1 + 1)  # at least 1 pixel
                picture = picture[:, y1:y2, x1:x2]
            faces.append(self._normalise(picture))
        empty = torch.empty(0, 3, INPUT_SIZE, INPUT_SIZE, device=self.device)
        people.extras["faces"] = torch.stack(faces) if faces else empty
        return people

    def _normalise(self, picture: Tensor) -> Tensor:
        mean = torch.tensor(IMAGENET_MEAN, device=self.device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=self.device)[:, None, None]
        resized = TF.resize(picture.to(self.device), [INPUT_SIZE, INPUT_SIZE], antialias=True)
        return (resized.float() / 255 - mean) / std

    def encode(self, images: Tensor) -> Tensor:
        """The prepared images themselves: the scene trunk needs each person's head channel."""
        return images

    def attended_features(
        self, scene: Tensor, head: Tensor, face: Tensor, extra: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Scene trunk on ``cat(scene, extra, head)``, face trunk, attention -> (2048x7x7 features, attention).

        ``extra`` is PDP's depth channel: it enters the scene stem and, max-pooled, the attention input.
        """
        face_feat = self.trunk("face", face)
        pooled = [head] if extra is None else [head, extra]
        for _ in range(3):
            pooled = [F.max_pool2d(p, 3, stride=2, padding=1) for p in pooled]
        face_vector = F.avg_pool2d(face_feat, CELLS, stride=1).flatten(1)
        logits = self.attn(torch.cat([p.flatten(1) for p in pooled] + [face_vector], dim=1))
        attention = logits.softmax(dim=1).view(-1, 1, CELLS, CELLS)
        stem_input = [scene, head] if extra is None else [scene, extra, head]
        scene_feat = self.trunk("scene", torch.cat(stem_input, dim=1))
        return torch.cat([attention * scene_feat, face_feat], dim=1), attention

    def compress(self, features: Tensor) -> Tensor:
        """2048x7x7 -> the 512x7x7 encoding."""
        x = _bn_relu(self.compress_bn1, self.compress_conv1(features))
        return _bn_relu(self.compress_bn2, self.compress_conv2(x))

    def decode_heatmap(self, encoding: Tensor) -> Tensor:
        """512x7x7 -> raw 1x64x64 heatmap."""
        x = _bn_relu(self.deconv_bn1, self.deconv1(encoding))
        x = _bn_relu(self.deconv_bn2, self.deconv2(x))
        x = _bn_relu(self.deconv_bn3, self.deconv3(x))
        return self.conv4(x)


class VATSpatial(ChongModel):
    """The image model (``ModelSpatial``); the released GazeFollow model trained its heatmap only."""

    def __init__(self, extra_bn: bool = False) -> None:
        super().__init__(scene_channels=4, attention_inputs=784 + 1024, extra_bn=extra_bn)
        self.compress_conv1_inout = nn.Conv2d(2048, 512, 1, bias=False)
        self.compress_bn1_inout = nn.BatchNorm2d(512)
        self.compress_conv2_inout = nn.Conv2d(512, 1, 1, bias=False)
        self.compress_bn2_inout = nn.BatchNorm2d(1)
        self.fc_inout = nn.Linear(CELLS * CELLS, 1)

    def inout_logit(self, features: Tensor) -> Tensor:
        x = _bn_relu(self.compress_bn1_inout, self.compress_conv1_inout(features))
        x = _bn_relu(self.compress_bn2_inout, self.compress_conv2_inout(x))
        return self.fc_inout(x.flatten(1))

    def run(self, scene: Tensor, head: Tensor, face: Tensor) -> ChongOutput:
        """The reference forward on prepared tensors (scene [N,3,224,224], head [N,1,..], face [N,3,..])."""
        features, attention = self.attended_features(scene, head, face)
        return ChongOutput(self.decode_heatmap(self.compress(features)), attention, self.inout_logit(features))

    def decode(self, features: Tensor, people: People) -> GazeOutput:
        out = self.run(features[people.image_index], people.extras["head_channel"], people.extras["faces"])
        return to_gaze_output(out.heatmap, out.inout_logit)


def to_gaze_output(heatmap: Tensor, inout_logit: Tensor) -> GazeOutput:
    """Raw MSE heatmaps clamped to [0, 1]; in/out probability = sigmoid of the logit."""
    return GazeOutput(heatmap=heatmap[:, 0].clamp(0, 1), inout=torch.sigmoid(inout_logit[:, 0]))


class TemporalOutput(NamedTuple):
    """The spatio-temporal reference forward's outputs (rows in packed, time-major order)."""

    heatmap: Tensor
    inout_logit: Tensor
    state: State


class VATTemporal(VATSpatial):
    """``ModelSpatioTemporal``: the spatial model with a 2-layer ConvLSTM before the heatmap decoder.

    Its checkpoints carry an (unused) ``bn_ds`` BatchNorm in every bottleneck. In/out is per frame.
    """

    def __init__(self, lstm_layers: int = 2) -> None:
        super().__init__(extra_bn=True)
        self.convlstm_scene = ConvLSTM(512, lstm_layers, kernel=3, dropout=0.5)

    def run_packed(
        self, scene: Tensor, head: Tensor, face: Tensor, batch_sizes: list[int], state: State | None = None
    ) -> TemporalOutput:
        """Frames of several clips, packed time-major (see :mod:`~gazelab.models.convlstm`), and the state
        carried from the previous chunk (None: zeros) -> per-frame outputs and the final state."""
        features, _ = self.attended_features(scene, head, face)
        encoding, state = self.convlstm_scene(self.compress(features), batch_sizes, state)
        return TemporalOutput(self.decode_heatmap(encoding), self.inout_logit(features), state)

    def decode(self, features: Tensor, people: People) -> GazeOutput:
        """Each person as a one-frame clip from a zero state (use :meth:`run_packed` to carry state over a video)."""
        extras = people.extras
        out = self.run_packed(features[people.image_index], extras["head_channel"], extras["faces"], [len(people)])
        return to_gaze_output(out.heatmap, out.inout_logit)
