"""PDP (Miao et al., WACV 2023): Chong's spatial model with a patch-level gaze distribution head.

The 512x7x7 encoding becomes 49 tokens plus a learned "outside the frame" token; after one self-attention
layer (no scaling, projection, norm or FFN — the reference's) each token gets a logit. Sigmoid then
L1-normalisation of the 50 logits is the patch distribution, so P(in frame) = 1 - p[outside]. The heatmap is
decoded from the 49 patch tokens with Chong's decoder. Optionally a depth map enters the scene stem and the
attention. The video model adds attention across 5-frame windows. Parameter names are the reference's.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from gazelab.errors import GazelabError
from gazelab.models.backbones.resnet_vat import WIDTH, scaled
from gazelab.models.base import People
from gazelab.models.vat import CELLS, INPUT_SIZE, MASK_CELLS, ChongGazeOutput, ChongModel

TOKENS = CELLS * CELLS + 1
PATCH_EPS = 1e-8


class PDPOutput(NamedTuple):
    """The reference forward's outputs."""

    heatmap: Tensor
    """[N, 1, 64, 64] raw (MSE-trained)."""
    patch_logits: Tensor
    """[N, 50]: the 49 cells row-major, then "outside"."""


def patch_probabilities(patch_logits: Tensor) -> Tensor:
    """Sigmoid, then L1-normalised over the 50 tokens (eps 1e-8 as the reference)."""
    p = torch.sigmoid(patch_logits)
    return p / (p.sum(dim=-1, keepdim=True) + PATCH_EPS)


class PDPSpatial(ChongModel):
    """``ModelSpatial_PDP`` with the patch head (``use_patch=True``), with or without depth.

    With depth, ``people.extras["depth"]`` [P, 1, 224, 224] in [0, 1] must be provided by the caller (gazelab
    has no depth estimator; :func:`load_depth` reads a depth file); without it the model is the 4-channel one.
    """

    def __init__(self, depth: bool = False, width: int = WIDTH) -> None:
        super().__init__(scene_channels=5 if depth else 4, attention_maps=MASK_CELLS * (2 if depth else 1), width=width)
        dim = self.dim
        self.use_depth = depth
        self.outside_embedding = nn.Parameter(torch.randn(1, dim) * 0.02)
        self.patch_pos_embedding = nn.Parameter(torch.randn(TOKENS, dim) * 0.02)
        # In the released files; only the video model's extra in/out logit uses it.
        self.compress_conv1_inout = nn.Conv1d(dim, 1, 1)
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.inout_patch_encode = nn.Conv1d(dim, scaled(256, width), 1)
        self.inout_patch_pred = nn.Conv1d(scaled(256, width), 1, 1)
        self.deconv_encode = nn.Conv2d(dim, dim, 1, bias=False)

    def tokens(self, scene: Tensor, head: Tensor, face: Tensor, depth: Tensor | None) -> Tensor:
        """Per-frame tokens [N, 50, 512] after the self-attention layer."""
        if self.use_depth and depth is None:
            raise GazelabError("this PDP model uses depth: give a [N, 1, 224, 224] depth map in [0, 1]")
        features, _ = self.attended_features(scene, head, face, depth if self.use_depth else None)
        encoding = self.compress(features).flatten(2).transpose(1, 2)
        x = torch.cat([encoding, self.outside_embedding.expand(len(encoding), -1, -1)], dim=1)
        x = x + self.patch_pos_embedding
        q, k, v = self.qkv_proj(x).chunk(3, dim=-1)
        return x + torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v

    def heads(self, tokens: Tensor) -> PDPOutput:
        """Tokens [N, 50, 512] -> heatmap from the 49 patch tokens and the 50 patch logits."""
        logits = self.inout_patch_pred(F.relu(self.inout_patch_encode(tokens.transpose(1, 2))))[:, 0]
        cells = tokens[:, : CELLS * CELLS].transpose(1, 2).reshape(-1, self.dim, CELLS, CELLS)
        heatmap = self.decode_heatmap(F.relu(self.deconv_encode(cells)))
        return PDPOutput(heatmap, logits)

    def run(self, scene: Tensor, head: Tensor, face: Tensor, depth: Tensor | None = None) -> PDPOutput:
        """The reference forward on prepared tensors; ``depth`` is ignored by the model without depth."""
        return self.heads(self.tokens(scene, head, face, depth))

    def decode(self, features: Tensor, people: People) -> ChongGazeOutput:
        extras = people.extras
        out = self.run(features[people.image_index], extras["head_channel"], extras["faces"], self.depth_of(people))
        return pdp_gaze_output(out.heatmap, out.patch_logits)

    def depth_of(self, people: People) -> Tensor | None:
        """The people's depth maps when the model uses depth (an error if the caller gave none)."""
        if not self.use_depth:
            return None
        if "depth" not in people.extras:
            raise GazelabError(
                'this PDP model uses depth: put [P, 1, 224, 224] maps in [0, 1] in people.extras["depth"]'
            )
        return people.extras["depth"]


def pdp_gaze_output(heatmap: Tensor, patch_logits: Tensor) -> ChongGazeOutput:
    """Raw MSE heatmaps clamped to [0, 1]; P(in frame) = 1 - the "outside" share of the patch distribution."""
    return ChongGazeOutput(
        heatmap=heatmap[:, 0].clamp(0, 1),
        inout=1 - patch_probabilities(patch_logits)[:, -1],
        raw_heatmap=heatmap[:, 0],
        patch_logits=patch_logits,
    )


def read_depth_file(path: str | Path) -> Tensor:
    """A depth image (16-bit PNG: value / 65535; 8-bit: value / 255; larger = nearer, as PDP's) -> float32
    [1, H, W] in [0, 1]."""
    try:
        with Image.open(path) as image:
            values = np.array(image)
    except OSError as err:
        raise GazelabError(f"{path}: cannot read the depth image ({err}) — give a 16-bit or 8-bit PNG") from None
    if values.ndim == 3:
        values = values[..., 0]
    scale = 255.0 if values.dtype == np.uint8 else 65535.0
    return torch.from_numpy(values.astype(np.float32) / scale)[None].clamp(0, 1)


def load_depth(path: str | Path, size: int = INPUT_SIZE) -> Tensor:
    """The model input ``people.extras["depth"]`` row for one person: [1, size, size], resized like the scene
    (bilinear, antialiased, aspect ratio not kept)."""
    return TF.resize(read_depth_file(path), [size, size], antialias=True).clamp(0, 1)
