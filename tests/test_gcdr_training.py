"""Training the heatmap diffusion model: supervised loss, mean teacher, and label-blindness on unlabelled data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gazelab.data.targets import gaussian_heatmaps
from gazelab.gcdr.lightning import DiffusionModule, ema_decay, rampup

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _view(count: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(count, 2, generator=g, dtype=torch.float64) * 0.8 + 0.1
    return {
        "images": (torch.rand(count, 3, 48, 48, generator=g) * 255).to(torch.uint8),
        "heads": torch.tensor([[0.4, 0.1, 0.55, 0.3]] * count),
        "image_index": torch.arange(count),
        "heatmaps": gaussian_heatmaps(points),
        "gaze": points[:, None].float(),
        "inout": torch.ones(count),
        "prior_inframe": torch.tensor([True] * (count - 1) + [False]),
    }


def _batch(seed: int = 0) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    return {
        "labelled": {"view1": _view(2, seed), "view2": _view(2, seed + 1)},
        "unlabelled": {"view1": _view(3, seed + 2), "view2": _view(3, seed + 3)},
    }


def _scrambled(view: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return view | {
        "heatmaps": torch.rand_like(view["heatmaps"]),
        "gaze": torch.rand_like(view["gaze"]),
        "inout": torch.zeros_like(view["inout"]),
    }


@pytest.fixture
def module() -> DiffusionModule:
    """A tiny mean-teacher module whose zero-initialised output layers are randomised (non-constant maps)."""
    torch.manual_seed(0)
    module = DiffusionModule(tiny=True, mean_teacher=True, teacher_steps=2)
    for layer in module.model.modules():
        if isinstance(layer, nn.Conv2d | nn.Conv1d):
            nn.init.normal_(layer.weight, std=0.3)
    return module


def _loss(module: DiffusionModule, batch: dict) -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    return module.mean_teacher_loss(batch, epoch=2.0)


def test_mean_teacher_never_reads_unlabelled_labels(module: DiffusionModule) -> None:
    batch = _batch()
    reference = _loss(module, batch)
    assert reference["consistency"] > 0 and reference["supervised"] > 0
    scrambled = {**batch, "unlabelled": {v: _scrambled(batch["unlabelled"][v]) for v in ("view1", "view2")}}
    again = _loss(module, scrambled)
    assert all(torch.equal(reference[k], again[k]) for k in reference)
    # ... while the labelled labels and the prior's in/out estimate do matter.
    labelled = {**batch, "labelled": {v: _scrambled(batch["labelled"][v]) for v in ("view1", "view2")}}
    assert not torch.equal(_loss(module, labelled)["total"], reference["total"])
    flipped = {
        v: batch["unlabelled"][v] | {"prior_inframe": torch.ones(3, dtype=torch.bool)} for v in ("view1", "view2")
    }
    assert not torch.equal(_loss(module, {**batch, "unlabelled": flipped})["consistency"], reference["consistency"])


def test_supervised_loss_ignores_out_of_frame_people() -> None:
    torch.manual_seed(0)
    module = DiffusionModule(tiny=True)
    batch = _view(3, 0)
    batch["inout"] = torch.tensor([1.0, 1.0, 0.0])
    torch.manual_seed(1)
    loss, pred = module.supervised_loss(batch)
    assert pred.shape == (3, 64, 64)
    batch["heatmaps"] = torch.cat([batch["heatmaps"][:2], torch.rand(1, 64, 64)])
    torch.manual_seed(1)
    assert torch.equal(module.supervised_loss(batch)[0], loss)


def test_teacher_is_an_ema_of_the_student(module: DiffusionModule) -> None:
    assert ema_decay(0) == 0 and ema_decay(14) == 0 and ema_decay(15) == 0.5 and ema_decay(10**6) == 0.99
    assert rampup(0) == pytest.approx(math.exp(-5)) and rampup(5) == 1 and rampup(9) == 1
    student, teacher = module.model, module.teacher.module
    assert not torch.equal(next(teacher.parameters()), next(student.parameters()))  # randomised after the copy
    module.on_train_batch_end(None, None, 0)  # first update: the teacher copies the student
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    for _ in range(14):
        module.on_train_batch_end(None, None, 0)
    first_t, first_s = next(teacher.parameters()), next(student.parameters())
    assert torch.allclose(first_t, first_s)  # decay 0 during the first 15 steps
    with torch.no_grad():
        first_s.add_(1.0)
    module.on_train_batch_end(None, None, 0)  # step 15: decay 0.5
    assert torch.allclose(first_t, first_s - 0.5)
    assert not any(p.requires_grad for p in teacher.parameters())


def test_encoder_direction_is_trained_by_an_angular_loss_on_in_frame_people() -> None:
    """The face-crop direction adds ``direction_weight * (1 - cos) / 2`` over in-frame labelled people."""
    batch = _view(3, 0)
    batch["inout"] = torch.tensor([1.0, 1.0, 0.0])
    losses = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        module = DiffusionModule(tiny=True, config={"encoder_direction": True}, direction_weight=weight)
        torch.manual_seed(1)
        losses[weight] = module.supervised_loss(batch)[0]
    face = module._inputs(batch)["face"]
    direction = module.model.gaze_direction(face)
    centre = (batch["heads"][:, :2] + batch["heads"][:, 2:]) / 2
    wanted = torch.nn.functional.normalize(batch["gaze"][:, 0] - centre, dim=1)
    angular = ((1 - (direction * wanted).sum(1)) / 2)[:2].mean()
    assert float(losses[10.0] - losses[0.0]) == pytest.approx(10 * float(angular), rel=1e-4)
    losses[10.0].backward()
    assert module.model.conditioning.encoder.direction.mlp[-1].weight.grad.abs().sum() > 0
    weight = DiffusionModule(tiny=True, config={"encoder_direction": True}, direction_weight=0.0)
    for layer in weight.model.unet.modules():  # non-zero output layers, so the denoising loss reaches the context
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, std=0.3)
    weight.supervised_loss(batch)[0].backward()  # the denoising loss alone does not reach the direction
    grad = weight.model.conditioning.encoder.direction.mlp[-1].weight.grad
    assert grad is None or not grad.any()
    assert DiffusionModule(tiny=True).model.gaze_direction(face) is None


def test_encoder_direction_field_follows_the_direction() -> None:
    """The field channels the direction adds are brightest on the ray from the head centre."""
    from gazelab.gcdr.conditioning import _field_from_head

    head = torch.zeros(1, 1, 32, 32)
    head[..., 8:12, 4:8] = 1  # centre (6, 10) px -> (0.1875, 0.3125)
    field = _field_from_head(head, torch.tensor([[1.0, 0.0]]))
    assert field.shape == (1, 3, 32, 32)
    narrow = field[0, 2]
    assert narrow[10, 30] > 0.9 and narrow[10, 0] == 0 and narrow[30, 6] < 0.01


def test_fine_context_only_adds_pixel_level_maps() -> None:
    """``encoder_fine`` adds conv(input channels) to each level; zeroed, the context is the plain one."""
    from gazelab.gcdr.model import DiffusionConfig, HeatmapDiffusion

    base = {**DiffusionConfig.tiny().to_dict(), "encoder_direction": True}
    torch.manual_seed(0)
    plain = HeatmapDiffusion(DiffusionConfig.from_dict(base)).eval()
    fine = HeatmapDiffusion(DiffusionConfig.from_dict({**base, "encoder_fine": True})).eval()
    missing = fine.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("conditioning.fine.") for k in missing)
    scene, head, face = torch.randn(2, 3, 32, 32), torch.zeros(2, 1, 32, 32), torch.randn(2, 3, 32, 32)
    head[..., 4:9, 4:9] = 1
    assert fine.conditioning.fine[0].in_channels == 7  # scene, head channel, three field maps
    with torch.no_grad():
        for conv in fine.conditioning.fine:
            conv.weight.zero_(), conv.bias.zero_()
        reference = plain.context(scene, head, face)
        assert all(torch.equal(a, b) for a, b in zip(fine.context(scene, head, face), reference))
        fine.conditioning.fine[0].bias.fill_(1.0)
        shifted = fine.context(scene, head, face)
    assert torch.allclose(shifted[0], reference[0] + 1) and torch.equal(shifted[1], reference[1])
    with pytest.raises(ValueError, match="simple encoder"):
        HeatmapDiffusion(DiffusionConfig(encoder_fine=True))
