"""SemGaze (Tafasca et al., NeurIPS 2024): where each person looks *and at what*, for all people in one pass.

- Image: 256 px, 16 px patches (a strided convolution) plus a fixed 2-D sin-cos position embedding, then a
  ViT-B whose sequence carries one learnable global token appended after the patches (dropped afterwards): a
  768x16x16 map, computed once per image — people never enter the encoder.
- People: a ResNet-18 trunk on each 224 px head crop (-> 512) gives the person's token (an MLP of it plus a
  linear embedding of the normalized head box) and, through a separate head, a 2-D unit gaze vector.
- Decoder (:mod:`gazelab.models.semgaze_decoder`): two-way attention between people tokens and image tokens,
  then a raw 64x64 heatmap per person (MSE-trained) and a 512-d L2-normalised label embedding, compared with
  CLIP text embeddings of a vocabulary (:mod:`gazelab.models.vocab`).

Parameter names are the official ones (``image_tokenizer.proj``, ``encoder.global_tokens``,
``encoder.encoder.i.*``, ``gaze_encoder.backbone.*`` = torchvision's ResNet-18 children, ``gaze_decoder.*``);
:func:`gazelab.models.official_semgaze.load_semgaze` imports the released Lightning checkpoints.

The reference batches people as ``[B, N]`` slots with the target last and missing people as zero slots at the
front, all of which take part in attention. :meth:`SemGaze.run` reproduces that exactly (for checkpoint
checks); :meth:`SemGaze.decode` takes any number of people per image and masks the unused slots instead.

``SemGazeConfig.gaze_field``, ``he_label_init`` and ``label_at_target`` (off in the published configurations, on
in ``semgaze_tiny``; not in the paper) let the decoder bias each person's attention and gate its heatmap with the
gaze field cast along the gaze encoder's own vector, and help its labels train from scratch (see
:mod:`gazelab.models.semgaze_decoder`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from gazelab.models.base import GazeModel, GazeOutput, ImageLike, People, image_tensor
from gazelab.models.gaze_field import FIELD_GAMMAS
from gazelab.models.layers import Attention, Mlp
from gazelab.models.semgaze_decoder import GazeDecoder

SEMGAZE_MEAN = (0.44232, 0.40506, 0.36457)
SEMGAZE_STD = (0.28674, 0.27776, 0.27995)
HEAD_EXPAND = 0.1
"""Head boxes are grown by 10 % of their size on every side, then made square, before cropping."""


@dataclass(frozen=True)
class SemGazeConfig:
    """Architecture; the defaults are the published model, smaller ones serve tests and synthetic data."""

    image_size: int = 256
    patch_size: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    head_size: int = 224
    """Side of the head crops fed to the ResNet-18."""
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp: int = 2048
    decoder_downsample: int = 2
    label_dim: int = 512
    gaze_field: bool = False
    """Not in the paper: bias the decoder with each person's gaze field, cast from the head box along the
    predicted gaze vector (:mod:`gazelab.models.semgaze_decoder`). A model trained from scratch in a small budget
    finds objects but not which one a person looks at without it; no released checkpoint has its weights."""
    he_label_init: bool = False
    """Not in the paper: He initialisation of the label MLP, whose default one leaves every person with the same
    label embedding for hundreds of steps when trained from scratch (:class:`~.semgaze_decoder.GazeDecoder`)."""
    label_at_target: bool = False
    """Not in the paper: the label MLP also reads the image tokens under the person's own heatmap."""

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class SemGazeOutput(NamedTuple):
    """The reference forward's outputs, per slot ``[B, N, ...]``."""

    heatmap: Tensor
    """[B, N, 64, 64] raw (MSE-trained, unbounded)."""
    gaze_vec: Tensor
    """[B, N, 2] unit 2-D gaze direction (x right, y down)."""
    label_emb: Tensor
    """[B, N, label_dim] L2-normalised."""


def sincos_position_grid(dim: int, grid: int, temperature: float = 10000.0) -> Tensor:
    """MultiMAE's fixed 2-D sin-cos embedding ``[1, dim, grid, grid]``: sin/cos of the row index in the first
    half of the channels, of the column index in the second (the released models were trained with it)."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                                indexing="ij")  # fmt: skip
    out_r = rows.flatten()[:, None] * omega
    out_c = cols.flatten()[:, None] * omega
    emb = torch.cat([out_r.sin(), out_r.cos(), out_c.sin(), out_c.cos()], dim=1)
    return emb.T.reshape(1, dim, grid, grid)


class ImageTokenizer(nn.Module):
    """Patches -> tokens plus the fixed position embedding (a buffer recomputed, never loaded)."""

    def __init__(self, cfg: SemGazeConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.dim, cfg.patch_size, stride=cfg.patch_size)
        self.register_buffer("pos_emb", sincos_position_grid(cfg.dim, cfg.grid), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        patches = self.proj(images)
        pos = self.pos_emb
        if pos.shape[-2:] != patches.shape[-2:]:
            pos = F.interpolate(pos, size=patches.shape[-2:], mode="bicubic", align_corners=False)
        return (patches + pos).flatten(2).transpose(1, 2)


class Block(nn.Module):
    """Pre-norm ViT block (MultiMAE/timm names: ``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc*``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ImageEncoder(nn.Module):
    """ViT over the image tokens with ``global_tokens`` appended after them; returns only the patch tokens."""

    def __init__(self, cfg: SemGazeConfig) -> None:
        super().__init__()
        self.global_tokens = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        nn.init.trunc_normal_(self.global_tokens, std=0.02)
        self.encoder = nn.ModuleList(Block(cfg.dim, cfg.heads) for _ in range(cfg.depth))

    def forward(self, tokens: Tensor) -> Tensor:
        n = tokens.shape[1]
        x = torch.cat([tokens, self.global_tokens.expand(tokens.shape[0], -1, -1)], dim=1)
        for block in self.encoder:
            x = block(x)
        return x[:, :n]


class GazeEncoder(nn.Module):
    """Head crop + head box -> the person's token, and the head's 2-D gaze direction."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        resnet = torchvision.models.resnet18()
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])  # conv1 .. avgpool, as the checkpoints
        self.gaze_proj = nn.Sequential(nn.Linear(512, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.pos_proj = nn.Linear(4, dim)
        self.gaze_predictor = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 2), nn.Tanh())

    def forward(self, crops: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """``crops`` [P, 3, S, S], ``boxes`` [P, 4] -> (tokens [P, dim], unit gaze vectors [P, 2])."""
        features = self.backbone(crops).flatten(1)
        token = self.gaze_proj(features) + self.pos_proj(boxes)
        return token, F.normalize(self.gaze_predictor(features), dim=-1)


class SemGaze(GazeModel):
    """SemGaze behind the common model interface (see the module docstring)."""

    predicts_labels = True

    def __init__(self, config: SemGazeConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or SemGazeConfig()
        self.image_tokenizer = ImageTokenizer(cfg)
        self.encoder = ImageEncoder(cfg)
        self.gaze_encoder = GazeEncoder(cfg.dim)
        self.gaze_decoder = GazeDecoder(cfg.dim, cfg.decoder_depth, cfg.decoder_heads, cfg.decoder_mlp,
                                        cfg.decoder_downsample, cfg.label_dim,
                                        field_gammas=FIELD_GAMMAS if cfg.gaze_field else (),
                                        he_label_init=cfg.he_label_init,
                                        label_at_target=cfg.label_at_target)  # fmt: skip

    @property
    def backbone(self) -> nn.ModuleDict:
        """The image tokenizer and ViT (built on access, so parameter names stay the official ones)."""
        return nn.ModuleDict({"image_tokenizer": self.image_tokenizer, "encoder": self.encoder})

    # ---- preprocessing -------------------------------------------------------------------------------------

    def _normalise(self, picture: Tensor, size: int) -> Tensor:
        mean = torch.tensor(SEMGAZE_MEAN, device=self.device)[:, None, None]
        std = torch.tensor(SEMGAZE_STD, device=self.device)[:, None, None]
        resized = TF.resize(picture.to(self.device), [size, size], antialias=True)
        return (resized.float() / 255 - mean) / std

    def prepare_images(self, images: Sequence[ImageLike] | Tensor) -> Tensor:
        """Square 256 px (antialiased, aspect not kept, as the reference's resize), SemGaze-normalised."""
        size = self.config.image_size
        prepared = [self._normalise(image_tensor(image), size) for image in images]
        return torch.stack(prepared) if prepared else torch.empty(0, 3, size, size, device=self.device)

    def prepare_people(self, boxes: Tensor, image_index: Tensor, images: Sequence[ImageLike] | Tensor) -> People:
        """Adds ``crops`` [P, 3, 224, 224]: the head box grown by 10 % and squared, cut from the picture (zero
        outside it), resized and normalised. A person without a box gets the whole picture and the box
        (0, 0, 1, 1)."""
        people = super().prepare_people(boxes, image_index, images)
        people.boxes = torch.nan_to_num(people.boxes, nan=0.0)
        people.boxes[torch.isnan(boxes).any(dim=1).to(self.device)] = torch.tensor([0.0, 0.0, 1.0, 1.0],
                                                                                   device=self.device)  # fmt: skip
        size = self.config.head_size
        crops = [self._normalise(head_crop(image_tensor(images[i]), box), size)
                 for box, i in zip(boxes.tolist(), image_index.tolist(), strict=True)]  # fmt: skip
        people.extras["crops"] = torch.stack(crops) if crops else torch.empty(0, 3, size, size, device=self.device)
        return people

    # ---- model ---------------------------------------------------------------------------------------------

    def encode(self, images: Tensor) -> Tensor:
        """Prepared images -> image features [B, dim, 16, 16]."""
        tokens = self.encoder(self.image_tokenizer(images))
        rows, cols = images.shape[-2] // self.config.patch_size, images.shape[-1] // self.config.patch_size
        return tokens.transpose(1, 2).reshape(images.shape[0], -1, rows, cols)

    def run(self, image: Tensor, heads: Tensor, head_bboxes: Tensor, mask: Tensor | None = None) -> SemGazeOutput:
        """The reference forward: ``image`` [B, 3, 256, 256], ``heads`` [B, N, 3, 224, 224] (normalised crops),
        ``head_bboxes`` [B, N, 4]; every slot attends unless ``mask`` [B, N] (True = real person) says not."""
        batch, n = heads.shape[:2]
        tokens, vectors = self.gaze_encoder(heads.flatten(0, 1), head_bboxes.flatten(0, 1))
        vectors = vectors.reshape(batch, n, 2)
        rays = (head_bboxes, vectors) if self.config.gaze_field else None
        heatmap, label = self.gaze_decoder(self.encode(image), tokens.reshape(batch, n, -1), mask, rays)
        return SemGazeOutput(heatmap, vectors, label)

    def decode(self, features: Tensor, people: People) -> GazeOutput:
        """Every person of every image in one pass: people are placed in per-image slots, unused ones masked.

        In training mode the heatmap is raw (the MSE target needs it); otherwise it is scaled into [0, 1]
        (negatives to 0, a map whose peak exceeds 1 divided by its peak: order and argmax are unchanged).
        """
        tokens, vectors = self.gaze_encoder(people.extras["crops"], people.boxes)
        slots, mask = person_slots(people.image_index, features.shape[0])
        queries = tokens.new_zeros(features.shape[0], mask.shape[1], tokens.shape[1])
        queries[people.image_index, slots] = tokens
        rays = None
        if self.config.gaze_field:  # unused slots keep a zero vector: they cast no field
            boxes = people.boxes.new_zeros(*mask.shape, 4)
            boxes[people.image_index, slots] = people.boxes
            directions = vectors.new_zeros(*mask.shape, 2)
            directions[people.image_index, slots] = vectors
            rays = (boxes, directions)
        heatmaps, labels = self.gaze_decoder(features, queries, mask, rays)
        heatmap = heatmaps[people.image_index, slots]
        if not self.training:
            heatmap = heatmap.clamp(min=0)
            heatmap = heatmap / heatmap.amax(dim=(1, 2), keepdim=True).clamp(min=1.0)
        return GazeOutput(heatmap=heatmap, gaze_vector=vectors, label_embedding=labels[people.image_index, slots])


def person_slots(image_index: Tensor, images: int) -> tuple[Tensor, Tensor]:
    """Each person's slot within its image (order of appearance) and the [B, N_max] mask of used slots."""
    counts = torch.bincount(image_index, minlength=images)
    order = torch.argsort(image_index, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slots = torch.empty_like(image_index)
    slots[order] = torch.arange(len(image_index), device=image_index.device) - starts[image_index[order]]
    width = int(counts.max()) if len(image_index) else 0
    mask = torch.arange(width, device=image_index.device)[None, :] < counts[:, None]
    return slots, mask


def head_crop(picture: Tensor, box: Sequence[float]) -> Tensor:
    """The head region of a ``3xHxW`` picture: the box grown by :data:`HEAD_EXPAND` per side, made square
    (in pixels) around its centre; parts outside the picture are zero. A NaN box gives the whole picture."""
    height, width = picture.shape[-2:]
    if any(math.isnan(v) for v in box):
        return picture
    x1, y1, x2, y2 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    side = max(x2 - x1, y2 - y1) * (1 + 2 * HEAD_EXPAND)
    side = max(side, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return TF.crop(picture, top, left, max(int(round(side)), 1), max(int(round(side)), 1))
