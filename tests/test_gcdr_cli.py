"""``gazelab refine``: refined pseudo-labels for every person of a dataset, written to a resumable prior store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gazelab.cli import main
from gazelab.gcdr.model import DiffusionConfig, HeatmapDiffusion
from gazelab.gcdr.official import load_diffusion
from gazelab.priors.store import PriorStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        main(args)
    return done.value.code or 0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert _run(["synth", "--out", str(out), "--images", "4", "--seed", "3", "--priors"]) == 0
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gazelab-format file of a tiny model with non-constant output (the config travels in hyper_parameters)."""
    torch.manual_seed(0)
    model = HeatmapDiffusion(DiffusionConfig.tiny())
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, std=0.3)
    path = tmp_path_factory.mktemp("weights") / "tiny.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"config": model.config.to_dict()}}, path)
    return path


def test_refine_writes_a_store_and_resumes(dataset: Path, weights: Path, tmp_path: Path) -> None:
    assert load_diffusion(weights).config == DiffusionConfig.tiny()
    out = tmp_path / "refined"

    def refine(target: Path, *options: str) -> list[str]:
        return ["refine", "--data", str(dataset), "--priors", str(dataset / "priors"), "--out", str(target),
                "--weights", str(weights), "--seed", "1", *options]  # fmt: skip

    args = refine(out, "--batch-size", "3")
    assert _run(args) == 0
    source, refined = PriorStore(dataset / "priors"), PriorStore(out)
    assert refined.keys() == source.keys() and refined.meta["kind"] == "refined" and refined.meta["t_start"] == 250
    changed = 0
    for record in refined:
        prior = source.get(record.image, record.person)
        assert record.heatmap.shape == (64, 64) and record.valid == prior.valid
        if prior.valid and prior.heatmap.max() > 0:
            assert record.heatmap.min() >= 0 and record.heatmap.max() == pytest.approx(1, abs=1e-3)
            changed += not np.array_equal(record.heatmap, prior.heatmap)
    assert changed > 0
    before = len(refined)
    # Another batch size gives the same maps (per-person seeds), up to rounding: a CPU's convolution kernels may
    # round differently per batch size (measured on AVX2: 1-2 float16 steps, <= 5e-4). Another seed moves them by ~1.
    again = tmp_path / "again"
    assert _run(refine(again, "--batch-size", "5")) == 0
    other = PriorStore(again)
    assert other.keys() == refined.keys()
    for record in refined:
        np.testing.assert_allclose(other.get(record.image, record.person).heatmap, record.heatmap, rtol=0, atol=2e-3)
    assert _run(args) == 0 and len(PriorStore(out)) == before  # a rerun finds nothing left to do
    assert _run([*args, "--t-start", "300"]) == 2  # other options than the store was made with
