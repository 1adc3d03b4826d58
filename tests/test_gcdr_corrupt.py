"""Distractor blobs in the teacher's training inputs (`gazelab.gcdr.corrupt`): what they add, and that the loss
still asks for the clean map."""

from __future__ import annotations

import pytest
import torch

from gazelab.data.targets import gaussian_heatmaps
from gazelab.gcdr.corrupt import add_distractors
from gazelab.gcdr.lightning import DiffusionModule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

POINTS = torch.tensor([[0.2, 0.3], [0.7, 0.6], [0.5, 0.5], [0.1, 0.9]], dtype=torch.float64)


def _maps() -> torch.Tensor:
    maps = gaussian_heatmaps(POINTS)
    maps[2] = 0  # a person looking out of the frame: an empty map
    return maps


def test_every_drawn_map_keeps_its_target_and_gains_a_second_blob() -> None:
    maps = _maps()
    mixed = add_distractors(maps, 1.0, torch.Generator().manual_seed(0))
    assert mixed.shape == maps.shape and mixed.dtype == maps.dtype
    assert torch.equal(mixed[2], maps[2])  # empty maps stay empty
    for i in (0, 1, 3):
        assert mixed[i].amax() == pytest.approx(1.0) and mixed[i].amin() >= 0
        x, y = (POINTS[i] * 64).long().tolist()
        assert mixed[i, y, x] >= 0.3 - 1e-6  # the target's blob is still there (weight >= 0.3 of the strongest)
        far = torch.ones(64, 64, dtype=torch.bool)
        far[max(y - 8, 0) : y + 9, max(x - 8, 0) : x + 9] = False
        assert mixed[i][far].max() >= 0.3 - 1e-6 > maps[i][far].max()  # ... and a second one away from it


def test_probability_sets_the_share_of_maps_and_zero_draws_nothing() -> None:
    maps = gaussian_heatmaps(torch.rand(400, 2, dtype=torch.float64) * 0.8 + 0.1)
    changed = (add_distractors(maps, 0.25, torch.Generator().manual_seed(1)) != maps).any(dim=(-2, -1))
    assert 0.18 < changed.float().mean() < 0.32
    generator = torch.Generator().manual_seed(2)
    state = generator.get_state()
    assert add_distractors(maps, 0.0, generator) is maps
    assert torch.equal(generator.get_state(), state)  # the published recipe's random stream is untouched
    with pytest.raises(ValueError, match="lie in"):
        add_distractors(maps, 1.5)


def test_teacher_noises_the_distracted_map_but_is_scored_against_the_clean_one() -> None:
    torch.manual_seed(0)
    module = DiffusionModule(tiny=True, distractors=1.0)
    targets = gaussian_heatmaps(POINTS[:2])
    batch = {"images": torch.zeros(2, 3, 48, 48, dtype=torch.uint8), "heads": torch.tensor([[0.4, 0.1, 0.55, 0.3]] * 2),
             "image_index": torch.arange(2), "heatmaps": targets, "gaze": POINTS[:2, None].float(),
             "inout": torch.ones(2)}  # fmt: skip
    noised = []
    predict = module._predict
    module._predict = lambda clean, *args: noised.append(clean) or predict(clean, *args)
    module.train()
    loss, pred = module.supervised_loss(batch)
    assert not torch.equal(noised[-1], targets)
    wanted = module.hparams.loss_weight * (pred - targets).pow(2).mean(dim=(-2, -1)).mean()
    assert torch.allclose(loss, wanted)
    module.eval()  # validation and sampling never see distractors
    module.supervised_loss(batch)
    assert torch.equal(noised[-1], targets)
