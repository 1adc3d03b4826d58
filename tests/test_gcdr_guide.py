"""The teacher's guide model: its heatmap conditions the teacher, cross-fitted on the people it trained on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gazelab.gcdr.guide import guide_fold, guide_heatmaps, outside_fold
from gazelab.gcdr.lightning import DiffusionModule
from gazelab.gcdr.model import DiffusionConfig, HeatmapDiffusion
from gazelab.gcdr.official import load_diffusion
from gazelab.models.registry import create_model
from gazelab.train.export import official_state_dict, save_weights
from gazelab.types import Frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GUIDED = {**DiffusionConfig.tiny().to_dict(), "encoder_guide": "gazelle_synth", "encoder_fine": True}


def _weights(tmp_path: Path, name: str, seed: int) -> str:
    torch.manual_seed(seed)
    return str(save_weights(official_state_dict(create_model("gazelle_synth"), include_backbone=True),
                            tmp_path / f"{name}.pt"))  # fmt: skip


def _paths_in_folds(folds: int) -> list[str]:
    """One image path per fold, in fold order."""
    found: dict[int, str] = {}
    number = 0
    while len(found) < folds:
        path = f"train/{number:08d}.jpg"
        found.setdefault(guide_fold(path, folds), path)
        number += 1
    return [found[k] for k in range(folds)]


def test_folds_are_stable_and_each_fold_model_skips_its_own_images() -> None:
    frames = [Frame(path=f"train/{i:08d}.jpg") for i in range(40)]
    folds = [guide_fold(f.path, 3) for f in frames]
    assert folds == [guide_fold(f.path, 3) for f in frames]  # a hash of the path, not of the process
    assert set(folds) == {0, 1, 2}
    for fold in range(3):
        kept = {f.path for f in outside_fold(frames, fold, 3)}
        assert kept == {f.path for f, k in zip(frames, folds) if k != fold}


def test_labelled_people_are_guided_by_the_fold_model_that_never_saw_their_image(tmp_path: Path) -> None:
    """Training inputs: each labelled person's guide map is the out-of-fold model's; other people get the model
    of all labelled people (the one saved with the teacher)."""
    full, fold0, fold1 = (_weights(tmp_path, name, seed) for seed, name in enumerate(("full", "fold0", "fold1")))
    module = DiffusionModule(config=GUIDED, tiny=True, guide_weights=full, guide_folds=[fold0, fold1])
    module.train()
    assert not module.model.guide.training and not any(m.training for m in module.fold_guides)
    paths = _paths_in_folds(2)
    g = torch.Generator().manual_seed(0)
    batch = {
        "images": [(torch.rand(3, 40, 48, generator=g) * 255).to(torch.uint8) for _ in range(3)],
        "heads": torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.6, 0.2, 0.8, 0.4], [0.3, 0.5, 0.5, 0.7]]),
        "image_index": torch.tensor([0, 1, 1]),
        "paths": [paths[0], paths[1]],
    }
    pictures = [batch["images"][i] for i in (0, 1, 1)]
    expected = {name: guide_heatmaps(model, pictures, batch["heads"])
                for name, model in (("full", module.model.guide), ("fold0", module.fold_guides[0]),
                                    ("fold1", module.fold_guides[1]))}  # fmt: skip
    guided = module._inputs(batch, labelled=True)["guide"][:, 0]
    assert torch.allclose(guided[0], expected["fold0"][0]) and torch.allclose(guided[1:], expected["fold1"][1:])
    assert not torch.allclose(guided, expected["full"], atol=1e-3)
    assert torch.allclose(module._inputs(batch)["guide"][:, 0], expected["full"])


def test_the_guide_map_changes_the_context_and_is_required() -> None:
    torch.manual_seed(0)
    model = HeatmapDiffusion(DiffusionConfig.from_dict(GUIDED)).eval()
    scene, head, face = torch.randn(2, 3, 32, 32), torch.zeros(2, 1, 32, 32), torch.randn(2, 3, 32, 32)
    head[..., 4:9, 4:9] = 1
    guide = torch.zeros(2, 1, 64, 64)
    with torch.no_grad():
        plain = model.context(scene, head, face, guide)
        guide[:, :, 40:50, 10:20] = 1
        moved = model.context(scene, head, face, guide)
    assert not torch.allclose(plain[0], moved[0])
    with pytest.raises(ValueError, match="needs a guide map"):
        model.context(scene, head, face)
    with pytest.raises(ValueError, match="simple encoder"):
        HeatmapDiffusion(DiffusionConfig(encoder_guide="gazelle_synth"))


def test_a_saved_guided_teacher_loads_with_its_guide(tmp_path: Path) -> None:
    """The guide is part of the teacher's weights, so ``gazelab refine`` with the checkpoint needs nothing else."""
    full = _weights(tmp_path, "full", 3)
    module = DiffusionModule(config=GUIDED, tiny=True, guide_weights=full)
    path = tmp_path / "teacher.ckpt"
    state = {"model." + k: v for k, v in module.model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"config": module.hparams["config"]}}, path)
    loaded = load_diffusion(path)
    assert loaded.guide is not None and not loaded.guide.training
    for name, value in module.model.guide.state_dict().items():
        assert torch.equal(loaded.guide.state_dict()[name], value), name
    pictures, boxes = [(torch.rand(3, 40, 48) * 255).to(torch.uint8)], torch.tensor([[0.2, 0.2, 0.4, 0.4]])
    inputs = loaded.prepare(pictures, boxes)
    assert inputs["guide"].shape == (1, 1, 64, 64)
    assert torch.allclose(inputs["guide"][:, 0], guide_heatmaps(module.model.guide, pictures, boxes))


def test_guide_weights_need_a_guided_teacher(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="encoder_guide"):
        DiffusionModule(tiny=True, guide_weights=_weights(tmp_path, "full", 0))
