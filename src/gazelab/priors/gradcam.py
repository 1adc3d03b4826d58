"""Grad-CAM on cross-attention: where a VQA model looked in the image when it produced the key noun.

For a cross-attention layer with probabilities A (batch, heads, queries, image tokens) and the gradient G of
the key noun's score with respect to A, the layer's map is ``mean over heads of ReLU(G * A)`` (positive
evidence only), averaged over the queries that ``query_mask`` keeps; the maps of the chosen layers are
averaged, reshaped to the patch grid, bilinearly resized to 64x64 and min-max normalised. A map with no
positive evidence at all stays zero and is reported invalid rather than normalised into noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gazelab.errors import GazelabError

SIZE = 64
BOX_MODES = ("body", "head")


@dataclass(frozen=True)
class CamSettings:
    """How priors are asked for and read out (recorded in the store's metadata, so a resume cannot mix them)."""

    layers: tuple[int, ...] = (-3, -2, -1)
    """Cross-attention layers to average; negative indices count from the last."""
    question: str = "What is the person in the green bounding box looking at?"
    box: str = "body"
    """``body``: the person's body box, or their head box enlarged 1.5x when there is none; ``head``: head box."""
    num_beams: int = 3
    max_answer_tokens: int = 10

    def __post_init__(self) -> None:
        if self.box not in BOX_MODES:
            raise GazelabError(f"--box must be one of {', '.join(BOX_MODES)}, got {self.box!r}")
        if not self.layers or not self.question.strip():
            raise GazelabError("give at least one layer and a non-empty question")
        if self.num_beams < 1 or self.max_answer_tokens < 1:
            raise GazelabError("--beams and --max-answer-tokens must be at least 1")

    def meta(self) -> dict:
        return {**asdict(self), "layers": list(self.layers)}


def parse_layers(text: str) -> tuple[int, ...]:
    """``"-3,-2,-1"`` -> (-3, -2, -1)."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise GazelabError(f"--layers must be comma-separated integers such as -3,-2,-1, got {text!r}") from None


def select_layers(layers: Sequence[int], count: int) -> list[int]:
    """Absolute indices of ``layers`` among ``count`` layers (duplicates kept once, in order)."""
    chosen: list[int] = []
    for layer in layers:
        if not -count <= layer < count:
            raise GazelabError(f"layer {layer} does not exist: the model has {count} cross-attention layers")
        index = layer % count
        if index not in chosen:
            chosen.append(index)
    return chosen


def attention_cam(attentions: Sequence[Tensor], grads: Sequence[Tensor], query_mask: Tensor) -> Tensor:
    """Per-sample CAM over image tokens [B, N]: layer average of the head mean of ReLU(G * A), query-averaged.

    ``attentions``/``grads``: one [B, heads, queries, N] tensor per layer; ``query_mask`` [B, queries] (1 = use).
    """
    weights = query_mask.to(attentions[0].dtype)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1)
    maps = [torch.einsum("bqn,bq->bn", (g * a).clamp_min(0).mean(dim=1), weights) for a, g in zip(attentions, grads)]
    return torch.stack(maps).mean(dim=0)


def grid_heatmaps(cam: Tensor, prefix_tokens: int = 1) -> tuple[Tensor, Tensor]:
    """[B, N] CAM over ``prefix_tokens`` + a square patch grid -> ([B, 64, 64] maps in [0, 1], [B] valid).

    The prefix (ViT's CLS token) is dropped; a map whose maximum equals its minimum has no usable evidence:
    it becomes all zero and invalid."""
    patches = cam[:, prefix_tokens:]
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} image tokens do not form a square grid")
    grid = patches.reshape(-1, 1, side, side).float()
    maps = F.interpolate(grid, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    valid = span.flatten() > 0
    maps = torch.where(span > 0, (maps - low) / torch.where(span > 0, span, 1.0), torch.zeros_like(maps))
    return maps, valid
