"""Transformer building blocks shared by the DINOv2 backbone and the Gaze-LLE decoder.

Parameter names follow the official checkpoints (``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.w12``,
``ls1.gamma``) so released state dicts load without renaming. Attention goes through
``F.scaled_dot_product_attention`` so PyTorch picks the fastest kernel for the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head self-attention with one packed ``qkv`` projection (the layout of timm/DINOv2 checkpoints)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """Two linear layers with an exact (erf) GELU between them."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """DINOv2's SwiGLU feed-forward (ViT-g): ``w12`` packs gate and value, ``w3`` projects back.

    The hidden width follows DINOv2's fused variant, ``(int(ratio * dim * 2 / 3) + 7) // 8 * 8`` (4096 for
    ViT-g), which is what the released ViT-g weights were trained with.
    """

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = (int(int(dim * mlp_ratio) * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * value)


class LayerScale(nn.Module):
    """Per-channel residual scaling (``ls1.gamma`` / ``ls2.gamma`` in DINOv2 checkpoints)."""

    def __init__(self, dim: int, init: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class DropPath(nn.Module):
    """Stochastic depth: in training, drop a sample's whole residual branch with probability ``p``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep
