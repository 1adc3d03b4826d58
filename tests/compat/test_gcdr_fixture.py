"""GCDR's conditional heatmap diffusion model against the official implementation (``gcdr_diffusion``).

The filled official state dict (with its ``feat_extractor.*``/``diffusion_model.*`` names) goes through the
official importer, strictly, so passing means a released checkpoint loads and predicts as the reference does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gazelab.gcdr.model import DiffusionConfig, HeatmapDiffusion
from gazelab.gcdr.official import load_official
from gazelab.models.checkpoints import CheckpointError

from .conftest import load_fill

TOLERANCE = 1e-4
SCHEDULE_TOLERANCE = 1e-9


@pytest.mark.parametrize("name", ["gcdr_diffusion"])
def test_gcdr_diffusion_reproduces_reference(name: str, fixture_dir) -> None:
    folder = fixture_dir(name)
    spec = json.loads((folder / "spec.json").read_text())
    inputs = {k: torch.from_numpy(v) for k, v in np.load(folder / "inputs.npz").items()}
    want = dict(np.load(folder / "outputs.npz").items())
    state = load_fill().fill_state_dict(spec["state_dict"])
    # Official files also carry the schedule as buffers: they must be accepted (and not loaded).
    model = HeatmapDiffusion().eval()
    buffers = {f"diffusion.{k}": torch.zeros(1) for k in ("betas", "posterior_variance")}
    buffers["diffusion.alphas_cumprod"] = model.schedule.alphas_cumprod.float()
    load_official(model, {**state, **buffers}, name)

    with torch.no_grad():
        context = model.context(inputs["images"], inputs["head_channel"], inputs["faces"])
        x0 = model.denoise(inputs["x_t"], inputs["t"], context)
    np.testing.assert_allclose(context[0].numpy(), want["context0"], atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(context[3].numpy(), want["context3"], atol=TOLERANCE, rtol=TOLERANCE)
    np.testing.assert_allclose(x0.numpy(), want["x0_pred"], atol=TOLERANCE, rtol=TOLERANCE)

    schedule = model.schedule
    noised = schedule.q_sample(inputs["q_x0"], inputs["q_t_index"], inputs["q_noise"])
    np.testing.assert_allclose(schedule.to_model(noised).numpy(), want["q_sample"], atol=TOLERANCE)
    # The reference keeps its float64 schedule in float32 buffers; the fixture stored those values.
    ours = schedule.alphas_cumprod.float().double().numpy()
    np.testing.assert_allclose(ours, want["alphas_cumprod"], atol=SCHEDULE_TOLERANCE, rtol=0)
    # ... and the float64 table itself is that schedule (float32 rounding is the only difference).
    np.testing.assert_allclose(schedule.alphas_cumprod.numpy(), want["alphas_cumprod"], rtol=1e-7, atol=0)


def test_checkpoint_with_another_schedule_is_refused() -> None:
    model = HeatmapDiffusion(DiffusionConfig.tiny())  # same schedule as the published model
    other = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 500, dtype=torch.float64), 0)
    with pytest.raises(CheckpointError, match="noise schedule"):
        load_official(model, {"diffusion.alphas_cumprod": other}, "other.pt")
