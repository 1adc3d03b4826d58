"""Shared helpers of the training tests (a tiny synthetic dataset, quiet trainers) and the small pieces:
loss terms, parameter groups."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import pytest
import torch

from gazelab.data.synthetic import preset, write_dataset
from gazelab.errors import GazelabError
from gazelab.models.base import GazeOutput
from gazelab.train.losses import CombinedLoss, heatmap_angular, heatmap_bce, heatmap_centre_of_mass, inout_bce
from gazelab.train.optim import parameter_groups


def make_synthetic(folder: Path, images: int = 10) -> tuple[Path, Path]:
    """A tiny synthetic GazeFollow-format dataset; returns (train file, test file)."""
    write_dataset(folder, preset("small", images=images), preset_name="small")
    return folder / "train_annotations_release.txt", folder / "test_annotations_release.txt"


class StepLosses(L.Callback):
    """Records the loss of every training step (before its update)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def quiet_trainer(root: Path, **kwargs) -> L.Trainer:
    """A CPU trainer without progress bars or model summaries, logging to ``root``."""
    options = dict(
        accelerator="cpu",
        devices=1,
        default_root_dir=str(root),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
    )
    options.update(kwargs)
    return L.Trainer(**options)


def test_heatmap_bce_counts_only_in_frame_people():
    heatmap = torch.full((3, 64, 64), 0.5)
    batch = {"inout": torch.tensor([1.0, 0.0, -1.0]), "heatmaps": torch.zeros(3, 64, 64)}
    expected = torch.nn.functional.binary_cross_entropy(heatmap[:1], batch["heatmaps"][:1])
    assert torch.allclose(heatmap_bce(GazeOutput(heatmap), batch), expected)
    batch["inout"] = torch.tensor([0.0, 0.0, 0.0])
    assert float(heatmap_bce(GazeOutput(heatmap), batch)) == 0.0


def test_inout_bce_skips_unknown_labels_and_needs_an_inout_head():
    output = GazeOutput(torch.zeros(3, 64, 64), inout=torch.tensor([0.9, 0.2, 0.5]))
    batch = {"inout": torch.tensor([1.0, 0.0, -1.0])}
    expected = -(torch.log(torch.tensor(0.9)) + torch.log(torch.tensor(0.8))) / 2
    assert torch.allclose(inout_bce(output, batch), expected)
    with pytest.raises(GazelabError, match="in/out head"):
        inout_bce(GazeOutput(torch.zeros(1, 64, 64)), batch)


def test_combined_loss_weights_terms_and_rejects_unknown_names():
    output = GazeOutput(torch.full((2, 64, 64), 0.5), inout=torch.tensor([0.5, 0.5]))
    batch = {"inout": torch.tensor([1.0, 0.0]), "heatmaps": torch.zeros(2, 64, 64)}
    values = CombinedLoss({"heatmap_bce": 1.0, "inout_bce": 2.0})(output, batch)
    assert torch.allclose(values["total"], values["heatmap_bce"] + 2 * values["inout_bce"])
    with pytest.raises(GazelabError, match="unknown loss"):
        CombinedLoss({"no_such_loss": 1.0})


def test_heatmap_centre_of_mass_of_a_single_pixel_and_of_two():
    heatmap = torch.zeros(2, 64, 64)
    heatmap[0, 10, 40] = 1.0
    heatmap[1, 0, 0] = heatmap[1, 0, 63] = 2.0
    centres = heatmap_centre_of_mass(heatmap)
    assert torch.allclose(centres[0], torch.tensor([40.5 / 64, 10.5 / 64]))
    assert torch.allclose(centres[1], torch.tensor([0.5, 0.5 / 64]))


def test_heatmap_angular_is_zero_on_the_right_side_one_opposite_and_skips_unlabelled():
    heatmap = torch.zeros(3, 64, 64)
    heatmap[:, 32, 60] = 1.0  # mass to the right of a head at the centre
    heads = torch.tensor([[0.45, 0.45, 0.55, 0.55]]).repeat(3, 1)
    gaze = torch.full((3, 2, 2), -1.0)
    gaze[0, 0] = torch.tensor([0.9, 0.5])  # right: agrees
    gaze[1, :] = torch.tensor([[0.1, 0.5], [0.1, 0.52]])  # left: opposite
    batch = {"heads": heads, "gaze": gaze, "inout": torch.tensor([1.0, 1.0, 0.0])}
    first = {"heads": heads[:1], "gaze": gaze[:1], "inout": torch.tensor([1.0])}
    assert float(heatmap_angular(GazeOutput(heatmap[:1]), first)) < 1e-3
    assert abs(float(heatmap_angular(GazeOutput(heatmap), batch)) - 0.5) < 1e-3  # mean of ~0 and ~1
    batch["inout"] = torch.zeros(3)
    assert float(heatmap_angular(GazeOutput(heatmap), batch)) == 0.0


def test_parameter_groups_by_name_substring():
    model = torch.nn.ModuleDict({"inout_head": torch.nn.Linear(2, 1), "body": torch.nn.Linear(2, 2)})
    model["body"].bias.requires_grad_(False)
    groups = parameter_groups(model.named_parameters(), 1e-5, {"inout": 1e-2})
    assert [(g["name"], g["lr"], len(g["params"])) for g in groups] == [("inout", 1e-2, 2), ("default", 1e-5, 1)]
    with pytest.raises(GazelabError, match="match no trainable"):
        parameter_groups(model.named_parameters(), 1e-5, {"inuot": 1e-2})
