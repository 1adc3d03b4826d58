"""Augmentation keeps coordinates on the image content they annotate (property tests with markers)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gazelab.data.transforms import PRESETS, AugmentConfig, GazeAugment

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[int, int, tuple[int, int, int, int], tuple[int, int]]:
    """Image size, a pixel-aligned head box and the pixel the person looks at."""
    width, height = draw(st.integers(8, 80)), draw(st.integers(8, 80))
    x1 = draw(st.integers(0, width - 1))
    x2 = draw(st.integers(x1 + 1, width))
    y1 = draw(st.integers(0, height - 1))
    y2 = draw(st.integers(y1 + 1, height))
    gaze = (draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1)))
    return width, height, (x1, y1, x2, y2), gaze


def painted(width: int, height: int, box: tuple[int, int, int, int], gaze: tuple[int, int]) -> torch.Tensor:
    """Red marks the gaze pixel, green fills the head box (separate channels, so they never hide each other)."""
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    image[0, gaze[1], gaze[0]] = 255
    image[1, box[1] : box[3], box[0] : box[2]] = 255
    return image


def normalized(width: int, height: int, box: tuple[int, int, int, int], gaze: tuple[int, int]):
    heads = torch.tensor([[box[0] / width, box[1] / height, box[2] / width, box[3] / height]] * 2, dtype=torch.float64)
    points = torch.tensor([[[(gaze[0] + 0.5) / width, (gaze[1] + 0.5) / height]], [[-1.0, -1.0]]], dtype=torch.float64)
    return heads, points  # person 1 looks outside the frame


@SETTINGS
@given(scene=scenes(), flip=st.booleans(), aspect=st.sampled_from([None, 1.0, 0.5]), seed=st.integers(0, 2**31))
def test_crop_and_flip_keep_gaze_marker_and_head_box_on_their_content(scene, flip, aspect, seed) -> None:
    width, height, box, gaze = scene
    config = AugmentConfig(crop_p=1.0, crop_aspect=aspect, flip_p=float(flip), jitter_p=0.0)
    heads, points = normalized(width, height, box, gaze)
    image, new_heads, new_points = GazeAugment(config)(
        painted(width, height, box, gaze), heads, points, torch.Generator().manual_seed(seed)
    )
    new_h, new_w = image.shape[-2:]
    # The marker is still in the image, once, and exactly under the moved gaze point.
    assert int((image[0] == 255).sum()) == 1
    col, row = math.floor(new_points[0, 0, 0] * new_w), math.floor(new_points[0, 0, 1] * new_h)
    assert image[0, row, col] == 255
    # The head box still covers exactly the green pixels.
    px = (new_heads[0] * torch.tensor([new_w, new_h, new_w, new_h])).round().long().tolist()
    assert torch.allclose(new_heads[0] * torch.tensor([new_w, new_h, new_w, new_h]), torch.tensor(px).double())
    mask = torch.zeros(new_h, new_w, dtype=torch.bool)
    mask[px[1] : px[3], px[0] : px[2]] = True
    assert torch.equal(image[1] == 255, mask)
    # The out-of-frame person's target stays "out", its head box moves like the other.
    assert new_points[1].tolist() == [[-1.0, -1.0]]
    assert torch.equal(new_heads[1], new_heads[0])


def test_flip_mirrors_continuous_coordinates_like_the_references() -> None:
    heads = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    points = torch.tensor([[[0.25, 0.5], [0.0, 0.1], [-1.0, -1.0]]], dtype=torch.float64)
    config = AugmentConfig(crop_p=0.0, flip_p=1.0, jitter_p=0.0)
    _, new_heads, new_points = GazeAugment(config)(
        torch.zeros(3, 10, 20, dtype=torch.uint8), heads, points, torch.Generator()
    )
    assert torch.allclose(new_heads, torch.tensor([[0.7, 0.2, 0.9, 0.4]], dtype=torch.float64))
    assert torch.allclose(new_points, torch.tensor([[[0.75, 0.5], [1.0, 0.1], [-1.0, -1.0]]], dtype=torch.float64))


@st.composite
def people(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    count = draw(st.integers(1, 3))
    unit = st.floats(0.0, 1.0)
    heads, points = [], []
    for _ in range(count):
        x = sorted([draw(unit), draw(unit)])
        y = sorted([draw(unit), draw(unit)])
        x[1], y[1] = max(x[1], min(x[0] + 0.05, 1.0)), max(y[1], min(y[0] + 0.05, 1.0))
        if x[1] - x[0] < 0.05:
            x[0] = x[1] - 0.05
        if y[1] - y[0] < 0.05:
            y[0] = y[1] - 0.05
        heads.append([x[0], y[0], x[1], y[1]])
        annotators = draw(st.integers(0, 3))
        row = [[draw(unit), draw(unit)] for _ in range(annotators)] + [[-1.0, -1.0]] * (3 - annotators)
        points.append(row)
    return torch.tensor(heads, dtype=torch.float64), torch.tensor(points, dtype=torch.float64)


@SETTINGS
@given(
    scene=people(), preset=st.sampled_from(sorted(PRESETS)), size=st.tuples(st.integers(16, 90), st.integers(16, 90))
)
def test_every_preset_keeps_heads_and_points_inside_and_missing_points_out(scene, preset, size) -> None:
    heads, points = scene
    width, height = size
    image = torch.full((3, height, width), 128, dtype=torch.uint8)
    for seed in range(4):
        out, new_heads, new_points = GazeAugment(preset)(image, heads, points, torch.Generator().manual_seed(seed))
        valid = (points >= 0).all(-1)
        assert torch.equal((new_points >= 0).all(-1), valid)
        assert (new_points[~valid] == -1).all()
        assert ((new_points[valid] >= -1e-9) & (new_points[valid] <= 1 + 1e-9)).all()
        assert ((new_heads >= -1e-9) & (new_heads <= 1 + 1e-9)).all()
        assert (new_heads[:, 2:] > new_heads[:, :2]).all()
        assert out.dtype == torch.uint8 and out.shape[0] == 3


def test_same_seed_same_result_and_seeds_differ() -> None:
    heads = torch.tensor([[0.4, 0.3, 0.5, 0.45]], dtype=torch.float64)
    points = torch.tensor([[[0.8, 0.7]]], dtype=torch.float64)
    image = torch.randint(0, 255, (3, 60, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    aug = GazeAugment("vat")
    runs = [aug(image, heads, points, torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    outcomes = {
        tuple(aug(image, heads, points, torch.Generator().manual_seed(s))[2].flatten().tolist()) for s in range(20)
    }
    assert len(outcomes) > 5


def test_two_views_share_crop_and_flip_but_not_jitter_or_colour() -> None:
    heads = torch.tensor([[0.4, 0.3, 0.5, 0.45]], dtype=torch.float64)
    points = torch.tensor([[[0.8, 0.7]]], dtype=torch.float64)
    image = torch.randint(0, 255, (3, 60, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    aug = GazeAugment(replace(PRESETS["gcdr"], crop_p=1.0, jitter_p=1.0, color_p=1.0))
    for seed in range(10):
        first, second = aug.sample_views(heads, points, (60, 80), torch.Generator().manual_seed(seed))
        assert first.crop == second.crop and first.flip == second.flip
        assert not torch.equal(first.jitter, second.jitter) and first.color != second.color
        out1, heads1, points1 = aug.apply(first, image, heads, points)
        out2, heads2, points2 = aug.apply(second, image, heads, points)
        assert out1.shape == out2.shape and torch.equal(points1, points2)
        assert not torch.equal(heads1, heads2) and not torch.equal(out1, out2)


def test_expand_jitter_follows_chongs_sequential_rule() -> None:
    aug = GazeAugment(AugmentConfig(jitter_mode="expand", jitter_range=0.2))
    jitter = aug._sample_jitter(1, torch.Generator().manual_seed(3))
    k = -float(jitter[0, 0])
    assert 0 <= k <= 0.2
    # x_min -= k*w; x_max += k*(x_max - new x_min) = k*w*(1+k)
    assert jitter[0].tolist() == pytest.approx([-k, -k, k * (1 + k), k * (1 + k)])


def test_one_choice_covers_every_frame_of_a_sequence() -> None:
    # A head moving right over 3 frames, looking at different points: the crop must keep all of them.
    heads = torch.tensor(
        [[[0.05, 0.4, 0.15, 0.5]], [[0.4, 0.4, 0.5, 0.5]], [[0.8, 0.4, 0.9, 0.5]]], dtype=torch.float64
    )
    points = torch.tensor([[[[0.1, 0.95]]], [[[0.5, 0.05]]], [[[0.97, 0.9]]]], dtype=torch.float64)
    aug = GazeAugment(replace(PRESETS["vat"], crop_p=1.0, jitter_p=0.0))
    image = torch.zeros(3, 50, 100, dtype=torch.uint8)
    for seed in range(20):
        params = aug.sample(heads, points, (50, 100), torch.Generator().manual_seed(seed))
        for t in range(3):
            out, new_heads, new_points = aug.apply(params, image, heads[t], points[t])
            assert ((new_points >= 0) & (new_points <= 1)).all()
            assert ((new_heads >= 0) & (new_heads <= 1)).all()


def test_config_rejects_values_that_would_break_boxes() -> None:
    with pytest.raises(ValueError, match="jitter_range 0.6"):
        AugmentConfig(jitter_range=0.6)
    with pytest.raises(ValueError, match="probabilities"):
        AugmentConfig(crop_p=1.5)
    with pytest.raises(ValueError, match="unknown augmentation preset 'nope'"):
        GazeAugment("nope")
