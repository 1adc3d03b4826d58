"""Simulated priors: blobs where the quality parameters say, reproducible per person, scored by the report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gazelab.cli import main
from gazelab.errors import GazelabError
from gazelab.priors.report import score_priors
from gazelab.priors.simulate import SimulationParams, load_objects, simulate_person, write_simulated_priors
from gazelab.priors.sources import load_frames
from gazelab.priors.store import PriorStore, person_key
from gazelab.types import Box, Frame

CLEAN = {"jitter": 0.0, "noise": 0.0, "head_weight": 0.0, "p_invalid": 0.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    with pytest.raises(SystemExit) as done:
        main(["synth", "--out", str(out), "--images", "25", "--seed", "5", "--priors"])
    assert done.value.code in (0, None)
    return out


def _peak(heatmap: np.ndarray) -> tuple[float, float]:
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return ((col + 0.5) / 64, (row + 0.5) / 64)


def _grown(box: Box, by: float = 1.5 / 64) -> Box:
    return Box(box.x1 - by, box.y1 - by, box.x2 + by, box.y2 + by)


def _people_with_a_target(dataset: Path) -> Iterator[tuple[Frame, int, list[Box], Box]]:
    """(frame, person index, every object box, the looked-at box) for in-frame people among 2+ objects."""
    frames, root = load_frames(dataset)
    objects = load_objects(root)
    for frame in frames:
        boxes = objects[frame.path]
        for index, person in enumerate(frame.people):
            if person.inout is not False and len(boxes) >= 2:
                yield frame, index, boxes, next(b for b in boxes if b.contains(person.gaze_point))


def test_blob_sits_on_the_target_or_on_a_distractor(dataset: Path) -> None:
    right, wrong = SimulationParams(p_correct=1.0, **CLEAN), SimulationParams(p_correct=0.0, **CLEAN)
    checked = 0
    for frame, index, boxes, target in _people_with_a_target(dataset):
        hit = simulate_person(frame, index, boxes, right)
        miss = simulate_person(frame, index, boxes, wrong)
        assert hit.valid and _grown(target).contains(_peak(hit.heatmap))
        assert not target.contains(_peak(miss.heatmap))
        assert any(_grown(b).contains(_peak(miss.heatmap)) for b in boxes if b != target)
        checked += 1
    assert checked > 20


def test_a_missed_target_keeps_a_weaker_blob(dataset: Path) -> None:
    """``missed_target_weight``: wrong priors stay peaked on the distractor but are warm on the true target."""
    single = SimulationParams(p_correct=0.0, **CLEAN)
    double = SimulationParams(p_correct=0.0, missed_target_weight=0.5, **CLEAN)
    checked = 0
    for frame, index, boxes, target in _people_with_a_target(dataset):
        col, row = (min(int(v * 64), 63) for v in target.center)
        one, two = simulate_person(frame, index, boxes, single), simulate_person(frame, index, boxes, double)
        assert not target.contains(_peak(two.heatmap))
        assert float(two.heatmap[row, col]) > float(one.heatmap[row, col]) + 0.2
        checked += 1
    assert checked > 20
    # The extra blob is drawn last: maps whose main blob is right come out exactly as without the option.
    frames, root = load_frames(dataset)
    objects = load_objects(root)
    plain, warm = SimulationParams(), SimulationParams(missed_target_weight=0.5)
    equal = [
        np.array_equal(simulate_person(frame, index, objects[frame.path], plain).heatmap,
                       simulate_person(frame, index, objects[frame.path], warm).heatmap)
        for frame in frames for index in range(len(frame.people))
    ]  # fmt: skip
    assert sum(equal) > 10 and equal.count(False) > 5


def test_maps_depend_only_on_seed_image_and_person(dataset: Path) -> None:
    frames, root = load_frames(dataset)
    objects = load_objects(root)
    frame = frames[0]
    params = SimulationParams()
    one = simulate_person(frame, 0, objects[frame.path], params)
    assert one.key == person_key(frame, 0) and one.heatmap.dtype == np.float16
    assert one.heatmap.min() == 0 and one.heatmap.max() == 1
    np.testing.assert_array_equal(one.heatmap, simulate_person(frame, 0, objects[frame.path], params).heatmap)
    other = simulate_person(frame, 0, objects[frame.path], SimulationParams(seed=1))
    assert not np.array_equal(one.heatmap, other.heatmap)
    gone = simulate_person(frame, 0, objects[frame.path], SimulationParams(p_invalid=1.0))
    assert not gone.valid and gone.heatmap.max() == 0
    with pytest.raises(GazelabError, match="p_correct"):
        SimulationParams(p_correct=1.5).validate()
    with pytest.raises(GazelabError, match="objects.csv"):
        load_objects(dataset / "train")


def test_synth_writes_the_store_and_records_its_quality(dataset: Path) -> None:
    meta = json.loads((dataset / "synthetic.json").read_text())
    assert meta["priors"]["store"] == "priors" and meta["priors"]["params"]["p_correct"] == 0.6
    store = PriorStore(dataset / "priors")
    frames, _ = load_frames(dataset)
    assert store.keys() == {person_key(f, i) for f in frames for i in range(len(f.people))}
    assert {**store.meta, "store": "priors"} == meta["priors"]
    before = {r.key: r.heatmap.copy() for r in store}
    (dataset / "priors" / "shards" / "stale.safetensors").write_bytes(b"")
    again = write_simulated_priors(dataset, SimulationParams(seed=5))  # regenerating replaces the old store
    assert not (dataset / "priors" / "shards" / "stale.safetensors").exists()
    assert {r.key: r.heatmap.tobytes() for r in again} == {k: v.tobytes() for k, v in before.items()}


def test_report_ranks_priors_by_quality(dataset: Path, tmp_path: Path) -> None:
    frames, _ = load_frames(dataset / "test_annotations_release.txt")
    aucs = []
    for p_correct in (1.0, 0.5, 0.0):
        out = tmp_path / f"p{p_correct}"
        with pytest.raises(SystemExit):
            main(["prior", "simulate", str(dataset), "--out", str(out), "--p-correct", str(p_correct)])
        result = score_priors(PriorStore(out), frames)
        assert result.counts["persons"] + result.counts["invalid_prior"] == sum(len(f.people) for f in frames)
        aucs.append(result.summary["auc"])
    assert aucs[0] > aucs[1] > aucs[2] and aucs[0] > 0.9
