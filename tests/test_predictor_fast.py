"""Predictor fast paths: bf16 stays close to fp32, the fp32 options change nothing, head maps need no loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gazelab.data.targets import head_token_map
from gazelab.errors import GazelabError
from gazelab.infer.predictor import Predictor, precision_context
from gazelab.models import create_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("gazelle_tiny_inout").eval()


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def random_heads(count: int, seed: int = 1) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(seed)
    corners, sizes = rng.uniform(0, 0.85, (count, 2)), rng.uniform(0.03, 0.15, count)
    return [(x, y, x + s, y + s) for (x, y), s in zip(corners.tolist(), sizes.tolist(), strict=True)]


def predict(model, picture, heads, **options):
    predictor = Predictor(model, **options)
    predictor.set_image(picture)
    return predictor.predict(heads)


def test_bf16_path_stays_close_to_fp32(model, picture, bf16_kernels) -> None:
    heads = random_heads(20)
    exact, fast = predict(model, picture, heads), predict(model, picture, heads, precision="bf16")
    differences = [np.abs(a.heatmap - b.heatmap).max() for a, b in zip(exact, fast, strict=True)]
    agreement = np.mean([a.point == b.point for a, b in zip(exact, fast, strict=True)])
    assert all(b.heatmap.dtype == np.float32 for b in fast)
    assert 0 < max(differences) < 0.02  # reduced precision really ran, and stayed close
    assert agreement >= 0.9
    assert max(abs(a.inout - b.inout) for a, b in zip(exact, fast, strict=True)) < 0.01


def test_fp32_options_leave_predictions_unchanged(model, picture) -> None:
    heads = random_heads(4)
    default = predict(model, picture, heads)
    explicit = predict(model, picture, heads, precision="fp32")
    channels_last = predict(model, picture, heads, channels_last=True)
    for a, b, c in zip(default, explicit, channels_last, strict=True):
        np.testing.assert_array_equal(a.heatmap, b.heatmap)
        np.testing.assert_allclose(a.heatmap, c.heatmap, atol=1e-5, rtol=0)
        assert a.point == c.point


def test_predict_batch_uses_the_same_fast_path(model, picture, bf16_kernels) -> None:
    heads = random_heads(3)
    single = predict(model, picture, heads, precision="bf16")
    predictor = Predictor(model, precision="bf16")
    batched = predictor.predict_batch([picture, picture[::-1].copy()], [heads, heads[:1]])
    for a, b in zip(single, batched[0], strict=True):
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-2, rtol=0)


def test_unknown_precision_is_a_user_error(model) -> None:
    with pytest.raises(GazelabError, match="fp32, bf16"):
        Predictor(model, precision="fp16")


def test_bf16_without_native_kernels_is_refused(model, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GazelabError, match="no fast bf16 kernels"):
        precision_context("bf16", torch.device("meta"))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # a CPU without AVX512-BF16
    with pytest.raises(GazelabError, match="this cpu has no fast bf16 kernels: use precision='fp32'"):
        Predictor(model, precision="bf16")


def test_vectorised_head_maps_equal_a_per_person_loop() -> None:
    boxes = torch.tensor(random_heads(50, seed=7) + [(0.5, 0.5, 0.5, 0.5), (15.5 / 32, 0.0, 16.5 / 32, 1.0)])
    boxes = torch.cat([boxes.double(), torch.full((1, 4), float("nan"), dtype=torch.float64)])
    maps = head_token_map(boxes, 32)
    for box, got in zip(boxes.tolist(), maps, strict=True):
        want = torch.zeros(32, 32)
        if not any(np.isnan(box)):
            x1, y1, x2, y2 = (min(max(round(v * 32), 0), 32) for v in box)  # Python rounds half to even
            want[y1:y2, x1:x2] = 1
        assert torch.equal(got, want)
