"""GCDR's on-the-fly pseudo-labels: refine each unlabelled person's (augmented) prior inside the training step.

The reference draws a fresh stochastic pseudo-label every iteration instead of caching one. This callback does
that for two-stream batches whose unlabelled targets are raw priors (``data.semisup.mode: raw``): before each
training step it replaces the maps of unlabelled in-frame people with :class:`~gazelab.gcdr.refine.Refiner`
outputs conditioned on the *augmented* image and head box, so prior, image and target stay aligned. Seeds come
from (seed, global step, person row): a resumed run draws the same pseudo-labels as an uninterrupted one.

YAML (``gazelab train``)::

    trainer:
      callbacks:
        - class_path: gazelab.semisup.online.OnlineRefinement
          init_args: {weights: runs/gcdr_diffusion_10pct/checkpoints/last.ckpt, t_start: 250, steps: 2}
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch

from gazelab.gcdr.model import HeatmapDiffusion
from gazelab.gcdr.refine import RefineConfig, Refiner, sample_seed


class OnlineRefinement(L.Callback):
    """Refine unlabelled people's prior maps in every training batch (see the module docstring)."""

    def __init__(
        self,
        weights: str | HeatmapDiffusion,
        t_start: int = 250,
        steps: int = 2,
        samples: int = 1,
        eta: float = 1.0,
        seed: int = 0,
    ) -> None:
        from gazelab.gcdr.official import load_diffusion

        model = weights if isinstance(weights, HeatmapDiffusion) else load_diffusion(weights)
        self.refiner = Refiner(model.eval().requires_grad_(False), RefineConfig(t_start, steps, samples, eta))
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.refiner.model.to(pl_module.device)

    @torch.no_grad()
    def refine_batch(self, batch: dict[str, Any], step: int) -> int:
        """Replace the targets of unlabelled in-frame people in ``batch``; returns how many were refined."""
        if "labelled" not in batch:
            return 0
        rows = torch.nonzero((batch["labelled"] == 0) & (batch["inout"] == 1)).flatten()
        if not len(rows):
            return 0
        images, index = batch["images"], batch["image_index"]
        pictures = [images[int(index[r])] for r in rows]
        inputs = self.refiner.model.prepare(pictures, batch["heads"][rows].float())
        seeds = [sample_seed(self.seed, step, int(r)) for r in rows]
        maps = batch["heatmaps"]
        maps[rows] = self.refiner(maps[rows].float(), inputs, seeds).to(maps.dtype).to(maps.device)
        return len(rows)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.refine_batch(batch, trainer.global_step)
