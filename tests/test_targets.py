"""Targets against slow loops written after the reference code (Chong's imutils, Gaze-LLE's utils, PDP)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gazelab.data.targets import (
    annotator_heatmaps,
    gaussian_heatmaps,
    head_channel,
    head_token_map,
    heatmap_argmax_point,
    patch_distribution,
)


def ref_draw(img: np.ndarray, pt: tuple[float, float], sigma: int = 3) -> np.ndarray:
    """Chong's ``draw_labelmap``: float32 map, float64 Gaussian, window from int(pt -/+ 3 sigma)."""
    img = img.copy()
    ul = [int(pt[0] - 3 * sigma), int(pt[1] - 3 * sigma)]
    br = [int(pt[0] + 3 * sigma + 1), int(pt[1] + 3 * sigma + 1)]
    if ul[0] >= img.shape[1] or ul[1] >= img.shape[0] or br[0] < 0 or br[1] < 0:
        return img
    size = 6 * sigma + 1
    x = np.arange(0, size, 1, float)
    y = x[:, np.newaxis]
    x0 = y0 = size // 2
    g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    g_x = max(0, -ul[0]), min(br[0], img.shape[1]) - ul[0]
    g_y = max(0, -ul[1]), min(br[1], img.shape[0]) - ul[1]
    img_x = max(0, ul[0]), min(br[0], img.shape[1])
    img_y = max(0, ul[1]), min(br[1], img.shape[0])
    img[img_y[0] : img_y[1], img_x[0] : img_x[1]] += g[g_y[0] : g_y[1], g_x[0] : g_x[1]]
    return img / np.max(img)


def ref_single(x: float, y: float, rule: str) -> np.ndarray:
    img = np.zeros((64, 64), dtype=np.float32)
    if x < 0 or y < 0:
        return img
    pt = (int(x * 64), int(y * 64)) if rule == "gazelle" else (x * 64, y * 64)
    return ref_draw(img, pt)


def ref_aggregate(points: list[tuple[float, float]]) -> np.ndarray:
    """Chong's GazeFollow test map: draw every annotator in turn, then divide by their number."""
    img = np.zeros((64, 64), dtype=np.float32)
    valid = 0
    for x, y in points:
        if x != -1:
            valid += 1
            img = ref_draw(img, (x * 64, y * 64))
    return img / np.float32(valid)


def ref_head_channel(box: tuple[float, float, float, float], size: int = 224) -> np.ndarray:
    edges = np.clip((np.array(box) * size).astype(int), 0, size - 1)
    out = np.zeros((size, size), dtype=np.float32)
    out[edges[1] : edges[3], edges[0] : edges[2]] = 1
    return out


BORDER_POINTS = [
    (0.0, 0.0),
    (1.0, 1.0),
    (5.5 / 64, 3.25 / 64),  # left/top: Chong's window start truncates toward zero
    (8.99 / 64, 0.999),
    (9.0 / 64, 0.5),
    (63.5 / 64, 0.01),
    (0.5, 0.5),
    (0.123456789, 0.987654321),
]


@pytest.mark.parametrize("rule", ["gazelle", "chong"])
def test_single_gaussian_is_bit_identical_to_the_reference_loop(rule: str) -> None:
    rng = np.random.default_rng(0)
    points = BORDER_POINTS + [tuple(p) for p in rng.random((200, 2))]
    ours = gaussian_heatmaps(torch.tensor(points, dtype=torch.float64), rule=rule)
    assert ours.dtype == torch.float32 and ours.shape == (len(points), 64, 64)
    for k, (x, y) in enumerate(points):
        np.testing.assert_array_equal(ours[k].numpy(), ref_single(x, y, rule), err_msg=f"point {(x, y)}")


def test_the_two_rules_differ_only_near_the_left_and_top_border() -> None:
    point = torch.tensor([[5.5 / 64, 0.5]], dtype=torch.float64)
    gazelle, chong = gaussian_heatmaps(point, rule="gazelle"), gaussian_heatmaps(point, rule="chong")
    assert heatmap_argmax_point(gazelle).tolist() == [[5 / 64, 0.5]]
    assert heatmap_argmax_point(chong).tolist() == [[6 / 64, 0.5]]
    far = torch.tensor([[40.5 / 64, 30.25 / 64]], dtype=torch.float64)
    assert torch.equal(gaussian_heatmaps(far, rule="gazelle"), gaussian_heatmaps(far, rule="chong"))


def test_peak_is_one_and_out_of_frame_gives_zeros() -> None:
    maps = gaussian_heatmaps(torch.tensor([[1.0, 1.0], [0.3, 0.7], [-1.0, -1.0]], dtype=torch.float64))
    assert maps[0].max() == 1 and maps[0, 63, 63] == 1  # peak cell off the map: the border cell is rescaled
    assert maps[1].max() == 1 and maps[1, int(0.7 * 64), int(0.3 * 64)] == 1
    assert not maps[2].any()


def test_annotator_map_matches_the_sequential_reference() -> None:
    rng = np.random.default_rng(1)
    batch = []
    for count in (1, 2, 5, 20, 3):
        pts = [tuple(p) for p in rng.random((count, 2))] + [(-1.0, -1.0)] * (20 - count)
        batch.append(pts)
    batch[-1][0] = (0.0, 1.0)  # a border annotator among others
    ours = annotator_heatmaps(torch.tensor(batch, dtype=torch.float64))
    for k, pts in enumerate(batch):
        np.testing.assert_array_equal(ours[k].numpy(), ref_aggregate(pts))


def test_annotator_map_with_one_annotator_is_the_single_map_and_none_is_zero() -> None:
    point = torch.tensor([[0.3, 0.6]], dtype=torch.float64)
    assert torch.equal(annotator_heatmaps(point[None], rule="gazelle")[0], gaussian_heatmaps(point, rule="gazelle")[0])
    assert not annotator_heatmaps(torch.full((2, 4, 2), -1.0, dtype=torch.float64)).any()


def test_head_channel_matches_get_head_box_channel() -> None:
    rng = np.random.default_rng(2)
    boxes = [(0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.5, 0.9), (0.999, 0.2, 1.0, 0.3), (-0.01, 0.1, 0.2, 1.02)]
    for _ in range(50):
        x = np.sort(rng.random(2))
        y = np.sort(rng.random(2))
        boxes.append((x[0], y[0], x[1], y[1]))
    ours = head_channel(torch.tensor(boxes, dtype=torch.float64))
    for k, box in enumerate(boxes):
        np.testing.assert_array_equal(ours[k].numpy(), ref_head_channel(box), err_msg=str(box))
    assert ours[0, :, 223].sum() == 0 and ours[0, 223].sum() == 0  # end-exclusive after clipping to 223
    assert ours[0].sum() == 223 * 223


def test_head_token_map_rounds_half_to_even() -> None:
    # 0.5/32 * 32 = 0.5 -> 0 and 2.5 -> 2 (half to even); 1.5 -> 2.
    box = torch.tensor([[0.5 / 32, 1.5 / 32, 2.5 / 32, 4.0 / 32]], dtype=torch.float64)
    expected = torch.zeros(32, 32)
    expected[2:4, 0:2] = 1
    assert torch.equal(head_token_map(box)[0], expected)
    assert not head_token_map(torch.tensor([[0.2, 0.2, 0.201, 0.5]])).any()  # rounds to zero width
    assert not head_token_map(torch.full((4,), float("nan"))).any()


def test_patch_distribution_matches_pdp_loop() -> None:
    points = torch.tensor([[0.1, 0.9], [0.99, 0.99], [0.5, 0.2], [-1.0, -1.0]], dtype=torch.float64)
    maps = gaussian_heatmaps(points, rule="chong")
    inout = torch.tensor([1.0, 1.0, 1.0, 0.0])
    ours = patch_distribution(maps, inout)
    for k in range(4):
        cells = [maps[k, i * 9 : (i + 1) * 9, j * 9 : (j + 1) * 9].max() for i in range(7) for j in range(7)]
        ref = torch.cat([torch.stack(cells), (1 - inout[k])[None]])
        assert torch.equal(ours[k], ref / ref.sum())
    assert ours[3].tolist() == [0.0] * 49 + [1.0]
    assert torch.allclose(ours.sum(-1), torch.ones(4))
    # Row/column 63 is outside every cell: a Gaussian there only counts through its tail in cell 6.
    assert ours[1].argmax() == 48


def test_argmax_point_takes_the_first_maximum_in_row_major_order() -> None:
    maps = torch.zeros(3, 64, 64)
    maps[0, 10, 20] = 1
    maps[1, 5, 40] = maps[1, 7, 3] = 2  # tie: row 5 comes first
    maps[2, 0, 63] = maps[2, 0, 1] = 1  # tie on one row: column 1 comes first
    assert heatmap_argmax_point(maps).tolist() == [[20 / 64, 10 / 64], [40 / 64, 5 / 64], [1 / 64, 0.0]]
    assert heatmap_argmax_point(torch.zeros(2, 5, 8, 16)).shape == (2, 5, 2)
