"""Training losses by name, so a recipe lists its loss terms in YAML and a new model family adds its own.

A loss term maps a model's :class:`~gazelab.models.base.GazeOutput` and the batch (``heatmaps``, ``inout``,
``gaze``, ... as made by :func:`gazelab.data.dataset.collate_people`) to a scalar. A recipe weights the terms
(``losses: {heatmap_bce: 1.0, inout_bce: 1.0}``); the training module sums them and logs each one.

Gaze-LLE's terms are here. Later families register theirs with :func:`register_loss` (masked MSE x 10000 for
VAT, angular, InfoNCE, PDP's KL) without touching the trainer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gazelab.errors import GazelabError
from gazelab.models.base import GazeOutput

Batch = Mapping[str, Any]
LossFn = Callable[[GazeOutput, Batch], Tensor]

LOSSES: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator adding a loss term under ``name`` (a name may be registered once)."""

    def add(fn: LossFn) -> LossFn:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is already registered")
        LOSSES[name] = fn
        return fn

    return add


def get_loss(name: str) -> LossFn:
    try:
        return LOSSES[name]
    except KeyError:
        raise GazelabError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}") from None


def _zero(like: Tensor) -> Tensor:
    """A zero that still depends on the output, so every parameter gets a (zero) gradient — DDP needs that."""
    return like.sum() * 0.0


@register_loss("heatmap_bce")
def heatmap_bce(output: GazeOutput, batch: Batch) -> Tensor:
    """Mean binary cross-entropy of the (sigmoid) heatmap against the target map, on in-frame people only.

    Gaze-LLE's loss: out-of-frame people have no target map, so they do not count (a batch without any
    in-frame person contributes zero instead of NaN).
    """
    inside = batch["inout"] == 1
    if not bool(inside.any()):
        return _zero(output.heatmap)
    return F.binary_cross_entropy(output.heatmap[inside], batch["heatmaps"][inside].to(output.heatmap.dtype))


@register_loss("inout_bce")
def inout_bce(output: GazeOutput, batch: Batch) -> Tensor:
    """Binary cross-entropy of the in/out probability on every person whose in/out label is known."""
    if output.inout is None:
        raise GazelabError("loss inout_bce needs a model with an in/out head (e.g. a *_inout model)")
    known = batch["inout"] >= 0
    if not bool(known.any()):
        return _zero(output.inout)
    return F.binary_cross_entropy(output.inout[known], batch["inout"][known].to(output.inout.dtype))


def mean_gaze_point(gaze: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of each person's annotator points ([P, A, 2], ``-1`` padded) and whether the person has any."""
    valid = (gaze >= 0).all(dim=-1)
    count = valid.sum(dim=1)
    mean = (gaze * valid[..., None]).sum(dim=1) / count.clamp(min=1)[:, None]
    return mean, count > 0


def heatmap_centre_of_mass(heatmap: Tensor) -> Tensor:
    """[P, H, W] non-negative maps -> [P, 2] normalized (x, y) of their centre of mass (pixel centres)."""
    height, width = heatmap.shape[-2:]
    mass = heatmap.flatten(1).float()
    mass = mass / mass.sum(dim=1, keepdim=True).clamp(min=1e-12)
    ys = (torch.arange(height, device=heatmap.device, dtype=mass.dtype) + 0.5) / height
    xs = (torch.arange(width, device=heatmap.device, dtype=mass.dtype) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([mass @ grid_x.flatten(), mass @ grid_y.flatten()], dim=1)


@register_loss("heatmap_angular")
def heatmap_angular(output: GazeOutput, batch: Batch) -> Tensor:
    """Angular error ``(1 - cos) / 2`` between head->heatmap centre of mass and head->annotated point.

    Works for any model with a heatmap (no gaze-vector head needed). BCE only says "this pixel is wrong";
    this term says which way the mass must turn, a dense signal that helps a model learn to read the head's
    direction (the synthetic recipe uses it). In-frame people with at least one annotator point only.
    """
    target, has_point = mean_gaze_point(batch["gaze"].to(output.heatmap.device))
    keep = (batch["inout"] == 1) & has_point
    if not bool(keep.any()):
        return _zero(output.heatmap)
    heads = batch["heads"][keep].to(target.dtype)
    centre = torch.stack([(heads[:, 0] + heads[:, 2]) / 2, (heads[:, 1] + heads[:, 3]) / 2], dim=1)
    predicted = heatmap_centre_of_mass(output.heatmap[keep]) - centre
    wanted = target[keep] - centre
    cosine = F.cosine_similarity(predicted, wanted.to(predicted.dtype), dim=1, eps=1e-6)
    return ((1 - cosine) / 2).mean()


class CombinedLoss:
    """The weighted sum of named terms; returns every term and their ``total``.

    A class rather than a closure so a module holding it can be sent to spawned DDP processes.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        if not weights:
            raise GazelabError("a recipe needs at least one loss term (losses: {heatmap_bce: 1.0})")
        for name in weights:
            get_loss(name)  # unknown names fail now, not at the first step
        self.weights = {name: float(weight) for name, weight in weights.items()}

    def __call__(self, output: GazeOutput, batch: Batch) -> dict[str, Tensor]:
        values = {name: get_loss(name)(output, batch) for name in self.weights}
        values["total"] = torch.stack([values[name] * weight for name, weight in self.weights.items()]).sum()
        return values


from gazelab.train import losses_chong as _losses_chong  # noqa: E402,F401  (registers the VAT/PDP terms)
from gazelab.train import losses_semgaze as _losses_semgaze  # noqa: E402,F401  (registers the SemGaze terms)
