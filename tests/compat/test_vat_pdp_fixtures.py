"""VAT (Chong et al. 2020) and PDP (Miao et al. 2023) against the official implementations.

Weights come from each fixture's state-dict names via the fixture set's ``fill.py`` and go through our
official-format importer (strict: every key of the released layout, nothing else), so passing means the
released checkpoints load and predict as the reference code does. Every array of ``outputs.npz`` is compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from gazelab.models import create_model
from gazelab.models.official import load_chong

from .conftest import load_fill

TOLERANCE = 1e-4
"""Absolute, relaxed to relative 1e-4 on values above 1 (the fixtures' bar)."""


def _vat_spatial(model: torch.nn.Module, x: dict[str, Tensor]) -> dict[str, Tensor]:
    out = model.run(x["images"], x["head_channel"], x["faces"])
    return {"heatmap": out.heatmap, "attention": out.attention, "inout_logit": out.inout_logit}


def _vat_temporal(model: torch.nn.Module, x: dict[str, Tensor]) -> dict[str, Tensor]:
    out = model.run_packed(x["images"], x["head_channel"], x["faces"], x["batch_sizes"].tolist())
    return {"heatmap": out.heatmap, "inout_logit": out.inout_logit, "h": out.state[0], "c": out.state[1]}


def _pdp_spatial(model: torch.nn.Module, x: dict[str, Tensor]) -> dict[str, Tensor]:
    out = model.run(x["images"], x["head_channel"], x["faces"], x["depth"])
    return {"heatmap": out.heatmap, "patch_logits": out.patch_logits}


def _pdp_temporal(model: torch.nn.Module, x: dict[str, Tensor]) -> dict[str, Tensor]:
    out = model.run_windows(x["images"], x["head_channel"], x["faces"], x["depth"])
    return {"heatmap": out.heatmap, "patch_logits": out.patch_logits, "inout_logit": out.inout_logit}


Runner = Callable[[torch.nn.Module, dict[str, Tensor]], dict[str, Tensor]]
CASES: dict[str, tuple[str, Runner]] = {
    "vat_spatial": ("vat_spatial", _vat_spatial),
    "vat_temporal": ("vat_temporal", _vat_temporal),
    "pdp_spatial": ("pdp_spatial", _pdp_spatial),
    "pdp_spatial_depth": ("pdp_spatial_depth", _pdp_spatial),
    "pdp_temporal_depth": ("pdp_temporal_depth", _pdp_temporal),
}
"""Fixture folder -> (zoo model, how to call the reference-shaped forward)."""


def assert_close(what: str, got: Tensor, want: np.ndarray) -> None:
    assert tuple(got.shape) == want.shape, f"{what}: shape {tuple(got.shape)} != {want.shape}"
    expected = torch.from_numpy(want).double()
    diff = (got.double() - expected).abs()
    allowed = TOLERANCE * expected.abs().clamp(min=1.0)
    assert bool((diff <= allowed).all()), f"{what}: max abs diff {float(diff.max()):.3g} over the 1e-4 bar"


@pytest.mark.parametrize("fixture", list(CASES))
def test_reproduces_reference(fixture: str, fixture_dir: Callable[[str], Path]) -> None:
    folder = fixture_dir(fixture)
    model_name, run = CASES[fixture]
    spec = json.loads((folder / "spec.json").read_text())
    state_dict = load_fill().fill_state_dict(spec["state_dict"])
    model = create_model(model_name).eval()
    assert load_chong(model, state_dict, fixture).missing == []
    inputs = {k: torch.from_numpy(v) for k, v in np.load(folder / "inputs.npz").items()}
    outputs = np.load(folder / "outputs.npz")

    with torch.inference_mode():
        got = run(model, inputs)

    assert set(got) == set(outputs.files)
    for name, value in got.items():
        assert_close(name, value, outputs[name])
