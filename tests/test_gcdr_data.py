"""Mean-teacher data and weight files of the diffusion model: no labels in unlabelled streams; official files load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gazelab.cli import main
from gazelab.data.dataset import SampleConfig
from gazelab.gcdr.data import TwoViewDataset, collate_views, strip_labels
from gazelab.gcdr.model import DiffusionConfig, HeatmapDiffusion
from gazelab.gcdr.official import load_diffusion
from gazelab.priors.sources import load_frames
from gazelab.priors.store import PriorStore, person_key


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    with pytest.raises(SystemExit) as done:
        main(["synth", "--out", str(out), "--images", "3", "--seed", "4", "--priors"])
    assert done.value.code in (0, None)
    return out


def test_unlabelled_two_view_samples_carry_no_labels(dataset: Path) -> None:
    frames, _ = load_frames(dataset)
    assert any(p.gaze for f in frames for p in f.people)  # the file has labels ...
    store = PriorStore(dataset / "priors")
    config = SampleConfig(image_size=64, augment="gcdr", heatmap_rule="chong", seed=1)
    data = TwoViewDataset(strip_labels(frames), config, store)
    batch = collate_views([data[i] for i in range(len(data))])
    view1, view2 = batch["view1"], batch["view2"]
    assert view1["images"].shape == view2["images"].shape == (len(data), 3, 64, 64)
    assert (view1["heatmaps"] == 0).all() and (view1["gaze"] == -1).all() and (view1["inout"] == -1).all()  # ... gone
    expected = []
    for f, p in data.index:
        record = store.get(*person_key(data.frames[f], p))
        expected.append(record is not None and record.valid and float(record.heatmap.max()) > 0)
    assert view1["prior_inframe"].tolist() == expected == view2["prior_inframe"].tolist()
    assert not torch.equal(view1["images"], view2["images"])  # own colour change / jitter per view


_OFFICIAL = (
    ("conditioning.encoder.", "feat_extractor."),
    ("conditioning.", ""),
    ("unet.", "diffusion_model."),
)


def test_official_files_load_with_wrapper_prefix_and_schedule_buffers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HeatmapDiffusion(DiffusionConfig.tiny())
    state = {}
    for key, value in model.state_dict().items():
        for ours, theirs in _OFFICIAL:
            if key.startswith(ours):
                key = theirs + key[len(ours) :]
                break
        state[f"module.{key}"] = value + 1 if value.is_floating_point() else value
    state["module.diffusion.alphas_cumprod"] = model.schedule.alphas_cumprod.float()
    state["module.diffusion.betas"] = model.schedule.betas.float()
    path = tmp_path / "gcdr_official.pt"
    torch.save({"model": state, "epoch": 3}, path)
    loaded = load_diffusion(path, DiffusionConfig.tiny())
    for key, value in model.state_dict().items():
        expected = value + 1 if value.is_floating_point() else value
        assert torch.equal(loaded.state_dict()[key], expected), key
    assert not loaded.training
