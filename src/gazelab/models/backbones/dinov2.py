"""DINOv2 vision transformer in plain torch, parameter-for-parameter the official checkpoint layout.

Why not torch.hub or timm: the hub executes remote code and downloads at import time, and timm renames keys
(and drops the class position of the register variants); here the official ``dinov2_*_pretrain.pth`` files
load strictly with their own names (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``mask_token``,
``register_tokens``, ``blocks.i.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.*,ls2.gamma}``, ``norm``).

The models were trained at 518 px (a 37x37 patch grid). At another resolution the patch position embedding is
resampled exactly as DINOv2 does it, because the gaze decoders were trained on those features: bicubic, with
``scale_factor = (new + offset) / 37`` (offset 0.1, no antialias) for the original models and an exact
``size`` with antialias for the register models (offset 0). :meth:`DinoV2.forward` returns the last layer's
normed patch tokens as a feature map ``[B, C, H / 14, W / 14]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gazelab.models.layers import Attention, LayerScale, Mlp, SwiGLU


@dataclass(frozen=True)
class DinoV2Config:
    """Architecture of one DINOv2 model (the official hub definitions, plus tiny ones for tests)."""

    dim: int
    depth: int
    heads: int
    swiglu: bool = False
    """ViT-g uses a SwiGLU feed-forward (``mlp.w12``/``mlp.w3``); the others a GELU MLP (``mlp.fc1``/``fc2``)."""
    mlp_ratio: float = 4.0
    registers: int = 0
    patch_size: int = 14
    pretrain_size: int = 518
    """Training resolution: sets the size of ``pos_embed`` (37x37 patches + the class token at 518 px)."""
    interpolate_offset: float = 0.1
    interpolate_antialias: bool = False
    norm_eps: float = 1e-6

    @property
    def grid(self) -> int:
        return self.pretrain_size // self.patch_size


_REGISTERS = {"registers": 4, "interpolate_offset": 0.0, "interpolate_antialias": True}

DINOV2_CONFIGS: dict[str, DinoV2Config] = {
    "dinov2_vits14": DinoV2Config(dim=384, depth=12, heads=6),
    "dinov2_vitb14": DinoV2Config(dim=768, depth=12, heads=12),
    "dinov2_vitl14": DinoV2Config(dim=1024, depth=24, heads=16),
    "dinov2_vitg14": DinoV2Config(dim=1536, depth=40, heads=24, swiglu=True),
    "dinov2_vits14_reg": DinoV2Config(dim=384, depth=12, heads=6, **_REGISTERS),
    "dinov2_vitb14_reg": DinoV2Config(dim=768, depth=12, heads=12, **_REGISTERS),
    "dinov2_vitl14_reg": DinoV2Config(dim=1024, depth=24, heads=16, **_REGISTERS),
    "dinov2_vitg14_reg": DinoV2Config(dim=1536, depth=40, heads=24, swiglu=True, **_REGISTERS),
    # Tests: the real geometry (patch 14, a 37x37 position grid resampled to 32x32) at a tiny width.
    "dinov2_tiny": DinoV2Config(dim=32, depth=2, heads=2),
    # The synthetic benchmark's trainable backbone, at 224 px (a 16x16 grid: no position resampling).
    "dinov2_synth": DinoV2Config(dim=64, depth=4, heads=4, pretrain_size=224),
}


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens (a strided convolution, key ``patch_embed.proj``)."""

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(images)


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg.dim, cfg.heads, qkv_bias=True)
        self.ls1 = LayerScale(cfg.dim, init=1.0)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.mlp_ratio) if cfg.swiglu else Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio))
        self.ls2 = LayerScale(cfg.dim, init=1.0)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def interpolate_patch_positions(patch_pos: Tensor, size: tuple[int, int], offset: float, antialias: bool) -> Tensor:
    """Resample a ``[1, C, M, M]`` grid of patch position embeddings to ``size`` (rows, cols) as DINOv2 does.

    With a non-zero ``offset`` the output size comes from ``scale_factor = (n + offset) / M`` and the kernel
    uses that scale factor (not ``n / M``), which shifts the sampling positions slightly; features of models
    trained this way depend on it. With ``offset == 0`` the exact ``size`` is requested instead.
    """
    grid = patch_pos.shape[-1]
    if offset:
        scale = ((size[0] + offset) / grid, (size[1] + offset) / grid)
        out = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", antialias=antialias)
    else:
        out = F.interpolate(patch_pos, size=size, mode="bicubic", antialias=antialias)
    if tuple(out.shape[-2:]) != tuple(size):
        raise ValueError(f"position grid resampled to {tuple(out.shape[-2:])}, expected {size}")
    return out


class DinoV2(nn.Module):
    """DINOv2 ViT; ``forward(images [B, 3, H, W]) -> [B, C, H // 14, W // 14]`` normed last-layer patch tokens."""

    def __init__(self, cfg: DinoV2Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.dim
        self.patch_size = cfg.patch_size
        self.patch_embed = PatchEmbed(cfg.dim, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.grid**2, cfg.dim))
        # Used only by DINOv2's masked-image pretraining; kept so official checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, cfg.dim))
        if cfg.registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.registers, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self._init_random()

    def _init_random(self) -> None:
        """A usable random initialisation (tests, training from scratch); pretrained weights replace it."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.cfg.registers:
            nn.init.normal_(self.register_tokens, std=1e-6)

    def feature_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Feature-map (rows, cols) for an input of ``image_size`` (height, width) pixels."""
        return image_size[0] // self.patch_size, image_size[1] // self.patch_size

    def position_embedding(self, rows: int, cols: int) -> Tensor:
        """``[1, 1 + rows * cols, C]``: the class position followed by the (resampled) patch positions."""
        grid = self.cfg.grid
        if rows == cols == grid:
            return self.pos_embed
        cls_pos = self.pos_embed[:, :1]
        patch_pos = self.pos_embed[:, 1:].float().reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        patch_pos = interpolate_patch_positions(
            patch_pos, (rows, cols), self.cfg.interpolate_offset, self.cfg.interpolate_antialias
        )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, rows * cols, -1).to(self.pos_embed.dtype)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        patches = self.patch_embed(images)
        batch, _, rows, cols = patches.shape
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), patches.flatten(2).transpose(1, 2)], dim=1)
        tokens = tokens + self.position_embedding(rows, cols)
        if self.cfg.registers:
            registers = self.register_tokens.expand(batch, -1, -1)
            tokens = torch.cat([tokens[:, :1], registers, tokens[:, 1:]], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        patch_tokens = self.norm(tokens)[:, 1 + self.cfg.registers :]
        return patch_tokens.transpose(1, 2).reshape(batch, -1, rows, cols)


def dinov2(name: str) -> DinoV2:
    """A randomly initialised DINOv2 of a named architecture (``dinov2_vitb14``, ``dinov2_vits14_reg``, ...)."""
    try:
        return DinoV2(DINOV2_CONFIGS[name])
    except KeyError:
        raise ValueError(f"unknown DINOv2 architecture {name!r}; known: {', '.join(DINOV2_CONFIGS)}") from None
