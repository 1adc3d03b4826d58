"""Gaze-LLE (Ryan et al., CVPR 2025): a small transformer decoder on frozen DINOv2 features.

The scene is encoded once; each person is the scene's 32x32 feature tokens plus a learned head token added on
the cells of their head box (and, for in/out models, one extra token in front). People of one image are
separate sequences, so they never attend to each other and the cost is linear in the number of people.
Parameter names are those of the released ``gazelle_dinov2_*.pt`` files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from gazelab.data.targets import head_token_map
from gazelab.models.backbones.dinov2 import DINOV2_CONFIGS, DinoV2
from gazelab.models.base import GazeModel, GazeOutput, ImageLike, People, image_tensor
from gazelab.models.gaze_field import FIELD_GAMMAS, GazeDirectionHead, HeadCropDirection, gaze_field, head_crops
from gazelab.models.layers import Attention, DropPath, Mlp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class GazeLLEConfig:
    """Architecture and input geometry; the defaults are the published models' (ViT-B backbone)."""

    backbone: str = "dinov2_vitb14"
    """Name in :data:`~gazelab.models.backbones.dinov2.DINOV2_CONFIGS`."""
    inout: bool = False
    dim: int = 256
    heads: int = 8
    layers: int = 3
    mlp_ratio: float = 4.0
    drop_path: float = 0.1
    in_size: int = 448
    out_size: int = 64
    freeze_backbone: bool = True
    """The published recipe trains the decoder only; frozen features can then be cached."""
    gaze_vector: bool = False
    """Not in Gaze-LLE: a gaze-direction head on the scene tokens under the head box (``gaze_vector_head``, trained
    with the ``angular`` loss); see :mod:`gazelab.models.gaze_field`. No released checkpoint has it."""
    head_crop: int = 0
    """With ``gaze_vector``: read the direction from a ``head_crop``-pixel crop of the (resized) picture with a small
    CNN instead of from the scene tokens (0); see :mod:`gazelab.models.gaze_field`."""
    gaze_field: bool = False
    """Not in Gaze-LLE (needs ``gaze_vector``): the direction's gaze field as decoder prompts (``field_tokens``),
    next to the head prompt; see :mod:`gazelab.models.gaze_field`."""


def sincos_position_map(dim: int, rows: int, cols: int) -> Tensor:
    """Fixed 2-D sin/cos encoding ``[dim, rows, cols]``: the first half encodes the column, the second the row.

    Channel ``2c`` / ``2c + 1`` of each half is ``sin`` / ``cos`` of ``position * exp(-2c ln(10000) / (dim/2))``;
    computed in float32 like the released buffer.
    """
    if dim % 4:
        raise ValueError(f"decoder dim must be a multiple of 4, got {dim}")
    half = dim // 2
    freq = torch.exp(torch.arange(0.0, half, 2) * -(math.log(10000.0) / half))
    x = torch.arange(0.0, cols)[:, None] * freq
    y = torch.arange(0.0, rows)[:, None] * freq
    pe = torch.zeros(dim, rows, cols)
    pe[0:half:2] = torch.sin(x).T[:, None, :].expand(-1, rows, -1)
    pe[1:half:2] = torch.cos(x).T[:, None, :].expand(-1, rows, -1)
    pe[half::2] = torch.sin(y).T[:, :, None].expand(-1, -1, cols)
    pe[half + 1 :: 2] = torch.cos(y).T[:, :, None].expand(-1, -1, cols)
    return pe


def prepare_gazelle_images(images: Sequence[ImageLike] | Tensor, size: int, device: torch.device) -> Tensor:
    """Gaze-LLE's input: ImageNet normalisation, then a bilinear (antialiased) resize to ``size`` squared.

    A function of its own so that runtimes without the model (the ONNX predictor) prepare identical tensors.
    """
    batch = [image_tensor(image) for image in images]
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    prepared = [TF.resize((image.to(device).float() / 255 - mean) / std, [size, size]) for image in batch]
    return torch.stack(prepared) if prepared else torch.empty(0, 3, size, size, device=device)


class DecoderBlock(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-5, ``qkv`` without bias, no LayerScale)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, qkv_bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class GazeLLE(GazeModel):
    """Gaze-LLE with or without the in/out head; see :class:`~gazelab.models.base.GazeModel` for the contract."""

    def __init__(self, cfg: GazeLLEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.has_inout = cfg.inout
        self.heatmap_size = cfg.out_size
        self.backbone = DinoV2(DINOV2_CONFIGS[cfg.backbone])
        if cfg.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.grid = self.backbone.feature_size((cfg.in_size, cfg.in_size))
        self.linear = nn.Conv2d(self.backbone.embed_dim, cfg.dim, kernel_size=1)
        self.head_token = nn.Embedding(1, cfg.dim)
        # Fixed, so not saved with our weights; a released checkpoint's copy is loaded into it when present.
        self.register_buffer("pos_embed", sincos_position_map(cfg.dim, *self.grid), persistent=False)
        if cfg.inout:
            self.inout_token = nn.Embedding(1, cfg.dim)
        self.transformer = nn.Sequential(
            *(DecoderBlock(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.drop_path) for _ in range(cfg.layers))
        )
        self.heatmap_head = nn.Sequential(
            nn.ConvTranspose2d(cfg.dim, cfg.dim, kernel_size=2, stride=2),
            nn.Conv2d(cfg.dim, 1, kernel_size=1, bias=False),
            nn.Sigmoid(),
        )
        if cfg.gaze_field and not cfg.gaze_vector:
            raise ValueError("gaze_field needs gaze_vector: the field is cast along the predicted direction")
        if cfg.head_crop and not cfg.gaze_vector:
            raise ValueError("head_crop needs gaze_vector: the crop is read for the gaze direction")
        if cfg.gaze_vector:
            self.gaze_vector_head = HeadCropDirection() if cfg.head_crop else GazeDirectionHead(cfg.dim)
        if cfg.gaze_field:
            self.field_tokens = nn.Parameter(torch.zeros(len(FIELD_GAMMAS), cfg.dim))
            nn.init.normal_(self.field_tokens, std=0.02)
        if cfg.inout:
            self.inout_head = nn.Sequential(
                nn.Linear(cfg.dim, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 1), nn.Sigmoid()
            )

    def prepare_images(self, images: Sequence[ImageLike] | Tensor) -> Tensor:
        """ToTensor, ImageNet normalisation, then a bilinear (antialiased) resize to ``in_size`` squared.

        The aspect ratio is not kept, as in the reference transform (and in that order).
        """
        return prepare_gazelle_images(images, self.cfg.in_size, self.device)

    def prepare_people(self, boxes: Tensor, image_index: Tensor, images: Sequence[ImageLike] | Tensor) -> People:
        """Adds ``head_maps`` [P, 32, 32]: each box edge times 32, rounded half to even, end exclusive.

        The maps are computed on the CPU from the boxes as given (float64 from user input), where rounding is
        exact on every device.
        """
        people = super().prepare_people(boxes, image_index, images)
        people.extras["head_maps"] = head_token_map(boxes.cpu(), self.grid[0]).to(self.device)
        if self.cfg.head_crop:
            people.extras["head_crops"] = self._head_crops(people, images)
        return people

    def _head_crops(self, people: People, images: Sequence[ImageLike] | Tensor) -> Tensor:
        """``head_crop`` crops from the pictures resized to the model's input (same-size pictures: one call)."""
        prepared = self.prepare_images(images)
        return head_crops(prepared, people.boxes, people.image_index, self.cfg.head_crop)

    def encode(self, images: Tensor) -> Tensor:
        """[B, 3, 448, 448] -> last-layer normed DINOv2 patch tokens [B, C, 32, 32]."""
        return self.backbone(images)

    def decode(self, features: Tensor, people: People) -> GazeOutput:
        scene = self.linear(features) + self.pos_embed
        x = scene[people.image_index]
        head_maps = people.extras["head_maps"]
        x = x + head_maps.to(x.dtype)[:, None] * self.head_token.weight[0][:, None, None]
        count, dim, rows, cols = x.shape
        gaze_vector = None
        if self.cfg.gaze_vector:
            if self.cfg.head_crop:
                gaze_vector = self.gaze_vector_head(people.extras["head_crops"].to(x.dtype))
            else:
                gaze_vector = self.gaze_vector_head(x.flatten(2).transpose(1, 2), head_maps)
        if self.cfg.gaze_field:
            field = gaze_field(people.boxes, gaze_vector, rows, cols, FIELD_GAMMAS).to(x.dtype)
            x = x + torch.einsum("pgrc,gd->pdrc", field, self.field_tokens.to(x.dtype))
        tokens = x.flatten(2).transpose(1, 2)
        if self.has_inout:
            tokens = torch.cat([self.inout_token.weight.expand(count, 1, dim), tokens], dim=1)
        tokens = self.transformer(tokens)
        inout = None
        if self.has_inout:
            inout = self.inout_head(tokens[:, 0]).squeeze(-1)
            tokens = tokens[:, 1:]
        heatmap = self.heatmap_from_tokens(tokens, rows, cols)
        if heatmap.shape[-1] != self.cfg.out_size:
            size = (self.cfg.out_size, self.cfg.out_size)
            heatmap = F.interpolate(heatmap[:, None], size=size, mode="bilinear", antialias=True)[:, 0]
        return GazeOutput(heatmap=heatmap, inout=inout, gaze_vector=gaze_vector)

    def heatmap_from_tokens(self, tokens: Tensor, rows: int, cols: int) -> Tensor:
        """``heatmap_head`` applied to decoder tokens [P, rows * cols, C] -> [P, 2 rows, 2 cols], as one matmul.

        The head is a 2x2 stride-2 transposed convolution followed by a 1x1 convolution with nothing between
        them, so together they are one linear map from each token to its 2x2 output pixels: folding the two
        weights first (C x 4 numbers) costs the same per person as 1/C of the transposed convolution — the
        dominant per-person cost of the decoder otherwise. Same parameters (and checkpoint keys), same result up
        to float rounding, gradients flow to both weights.
        """
        upsample, project = self.heatmap_head[0], self.heatmap_head[1]
        weight = project.weight[0, :, 0, 0]
        folded = torch.einsum("icab,c->iab", upsample.weight, weight).reshape(-1, 4)
        logits = tokens @ folded.to(tokens.dtype) + (upsample.bias @ weight).to(tokens.dtype)
        count = tokens.shape[0]
        logits = logits.reshape(count, rows, cols, 2, 2).permute(0, 1, 3, 2, 4).reshape(count, 2 * rows, 2 * cols)
        return torch.sigmoid(logits)
