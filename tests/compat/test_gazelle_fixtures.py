"""Gaze-LLE against the official implementation: outputs of the reference code on filled weights.

The weights come from the fixture's state-dict names via its ``fill.py`` and go through our official-format
importers (DINOv2 layout for the backbone, released decoder layout without ``pos_embed``, which the model
recomputes), so passing means the released checkpoints load and predict as the reference does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from gazelab.models import create_model
from gazelab.models.official import load_dinov2, load_gazelle

from .conftest import load_fill

TOLERANCE = 1e-4
MODELS = {"gazelle_vits14": "gazelle_dinov2_vits14", "gazelle_vits14_inout": "gazelle_dinov2_vits14_inout"}


def assert_close(what: str, got: torch.Tensor, want: np.ndarray) -> None:
    assert tuple(got.shape) == want.shape, f"{what}: shape {tuple(got.shape)} != {want.shape}"
    diff = float((got.double() - torch.from_numpy(want).double()).abs().max())
    assert diff <= TOLERANCE, f"{what}: max abs diff {diff:.3g} > {TOLERANCE}"


@pytest.mark.parametrize("fixture", list(MODELS))
def test_gazelle_reproduces_reference(fixture: str, fixture_dir: Callable[[str], Path]) -> None:
    folder = fixture_dir(fixture)
    spec = json.loads((folder / "spec.json").read_text())
    fill = load_fill()
    inputs, outputs = np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")

    model = create_model(MODELS[fixture]).eval()
    load_dinov2(model.backbone, fill.fill_state_dict(spec["backbone"]), f"{fixture} backbone")
    report = load_gazelle(model, fill.fill_state_dict(spec["decoder"]), f"{fixture} decoder")
    assert report.missing and all(key.startswith("backbone.") for key in report.missing)

    images = torch.from_numpy(inputs["images"])
    boxes = torch.from_numpy(inputs["bboxes"]).clone()
    boxes[(boxes < 0).all(dim=1)] = float("nan")  # -1 rows: a person without a head box
    image_index = torch.repeat_interleave(torch.arange(len(images)), torch.from_numpy(inputs["people_per_image"]))

    with torch.inference_mode():
        features = model.encode(images)
        out = model.decode(features, model.prepare_people(boxes, image_index, images))

    assert_close("backbone_features", features, outputs["backbone_features"])
    assert_close("heatmap", out.heatmap, outputs["heatmap"])
    if "inout" in outputs:
        assert out.inout is not None
        assert_close("inout", out.inout, outputs["inout"])
    else:
        assert out.inout is None
