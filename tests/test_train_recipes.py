"""Every shipped recipe parses against the training CLI (types, known keys), with the values it promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from gazelab.train.cli import GazeCLI, build_cli

ROOT = Path(__file__).resolve().parents[1] / "configs"
DIFFUSION = sorted((ROOT / "gcdr").glob("diffusion_*.yaml"))
"""GCDR's diffusion recipes go to ``python -m gazelab.gcdr.train`` (another module class)."""
CONFIGS = sorted(set(ROOT.rglob("*.yaml")) - set(DIFFUSION))


class ParseOnly(GazeCLI):
    """Parses and resolves a recipe without building the model (no weights are downloaded)."""

    def instantiate_classes(self) -> None:
        pass


def parse(config: Path, *overrides: str):
    return build_cli(["--config", str(config), *overrides], cli_class=ParseOnly).config


@pytest.mark.parametrize("config", DIFFUSION, ids=lambda p: p.stem)
def test_diffusion_recipe_parses_with_the_published_settings(config):
    from gazelab.gcdr.train import build_cli as build_diffusion_cli

    parsed = build_diffusion_cli(["--config", str(config)], cli_class=ParseOnly).config
    assert parsed.seed_everything == 0 and parsed.model.lr == 5e-5 and parsed.model.loss_weight == 1e4
    assert parsed.data.init_args.root == "data/gazefollow"
    assert parsed.checkpoint.dirpath == f"{parsed.trainer.default_root_dir}/checkpoints"


def test_recipes_are_shipped():
    names = {str(p.relative_to(ROOT)) for p in CONFIGS}
    assert {"gazelle/vitb14_gazefollow.yaml", "gazelle/vitl14_gazefollow.yaml", "gazelle/vitb14_inout_vat.yaml",
            "gazelle/vitl14_inout_vat.yaml", "synthetic/gazelle_tiny.yaml"} <= names  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_recipe_parses(config):
    parsed = parse(config)
    assert parsed.seed_everything == 0
    assert parsed.trainer.default_root_dir.startswith("runs/")
    assert parsed.checkpoint.dirpath == f"{parsed.trainer.default_root_dir}/checkpoints"


def test_gazefollow_recipe_has_the_published_settings():
    parsed = parse(ROOT / "gazelle" / "vitb14_gazefollow.yaml", "--data.batch_size", "30")
    model, data = parsed.model, parsed.data
    assert (model.optimizer, model.lr, model.weight_decay, model.scheduler) == ("adam", 1e-3, 0, "cosine")
    assert model.min_lr == 1e-7 and model.backbone_weights is True and not model.train_backbone
    assert (parsed.trainer.max_epochs, data.in_frame_only, data.sampling, data.image_size) == (15, True, "person", 448)
    assert data.batch_size == 30  # the override wins over the recipe's 60
    assert (parsed.checkpoint.monitor, parsed.checkpoint.mode) == ("val_avg_l2", "min")


def test_vat_recipe_has_the_published_settings():
    parsed = parse(ROOT / "gazelle" / "vitb14_inout_vat.yaml")
    model, data = parsed.model, parsed.data
    assert model.pretrained == "gazelle_dinov2_vitb14" and model.allow_missing_inout
    assert (model.lr, model.lr_groups, model.scheduler) == (1e-5, {"inout": 1e-2}, None)
    assert model.losses == {"heatmap_bce": 1.0, "inout_bce": 1.0}
    assert (parsed.trainer.max_epochs, data.frame_stride, data.batch_size, data.format) == (8, 6, 60, "vat")
