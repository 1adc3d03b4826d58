"""Model x dataset evaluation: the rows line up with the annotations and match the Predictor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gazelab.cli import main
from gazelab.data.formats import read_annotations
from gazelab.data.synthetic import preset, write_dataset
from gazelab.eval.evaluate import predict_frames
from gazelab.infer.predictor import Predictor
from gazelab.models import create_model


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, preset("small", images=10))
    return out


def test_predict_frames_equals_the_predictor_person_by_person(synthetic: Path) -> None:
    torch.manual_seed(0)
    model = create_model("gazelle_tiny_inout")
    frames = read_annotations(synthetic / "test_annotations_release.txt")
    made = predict_frames(model, frames, batch_size=2)
    assert made.heatmaps.shape == (frames.num_people, 64, 64) and made.inout.shape == (frames.num_people,)
    predictor = Predictor(model)
    row = 0
    for frame in frames:
        predictor.set_image(frame.image_path)
        for pred in predictor.predict([p.head for p in frame.people]):
            np.testing.assert_allclose(made.heatmaps[row].numpy(), pred.heatmap, atol=1e-5)
            assert made.inout[row].item() == pytest.approx(pred.inout, abs=1e-5)
            row += 1


def test_gazelab_eval_runs_a_model_under_the_gazefollow_protocol(synthetic: Path, tmp_path: Path) -> None:
    annotations = synthetic / "test_annotations_release.txt"
    with pytest.raises(SystemExit) as done:
        main(["eval", "-a", str(annotations), "--model", "gazelle_tiny", "--weights", "none",
              "--protocol", "gazefollow", "--out", str(tmp_path)])  # fmt: skip
    assert done.value.code in (0, None)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["protocol"] == "gazefollow"
    assert 0.0 <= summary["metrics"]["auc"] <= 1.0
    assert 0.0 <= summary["metrics"]["avg_l2"] <= 2**0.5
    rows = (tmp_path / "predictions.csv").read_text().strip().splitlines()
    assert len(rows) - 1 == read_annotations(annotations).num_people


def test_cli_lists_every_protocol_and_baseline_without_importing_torch() -> None:
    """The eval command names its choices without importing torch (fast `--help`); they must stay in sync."""
    from gazelab.commands import eval as command
    from gazelab.eval.baselines import BASELINES
    from gazelab.eval.metrics import PROTOCOLS

    assert command.BASELINES == tuple(BASELINES) and command.PROTOCOLS == tuple(PROTOCOLS)
