"""Every trainable family exports its weights (what `gazelab train` does at the end) in a form that loads back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gazelab.models import create_model
from gazelab.train.export import official_state_dict, save_weights


@pytest.mark.parametrize("name", ["gazelle_tiny", "vat_spatial_tiny", "pdp_spatial_tiny", "semgaze_tiny"])
def test_exported_weights_load_back_into_the_same_model(tmp_path: Path, name: str):
    torch.manual_seed(0)
    model = create_model(name)
    path = save_weights(official_state_dict(model, include_backbone=True), tmp_path / f"{name}.pt")
    again = create_model(name, pretrained=str(path))
    ours, theirs = model.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
