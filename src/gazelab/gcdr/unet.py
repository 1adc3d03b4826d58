"""The denoiser of GCDR's heatmap diffusion model: a guided-diffusion style UNet on 1x64x64 heatmaps.

Written here rather than taken from ``diffusers`` because the released checkpoints use guided-diffusion's module
layout (``input_blocks.7.1.qkv``, ``output_blocks.2.2.conv``, ``emb_layers.1`` ...) and a conditioning that
``UNet2DModel`` has no slot for: a context map of the block's own shape is *added* inside every ResBlock, after
the first convolution, next to the time embedding. Module names below are the official ones (under
``diffusion_model.`` in a released file), so a checkpoint loads with a prefix rename only.

Layout (published model: 64 channels, multipliers 1, 2, 3, 4): level ``l`` works at ``64 / 2**l`` pixels with
``64 * mult[l]`` channels; 2 ResBlocks per level on the way down (3 on the way up, each fed a skip), a strided
3x3 conv between levels, nearest x2 + 3x3 conv on the way up, 4-head self-attention after every ResBlock of
the 16x16 and 8x8 levels and in the middle block, GroupNorm(32) + SiLU everywhere, zero-initialised output
convolutions, no scale-shift norm. The network reads x_t in [0, 1] and the raw timestep value, and predicts x0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import Timesteps
from torch import Tensor, nn


def _zeroed(module: nn.Module) -> nn.Module:
    """guided-diffusion starts every residual branch's last layer at zero: each block begins as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GN-SiLU-conv, + time embedding + context map, GN-SiLU-dropout-conv, residual (1x1 conv when widths differ)."""

    def __init__(self, channels: int, out_channels: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_channels))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zeroed(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor, context: Tensor) -> Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[..., None, None] + context
        return self.skip_connection(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Spatial self-attention with guided-diffusion's "legacy" qkv layout: the 1x1 conv's 3C outputs are grouped
    per head as [q_h, k_h, v_h] (not [q, k, v] over all heads), which is how the released weights are ordered."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} attention heads")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = _zeroed(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        qkv = self.qkv(self.norm(x).flatten(2))  # [B, 3C, T]
        q, k, v = qkv.view(b, self.heads, 3 * c // self.heads, -1).transpose(-1, -2).chunk(3, dim=-1)
        h = F.scaled_dot_product_attention(q, k, v)  # [B, heads, T, C / heads]
        h = self.proj_out(h.transpose(-1, -2).reshape(b, c, -1))
        return x + h.view(b, c, height, width)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.ModuleList):
    """One entry of ``input_blocks``/``output_blocks`` (guided-diffusion's TimestepEmbedSequential): its ResBlocks
    take the time embedding and the context map of the level the stage works at."""

    def __init__(self, modules: Sequence[nn.Module], level: int) -> None:
        super().__init__(modules)
        self.level = level

    def forward(self, x: Tensor, emb: Tensor, context: Sequence[Tensor]) -> Tensor:
        for module in self:
            x = module(x, emb, context[self.level]) if isinstance(module, ResBlock) else module(x)
        return x


class DenoisingUNet(nn.Module):
    """x_t in [0, 1] [N, 1, 64, 64], timesteps [N] (raw values), context maps per level -> predicted x0.

    ``context[l]`` must have shape [N, model_channels * channel_mult[l], 64 / 2**l, 64 / 2**l].
    """

    def __init__(
        self,
        model_channels: int = 64,
        channel_mult: Sequence[int] = (1, 2, 3, 4),
        num_res_blocks: int = 2,
        attention_levels: Sequence[int] = (2, 3),
        num_heads: int = 4,
        groups: int = 32,
        dropout: float = 0.0,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        emb_dim = 4 * model_channels
        self.time_proj = Timesteps(model_channels, flip_sin_to_cos=True, downscale_freq_shift=0)  # [cos, sin]
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, emb_dim, groups, dropout)

        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(in_channels, model_channels, 3, padding=1)], 0)])
        skips = [model_channels]
        ch = model_channels
        last = len(channel_mult) - 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, model_channels * mult)]
                ch = model_channels * mult
                if level in attention_levels:
                    layers.append(AttentionBlock(ch, num_heads, groups))
                self.input_blocks.append(Stage(layers, level))
                skips.append(ch)
            if level != last:
                self.input_blocks.append(Stage([Downsample(ch)], level))
                skips.append(ch)
        self.middle_block = Stage([res(ch, ch), AttentionBlock(ch, num_heads, groups), res(ch, ch)], last)
        self.output_blocks = nn.ModuleList()
        for level in reversed(range(len(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skips.pop(), model_channels * channel_mult[level])]
                ch = model_channels * channel_mult[level]
                if level in attention_levels:
                    layers.append(AttentionBlock(ch, num_heads, groups))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(Stage(layers, level))
        self.out = nn.Sequential(
            nn.GroupNorm(groups, ch), nn.SiLU(), _zeroed(nn.Conv2d(model_channels, in_channels, 3, padding=1))
        )

    def forward(self, x: Tensor, timesteps: Tensor, context: Sequence[Tensor]) -> Tensor:
        emb = self.time_embed(self.time_proj(timesteps).to(x.dtype))
        skips = []
        h = x
        for stage in self.input_blocks:
            h = stage(h, emb, context)
            skips.append(h)
        h = self.middle_block(h, emb, context)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, context)
        return self.out(h)
