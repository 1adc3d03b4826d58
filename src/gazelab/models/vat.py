"""Chong et al. 2020, "Detecting Attended Visual Targets in Video" (VAT): spatial and spatio-temporal models.

Each person is a scene trunk over ``cat(image, head channel)`` and a face trunk over the head crop; a
softmax attention over the 7x7 scene cells (from the 3x max-pooled head channel and the pooled face feature)
weights the scene features, which are concatenated with the face features and decoded into a raw 64x64
heatmap (MSE target, no sigmoid) and an in/out logit. The spatio-temporal model runs a 2-layer ConvLSTM on
the 512x7x7 encoding before the heatmap decoder. Parameter names are those of the released ``.pt`` files.

Because the scene trunk sees the person's head channel, nothing can be shared between people of one image:
:meth:`encode` passes the prepared images through and :meth:`decode` runs everything per person.

Head boxes are widened by 10% per side before the head channel and the face crop are made, as the reference
data loaders do in training and testing (a crop reaching outside the picture is padded with black, as PIL's).
VAT-GC (``VATSpatial(gradcam=True)``) adds a person's 64x64 Grad-CAM prior, max-pooled twice to 16x16, to the
attention input. Outputs are :class:`ChongGazeOutput`: the common output plus the raw heatmap and logits the
training losses need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from gazelab.data.targets import head_channel
from gazelab.errors import GazelabError
from gazelab.models.backbones.resnet_vat import WIDTH, ChongTrunks, scaled
from gazelab.models.base import GazeModel, GazeOutput, ImageLike, People, image_tensor
from gazelab.models.convlstm import ConvLSTM, State, packed_order
from gazelab.models.gazelle import IMAGENET_MEAN, IMAGENET_STD

INPUT_SIZE = 224
CELLS = 7
HEAD_EXPAND = 0.1
"""Each side of a head box moves out by this fraction of its size (right/bottom: of the widened size)."""
MASK_CELLS = 28 * 28
"""A 224 px head (or depth) map after three stride-2 max-pools."""
GRADCAM_CELLS = 16 * 16
"""VAT-GC's 64x64 Grad-CAM after two stride-2 max-pools."""


@dataclass
class ChongGazeOutput(GazeOutput):
    """The common output plus what training needs: Chong-style models regress an unbounded heatmap."""

    raw_heatmap: Tensor | None = None
    """[P, 64, 64] before clamping (the MSE losses compare this with the target)."""
    inout_logit: Tensor | None = None
    """[P] in/out logit (VAT); None for PDP, whose in/out comes from the patch distribution."""
    patch_logits: Tensor | None = None
    """[P, 50] PDP patch logits (49 cells row-major, then "outside")."""


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

    def __init__(self, scene_channels: int, attention_maps: int, extra_bn: bool = False, width: int = WIDTH) -> None:
        """``attention_maps``: pooled map cells entering the attention besides the face vector (784 per 224 px
        map); ``width``: the trunks' stem width (64 published; smaller for tests)."""
        super().__init__(scene_channels, extra_bn, width)
        self.features = scaled(2048, width)
        """Channels of the attended encoding (scene + face)."""
        self.dim = scaled(512, width)
        """Channels of the 7x7 encoding the decoder (and PDP's tokens, VAT's ConvLSTM) works on."""
        self.attn = nn.Linear(attention_maps + scaled(1024, width), CELLS * CELLS)
        self.compress_conv1 = nn.Conv2d(self.features, scaled(1024, width), 1, bias=False)
        self.compress_bn1 = nn.BatchNorm2d(scaled(1024, width))
        self.compress_conv2 = nn.Conv2d(scaled(1024, width), self.dim, 1, bias=False)
        self.compress_bn2 = nn.BatchNorm2d(self.dim)
        self.deconv1 = nn.ConvTranspose2d(self.dim, scaled(256, width), 3, stride=2)
        self.deconv_bn1 = nn.BatchNorm2d(scaled(256, width))
        self.deconv2 = nn.ConvTranspose2d(scaled(256, width), scaled(128, width), 3, stride=2)
        self.deconv_bn2 = nn.BatchNorm2d(scaled(128, width))
        self.deconv3 = nn.ConvTranspose2d(scaled(128, width), 1, 4, stride=2)
        self.deconv_bn3 = nn.BatchNorm2d(1)
        self.conv4 = nn.Conv2d(1, 1, 1)

    def prepare_images(self, images: Sequence[ImageLike] | Tensor) -> Tensor:
        """224 px (antialiased bilinear, aspect ratio not kept, as the reference's ``Resize``), ImageNet-normalised."""
        prepared = [self._normalise(image_tensor(image)) for image in images]
        return torch.stack(prepared) if prepared else torch.empty(0, 3, INPUT_SIZE, INPUT_SIZE, device=self.device)

    def prepare_people(self, boxes: Tensor, image_index: Tensor, images: Sequence[ImageLike] | Tensor) -> People:
        """Adds ``head_channel`` [P, 1, 224, 224] and ``faces`` [P, 3, 224, 224] (the head crop, normalised),
        both from the head box widened by :data:`HEAD_EXPAND` (see :func:`expand_heads`).

        A person without a box gets an empty head channel and the whole picture as "face", the only crop that
        assumes nothing about where the head is.
        """
        people = super().prepare_people(boxes, image_index, images)
        widened = expand_heads(boxes.detach().cpu().to(torch.float64))
        people.extras["head_channel"] = head_channel(widened, INPUT_SIZE)[:, None].to(self.device)
        faces = []
        for box, index in zip(widened.tolist(), image_index.tolist(), strict=True):
            picture = image_tensor(images[index])
            height, width = picture.shape[-2:]
            if box[0] == box[0]:  # not NaN
                x1, y1 = int(box[0] * width), int(box[1] * height)  # truncation toward zero, as PIL's crop box
                x2, y2 = max(int(box[2] * width), x1 + 1), max(int(box[3] * height), y1 + 1)  # at least 1 pixel
                picture = TF.crop(picture, y1, x1, y2 - y1, x2 - x1)  # zero padding outside the picture
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
        self, scene: Tensor, head: Tensor, face: Tensor, extra: Tensor | None = None, prior: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Scene trunk on ``cat(scene, extra, head)``, face trunk, attention -> (2048x7x7 features, attention).

        ``extra`` is PDP's depth channel: it enters the scene stem and, max-pooled, the attention input.
        ``prior`` is VAT-GC's [N, 1, 64, 64] Grad-CAM: max-pooled twice, it enters the attention input only
        (order: head, depth, Grad-CAM, face).
        """
        face_feat = self.trunk("face", face)
        pooled = [head] if extra is None else [head, extra]
        for _ in range(3):
            pooled = [F.max_pool2d(p, 3, stride=2, padding=1) for p in pooled]
        if prior is not None:
            pooled.append(F.max_pool2d(F.max_pool2d(prior, 3, stride=2, padding=1), 3, stride=2, padding=1))
        face_vector = F.avg_pool2d(face_feat, CELLS, stride=1).flatten(1)
        logits = self.attn(torch.cat([p.flatten(1) for p in pooled] + [face_vector], dim=1))
        attention = logits.softmax(dim=1).view(-1, 1, CELLS, CELLS)
        stem_input = [scene, head] if extra is None else [scene, extra, head]
        scene_feat = self.trunk("scene", torch.cat(stem_input, dim=1))
        return torch.cat([attention * scene_feat, face_feat], dim=1), attention

    def compress(self, features: Tensor) -> Tensor:
        """2048x7x7 -> the 512x7x7 encoding (at the published width)."""
        x = _bn_relu(self.compress_bn1, self.compress_conv1(features))
        return _bn_relu(self.compress_bn2, self.compress_conv2(x))

    def decode_heatmap(self, encoding: Tensor) -> Tensor:
        """512x7x7 -> raw 1x64x64 heatmap."""
        x = _bn_relu(self.deconv_bn1, self.deconv1(encoding))
        x = _bn_relu(self.deconv_bn2, self.deconv2(x))
        x = _bn_relu(self.deconv_bn3, self.deconv3(x))
        return self.conv4(x)


def expand_heads(boxes: Tensor) -> Tensor:
    """Normalized xyxy boxes [..., 4] widened as the reference loaders do: ``x1 -= k w``, ``y1 -= k h``, then
    ``x2 += k w'``, ``y2 += k h'`` with the already widened ``w'``, ``h'`` (k = :data:`HEAD_EXPAND`).

    Not clamped: the head channel clips to the grid and the face crop pads outside the picture.
    """
    x1, y1, x2, y2 = boxes.unbind(-1)
    x1 = x1 - HEAD_EXPAND * (x2 - x1)
    y1 = y1 - HEAD_EXPAND * (y2 - y1)
    x2 = x2 + HEAD_EXPAND * (x2 - x1)
    y2 = y2 + HEAD_EXPAND * (y2 - y1)
    return torch.stack([x1, y1, x2, y2], dim=-1)


def gradcam_of(people: People) -> Tensor:
    """VAT-GC's per-person Grad-CAM [P, 1, 64, 64] from ``people.extras["gradcam"]`` ([P, 64, 64] accepted)."""
    if "gradcam" not in people.extras:
        raise GazelabError(
            'this VAT-GC model needs each person\'s 64x64 Grad-CAM prior in people.extras["gradcam"] '
            "(make priors with gazelab's prior generation)"
        )
    prior = people.extras["gradcam"]
    return prior[:, None] if prior.ndim == 3 else prior


class VATSpatial(ChongModel):
    """The image model (``ModelSpatial``); the released GazeFollow model trained its heatmap only.

    ``gradcam=True`` is VAT-GC (GCDR's baseline): the attention also sees the person's Grad-CAM prior
    (``people.extras["gradcam"]``), so ``attn`` is ``Linear(2064, 49)``.
    """

    def __init__(self, extra_bn: bool = False, width: int = WIDTH, gradcam: bool = False) -> None:
        maps = MASK_CELLS + (GRADCAM_CELLS if gradcam else 0)
        super().__init__(scene_channels=4, attention_maps=maps, extra_bn=extra_bn, width=width)
        self.gradcam = gradcam
        self.compress_conv1_inout = nn.Conv2d(self.features, self.dim, 1, bias=False)
        self.compress_bn1_inout = nn.BatchNorm2d(self.dim)
        self.compress_conv2_inout = nn.Conv2d(self.dim, 1, 1, bias=False)
        self.compress_bn2_inout = nn.BatchNorm2d(1)
        self.fc_inout = nn.Linear(CELLS * CELLS, 1)

    def inout_logit(self, features: Tensor) -> Tensor:
        x = _bn_relu(self.compress_bn1_inout, self.compress_conv1_inout(features))
        x = _bn_relu(self.compress_bn2_inout, self.compress_conv2_inout(x))
        return self.fc_inout(x.flatten(1))

    def run(self, scene: Tensor, head: Tensor, face: Tensor, gradcam: Tensor | None = None) -> ChongOutput:
        """The reference forward on prepared tensors (scene [N,3,224,224], head [N,1,..], face [N,3,..]; VAT-GC
        also ``gradcam`` [N,1,64,64])."""
        if self.gradcam and gradcam is None:
            raise GazelabError("this VAT-GC model needs a [N, 1, 64, 64] Grad-CAM prior per person")
        features, attention = self.attended_features(scene, head, face, prior=gradcam if self.gradcam else None)
        return ChongOutput(self.decode_heatmap(self.compress(features)), attention, self.inout_logit(features))

    def decode(self, features: Tensor, people: People) -> ChongGazeOutput:
        prior = gradcam_of(people) if self.gradcam else None
        out = self.run(features[people.image_index], people.extras["head_channel"], people.extras["faces"], prior)
        return to_gaze_output(out.heatmap, out.inout_logit)


def to_gaze_output(heatmap: Tensor, inout_logit: Tensor) -> ChongGazeOutput:
    """Raw MSE heatmaps clamped to [0, 1]; in/out probability = sigmoid of the logit; raw values kept."""
    return ChongGazeOutput(
        heatmap=heatmap[:, 0].clamp(0, 1),
        inout=torch.sigmoid(inout_logit[:, 0]),
        raw_heatmap=heatmap[:, 0],
        inout_logit=inout_logit[:, 0],
    )


class TemporalOutput(NamedTuple):
    """The spatio-temporal reference forward's outputs (rows in packed, time-major order)."""

    heatmap: Tensor
    inout_logit: Tensor
    state: State


class VATTemporal(VATSpatial):
    """``ModelSpatioTemporal``: the spatial model with a 2-layer ConvLSTM before the heatmap decoder.

    Its checkpoints carry an (unused) ``bn_ds`` BatchNorm in every bottleneck. In/out is per frame.
    """

    def __init__(self, lstm_layers: int = 2, width: int = WIDTH) -> None:
        super().__init__(extra_bn=True, width=width)
        self.convlstm_scene = ConvLSTM(self.dim, lstm_layers, kernel=3, dropout=0.5)

    def run_packed(
        self, scene: Tensor, head: Tensor, face: Tensor, batch_sizes: list[int], state: State | None = None
    ) -> TemporalOutput:
        """Frames of several clips, packed time-major (see :mod:`~gazelab.models.convlstm`), and the state
        carried from the previous chunk (None: zeros) -> per-frame outputs and the final state."""
        features, _ = self.attended_features(scene, head, face)
        encoding, state = self.convlstm_scene(self.compress(features), batch_sizes, state)
        return TemporalOutput(self.decode_heatmap(encoding), self.inout_logit(features), state)

    def run_chunked(
        self, scene: Tensor, head: Tensor, face: Tensor, chunk: int = 3, state: State | None = None
    ) -> TemporalOutput:
        """One clip's frames [T, ...] in chunks of ``chunk`` frames, carrying (h, c) from chunk to chunk — how the
        released evaluation walks a video, and how to stream one: pass the returned state with the next frames.
        """
        if chunk < 1:
            raise GazelabError(f"chunk must be at least 1 frame, got {chunk}")
        heatmaps, logits = [], []
        for start in range(0, len(scene), chunk):
            part = slice(start, start + chunk)
            out = self.run_packed(scene[part], head[part], face[part], [1] * len(scene[part]), state)
            heatmaps.append(out.heatmap)
            logits.append(out.inout_logit)
            state = out.state
        if state is None:
            raise GazelabError("run_chunked needs at least one frame")
        return TemporalOutput(torch.cat(heatmaps), torch.cat(logits), state)

    def decode(self, features: Tensor, people: People) -> ChongGazeOutput:
        """People with ``clip_index`` and ``frame_step`` extras (as the sequence batches of training) run as clips
        from a zero state; otherwise each person is a one-frame clip (use :meth:`run_chunked` to carry state
        over a video)."""
        extras = people.extras
        scene, head, face = features[people.image_index], extras["head_channel"], extras["faces"]
        if "clip_index" not in extras:
            out = self.run_packed(scene, head, face, [len(people)])
            return to_gaze_output(out.heatmap, out.inout_logit)
        order, batch_sizes = packed_order(extras["clip_index"], extras["frame_step"])
        out = self.run_packed(scene[order], head[order], face[order], batch_sizes)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        return to_gaze_output(out.heatmap[inverse], out.inout_logit[inverse])
