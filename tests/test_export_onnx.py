"""ONNX export: backbone and decoder graphs run by onnxruntime answer as the PyTorch model does (1e-4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from gazelab.cli import main
from gazelab.errors import GazelabError
from gazelab.export import OnnxPredictor, export_onnx
from gazelab.infer.predictor import Predictor
from gazelab.models import create_model
from gazelab.types import Box

TOLERANCE = 1e-4
HEADS = [(0.1, 0.2, 0.3, 0.4), Box(0.5, 0.1, 0.7, 0.3), None]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = create_model("gazelle_tiny_inout").eval()
    folder = tmp_path_factory.mktemp("onnx")
    export_onnx(model, folder, "gazelle_tiny_inout")
    return model, folder


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)


@pytest.mark.parametrize("people", [1, 3])
def test_onnx_predictor_matches_pytorch(exported, picture, people: int) -> None:
    model, folder = exported
    heads = HEADS[:people]
    torch_predictor, onnx_predictor = Predictor(model), OnnxPredictor(folder)
    torch_predictor.set_image(picture)
    onnx_predictor.set_image(picture)
    want, got = torch_predictor.predict(heads), onnx_predictor.predict(heads)
    assert len(got) == people
    for ours, theirs in zip(want, got, strict=True):
        assert theirs.heatmap.shape == (64, 64)
        assert np.abs(ours.heatmap - theirs.heatmap).max() <= TOLERANCE
        assert abs(ours.inout - theirs.inout) <= TOLERANCE
        assert ours.point == theirs.point and ours.head == theirs.head


def test_decoder_graph_takes_people_of_several_images(exported, picture) -> None:
    """Dynamic image and people axes: 2 encoded pictures, people pointing at either of them."""
    model, folder = exported
    pictures = [picture, picture[::-1].copy()]
    heads = [[HEADS[0]], [HEADS[1], HEADS[0]]]
    with torch.inference_mode():
        inputs = model.prepare(pictures, heads)
        want = model(inputs)
    backbone = onnxruntime.InferenceSession(str(folder / "backbone.onnx"), providers=["CPUExecutionProvider"])
    decoder = onnxruntime.InferenceSession(str(folder / "decoder.onnx"), providers=["CPUExecutionProvider"])
    features = backbone.run(None, {"images": inputs.images.numpy()})[0]
    boxes = np.array([HEADS[0], HEADS[1].as_tuple(), HEADS[0]], dtype=np.float64)
    heatmap, inout = decoder.run(None, {"features": features, "boxes": boxes, "image_index": np.array([0, 1, 1])})
    assert heatmap.shape == (3, 64, 64) and inout.shape == (3,)
    assert np.abs(heatmap - want.heatmap.numpy()).max() <= TOLERANCE
    assert np.abs(inout - want.inout.numpy()).max() <= TOLERANCE


def test_export_command_writes_graphs_and_metadata(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", "gazelle_tiny", "--weights", "none", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None)
    assert {p.name for p in tmp_path.iterdir()} == {"backbone.onnx", "decoder.onnx", "gazelab_onnx.json"}
    meta = json.loads((tmp_path / "gazelab_onnx.json").read_text())
    assert meta["model"] == "gazelle_tiny" and meta["input_size"] == 448 and meta["decoder_outputs"] == ["heatmap"]
    difference = float(out.rsplit("max heatmap difference ", 1)[1])
    assert difference <= TOLERANCE


def test_export_refuses_models_without_a_features_only_decoder(tmp_path) -> None:
    with pytest.raises(GazelabError, match="Gaze-LLE"):
        export_onnx(create_model("vat_spatial_tiny"), tmp_path, "vat_spatial_tiny")


def test_onnx_predictor_names_the_missing_export(tmp_path) -> None:
    with pytest.raises(GazelabError, match="gazelab export"):
        OnnxPredictor(tmp_path)
