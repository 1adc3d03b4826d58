"""The GCDR noise process: index/scale conventions and the DDIM steps taken through ``diffusers``."""

from __future__ import annotations

import pytest
import torch

from gazelab.errors import GazelabError
from gazelab.gcdr.schedule import DiffusionSchedule


@pytest.fixture(scope="module")
def schedule() -> DiffusionSchedule:
    return DiffusionSchedule()


def _forward(schedule: DiffusionSchedule, x0: torch.Tensor, index: int, noise: torch.Tensor) -> torch.Tensor:
    """The forward process written out (no clamp), as the DDIM derivation assumes."""
    ac = schedule.alphas_cumprod[index].float()
    return ac.sqrt() * schedule.to_diffusion(x0) + (1 - ac).sqrt() * noise


def test_schedule_is_gcdr_linear_betas_rescaled(schedule: DiffusionSchedule) -> None:
    assert schedule.betas[0].item() == pytest.approx(2e-4) and schedule.betas[-1].item() == pytest.approx(4e-2)
    assert schedule.alphas_cumprod.dtype == torch.float64 and len(schedule.alphas_cumprod) == 500
    assert torch.equal(schedule.scheduler.alphas_cumprod, schedule.alphas_cumprod)  # diffusers reads the same table


def test_ddim_step_with_a_perfect_x0_predictor_follows_the_forward_process(schedule: DiffusionSchedule) -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 64, 64, generator=g)
    noise = torch.randn(3, 1, 64, 64, generator=g)
    x_t = _forward(schedule, x0, 249, noise)
    x_prev = schedule.step(x0, 249, 125, x_t, eta=0.0, noise=None)
    torch.testing.assert_close(x_prev, _forward(schedule, x0, 124, noise), atol=1e-5, rtol=1e-5)
    x_final = schedule.step(x0, 124, 125, x_prev, eta=0.0, noise=None)  # past index 0: alpha = 1
    torch.testing.assert_close(schedule.to_model(x_final), x0, atol=1e-6, rtol=0)


def test_stochastic_step_needs_its_noise_and_uses_it(schedule: DiffusionSchedule) -> None:
    x0, x_t = torch.rand(1, 1, 64, 64), torch.randn(1, 1, 64, 64)
    with pytest.raises(ValueError):
        schedule.step(x0, 249, 125, x_t, eta=1.0, noise=None)
    a = schedule.step(x0, 249, 125, x_t, eta=1.0, noise=torch.zeros_like(x_t))
    b = schedule.step(x0, 249, 125, x_t, eta=1.0, noise=torch.ones_like(x_t))
    assert (b - a).abs().min() > 0


def test_q_sample_scale_convention(schedule: DiffusionSchedule) -> None:
    x0 = torch.rand(2, 1, 64, 64)
    assert torch.allclose(schedule.to_model(schedule.to_diffusion(x0)), x0, atol=1e-6)
    noise = torch.randn(2, 1, 64, 64)
    x_t = schedule.q_sample(x0, torch.tensor([0, 499]), noise)
    assert x_t.abs().max() <= schedule.scale and x_t[1].abs().max() == schedule.scale  # clamped to [-s, s]
    assert torch.allclose(schedule.to_model(x_t[:1]), x0[:1], atol=0.03)  # index 0 barely noises
    assert torch.equal(schedule.embedding_value(torch.tensor([0, 249])), torch.tensor([1.0, 250.0]))


def test_sampling_indices(schedule: DiffusionSchedule) -> None:
    assert schedule.sampling_indices(250, 2) == [249, 124]
    assert schedule.sampling_indices(200, 2) == [199, 99]
    assert schedule.sampling_indices(500, 10) == [499 - 50 * k for k in range(10)]
    with pytest.raises(GazelabError, match="use t_start"):
        schedule.sampling_indices(300, 2)  # stride 150 is no DDIM stride of a 500-step schedule
    with pytest.raises(GazelabError):
        schedule.sampling_indices(501, 1)
