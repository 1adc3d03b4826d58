"""The synthetic generator: deterministic, written in formats the readers accept, and drawn as annotated."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gazelab.cli import main
from gazelab.data.formats import read_gazefollow, read_gazehoi, read_vat
from gazelab.data.formats.gazehoi import read_vocab
from gazelab.data.synthetic import (
    PRESETS,
    SynthConfig,
    is_test,
    preset,
    sample_scene,
    write_dataset,
)
from gazelab.data.synthetic_draw import VOCABULARY, draw_scene
from gazelab.errors import GazelabError

SMALL = preset("small", images=24)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code or 0


def test_cli_same_seed_gives_identical_files_that_read_back(tmp_path: Path) -> None:
    # The acceptance check, verbatim.
    for name in ("a", "b"):
        assert _run_cli("synth", "--out", str(tmp_path / name), "--images", "200", "--seed", "0") == 0
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first == second
    assert sum(name.endswith(".jpg") for name in first) == 200
    train = read_gazefollow(tmp_path / "a" / "train_annotations_release.txt", check_images=True)
    test = read_gazefollow(tmp_path / "a" / "test_annotations_release.txt", check_images=True)
    assert len(train) + len(test) == 200
    assert (len(train), len(test)) == (160, 40)
    assert train.report.rows_skipped == test.report.rows_skipped == 0
    assert train.report.format == "gazefollow:release-train" and test.report.format == "gazefollow:release-test"
    metadata = json.loads((tmp_path / "a" / "synthetic.json").read_text())
    assert metadata["preset"] == "benchmark" and metadata["overrides"] == {"images": 200}
    assert metadata["counts"]["train"]["images"] == 160


def test_parallel_workers_and_other_seeds(tmp_path: Path) -> None:
    write_dataset(tmp_path / "one", SMALL, workers=1)
    write_dataset(tmp_path / "two", SMALL, workers=2)
    write_dataset(tmp_path / "seed1", replace(SMALL, seed=1))
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    jpg = "train/00000000/00000001.jpg"
    assert (tmp_path / "one" / jpg).read_bytes() != (tmp_path / "seed1" / jpg).read_bytes()


def test_an_image_does_not_depend_on_how_many_are_made(tmp_path: Path) -> None:
    write_dataset(tmp_path / "few", replace(SMALL, images=6))
    write_dataset(tmp_path / "many", replace(SMALL, images=12))
    few, many = _files(tmp_path / "few"), _files(tmp_path / "many")
    images = [name for name in few if name.endswith(".jpg")]
    assert len(images) == 6
    assert all(few[name] == many[name] for name in images)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 1 / 3, 0.5, 1.0])
def test_split_of_an_index_is_fixed_and_proportional(fraction: float) -> None:
    flags = [is_test(i, fraction) for i in range(300)]
    for n in (1, 7, 100, 300):
        assert sum(flags[:n]) == math.ceil(round(n * fraction, 9))


def test_annotations_point_inside_the_looked_at_object(tmp_path: Path) -> None:
    write_dataset(tmp_path, SMALL)
    train = read_gazefollow(tmp_path / "train_annotations_release.txt")
    test = read_gazefollow(tmp_path / "test_annotations_release.txt")
    objects = _objects_by_image(tmp_path)
    for frames, split in ((train, "train"), (test, "test")):
        for frame in frames:
            assert frame.size == (SMALL.width, SMALL.height)
            for person in frame.people:
                if not person.inout:
                    continue
                assert (4 <= len(person.gaze) <= 8) if split == "test" else len(person.gaze) == 1
                # Every annotator point falls inside one object of the image (the target).
                inside = [box for box in objects[frame.path] if all(_in_px(p, box) for p in person.gaze)]
                assert inside, (frame.path, person.gaze)
    assert all(p.inout for f in test for p in f.people)


def _objects_by_image(root: Path) -> dict[str, list[tuple[float, ...]]]:
    rows = [line.split(",") for line in (root / "objects.csv").read_text().splitlines()[1:]]
    out: dict[str, list[tuple[float, ...]]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(tuple(float(v) / s for v, s in zip(row[2:], (320, 240, 320, 240))))
    return out


def _in_px(point: tuple[float, float], box: tuple[float, ...]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def test_people_carry_label_and_target_box() -> None:
    names = {c.name for c in VOCABULARY}
    for index in range(40):
        for split in ("train", "test"):
            _, people = sample_scene(np.random.default_rng(index), SMALL, split)
            for person in people:
                if person.inout:
                    assert person.label in names and person.labels == (person.label,)
                    assert all(person.target_box.contains(p) for p in person.gaze)
                else:
                    assert split == "train" and person.gaze == () and person.label is None
                assert person.eye is not None and person.head.contains(person.eye)


def test_about_fifteen_percent_of_train_people_look_out_of_frame() -> None:
    people = [p for i in range(400) for p in sample_scene(np.random.default_rng([7, i]), SMALL, "train")[1]]
    share = sum(p.inout is False for p in people) / len(people)
    assert len(people) > 700
    assert 0.11 <= share <= 0.19


def test_people_are_drawn_where_their_boxes_are() -> None:
    for index in range(20):
        scene, people = sample_scene(np.random.default_rng(index), SMALL, "train")
        with_people = np.asarray(draw_scene(scene), np.int16)
        without = np.asarray(draw_scene(replace(scene, people=())), np.int16)
        changed = np.abs(with_people - without).max(axis=2) > 0
        allowed = np.zeros_like(changed)
        for person in people:
            x1, y1, x2, y2 = (round(v) for v in person.head.to_pixels(scene.width, scene.height))
            assert changed[y1:y2, x1:x2].mean() > 0.6, "head box mostly unchanged: head not drawn there"
            allowed[y1:y2, x1:x2] = True
            bx1, by1, bx2, by2 = (round(v) for v in person.body.to_pixels(scene.width, scene.height))
            assert changed[by1:by2, bx1:bx2].mean() > 0.6, "no body below the head"
            allowed[by1:by2, bx1:bx2] = True
        assert not changed[~allowed].any(), "pixels changed outside every head and body box"


def test_the_face_turns_toward_the_target() -> None:
    """The drawn pixels carry the direction: inside the head ellipse, the non-hair pixels (face, eyes, nose)
    sit on the side of the gaze target."""
    agree, total = 0, 0
    for index in range(30):
        scene, people = sample_scene(np.random.default_rng([3, index]), SMALL, "test")
        image = np.asarray(draw_scene(scene), np.int16)
        for drawn, person in zip(scene.people, people):
            x1, y1, x2, y2 = drawn.head
            ys, xs = np.mgrid[y1:y2, x1:x2]
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            in_head = ((xs + 0.5 - cx) / ((x2 - x1) / 2 - 1)) ** 2 + ((ys + 0.5 - cy) / ((y2 - y1) / 2 - 1)) ** 2 < 1
            not_hair = np.abs(image[y1:y2, x1:x2] - np.array(drawn.hair)).max(axis=2) > 0
            face = in_head & not_hair
            shift = (xs[face].mean() + 0.5 - cx, ys[face].mean() + 0.5 - cy)
            target = person.target_box.center
            to_target = (target[0] * scene.width - cx, target[1] * scene.height - cy)
            cos = (shift[0] * to_target[0] + shift[1] * to_target[1]) / (math.hypot(*shift) * math.hypot(*to_target))
            agree += cos > 0.8
            total += 1
    assert total > 40
    assert agree / total > 0.9


def test_gazehoi_labels_and_vocabulary(tmp_path: Path) -> None:
    write_dataset(tmp_path, SMALL)
    vocab = read_vocab(tmp_path / "vocab2id.json")
    assert len(vocab) >= 10 and sorted(vocab) == sorted(c.name for c in VOCABULARY)
    assert len({(c.shape, c.colour, c.texture) for c in VOCABULARY}) == len(VOCABULARY)
    gazefollow = read_gazefollow(tmp_path / "train_annotations_release.txt")
    hoi = read_gazehoi(tmp_path / "train-annotations.csv")
    assert hoi.report.rows_skipped == 0
    assert hoi.num_people == sum(p.inout is True for f in gazefollow for p in f.people)
    for frame in hoi:
        for person in frame.people:
            assert person.label in vocab
            assert person.gaze == (pytest.approx(person.target_box.center),)


def test_depth_maps_are_16_bit_pngs_in_the_pdp_layout(tmp_path: Path) -> None:
    write_dataset(tmp_path, replace(SMALL, images=3, depth=True))
    for frame in read_gazefollow(tmp_path / "train_annotations_release.txt"):
        depth = Image.open(tmp_path / "depth" / Path(frame.path).with_suffix(".png"))
        assert depth.mode == "I;16" and depth.size == (320, 240)
        values = np.asarray(depth)
        assert values.max() > 255 and values.min() < values.max()
        # Nearness grows toward the bottom of the picture (the floor comes closer).
        assert values[-1].mean() > values[0].mean()


def test_video_mode_writes_vat_tracks_that_switch_targets(tmp_path: Path) -> None:
    config = replace(SMALL, mode="video", clips=4, frames_per_clip=20, switch_frames=(4, 6), test_fraction=0.5)
    metadata = write_dataset(tmp_path, config)
    assert metadata["counts"]["train"]["clips"] == metadata["counts"]["test"]["clips"] == 2
    for split in ("train", "test"):
        frames = read_vat(tmp_path, split, smooth=False, check_images=True)
        assert frames.report.rows_skipped == 0 and len(frames) == 40
        tracks: dict[tuple[str, str], list] = {}
        for frame in frames:
            assert frame.image_path.is_file() and frame.size == (320, 240)
            for person in frame.people:
                tracks.setdefault((frame.clip, person.track_id), []).append(person)
        for people in tracks.values():
            assert len(people) == 20
            assert len({p.head for p in people}) == 1
            assert len({p.gaze for p in people}) > 1, "a person never switched target"


def test_cli_refuses_a_foreign_non_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert _run_cli("synth", "--out", str(tmp_path), "--images", "2") == 2
    assert "not empty" in capsys.readouterr().err


def test_presets_and_bad_options() -> None:
    assert PRESETS["benchmark"] == SynthConfig(images=5000, clips=40)
    with pytest.raises(GazelabError, match="unknown preset"):
        preset("nope")
    with pytest.raises(GazelabError, match="images"):
        preset("small", images=0)
