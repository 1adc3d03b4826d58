"""torch.hub entry points: one per released model, loadable from a local checkout without installing it."""

from __future__ import annotations

import importlib.util
import inspect
import urllib.error

import pytest
import torch
from conftest import PROJECT_ROOT

from gazelab.models import checkpoints, list_models
from gazelab.models.checkpoints import CheckpointError
from gazelab.models.gazelle import GazeLLE


def test_entry_points_are_exactly_the_released_models() -> None:
    spec = importlib.util.spec_from_file_location("hubconf", PROJECT_ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    # What torch.hub.list reports: the public callables of hubconf.py.
    entries = {name for name, value in vars(hubconf).items() if callable(value) and not name.startswith("_")}
    assert entries == set(list_models(pretrained=True))
    for name in entries:
        assert inspect.signature(getattr(hubconf, name)).parameters["pretrained"].default is True
    for module in hubconf.dependencies:
        assert importlib.util.find_spec(module) is not None


def test_local_load_builds_the_model_in_eval_mode() -> None:
    model = torch.hub.load(str(PROJECT_ROOT), "gazelle_dinov2_vitb14", source="local", pretrained=False)
    assert isinstance(model, GazeLLE) and not model.training and not model.has_inout
    decoder = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.backbone.parameters())
    assert decoder == 2_826_752, "the published decoder size (Gaze-LLE ViT-B)"


def test_local_load_of_published_weights_offline_names_the_file(tmp_path, monkeypatch) -> None:
    def offline(url: str):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("GAZELAB_HOME", str(tmp_path))
    monkeypatch.setattr(checkpoints, "_open_url", offline)
    with pytest.raises(CheckpointError, match="gazelle_dinov2_vitb14_inout.pt") as err:
        torch.hub.load(str(PROJECT_ROOT), "gazelle_dinov2_vitb14_inout", source="local", progress=False)
    assert str(tmp_path / "weights" / "gazelle_dinov2_vitb14_inout.pt") in str(err.value)
