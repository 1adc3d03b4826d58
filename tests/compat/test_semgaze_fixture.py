"""SemGaze (Tafasca et al. 2024) against the official implementation.

The fixture's weights are regenerated from its state-dict names with the fixture set's ``fill.py``, wrapped as
a Lightning checkpoint (``model.`` prefixes under ``state_dict``, saved and read back with
``weights_only=True``) and loaded strictly by the official importer; the reference forward over ``[B, N]``
person slots (zero padding at the front, target last) must reproduce heatmaps, gaze vectors and label
embeddings within the fixture's 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gazelab.models import create_model

from .conftest import load_fill

TOLERANCE = 1e-4


@pytest.mark.parametrize("name", ["semgaze"])
def test_semgaze_reproduces_the_official_model(name: str, fixture_dir, tmp_path: Path) -> None:
    folder = fixture_dir(name)
    spec = json.loads((folder / "spec.json").read_text())
    weights = load_fill().fill_state_dict(spec["state_dict"])
    checkpoint = tmp_path / "semgaze.ckpt"
    torch.save({"epoch": 19, "state_dict": {f"model.{k}": torch.as_tensor(v) for k, v in weights.items()}}, checkpoint)
    model = create_model("semgaze_gazefollow", pretrained=checkpoint).eval()

    inputs = {k: torch.from_numpy(v) for k, v in np.load(folder / "inputs.npz").items()}
    expected = np.load(folder / "outputs.npz")
    with torch.no_grad():
        out = model.run(inputs["image"], inputs["heads"], inputs["head_bboxes"])
    for key, got in zip(("heatmap", "gaze_vec", "label_emb"), out, strict=True):
        want = torch.from_numpy(expected[key])
        assert got.shape == want.shape, f"{key}: shape {tuple(got.shape)} != {tuple(want.shape)}"
        error = (got - want).abs().max().item()
        assert error <= TOLERANCE, f"{name}/{key}: max abs error {error:.2e} > {TOLERANCE}"
