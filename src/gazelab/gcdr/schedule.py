"""The noise process of GCDR's heatmap diffusion model: one convention, on top of ``diffusers``' DDIM scheduler.

The convention (used by training, refinement and the mean teacher alike):

- **Schedule.** T = 500 steps, GCDR's linear betas rescaled by 1000 / T: ``linspace(1e-4 * 1000/T,
  0.02 * 1000/T, T)`` = ``linspace(2e-4, 4e-2, 500)``, cumulated in float64 (as the reference). ``diffusers``
  keeps betas in float32, so its ``alphas_cumprod`` is replaced by the float64 table: forward noising, training
  and DDIM steps all read the same numbers.
- **Indices.** A timestep *index* ``i`` in ``0 .. T-1`` selects ``alphas_cumprod[i]``; the network's sinusoidal
  embedding is fed the raw value ``t = i + 1`` (training draws ``t ~ U{1..T}``, noises at ``t - 1``). Sampling
  uses the same pairing — the reference's sampler was off by one against its training code; this one is not.
- **Scale.** Heatmaps live in [0, 1]; diffusion runs in [-s, s] with s = 2 ("scale_input"): ``x0s = (2 x0 - 1) s``,
  ``x_t = sqrt(ac) x0s + sqrt(1 - ac) noise``, clamped to [-s, s]. The network always sees ``(x_t / s + 1) / 2``
  in [0, 1] and predicts x0 in [0, 1] (``prediction_type="sample"``), which is mapped to [-s, s] for the DDIM
  update and clipped there (equivalently x0 to [0, 1]). The reference mapped its sampler's inputs to [0, 1]
  twice; that is not reproduced.
- **DDIM.** ``diffusers.DDIMScheduler`` with eta (GCDR: 1.0, stochastic). A run of ``k`` steps from timestep
  ``t_start`` visits indices ``t_start - 1, t_start - 1 - d, ...`` with stride ``d = t_start // k`` (250, 2 steps:
  249 -> 124); the result is the network's x0 prediction at the last visited index.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler
from torch import Tensor

from gazelab.errors import GazelabError


class DiffusionSchedule:
    """GCDR's T-step schedule in the [-scale, scale] convention, with DDIM steps by ``diffusers``."""

    def __init__(self, timesteps: int = 500, beta_start: float = 1e-4, beta_end: float = 0.02, scale: float = 2.0):
        self.timesteps = timesteps
        self.scale = scale
        rescale = 1000 / timesteps
        self.betas = torch.linspace(beta_start * rescale, beta_end * rescale, timesteps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)
        self.scheduler = DDIMScheduler(
            num_train_timesteps=timesteps,
            trained_betas=self.betas.numpy(),
            prediction_type="sample",
            clip_sample=True,
            clip_sample_range=scale,
            set_alpha_to_one=True,
        )
        self.scheduler.alphas_cumprod = self.alphas_cumprod.clone()

    # -- spaces -------------------------------------------------------------------------------------------------
    def to_diffusion(self, heatmap: Tensor) -> Tensor:
        """[0, 1] -> [-s, s]."""
        return (2 * heatmap - 1) * self.scale

    def to_model(self, x: Tensor) -> Tensor:
        """A diffusion-space sample -> the network's input in [0, 1] (clamped first, as in training)."""
        return (x.clamp(-self.scale, self.scale) / self.scale + 1) / 2

    @staticmethod
    def embedding_value(index: Tensor) -> Tensor:
        """The value the network's time embedding gets for a timestep index: ``index + 1``."""
        return (index + 1).to(torch.float32)

    # -- forward process ----------------------------------------------------------------------------------------
    def q_sample(self, heatmap: Tensor, index: Tensor, noise: Tensor) -> Tensor:
        """Noise heatmaps in [0, 1] [N, 1, H, W] to per-sample indices [N] -> x_t in [-s, s] (clamped)."""
        x = self.scheduler.add_noise(self.to_diffusion(heatmap), noise, index.to(heatmap.device))
        return x.clamp(-self.scale, self.scale)

    # -- reverse process ----------------------------------------------------------------------------------------
    def sampling_indices(self, start: int, steps: int) -> list[int]:
        """The indices a ``steps``-step DDIM run from timestep ``start`` (1..T) visits, largest first."""
        if not 1 <= start <= self.timesteps:
            raise GazelabError(f"t_start must be in 1..{self.timesteps}, got {start}")
        if not 1 <= steps <= start:
            raise GazelabError(f"steps must be in 1..t_start ({start}), got {steps}")
        stride = start // steps
        if self.timesteps // (self.timesteps // stride) != stride:
            fits = sorted({self.timesteps // n for n in range(1, self.timesteps + 1)} & set(range(1, start + 1)))
            near = min(fits, key=lambda d: abs(d - stride))
            raise GazelabError(
                f"t_start {start} with {steps} steps needs a DDIM stride of {stride}, which a {self.timesteps}-step "
                f"DDIM schedule cannot take; use t_start {near * steps} (stride {near})"
            )
        return [start - 1 - k * stride for k in range(steps)]

    def step(
        self, x0_pred: Tensor, index: int, stride: int, sample: Tensor, eta: float, noise: Tensor | None
    ) -> Tensor:
        """One DDIM step from ``index`` to ``index - stride`` given the predicted x0 in [0, 1].

        ``sample`` is x_t in [-s, s]; ``noise`` (same shape, standard normal) is the step's variance noise when
        ``eta > 0``, drawn by the caller so that results depend on its seeds only.
        """
        if eta > 0 and noise is None:
            raise ValueError("a stochastic DDIM step (eta > 0) needs its noise")
        self.scheduler.set_timesteps(self.timesteps // stride)  # DDIM's stride is T // num_inference_steps
        out = self.scheduler.step(
            self.to_diffusion(x0_pred.float()),
            index,
            sample.float(),
            eta=eta,
            variance_noise=noise if eta > 0 else None,
        )
        return out.prev_sample
