"""Baselines, prediction files and the ``gazelab eval`` command."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_image

from gazelab.cli import main
from gazelab.data.targets import gaussian_heatmaps
from gazelab.errors import GazelabError
from gazelab.eval.baselines import center_prior, make_baseline, random_heatmaps, training_bias
from gazelab.eval.metrics import predicted_points
from gazelab.eval.predictions import (
    read_predictions,
    targets_from_frames,
    write_heatmaps_npz,
    write_predictions_csv,
)
from gazelab.types import Box, Frame, Person


def _frames() -> list[Frame]:
    return [
        Frame("a.jpg", 200, 100, [
            Person(Box(0.1, 0.1, 0.2, 0.3), gaze=((0.5, 0.5), (0.6, 0.4)), inout=True),
            Person(Box(0.6, 0.1, 0.7, 0.3), gaze=(), inout=False),
        ]),
        Frame("b.jpg", 50, 80, [Person(Box(0.4, 0.4, 0.6, 0.6), gaze=((0.1, 0.9),), inout=True)]),
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ baselines


def test_center_prior_peaks_at_the_image_centre() -> None:
    assert predicted_points(center_prior()[None]).tolist() == [[0.5, 0.5]]


def test_bias_is_the_mean_training_target_of_in_frame_people() -> None:
    bias, rate = training_bias(_frames())
    expected = gaussian_heatmaps(torch.tensor([[0.5, 0.5], [0.1, 0.9]], dtype=torch.float64)).mean(dim=0)
    assert torch.allclose(bias, expected, atol=1e-7)
    assert rate == pytest.approx(2 / 3)


def test_random_baseline_is_reproducible_by_seed() -> None:
    assert torch.equal(random_heatmaps(3, seed=7)[0], random_heatmaps(3, seed=7)[0])
    assert not torch.equal(random_heatmaps(3, seed=7)[0], random_heatmaps(3, seed=8)[0])


def test_bias_baseline_needs_training_annotations() -> None:
    with pytest.raises(GazelabError, match="--train"):
        make_baseline("bias", 3)


# ------------------------------------------------------------------------------- targets and files


def test_targets_pad_annotators_and_keep_sizes_and_heads() -> None:
    targets = targets_from_frames(_frames())
    assert targets.gaze.shape == (3, 2, 2)
    assert targets.gaze[1].eq(-1).all() and targets.gaze[2, 1].eq(-1).all()
    assert targets.inout.tolist() == [True, False, True]
    assert targets.image_sizes.tolist() == [[200, 100], [200, 100], [50, 80]]
    assert targets.heads.shape == (3, 2, 4) and torch.isnan(targets.heads[2, 1]).all()


def test_predictions_round_trip_in_any_row_order(tmp_path: Path) -> None:
    frames = _frames()
    points = torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], dtype=torch.float64)
    inout = torch.tensor([0.9, 0.2, 0.7], dtype=torch.float64)
    heatmaps = torch.rand(3, 64, 64)
    write_predictions_csv(tmp_path / "p.csv", frames, points, inout)
    write_heatmaps_npz(tmp_path / "h.npz", frames, heatmaps)
    lines = (tmp_path / "p.csv").read_text().splitlines()
    (tmp_path / "p.csv").write_text("\n".join([lines[0], lines[3], lines[1], lines[2]]) + "\n")
    loaded = read_predictions([tmp_path / "p.csv", tmp_path / "h.npz"], frames)
    assert torch.equal(loaded.points, points) and torch.equal(loaded.inout, inout)
    assert torch.equal(loaded.heatmaps, heatmaps)


def test_rows_without_person_index_match_by_head_box(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "path,head_x1,head_y1,head_x2,head_y2,x,y\n"
        "a.jpg,121,10,139,31,0.7,0.7\n"  # the second head of a.jpg (120,10,140,30 px)
        "b.jpg,20,32,30,48,0.2,0.2\n"
        "a.jpg,20,10,40,30,0.1,0.1\n"
    )
    loaded = read_predictions([path], _frames())
    assert loaded.points.tolist() == [[0.1, 0.1], [0.7, 0.7], [0.2, 0.2]]
    assert loaded.inout is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a.jpg,0,0.1,0.1\nb.jpg,0,0.1,0.1\n", "1 annotated persons have no prediction"),
        ("a.jpg,0,0.1,0.1\na.jpg,0,0.2,0.1\na.jpg,1,0.1,0.1\nb.jpg,0,0.1,0.1\n", "more than one prediction"),
        ("a.jpg,0,0.1,0.1\na.jpg,1,oops,0.1\nb.jpg,0,0.1,0.1\n", r"p.csv:3: x='oops'"),
        ("c.jpg,0,0.1,0.1\n", r"\(c.jpg, person 0\) is not in the annotations"),
    ],
)
def test_bad_prediction_files_name_the_problem(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text("path,person,x,y\n" + body)
    with pytest.raises(GazelabError, match=message):
        read_predictions([path], _frames())


# ------------------------------------------------------------------------------------------------- CLI


def _gazelab(*args: str) -> int:
    """Run the CLI in-process (a subprocess would re-import torch for every call); its exit code."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


def _dataset(root: Path, with_images: bool) -> Path:
    rows = []
    for i, (w, h) in enumerate([(120, 90), (80, 100), (120, 90)]):
        if with_images:
            write_image(root / f"img/{i}.jpg", (w, h), seed=i)
        for j, gaze in enumerate([(0.3, 0.6), (0.8, 0.2)]):
            rows.append(
                f"img/{i}.jpg,{i}{j},0,0,0,0,{0.2 + j / 2},0.2,{gaze[0]},{gaze[1]},{5 + 40 * j},5,{25 + 40 * j},30"
            )
    path = root / "test.txt"
    path.write_text("".join(line + ",src,meta\n" for line in rows))  # release-test layout (16 columns)
    return path


def test_eval_baseline_writes_a_report_that_rescores_identically(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    annotations = _dataset(tmp_path, with_images=True)
    assert _gazelab("eval", "-a", str(annotations), "--protocol", "gazefollow", "--baseline", "random",
                    "--out", str(tmp_path / "run"), "--save-heatmaps") == 0  # fmt: skip
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["protocol"] == "gazefollow" and summary["counts"]["persons"] == 6
    assert 0 < summary["metrics"]["auc"] < 1 and f"{summary['metrics']['auc']:.4f}" in printed
    assert "| gazefollow |" in (tmp_path / "run/metrics.md").read_text()
    with (tmp_path / "run/predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and rows[0]["path"] == "img/0.jpg" and rows[1]["head_x1"] == "45.0"

    assert _gazelab("eval", "-a", str(annotations), "--protocol", "gazefollow", "--out", str(tmp_path / "again"),
                    "--predictions", str(tmp_path / "run/predictions.csv"),
                    "--predictions", str(tmp_path / "run/heatmaps.npz")) == 0  # fmt: skip
    again = json.loads((tmp_path / "again/summary.json").read_text())
    for name, value in summary["metrics"].items():
        assert again["metrics"][name] == pytest.approx(value, abs=1e-9)


def test_eval_without_image_sizes_explains_the_alternatives(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    annotations = _dataset(tmp_path, with_images=False)
    assert _gazelab("eval", "-a", str(annotations), "--baseline", "center", "--out", str(tmp_path / "run")) == 2
    assert "--protocol gazefollow-64" in capsys.readouterr().err
    out = str(tmp_path / "run")
    assert _gazelab("eval", "-a", str(annotations), "-p", "gazefollow-64", "--baseline", "center", "--out", out) == 0
    metrics = json.loads((tmp_path / "run/summary.json").read_text())["metrics"]
    assert all(not math.isnan(v) for v in metrics.values())


def test_eval_on_the_real_annotation_file(shared_data: Path, tmp_path: Path) -> None:
    real = shared_data / "gazefollow_val_annotations_new.txt"
    assert _gazelab("eval", "-a", str(real), "-p", "gazefollow-64", "--baseline", "center", "--out", str(tmp_path)) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"]["persons"] == 4499 and summary["counts"]["scored_auc"] == 4499
    # the centre prior beats chance and its point (0.5, 0.5) is about a quarter of the image away
    assert 0.6 < summary["metrics"]["auc"] < 0.9 and 0.2 < summary["metrics"]["avg_l2"] < 0.35
    assert np.isclose(summary["metrics"]["avg_l2"], summary["metrics"]["min_l2"])  # one annotator per person
