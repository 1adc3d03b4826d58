"""Exact metrics: every engine against an independent oracle (sklearn, skimage, the published formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.transform import resize as skimage_resize
from sklearn.metrics import average_precision_score, roc_auc_score

from gazelab.errors import GazelabError
from gazelab.eval.metrics import (
    PROTOCOLS,
    EvalTargets,
    gazefollow_auc,
    get_protocol,
    p_head_hits,
    predicted_points,
    vat_auc,
)
from gazelab.eval.ranking import (
    average_precision,
    count_by_comparison,
    count_by_search,
    roc_auc_dense,
    roc_auc_sparse,
    unique_positives,
)
from gazelab.eval.resize import resize_skimage, upsample_bilinear
from gazelab.eval.semantic import gaze_accuracy, multi_label_accuracy, top_k_accuracy


def _tied_problem(seed: int, rows: int, pixels: int, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores drawn from few levels (heavy ties) and, per row, 1..6 distinct positive pixels."""
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.integers(0, levels, (rows, pixels)).astype(np.float32) / levels)
    positives = torch.full((rows, 6), -1, dtype=torch.int64)
    for r in range(rows):
        k = int(rng.integers(1, 7))
        positives[r, :k] = torch.from_numpy(rng.choice(pixels, k, replace=False))
    return scores, positives


def _sklearn_rows(scores: torch.Tensor, positives: torch.Tensor) -> np.ndarray:
    out = []
    for row, pos in zip(scores.numpy(), positives.numpy()):
        labels = np.zeros(row.size)
        labels[pos[pos >= 0]] = 1
        out.append(roc_auc_score(labels, row))
    return np.array(out)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), levels=st.integers(1, 6))
def test_both_auc_engines_equal_sklearn_under_heavy_ties(seed: int, levels: int) -> None:
    scores, positives = _tied_problem(seed, rows=8, pixels=60, levels=levels)
    expected = _sklearn_rows(scores, positives)
    np.testing.assert_allclose(roc_auc_dense(scores, positives).numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(roc_auc_sparse(scores, positives).numpy(), expected, rtol=0, atol=1e-12)


def test_cpu_and_gpu_counting_agree() -> None:
    # roc_auc_sparse counts by comparison on CPU and by search on GPU: both must give the same integer.
    values = torch.from_numpy(np.round(np.random.default_rng(3).random(5000), 2).astype(np.float32))
    cuts = values[[0, 1, 2, 2, 7]]
    cuts = torch.cat([cuts, torch.nextafter(cuts, torch.full_like(cuts, -math.inf))])
    expected = sum(int((values <= c).sum()) for c in cuts)
    assert count_by_comparison(values.numpy(), cuts.numpy()) == expected
    assert count_by_search(values, cuts) == expected


def test_auc_is_nan_without_positive_or_negative() -> None:
    scores = torch.rand(2, 4)
    positives = torch.tensor([[-1, -1, -1, -1], [0, 1, 2, 3]])
    assert torch.isnan(roc_auc_dense(scores, positives)).all()
    assert torch.isnan(roc_auc_sparse(scores, positives)).all()


def test_nan_scores_are_refused() -> None:
    scores = torch.rand(1, 10)
    scores[0, 3] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        roc_auc_sparse(scores, torch.tensor([[1]]))


def test_repeated_annotator_pixels_count_once() -> None:
    kept = unique_positives(torch.tensor([[5, 2, 5, -1, 2]]))
    assert sorted(kept[kept >= 0].tolist()) == [2, 5] and int((kept < 0).sum()) == 3


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), levels=st.integers(1, 5))
def test_average_precision_equals_sklearn(seed: int, n: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[0] = 1
    scores = rng.integers(0, levels, n) / levels
    expected = average_precision_score(labels, scores)
    assert average_precision(torch.from_numpy(scores), torch.from_numpy(labels)) == pytest.approx(expected, abs=1e-12)


def test_average_precision_without_positive_is_nan() -> None:
    assert math.isnan(average_precision(torch.rand(5), torch.zeros(5)))


# -------------------------------------------------------------------------------------- GazeFollow AUC


def _gazefollow_problem(seed: int, persons: int) -> tuple[torch.Tensor, EvalTargets]:
    """Small images, quantised maps (ties), annotators on the far edges (x or y = 1.0) and on one pixel."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(65, 160, (persons, 2))
    gaze = np.full((persons, 5, 2), -1.0)
    for i in range(persons):
        k = int(rng.integers(1, 6))
        gaze[i, :k] = rng.random((k, 2))
    gaze[0, :3] = [[1.0, 1.0], [1.0, 0.2], [0.3, 1.0]]
    gaze[1, :2] = [[0.5, 0.5], [0.5, 0.5]]
    maps = np.round(rng.random((persons, 64, 64)) * 4) / 4
    return torch.from_numpy(maps.astype(np.float32)), EvalTargets(
        torch.from_numpy(gaze), image_sizes=torch.from_numpy(sizes)
    )


def _reference_gazefollow(maps: torch.Tensor, targets: EvalTargets, resize: str) -> np.ndarray:
    """Gaze-LLE's ``gazefollow_auc`` (or PDP's with skimage), one person at a time."""
    out = []
    for heatmap, points, (width, height) in zip(maps, targets.gaze.numpy(), targets.image_sizes.tolist()):
        target = np.zeros((height, width))
        for x, y in points:
            if x >= 0:
                target[min(int(y * height), height - 1), min(int(x * width), width - 1)] = 1
        if resize == "torch":
            up = F.interpolate(heatmap[None, None], (height, width), mode="bilinear").squeeze().numpy()
        else:
            up = skimage_resize(heatmap.numpy(), (height, width))
        out.append(roc_auc_score(target.flatten(), up.flatten()))
    return np.array(out)


def test_gazefollow_auc_equals_interpolate_plus_sklearn() -> None:
    maps, targets = _gazefollow_problem(0, 12)
    ours = gazefollow_auc(maps, targets).numpy()
    np.testing.assert_allclose(ours, _reference_gazefollow(maps, targets, "torch"), rtol=0, atol=1e-12)


def test_gazefollow_skimage_auc_equals_skimage_plus_sklearn() -> None:
    maps, targets = _gazefollow_problem(1, 8)
    ours = gazefollow_auc(maps, targets, resize=resize_skimage).numpy()
    np.testing.assert_allclose(ours, _reference_gazefollow(maps, targets, "skimage"), rtol=0, atol=1e-12)


def test_chunking_does_not_change_the_auc() -> None:
    maps, targets = _gazefollow_problem(2, 10)
    targets.image_sizes[:] = torch.tensor([80, 70])  # one size: the persons are batched together
    whole = gazefollow_auc(maps, targets)
    progress: list[int] = []
    tiny = gazefollow_auc(maps, targets, max_pixels=2 * 80 * 70, progress=progress.append)
    assert torch.equal(whole, tiny)
    assert sum(progress) == 10 and len(progress) > 2


def test_positive_on_the_far_edge_is_clamped_into_the_image() -> None:
    heatmap = torch.zeros(1, 64, 64)
    heatmap[0, 63, 63] = 1.0  # upsampled, the bottom-right corner region holds the maximum
    targets = EvalTargets(torch.tensor([[[1.0, 1.0]]], dtype=torch.float64), image_sizes=torch.tensor([[100, 90]]))
    assert gazefollow_auc(heatmap, targets).item() > 0.999


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_skimage_resize_is_bit_identical(dtype: type) -> None:
    rng = np.random.default_rng(4)
    for height, width in ((64, 64), (71, 200), (333, 97)):
        heatmap = rng.random((64, 64)).astype(dtype)
        heatmap[:20] = 0.25  # flat region: ties must survive the float64 arithmetic exactly
        ours = resize_skimage(torch.from_numpy(heatmap)[None], (height, width))[0].numpy()
        reference = skimage_resize(heatmap, (height, width))
        assert ours.dtype == reference.dtype
        assert np.array_equal(ours, reference)


def test_bilinear_upsampling_is_torch_interpolate() -> None:
    maps = torch.rand(2, 64, 64)
    expected = F.interpolate(maps[:, None], size=(90, 120), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(upsample_bilinear(maps, (90, 120)), expected)


# ------------------------------------------------------------------------------ points, 64x64 and VAT


def test_predicted_point_is_first_maximum_row_major_without_half_cell() -> None:
    heatmap = torch.zeros(1, 64, 64)
    heatmap[0, 10, 40] = heatmap[0, 10, 50] = heatmap[0, 30, 5] = 1.0
    assert predicted_points(heatmap).tolist() == [[40 / 64, 10 / 64]]


def test_l2_distances_use_mean_and_closest_annotator() -> None:
    heatmap = torch.zeros(1, 64, 64)
    heatmap[0, 0, 0] = 1.0  # predicted point (0, 0)
    gaze = torch.tensor([[[0.3, 0.4], [0.6, 0.8], [-1.0, -1.0]]], dtype=torch.float64)
    report = get_protocol("gazefollow-64").evaluate(EvalTargets(gaze), heatmaps=heatmap)
    assert report.per_sample["avg_l2"][0] == pytest.approx(math.hypot(0.45, 0.6))
    assert report.per_sample["min_l2"][0] == pytest.approx(0.5)


def test_gazefollow_64_puts_the_positive_at_int_p_times_63() -> None:
    heatmap = torch.zeros(2, 64, 64)
    heatmap[0, 31, 31] = 1.0  # int(0.5 * 63) = 31: the only positive has the unique maximum
    heatmap[1, 32, 32] = 1.0  # int(0.5 * 64) = 32: the maximum is a negative
    gaze = torch.full((2, 1, 2), 0.5, dtype=torch.float64)
    auc = get_protocol("gazefollow-64").evaluate(EvalTargets(gaze), heatmaps=heatmap).per_sample["auc"]
    assert auc[0] == 1.0
    assert auc[1] == pytest.approx(0.5 * 4094 / 4095)  # one negative above, every other one tied


def test_gazefollow_64_squashes_maps_outside_unit_range_like_torchmetrics() -> None:
    heatmap = torch.full((1, 64, 64), -1.0)
    heatmap[0, 31, 31] = 21.0  # the positive
    heatmap[0, 0, 0] = 20.0  # in float32, sigmoid(20) == sigmoid(21) == 1: a tie, not a win
    gaze = torch.full((1, 1, 2), 0.5, dtype=torch.float64)
    auc = get_protocol("gazefollow-64").evaluate(EvalTargets(gaze), heatmaps=heatmap).per_sample["auc"][0]
    labels = np.zeros(4096)
    labels[31 * 64 + 31] = 1
    assert auc == pytest.approx(roc_auc_score(labels, heatmap.sigmoid().flatten().numpy()), abs=1e-12)
    assert auc < 1.0


def _reference_vat_auc(heatmap: np.ndarray, x: float, y: float) -> float:
    """Gaze-LLE's ``vat_auc`` as published."""
    target = np.zeros((64, 64))
    gx, gy = x * 64, y * 64
    ul = [max(0, int(gx - 9)), max(0, int(gy - 9))]
    br = [min(int(gx + 10), 63), min(int(gy + 10), 63)]
    target[ul[1] : br[1], ul[0] : br[0]] = 1
    return roc_auc_score(target.flatten(), heatmap.flatten())


def test_vat_auc_equals_published_formula_including_borders() -> None:
    rng = np.random.default_rng(5)
    points = np.concatenate([rng.random((20, 2)), [[0.0, 0.0], [1.0, 1.0], [0.99, 0.05], [0.1, 0.999]]])
    maps = (np.round(rng.random((len(points), 64, 64)) * 3) / 3).astype(np.float32)
    targets = EvalTargets(torch.from_numpy(points)[:, None, :])
    ours = vat_auc(torch.from_numpy(maps), targets).numpy()
    expected = [_reference_vat_auc(m, x, y) for m, (x, y) in zip(maps, points)]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_vat_scores_auc_and_l2_in_frame_only_and_ap_over_all() -> None:
    gaze = torch.tensor([[[0.5, 0.5]], [[0.2, 0.3]], [[-1.0, -1.0]]], dtype=torch.float64)
    inout = torch.tensor([True, False, False])
    scores = torch.tensor([0.9, 0.8, 0.1], dtype=torch.float64)
    report = get_protocol("vat").evaluate(
        EvalTargets(gaze, inout=inout), heatmaps=torch.rand(3, 64, 64), inout_scores=scores
    )
    assert not np.isnan(report.per_sample["auc"][0]) and np.isnan(report.per_sample["auc"][1:]).all()
    assert np.isnan(report.per_sample["l2"][1:]).all()
    assert report.summary["ap"] == pytest.approx(average_precision_score([1, 0, 0], scores.numpy()))
    assert report.counts["scored_auc"] == 1 and report.counts["scored_ap"] == 3


def test_p_head_is_precision_of_looking_at_a_head() -> None:
    heads = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7]], dtype=torch.float64).expand(4, 2, 4)
    gaze = torch.tensor([[[0.1, 0.1]], [[0.9, 0.9]], [[0.6, 0.6]], [[0.1, 0.1]]], dtype=torch.float64)
    inout = torch.tensor([True, True, True, False])
    points = torch.tensor([[0.15, 0.15], [0.6, 0.6], [0.9, 0.1], [0.1, 0.1]], dtype=torch.float64)
    hits = p_head_hits(points, EvalTargets(gaze, inout=inout, heads=heads))
    # on a head: samples 0 (right) and 1 (wrong); sample 2 misses every head; sample 3 is out of frame
    assert hits[:2].tolist() == [1.0, 0.0] and torch.isnan(hits[2:]).all()


# ------------------------------------------------------------------------------------------ protocols


def test_every_report_names_its_protocol() -> None:
    targets = EvalTargets(torch.rand(3, 1, 2, dtype=torch.float64), image_sizes=torch.tensor([[100, 80]] * 3))
    for name, protocol in PROTOCOLS.items():
        report = protocol.evaluate(targets, heatmaps=torch.rand(3, 64, 64), inout_scores=torch.rand(3))
        assert report.protocol == name
        assert report.to_dict()["protocol"] == name and name in report.markdown()


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(GazelabError, match="gazefollow-64"):
        get_protocol("gazefolow")


def test_unknown_image_size_fails_clearly_but_distances_still_work() -> None:
    targets = EvalTargets(torch.rand(2, 1, 2, dtype=torch.float64))
    with pytest.raises(GazelabError, match="--root.*gazefollow-64"):
        get_protocol("gazefollow").evaluate(targets, heatmaps=torch.rand(2, 64, 64))
    points = torch.tensor([[0.5, 0.5], [0.0, 0.0]], dtype=torch.float64)
    report = get_protocol("gazefollow").evaluate(targets, points=points)
    assert np.isfinite(report.per_sample["avg_l2"]).all()
    assert math.isnan(report.summary["auc"]) and "auc: no heatmaps given" in report.notes


# ------------------------------------------------------------------------------------------- semantic


def test_semantic_accuracies() -> None:
    vocabulary = torch.eye(4)
    embeddings = torch.tensor([[1.0, 0.5, 0, 0], [0, 0, 1.0, 0.9], [0, 1.0, 0, 0]])
    assert top_k_accuracy(embeddings, vocabulary, torch.tensor([1, 2, -1]), k=1)[:2].tolist() == [0.0, 1.0]
    assert top_k_accuracy(embeddings, vocabulary, torch.tensor([1, 3, -1]), k=2)[:2].tolist() == [1.0, 1.0]
    assert torch.isnan(top_k_accuracy(embeddings, vocabulary, torch.tensor([1, 2, -1]))[2])
    label_sets = torch.tensor([[3, 0, -1], [0, 1, -1], [-1, -1, -1]])
    multi = multi_label_accuracy(embeddings, vocabulary, label_sets)
    assert multi[:2].tolist() == [1.0, 0.0] and torch.isnan(multi[2])
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [math.nan] * 4], dtype=torch.float64)
    hits = gaze_accuracy(torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.1, 0.1]]), boxes)
    assert hits[:2].tolist() == [1.0, 0.0] and torch.isnan(hits[2])
