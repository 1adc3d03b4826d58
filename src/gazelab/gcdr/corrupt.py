"""Training inputs that look like a VQA Grad-CAM warm on two places (an option of the teacher, not GCDR's).

GCDR's teacher learns to denoise ground-truth maps, so at the refinement's t_start the blob in its input has
always been the right one, and it keeps whatever blob the prior gives it (docs/gcdr.md, "The guided teacher").
A Grad-CAM that is wrong is usually hot on another object, sometimes with the true target warm too. With
:func:`add_distractors`, some training people's clean maps get a second Gaussian at a random point before they
are noised, each blob with its own random strength, while the loss still asks for the clean map: the teacher
must then tell the blob its context points at from the other one. The distractor is placed uniformly, not on
objects (real data has no object boxes), and its side of the comparison is never labelled.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gazelab.data.targets import gaussian_heatmaps


def add_distractors(maps: Tensor, probability: float, generator: torch.Generator | None = None) -> Tensor:
    """``maps`` [N, H, W] in [0, 1] (peak 1 or all zeros) -> the inputs to noise: with ``probability`` per map,
    ``max(u * map, v * blob)`` rescaled to peak 1, ``blob`` a target-shaped Gaussian at a uniform random point of
    [0.05, 0.95]^2 and ``u, v ~ U(0.3, 1)`` (either blob may be the stronger). Empty maps (people looking out of
    the frame) and maps not drawn stay as they are."""
    if not 0 <= probability <= 1:
        raise ValueError(f"distractor probability must lie in [0, 1], got {probability}")
    if probability == 0:
        return maps  # no random draw either: the published recipe's random stream stays as it was
    count, size = maps.shape[0], maps.shape[-1]
    options = {"device": maps.device, "generator": generator}
    drawn = (torch.rand(count, **options) < probability) & (maps.amax(dim=(-2, -1)) > 0)
    if not drawn.any():
        return maps
    points = 0.05 + 0.9 * torch.rand(count, 2, **options)
    blobs = gaussian_heatmaps(points, size).to(maps)
    weights = 0.3 + 0.7 * torch.rand(count, 2, 1, 1, **options)
    mixed = torch.maximum(weights[:, 0] * maps, weights[:, 1] * blobs)
    mixed = mixed / mixed.amax(dim=(-2, -1), keepdim=True)
    return torch.where(drawn[:, None, None], mixed, maps)
