"""Refinement: a noisy prior heatmap (Grad-CAM) -> a pseudo-label, by partial diffusion and a few DDIM steps.

For each person: prior in [0, 1] -> noised to ``t_start`` (``q_sample``) -> ``steps`` DDIM steps conditioned on
the image and head -> the last x0 prediction -> min-max normalised to [0, 1]. GCDR uses t_start 250 (200 with
5% labels) of T = 500, 2 steps, eta 1 (stochastic). Noising only to an intermediate step keeps the prior's
position while the model replaces its shape with a gaze-heatmap-like one; ``from_noise`` ignores the prior and
samples from pure noise (the ablation, and the validation sampler: 10 steps from T).

Every random draw comes from per-sample ``torch.Generator`` seeds (on the CPU, then moved), so a person's
pseudo-label's noise depends on its seed only — not on the batch it happens to be in, the device, or the global
random state — and a resumed run reproduces an uninterrupted one up to floating-point rounding (a CPU's
convolution kernels may round differently per batch size: a float16 step or two of the stored map).
``samples`` > 1 averages several draws per person.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gazelab.gcdr.model import HeatmapDiffusion
from gazelab.gcdr.schedule import DiffusionSchedule


@dataclass(frozen=True)
class RefineConfig:
    """How pseudo-labels are drawn (defaults: GCDR with 10% or 20% labels)."""

    t_start: int = 250
    """Timestep (1..T) the prior is noised to; larger forgets more of the prior."""
    steps: int = 2
    """DDIM steps (network evaluations) from ``t_start``."""
    samples: int = 1
    """Draws averaged per person."""
    eta: float = 1.0
    """DDIM stochasticity (0: deterministic given the starting noise; 1: GCDR)."""
    from_noise: bool = False
    """Ignore the prior: start from pure noise at ``t_start`` (use t_start = T for the ablation)."""


def sample_seed(seed: int, *key: object) -> int:
    """A 63-bit seed for one item (e.g. ``(image, person)``) of a run seeded with ``seed``."""
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def normalise(maps: Tensor) -> Tensor:
    """Per-map min-max to [0, 1]; a constant map (e.g. all zeros) becomes all zeros instead of NaN."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    span = maps.amax(dim=(-2, -1), keepdim=True) - low
    return torch.where(span > 1e-12, (maps - low) / span.clamp_min(1e-12), torch.zeros_like(maps))


class NoiseSource:
    """Standard normal draws for a batch, one CPU generator per row (results independent of batching)."""

    def __init__(self, seeds: Sequence[int], device: torch.device) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.device = device

    def __call__(self, shape: tuple[int, ...]) -> Tensor:
        rows = [torch.randn(shape, generator=g) for g in self.generators]
        return torch.stack(rows).to(self.device)


def ddim_sample(
    denoise: Callable[[Tensor, Tensor], Tensor],
    schedule: DiffusionSchedule,
    x: Tensor,
    indices: Sequence[int],
    eta: float,
    noise: Callable[[tuple[int, ...]], Tensor] | None,
) -> Tensor:
    """Run DDIM from x (diffusion space, at ``indices[0]``) over ``indices``; return the last x0 prediction.

    ``denoise(x_model, t)`` maps the network input in [0, 1] and raw timestep values to x0 in [0, 1].
    """
    x0 = x
    for k, index in enumerate(indices):
        t = schedule.embedding_value(torch.full((x.shape[0],), index, device=x.device))
        x0 = denoise(schedule.to_model(x), t).float()
        if k + 1 < len(indices):
            step_noise = noise(tuple(x.shape[1:])) if eta > 0 and noise is not None else None
            x = schedule.step(x0, index, index - indices[k + 1], x, eta, step_noise)
    return x0


class Refiner:
    """Batched, seeded refinement of prior heatmaps with a trained :class:`HeatmapDiffusion`.

    ``autocast``: run the network under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``); the
    diffusion arithmetic stays float32.
    """

    def __init__(
        self, model: HeatmapDiffusion, config: RefineConfig | None = None, autocast: torch.dtype | None = None
    ) -> None:
        self.model = model
        self.config = config or RefineConfig()
        self.autocast = autocast
        self.indices = model.schedule.sampling_indices(self.config.t_start, self.config.steps)
        if self.config.samples < 1:
            raise ValueError("samples must be at least 1")

    @torch.no_grad()
    def __call__(self, priors: Tensor, inputs: dict[str, Tensor], seeds: Sequence[int]) -> Tensor:
        """Priors [N, 64, 64] in [0, 1], encoder inputs (:meth:`HeatmapDiffusion.prepare`), one seed per person ->
        pseudo-labels [N, 64, 64] in [0, 1]."""
        if len(seeds) != len(priors):
            raise ValueError(f"got {len(priors)} priors but {len(seeds)} seeds")
        cfg, model, schedule = self.config, self.model, self.model.schedule
        device = next(model.parameters()).device
        n, size = cfg.samples, priors.shape[-1]
        with self._autocast(device):
            context = model.context(**{name: value.to(device) for name, value in inputs.items()})
        context = [c.repeat_interleave(n, dim=0) for c in context]
        noise = NoiseSource([sample_seed(s, r) for s in seeds for r in range(n)], device)
        start = noise((1, size, size))
        if cfg.from_noise:
            x = start
        else:
            prior = priors.to(device, torch.float32)[:, None].repeat_interleave(n, dim=0)
            index = torch.full((len(prior),), self.indices[0], device=device)
            x = schedule.q_sample(prior, index, start)

        def denoise(x_model: Tensor, t: Tensor) -> Tensor:
            with self._autocast(device):
                return model.denoise(x_model, t, context)

        x0 = ddim_sample(denoise, schedule, x, self.indices, cfg.eta, noise)
        return normalise(x0[:, 0].unflatten(0, (-1, n)).mean(dim=1))

    def _autocast(self, device: torch.device) -> torch.autocast:
        return torch.autocast(device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None)
