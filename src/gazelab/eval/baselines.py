"""Predictions that need no learned model: the floor every model must beat, and a check of the metrics.

* ``center`` — a Gaussian at the image centre (people in photos tend to look near the middle).
* ``bias`` — the mean training target: the dataset's own prior of where gaze lands, built exactly like the
  training heatmaps (Gaze-LLE rule: sigma 3 at ``int(x*64)``, 19x19 window, peak 1; first annotator).
* ``random`` — seeded uniform noise: AUC ~0.5 by construction, so it tests the metric rather than a model.

Every baseline gives each person the same kind of map; ``center`` and ``bias`` give all of them the *same*
map (an expanded view, no copy). In/out scores are a constant for ``center`` (0.5) and ``bias`` (the training
in-frame rate) — a constant ranks nothing, so their AP is the fraction of in-frame samples — and uniform
noise for ``random``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gazelab.data.targets import HEATMAP_SIZE, gaussian_heatmaps
from gazelab.errors import GazelabError
from gazelab.types import Frame, iter_people

BASELINES = ("center", "bias", "random")
CENTER_SIGMA = HEATMAP_SIZE / 4
"""Wide enough that no cell underflows to 0 (ties would then decide the AUC rather than the distance)."""
CHUNK = 4096


@dataclass
class BaselinePrediction:
    heatmaps: Tensor
    """[N, 64, 64] float32."""
    inout: Tensor
    """[N] float64 probability of the target being in frame."""
    description: str


def center_prior(size: int = HEATMAP_SIZE, sigma: float = CENTER_SIGMA) -> Tensor:
    """A [size, size] Gaussian peaking at cell (size // 2, size // 2), whose argmax point is (0.5, 0.5)."""
    cells = torch.arange(size, dtype=torch.float64) - size // 2
    squared = cells[:, None] ** 2 + cells[None, :] ** 2
    return torch.exp(-squared / (2 * sigma**2)).to(torch.float32)


def training_bias(frames: Sequence[Frame]) -> tuple[Tensor, float]:
    """(mean target map of the in-frame persons of ``frames``, fraction of persons in frame)."""
    points = [person.gaze[0] for _, person in iter_people(frames) if person.inout is not False and person.gaze]
    persons = sum(len(frame.people) for frame in frames)
    if not points:
        raise GazelabError("the training annotations have no in-frame gaze point to build a bias map from")
    coords = torch.tensor(points, dtype=torch.float64)
    total = torch.zeros(HEATMAP_SIZE, HEATMAP_SIZE, dtype=torch.float64)
    for start in range(0, len(coords), CHUNK):
        total += gaussian_heatmaps(coords[start : start + CHUNK]).to(torch.float64).sum(dim=0)
    return (total / len(coords)).to(torch.float32), len(points) / persons


def random_heatmaps(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded uniform [n, 64, 64] maps and [n] in/out scores (same seed, same values on every machine)."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand((n, HEATMAP_SIZE, HEATMAP_SIZE), generator=generator)
    return maps, torch.rand(n, generator=generator, dtype=torch.float64)


def make_baseline(name: str, n: int, train: Sequence[Frame] | None = None, seed: int = 0) -> BaselinePrediction:
    """Predictions of baseline ``name`` for ``n`` persons (``bias`` needs the ``train`` frames)."""
    if name == "center":
        prior = center_prior()
        inout = torch.full((n,), 0.5, dtype=torch.float64)
        return BaselinePrediction(prior.expand(n, -1, -1), inout, f"center prior (Gaussian, sigma {CENTER_SIGMA:g})")
    if name == "bias":
        if train is None:
            raise GazelabError("--baseline bias needs --train FILE: the annotations whose mean target map it predicts")
        bias, rate = training_bias(train)
        inout = torch.full((n,), rate, dtype=torch.float64)
        return BaselinePrediction(bias.expand(n, -1, -1), inout, "fixed bias (mean training target map)")
    if name == "random":
        maps, inout = random_heatmaps(n, seed)
        return BaselinePrediction(maps, inout, f"random (uniform, seed {seed})")
    raise GazelabError(f"unknown baseline '{name}' — choose one of: {', '.join(BASELINES)}")
