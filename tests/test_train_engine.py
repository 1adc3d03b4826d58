"""The training engine end to end on tiny synthetic data: learning, cached == uncached, the CLI with a recipe
and overrides, exact resume, best-checkpoint selection, export in the official format."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
import yaml
from test_train_support import StepLosses, make_synthetic, quiet_trainer

from gazelab.cli import main
from gazelab.models.checkpoints import load_state_dict_file
from gazelab.models.gazelle import GazeLLE, GazeLLEConfig
from gazelab.models.official import load_gazelle
from gazelab.models.registry import get_model_spec
from gazelab.train import GazeDataModule, GazeModule, export_checkpoint, official_state_dict
from gazelab.train.cached_data import cacheable

EPOCHS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train_engine")
    train, test = make_synthetic(root / "synth")
    return {"train": train, "test": test, "cache": root / "cache", "root": root}


def write_recipe(path: Path, data: dict[str, Path], root: Path, max_epochs: int = EPOCHS) -> Path:
    recipe = {
        "trainer": {"max_epochs": max_epochs, "accelerator": "cpu", "devices": 1, "default_root_dir": str(root),
                    "limit_train_batches": 3, "enable_progress_bar": False, "enable_model_summary": False,
                    "log_every_n_steps": 1},
        "model": {"name": "gazelle_tiny", "lr": 0.003, "scheduler": "cosine", "min_lr": 1e-5},
        "data": {"train": str(data["train"]), "val": str(data["test"]), "batch_size": 2, "num_workers": 0,
                 "feature_cache": str(data["cache"])},
        "checkpoint": {"monitor": "val_avg_l2", "mode": "min"},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def gazelab(*args: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code in (0, None)


@pytest.fixture(scope="module")
def finished_run(data) -> Path:
    """An uninterrupted run through `gazelab train`; the recipe says 1 epoch, the command line overrides it."""
    root = data["root"] / "full"
    recipe = write_recipe(data["root"] / "full.yaml", data, root, max_epochs=1)
    gazelab("train", "--config", str(recipe), "--trainer.max_epochs", str(EPOCHS))
    return root


def read_metrics(root: Path, version: int = 0) -> list[dict[str, str]]:
    with (root / f"version_{version}" / "metrics.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def step_losses(rows: list[dict[str, str]]) -> list[str]:
    return [row["train_loss_step"] for row in rows if row["train_loss_step"]]


def test_cli_applies_the_recipe_and_its_overrides(finished_run):
    saved = yaml.safe_load((finished_run / "version_0" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["trainer"]["max_epochs"] == EPOCHS
    assert saved["model"]["scheduler"] == "cosine"
    epochs = {row["epoch"] for row in read_metrics(finished_run) if row["val_auc"]}
    assert epochs == {str(e) for e in range(EPOCHS)}
    assert (finished_run / "checkpoints" / "last.ckpt").is_file()
    assert (finished_run / "weights" / "gazelle_tiny.pt").is_file()


def test_resume_continues_exactly_like_an_uninterrupted_run(data, finished_run):
    root = data["root"] / "resumed"
    recipe = write_recipe(data["root"] / "resumed.yaml", data, root)
    gazelab("train", "--config", str(recipe), "--trainer.max_steps", "3")  # interrupted after the first epoch
    gazelab("train", "--config", str(recipe), "--ckpt_path", "last")
    full = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert full["global_step"] == resumed["global_step"] == 3 * EPOCHS
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert full["lr_schedulers"][0]["_last_lr"] == resumed["lr_schedulers"][0]["_last_lr"]
    # Every step after the resume (logged by the second invocation) has the loss of the uninterrupted run.
    assert step_losses(read_metrics(root, version=1)) == step_losses(read_metrics(finished_run))[3:]


def test_best_checkpoint_is_the_one_with_the_best_monitored_score(finished_run):
    scores = {int(row["epoch"]): float(row["val_avg_l2"]) for row in read_metrics(finished_run) if row["val_avg_l2"]}
    best_epoch = min(scores, key=scores.get)
    best = list((finished_run / "checkpoints").glob("best-*.ckpt"))
    assert [path.name for path in best] == [f"best-epoch={best_epoch:03d}.ckpt"]
    state = torch.load(best[0], weights_only=True)
    callback = next(v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert float(callback["best_model_score"]) == pytest.approx(scores[best_epoch], rel=1e-6)


def test_export_writes_the_released_decoder_layout_and_loads_back(finished_run, tmp_path):
    best = next((finished_run / "checkpoints").glob("best-*.ckpt"))
    gazelab("export-weights", str(best), "--out", str(tmp_path / "decoder.pt"))
    exported = load_state_dict_file(tmp_path / "decoder.pt")
    trained = torch.load(best, weights_only=True)["state_dict"]
    assert not any(key.startswith("backbone.") for key in exported)
    for key, value in exported.items():
        if key != "pos_embed":
            assert torch.equal(value, trained[f"model.{key}"]), key
    model = get_model_spec("gazelle_tiny").build()
    report = load_gazelle(model, exported, "decoder.pt")  # strict apart from the backbone
    assert report.missing and all(key.startswith("backbone.") for key in report.missing)
    model.backbone.load_state_dict({k[len("model.backbone.") :]: v for k, v in trained.items() if ".backbone." in k})
    reference = get_model_spec("gazelle_tiny").build()
    reference.load_state_dict({k[len("model.") :]: v for k, v in trained.items()})
    image = torch.randint(0, 256, (3, 60, 80), dtype=torch.uint8)
    inputs = model.prepare([image], [[(0.2, 0.1, 0.4, 0.4)]])
    with torch.no_grad():
        assert torch.equal(model.eval()(inputs).heatmap, reference.eval()(inputs).heatmap)
    again = load_state_dict_file(export_checkpoint(best, tmp_path / "again.pt"))  # the Python API, same file
    assert again.keys() == exported.keys() and all(torch.equal(again[k], exported[k]) for k in again)


@pytest.mark.parametrize("inout", [False, True])
def test_export_key_layout_is_the_released_one(inout):
    names = {"pos_embed", "linear.weight", "linear.bias", "head_token.weight", "heatmap_head.0.weight",
             "heatmap_head.0.bias", "heatmap_head.1.weight"}  # fmt: skip
    block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias", "norm2.weight",
             "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]  # fmt: skip
    names |= {f"transformer.{i}.{leaf}" for i in range(3) for leaf in block}
    if inout:
        names |= {"inout_token.weight", "inout_head.0.weight", "inout_head.0.bias", "inout_head.3.weight",
                  "inout_head.3.bias"}  # fmt: skip
    state = official_state_dict(GazeLLE(GazeLLEConfig(backbone="dinov2_tiny", inout=inout)))
    assert set(state) == names and len(state) == (45 if inout else 40)
    assert state["pos_embed"].shape == (256, 32, 32)


def fit_steps(data: dict[str, Path], root: Path, cached: bool, steps: int) -> tuple[list[float], GazeModule]:
    L.seed_everything(0)
    module = GazeModule(name="gazelle_tiny", lr=0.003)
    datamodule = GazeDataModule(
        train=str(data["train"]), augment=cacheable("gazelle"), batch_size=2, num_workers=0,
        feature_cache=str(data["cache"]) if cached else None,
    )  # fmt: skip
    recorder = StepLosses()
    quiet_trainer(root, max_steps=steps, callbacks=[recorder], enable_checkpointing=False).fit(module, datamodule)
    return recorder.losses, module


def test_cached_and_uncached_training_give_the_same_losses(data, tmp_path):
    cached, cached_module = fit_steps(data, tmp_path / "cached", cached=True, steps=3)
    plain, plain_module = fit_steps(data, tmp_path / "plain", cached=False, steps=3)
    assert cached == pytest.approx(plain, rel=1e-5, abs=1e-6)
    for (name, a), b in zip(cached_module.state_dict().items(), plain_module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_a_few_training_steps_decrease_the_loss(data, tmp_path):
    losses, _ = fit_steps(data, tmp_path, cached=True, steps=8)
    assert sum(losses[-2:]) < 0.5 * sum(losses[:2])


def test_datamodule_hyperparameters_are_plain_values(tmp_path):
    datamodule = GazeDataModule(train="train.txt", augment=cacheable("gazelle"))
    torch.save({"hparams": dict(datamodule.hparams)}, tmp_path / "hparams.pt")
    loaded = torch.load(tmp_path / "hparams.pt", weights_only=True)["hparams"]  # what resuming needs
    assert loaded["augment"]["crop_p"] == 0.0 and loaded["augment"]["flip_p"] == 0.5


class StepRates(L.Callback):
    """Records the learning rate each optimiser step uses."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_cosine_anneals_per_step_over_max_steps_when_the_run_has_no_max_epochs(data, tmp_path):
    """The GCDR pipeline's students are bounded by steps only: their rate must still anneal toward ``min_lr``."""
    module = GazeModule(name="gazelle_tiny", lr=0.01, scheduler="cosine", min_lr=0.001)
    datamodule = GazeDataModule(train=str(data["train"]), batch_size=2, num_workers=0,
                                feature_cache=str(data["cache"]), augment=cacheable("gazelle"))  # fmt: skip
    recorder = StepRates()
    trainer = quiet_trainer(tmp_path, max_steps=5, max_epochs=-1, callbacks=[recorder], enable_checkpointing=False)
    trainer.fit(module, datamodule)
    wanted = [0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * step / 5)) for step in range(5)]
    assert recorder.rates == pytest.approx(wanted)
