"""Loss terms of the Chong-style families (VAT, PDP), registered by name for recipes.

Both regress an unbounded heatmap with MSE (the target is the sigma-3 Gaussian with peak 1), so the terms read
the raw map of :class:`~gazelab.models.vat.ChongGazeOutput`, not the clamped one used for prediction — a clamped
map would give no gradient where the model overshoots. Scales are the references':

- ``heatmap_mse``: per person the mean over 64x64 of the squared error x 10000, summed over in-frame people
  and divided by their number (VAT; out-of-frame people have no target).
- ``heatmap_mse_all``: the same over every person (PDP: an out-of-frame person's map is pushed to zero).
- ``pdp_kl``: KL(target || predicted patch distribution), batch mean; the target is
  :func:`~gazelab.data.targets.patch_distribution` of the target heatmap and the in/out label.

VAT's in/out term is :func:`~gazelab.train.losses.inout_bce` weighted 100 in the recipe.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gazelab.data.targets import patch_distribution
from gazelab.errors import GazelabError
from gazelab.models.base import GazeOutput
from gazelab.models.pdp import patch_probabilities
from gazelab.train.losses import Batch, _zero, register_loss

MSE_SCALE = 10000.0
KL_EPS = 2.2204e-16
"""The reference's epsilon (float64 machine epsilon, written out)."""


def _raw_heatmap(output: GazeOutput, loss: str) -> Tensor:
    raw = getattr(output, "raw_heatmap", None)
    if raw is None:
        raise GazelabError(f"loss {loss} needs a model that regresses a raw heatmap (a VAT or PDP model)")
    return raw


def _per_person_mse(output: GazeOutput, batch: Batch, loss: str) -> Tensor:
    raw = _raw_heatmap(output, loss)
    target = batch["heatmaps"].to(raw.dtype)
    return ((raw - target) ** 2).mean(dim=(-2, -1)) * MSE_SCALE


@register_loss("heatmap_mse")
def heatmap_mse(output: GazeOutput, batch: Batch) -> Tensor:
    """VAT's heatmap loss: mean squared error x 10000 over in-frame people (zero when there is none)."""
    inside = (batch["inout"] == 1).to(output.heatmap.dtype)
    if not bool(inside.any()):
        return _zero(_raw_heatmap(output, "heatmap_mse"))
    return (_per_person_mse(output, batch, "heatmap_mse") * inside).sum() / inside.sum()


@register_loss("heatmap_mse_all")
def heatmap_mse_all(output: GazeOutput, batch: Batch) -> Tensor:
    """PDP's heatmap loss: mean squared error x 10000 over every person (out of frame: the target is zero)."""
    return _per_person_mse(output, batch, "heatmap_mse_all").mean()


@register_loss("pdp_kl")
def pdp_kl(output: GazeOutput, batch: Batch) -> Tensor:
    """KL(target || prediction) of the 50-way patch distribution, ``sum t * log(eps + t / (p + eps))``, mean over
    people whose in/out label is known."""
    logits = getattr(output, "patch_logits", None)
    if logits is None:
        raise GazelabError("loss pdp_kl needs a PDP model (one with patch logits)")
    known = batch["inout"] >= 0
    if not bool(known.any()):
        return _zero(logits)
    predicted = patch_probabilities(logits[known])
    target = patch_distribution(batch["heatmaps"][known].to(predicted.dtype), batch["inout"][known])
    kl = target * torch.log(KL_EPS + target / (predicted + KL_EPS))
    return kl.sum(dim=-1).mean()
