"""Predictor: one encoding per image, any number of people, same answers as the model itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gazelab.data.targets import heatmap_argmax_point
from gazelab.errors import GazelabError
from gazelab.infer.predictor import Predictor
from gazelab.io import load_image
from gazelab.models import create_model
from gazelab.types import Box

HEADS = [(0.1, 0.2, 0.3, 0.4), Box(0.5, 0.1, 0.7, 0.3), None]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("gazelle_tiny_inout").eval()


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))


def test_image_is_encoded_once(model, picture, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(
        model.backbone, "forward", lambda images, f=model.backbone.forward: calls.append(1) or f(images)
    )
    predictor = Predictor(model)
    predictor.set_image(picture)
    for heads in (HEADS, HEADS[:1], None, []):
        predictor.predict(heads)
    assert len(calls) == 1


def test_predictions_equal_a_direct_forward(model, picture) -> None:
    predictor = Predictor(model)
    predictor.set_image(picture)
    predictions = predictor.predict(HEADS)
    with torch.inference_mode():
        direct = model(model.prepare([picture], [HEADS]))
    assert len(predictions) == 3
    points = heatmap_argmax_point(direct.heatmap)
    for i, prediction in enumerate(predictions):
        assert prediction.heatmap.shape == (64, 64) and prediction.heatmap.dtype == np.float32
        np.testing.assert_allclose(prediction.heatmap, direct.heatmap[i].numpy(), atol=1e-6, rtol=0)
        row, col = divmod(int(np.argmax(prediction.heatmap)), 64)
        assert prediction.point == (col / 64, row / 64) == tuple(points[i].tolist())
        assert prediction.inout == pytest.approx(float(direct.inout[i]), abs=1e-6)
    assert predictions[0].head == Box(0.1, 0.2, 0.3, 0.4)
    assert predictions[1].head == HEADS[1] and predictions[2].head is None


def test_one_unboxed_person_by_default(model, picture) -> None:
    predictor = Predictor(model)
    predictor.set_image(np.asarray(picture))
    (only,) = predictor.predict()
    assert only.head is None and only.inout is not None


def test_paths_arrays_and_pil_agree(model, picture, tmp_path) -> None:
    path = tmp_path / "scene.png"
    picture.save(path)
    predictor = Predictor(model)
    answers = []
    for source in (path, str(path), load_image(path), np.asarray(picture)):
        predictor.set_image(source)
        answers.append(predictor.predict(HEADS[:1])[0].heatmap)
    for answer in answers[1:]:
        np.testing.assert_array_equal(answer, answers[0])


def test_predict_batch_matches_predict(model, picture) -> None:
    other = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((200, 300))
    predictor = Predictor(model)
    batch = predictor.predict_batch([picture, other], [HEADS, None])
    assert [len(b) for b in batch] == [3, 1]
    for image, heads, answers in [(picture, HEADS, batch[0]), (other, None, batch[1])]:
        predictor.set_image(image)
        for got, want in zip(answers, predictor.predict(heads)):
            np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-6, rtol=0)
            assert got.point == want.point and got.inout == pytest.approx(want.inout, abs=1e-6)


def test_user_errors_are_clear(model, picture) -> None:
    predictor = Predictor(model)
    with pytest.raises(GazelabError, match="call set_image"):
        predictor.predict()
    predictor.set_image(picture)
    with pytest.raises(GazelabError, match="bad head box"):
        predictor.predict([(0.5, 0.5, 0.1, 0.1)])
    with pytest.raises(GazelabError, match="bad head box"):
        predictor.predict([(0.1, 0.2)])
    with pytest.raises(GazelabError, match="HxWx3 uint8"):
        predictor.set_image(np.zeros((10, 10), dtype=np.float32))
    with pytest.raises(GazelabError, match="2 images but head lists for 1"):
        predictor.predict_batch([picture, picture], [None])
