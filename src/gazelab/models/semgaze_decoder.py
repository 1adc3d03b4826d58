"""SemGaze's gaze decoder: a SAM-style two-way transformer between people tokens and image tokens, then heads.

Parameter names are those of the official checkpoints (``transformer.layers.i.cross_attn_gaze_to_image.q_proj``,
``norm2``..``norm4``, ``mlp.lin1``, ``not_a_person_embed``, ``upscaler.{1,2,5}``, ``heatmap_mlp.layers.i``,
``label_mlp.layers.i``). There is no self-attention between people and no positional encoding in the decoder;
people interact only through the image tokens they update.

Unlike the reference (which always attends to every slot, zero padding included), the image->people attention
takes a mask, so a person's prediction does not depend on how many empty slots its batch was padded with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CrossAttention(nn.Module):
    """SAM's attention: separate q/k/v projections to a narrower inner width, heads over that width."""

    def __init__(self, dim: int, heads: int, downsample: int = 2) -> None:
        super().__init__()
        inner = dim // downsample
        if inner % heads:
            raise ValueError(f"attention width {inner} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        return x.reshape(batch, tokens, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """``key_mask`` [B, S] (True = attend) hides padded keys."""
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(self._split(self.q_proj(q)), self._split(self.k_proj(k)),
                                             self._split(self.v_proj(v)), attn_mask=mask)  # fmt: skip
        batch, _, tokens, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, -1))


class MLPBlock(nn.Module):
    """``lin1`` -> ReLU -> ``lin2`` (the decoder blocks' feed-forward)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class MLP(nn.Module):
    """``layers.i`` linear layers with ReLU between them (none after the last)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class TwoWayBlock(nn.Module):
    """People->image attention, MLP, image->people attention; each residual and followed by a LayerNorm."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, downsample: int) -> None:
        super().__init__()
        self.cross_attn_gaze_to_image = CrossAttention(dim, heads, downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_gaze = CrossAttention(dim, heads, downsample)

    def forward(self, queries: Tensor, keys: Tensor, query_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        queries = self.norm2(queries + self.cross_attn_gaze_to_image(queries, keys, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_gaze(keys, queries, queries, key_mask=query_mask))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, downsample: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, downsample) for _ in range(depth))
        self.final_attn_gaze_to_image = CrossAttention(dim, heads, downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: Tensor, queries: Tensor, query_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """``image`` [B, C, H, W], ``queries`` [B, Q, C] -> (queries [B, Q, C], image tokens [B, H*W, C])."""
        keys = image.flatten(2).transpose(1, 2)
        for layer in self.layers:
            queries, keys = layer(queries, keys, query_mask)
        queries = self.norm_final_attn(queries + self.final_attn_gaze_to_image(queries, keys, keys))
        return queries, keys


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a [B, C, H, W] map (SAM's, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class GazeDecoder(nn.Module):
    """People tokens + image features -> per-person heatmap [64 x 64] (raw) and label embedding (L2-normed)."""

    def __init__(
        self, dim: int, depth: int, heads: int, mlp_dim: int, downsample: int, label_dim: int, label_layers: int = 6
    ) -> None:
        super().__init__()
        self.not_a_person_embed = nn.Embedding(1, dim)
        self.transformer = TwoWayTransformer(dim, depth, heads, mlp_dim, downsample)
        up1, up2 = dim // 4, dim // 8
        self.upscaler = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear"),
            nn.Conv2d(dim, up1, 3, padding=1),
            LayerNorm2d(up1),
            nn.GELU(),
            nn.Upsample(scale_factor=2, mode="bilinear"),
            nn.Conv2d(up1, up2, 3, padding=1),
            nn.GELU(),
        )
        self.heatmap_mlp = MLP([dim, dim, dim, up2])
        self.label_mlp = MLP([dim] * label_layers + [label_dim])

    def forward(self, image: Tensor, people: Tensor, people_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``image`` [B, C, h, w], ``people`` [B, N, C] (``people_mask`` [B, N], True = real person) ->
        (heatmaps [B, N, 4h, 4w], label embeddings [B, N, label_dim])."""
        batch, n = people.shape[:2]
        queries = torch.cat([people, self.not_a_person_embed.weight.expand(batch, -1, -1)], dim=1)
        mask = None
        if people_mask is not None:
            mask = torch.cat([people_mask, people_mask.new_ones(batch, 1)], dim=1)
        queries, keys = self.transformer(image, queries, mask)
        queries = queries[:, :n]
        rows, cols = image.shape[-2:]
        upscaled = self.upscaler(keys.transpose(1, 2).reshape(batch, -1, rows, cols))
        heatmaps = (self.heatmap_mlp(queries) @ upscaled.flatten(2)).reshape(batch, n, *upscaled.shape[-2:])
        return heatmaps, F.normalize(self.label_mlp(queries), dim=-1)
