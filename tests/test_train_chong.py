"""Training the Chong-style families (VAT, VAT-GC, PDP): loss terms against hand computations, the sequence and
depth data paths, fine-tuning controls, the published recipes, and a few steps per family that lower the loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_train_support import StepLosses, quiet_trainer

from gazelab.data.synthetic import preset, write_dataset
from gazelab.errors import GazelabError
from gazelab.models.base import GazeOutput
from gazelab.models.vat import ChongGazeOutput
from gazelab.train import GazeDataModule, GazeModule
from gazelab.train.cli import GazeCLI, build_cli
from gazelab.train.losses import CombinedLoss
from gazelab.train.losses_chong import heatmap_mse, heatmap_mse_all, pdp_kl
from gazelab.train.optim import build_scheduler

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_heatmap_mse_is_x10000_on_the_raw_map_over_in_frame_people():
    raw = torch.zeros(3, 64, 64)
    raw[0] = 0.5
    raw[1] = 1.0  # out of frame: not counted
    target = torch.zeros(3, 64, 64)
    target[2, 10, 10] = 1.0
    batch = {"inout": torch.tensor([1.0, 0.0, 1.0]), "heatmaps": target}
    output = ChongGazeOutput(raw.clamp(0, 1), raw_heatmap=raw)
    assert torch.allclose(heatmap_mse(output, batch), torch.tensor((2500 + 10000 / 4096) / 2))
    assert torch.allclose(heatmap_mse_all(output, batch), torch.tensor((2500 + 10000 + 10000 / 4096) / 3))
    over = ChongGazeOutput(raw.clamp(0, 1), raw_heatmap=torch.full_like(raw, 2.0))  # the raw map, not the clamped
    assert torch.allclose(heatmap_mse(over, batch), torch.tensor((40000 + 40000 - 3 * 10000 / 4096) / 2))
    batch["inout"] = torch.tensor([0.0, 0.0, -1.0])
    assert float(heatmap_mse(output, batch)) == 0.0
    with pytest.raises(GazelabError, match="raw heatmap"):
        heatmap_mse(GazeOutput(raw), batch)


def test_pdp_kl_matches_a_hand_computation():
    heatmaps = torch.zeros(3, 64, 64)
    heatmaps[0, 4, 13] = 1.0  # cell (row 0, col 1) of the 7x7 grid of 9-cell patches
    heatmaps[0, 63, 63] = 1.0  # row/column 63 lies outside the 7x7 x 9 = 63 cells: ignored
    batch = {"inout": torch.tensor([1.0, 0.0, -1.0]), "heatmaps": heatmaps}
    logits = torch.zeros(3, 50)
    logits[0, 1] = 2.0
    output = ChongGazeOutput(heatmaps, patch_logits=logits)
    p_hit = torch.sigmoid(torch.tensor(2.0)) / (torch.sigmoid(torch.tensor(2.0)) + 49 * 0.5)
    expected = (-torch.log(p_hit) + math.log(50)) / 2  # in frame: one-hot on cell 1; out: one-hot on "outside"
    assert torch.allclose(pdp_kl(output, batch), expected, atol=1e-5)
    with pytest.raises(GazelabError, match="PDP"):
        pdp_kl(ChongGazeOutput(heatmaps), batch)


def test_recipe_weights_combine_the_terms():
    raw = torch.full((2, 64, 64), 0.25)
    output = ChongGazeOutput(raw, inout=torch.tensor([0.5, 0.5]), raw_heatmap=raw)
    batch = {"inout": torch.tensor([1.0, 0.0]), "heatmaps": torch.zeros(2, 64, 64)}
    values = CombinedLoss({"heatmap_mse": 1.0, "inout_bce": 100.0})(output, batch)
    assert torch.allclose(values["total"], torch.tensor(625.0 + 100 * math.log(2)))


def test_multistep_schedule_divides_the_rate_at_the_milestones():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    config = build_scheduler("multistep", optimizer, 0, 0.0, milestones=[2, 4], gamma=0.2)
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        config["scheduler"].step()
    assert rates == pytest.approx([1.0, 1.0, 0.2, 0.2, 0.04])
    with pytest.raises(GazelabError, match="milestones"):
        build_scheduler("multistep", optimizer, 0, 0.0, milestones=[])


def test_video_fine_tuning_trains_only_the_named_parts_with_batchnorm_frozen():
    trained = ["convlstm_scene.", "deconv1.", "deconv2.", "deconv3.", "conv4.", "fc_inout."]
    module = GazeModule("vat_temporal_tiny", train_backbone=True, trainable=trained, freeze_bn=True,
                        lr=5e-5, lr_groups={"fc_inout.": 2.5e-4})  # fmt: skip
    names = {n for n, p in module.model.named_parameters() if p.requires_grad}
    assert names and all(any(t in n for t in trained) for n in names)
    assert "deconv_bn1.weight" not in names and "layer1_scene.0.conv1.weight" not in names
    module.train()
    assert not any(m.training for m in module.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(GazelabError, match="match no parameter"):
        GazeModule("vat_spatial_tiny", trainable=["convlstm"])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chong")
    write_dataset(root / "images", preset("small", images=6, depth=True), preset_name="small")
    write_dataset(root / "video", preset("small", mode="video", clips=4, frames_per_clip=6, depth=True))
    return {"images": root / "images", "video": root / "video", "root": root}


def test_sequence_batches_flatten_windows_with_clip_positions_and_depth(synthetic):
    data = GazeDataModule(str(synthetic["video"]), format="vat", sampling="sequence", sequence_length=4,
                          image_size=None, augment="pdp", batch_size=2, num_workers=0, depth_dir="depth")  # fmt: skip
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    extras = batch["extras"]
    lengths = torch.bincount(extras["clip_index"]).tolist()
    assert len(lengths) == 2 and all(1 <= n <= 4 for n in lengths)
    assert extras["frame_step"].tolist() == [s for n in lengths for s in range(n)]
    people = len(batch["heads"])
    assert batch["images"].shape[:2] == (people, 3) and batch["heatmaps"].shape == (people, 64, 64)
    depth = extras["depth"]
    assert depth.shape == (people, 1, 224, 224) and 0 <= depth.min() < depth.max() <= 1


FAMILIES = {
    "vat_spatial_tiny": ({"heatmap_mse": 1.0, "inout_bce": 100.0}, {}),
    "vat_temporal_tiny": ({"heatmap_mse": 1.0, "inout_bce": 100.0}, {"sampling": "sequence", "sequence_length": 3}),
    "pdp_spatial_depth_tiny": ({"heatmap_mse_all": 1.0, "pdp_kl": 20.0}, {"depth_dir": "depth"}),
    "pdp_temporal_depth_tiny": ({"heatmap_mse_all": 1.0, "pdp_kl": 20.0},
                                {"sampling": "sequence", "sequence_length": 5, "depth_dir": "depth"}),
}  # fmt: skip
"""Each family's recipe losses and data path (PDP without depth and VAT-GC share these code paths)."""
STEPS = 4


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_few_steps_lower_the_training_loss(name, synthetic, tmp_path):
    losses, data_options = FAMILIES[name]
    video = data_options.get("sampling") == "sequence"
    source = synthetic["video"] if video else synthetic["images"] / "train_annotations_release.txt"
    data = GazeDataModule(str(source), format="vat" if video else None, image_size=None, augment=None,
                      heatmap_rule="chong", batch_size=1 if video else 2, num_workers=0, **data_options)  # fmt: skip
    torch.manual_seed(0)
    module = GazeModule(name, train_backbone=True, losses=losses, lr=1e-2)
    steps = StepLosses()
    trainer = quiet_trainer(
        tmp_path, max_epochs=STEPS, overfit_batches=1, callbacks=[steps], enable_checkpointing=False
    )
    trainer.fit(module, datamodule=data)  # the same batch every step
    assert len(steps.losses) == STEPS and all(math.isfinite(v) for v in steps.losses)
    assert steps.losses[-1] < 0.9 * steps.losses[0], steps.losses


class ParseOnly(GazeCLI):
    def instantiate_classes(self) -> None:
        pass


def parse(config: str):
    return build_cli(["--config", str(CONFIGS / config)], cli_class=ParseOnly).config


def test_recipes_carry_the_published_settings():
    vat = parse("vat/spatial_gazefollow.yaml")
    assert (vat.model.name, vat.model.lr, vat.data.batch_size) == ("vat_spatial", 2.5e-4, 48)
    assert vat.trainer.max_epochs == 70 and vat.data.augment == "vat" and vat.data.heatmap_rule == "chong"
    assert vat.model.losses == {"heatmap_mse": 1.0} and vat.model.backbone_weights is True
    video = parse("vat/temporal_vat.yaml")
    assert (video.model.lr, video.model.lr_groups, video.model.freeze_bn) == (5e-5, {"fc_inout.": 2.5e-4}, True)
    assert video.model.losses == {"heatmap_mse": 1.0, "inout_bce": 100.0}
    assert (video.data.sampling, video.data.sequence_length, video.data.batch_size) == ("sequence", 50, 16)
    for config, weight, milestones in [("pdp/spatial_gazefollow.yaml", 40.0, [15, 22, 30]),
                                       ("pdp/spatial_depth_gazefollow.yaml", 20.0, [18, 22, 28])]:  # fmt: skip
        pdp = parse(config)
        assert pdp.model.losses == {"heatmap_mse_all": 1.0, "pdp_kl": weight}
        assert (pdp.model.scheduler, pdp.model.milestones, pdp.model.gamma) == ("multistep", milestones, 0.2)
        assert (pdp.model.lr, pdp.model.lr_groups, pdp.data.batch_size) == (2.5e-4, {"qkv_proj": 1.25e-4}, 80)
    temporal = parse("pdp/temporal_depth_vat.yaml")
    assert (temporal.data.sampling, temporal.data.sequence_length, temporal.data.depth_dir) == ("sequence", 5, "depth")
