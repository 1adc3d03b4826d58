from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_image

from gazelab.data.formats import detect_format, read_annotations
from gazelab.data.formats.childplay import frame_image_path, read_childplay
from gazelab.data.formats.vat import read_vat, smooth_boxes, write_vat
from gazelab.errors import GazelabError
from gazelab.types import Box, Frame, Person


def _vat_tree(root: Path, n: int = 15) -> np.ndarray:
    """A one-clip VAT tree with a jittery head track; returns the raw pixel boxes."""
    rng = np.random.default_rng(0)
    boxes = np.stack([np.full(n, 40.0), np.full(n, 30.0), np.full(n, 80.0), np.full(n, 70.0)], 1)
    boxes += rng.integers(-5, 6, size=(n, 4))
    lines = []
    for i in range(n):
        write_image(root / f"images/show1/clip_a/{i + 1:08d}.jpg", (320, 180), seed=i)
        gaze = "-1,-1" if i % 5 == 4 else f"{200 + i},{100 - i}"
        lines.append(f"{i + 1:08d}.jpg," + ",".join(str(int(v)) for v in boxes[i]) + f",{gaze}")
    track = root / "annotations/test/show1/clip_a/s01.txt"
    track.parent.mkdir(parents=True)
    track.write_text("\n".join(lines) + "\n")
    return boxes


def test_smoothing_is_the_window_11_moving_average_with_repeated_edges() -> None:
    boxes = np.arange(40, dtype=float).reshape(10, 4)
    smoothed = smooth_boxes(boxes)
    padded = np.concatenate([np.repeat(boxes[:1], 5, 0), boxes, np.repeat(boxes[-1:], 5, 0)])
    expected = np.stack([padded[i : i + 11].mean(0) for i in range(10)])
    np.testing.assert_allclose(smoothed, expected)


@pytest.mark.parametrize("smooth", [False, True])
def test_vat_tree_reads_tracks_in_frame_order(tmp_path: Path, smooth: bool) -> None:
    raw = _vat_tree(tmp_path)
    frames = read_vat(tmp_path, split="test", smooth=smooth)
    assert detect_format(tmp_path) == "vat"
    assert len(frames) == 15 and [f.frame_index for f in frames] == list(range(1, 16))
    assert all(f.clip == "show1/clip_a" and f.size == (320, 180) for f in frames)
    people = [f.people[0] for f in frames]
    assert [p.inout for p in people] == [i % 5 != 4 for i in range(15)]
    assert people[0].gaze == ((200 / 320, 100 / 180),)
    assert people[4].gaze == ()
    expected = smooth_boxes(raw) if smooth else raw
    got = np.array([p.head.to_pixels(320, 180) for p in people])
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_vat_write_read_round_trip(tmp_path: Path) -> None:
    frames = []
    for i in range(3):
        write_image(tmp_path / f"images/s/c/{i:05d}.jpg", (160, 120), seed=i)
        people = [
            Person(head=Box(0.1, 0.1, 0.3, 0.3), gaze=((0.5, 0.25 + 0.1 * i),), inout=True, track_id="a"),
            Person(head=Box(0.6, 0.2, 0.8, 0.4), gaze=(), inout=False, track_id="b"),
        ]
        frames.append(Frame(path=f"images/s/c/{i:05d}.jpg", width=160, height=120, people=people,
                            frame_index=i, clip="s/c"))  # fmt: skip
    written = write_vat(frames, tmp_path, split="train")
    assert sorted(p.name for p in written) == ["a.txt", "b.txt"]
    back = read_vat(tmp_path, split="train", smooth=False)
    assert len(back) == 3
    for original, read in zip(frames, back):
        by_track = {p.track_id: p for p in read.people}
        for p in original.people:
            q = by_track[p.track_id]
            assert q.inout == p.inout
            assert np.allclose(q.gaze, p.gaze, atol=1e-9)
            assert q.head.as_tuple() == pytest.approx(p.head.as_tuple())


def test_vat_missing_tree_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GazelabError, match="annotations/test"):
        read_vat(tmp_path)


def test_childplay_paths_classes_and_inout(tmp_path: Path) -> None:
    assert frame_image_path("1Ab2_x_100-200-downsample", 3) == ("images/1Ab2_x_100-200-downsample/1Ab2_x_102.jpg", 102)
    clip = "vid01_100-200"
    for frame in (1, 2, 3):
        write_image(tmp_path / f"images/{clip}/vid01_{99 + frame}.jpg", (400, 200), seed=frame)
    csv = tmp_path / "annotations/test/vid01.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text(
        "clip,frame,person_id,gaze_class,gaze_x,gaze_y,bbox_x,bbox_y,bbox_width,bbox_height,extra\n"
        f"{clip},1,p1,inside_visible,100,50,10,20,30,40,x\n"
        f"{clip},2,p1,outside_frame,-1,-1,12,20,30,40,x\n"
        f"{clip},3,p1,gaze_shift,5,5,12,20,30,40,x\n"
        f"{clip},3,p2,eyes_closed,5,5,12,20,30,40,x\n"
    )
    frames = read_childplay(tmp_path, split="test")
    assert detect_format(tmp_path) == "childplay"
    assert [f.frame_index for f in frames] == [100, 101]
    first, second = frames[0].people[0], frames[1].people[0]
    assert first.inout is True and first.gaze == ((0.25, 0.25),) and first.track_id == "p1"
    assert first.head == Box(10 / 400, 20 / 200, 40 / 400, 60 / 200)
    assert second.inout is False and second.gaze == ()
    assert dict(frames.report.skipped) == {
        "excluded gaze class (gaze_shift)": 1,
        "excluded gaze class (eyes_closed)": 1,
    }


def test_read_annotations_rejects_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x\n")
    with pytest.raises(GazelabError, match="unknown format"):
        read_annotations(tmp_path / "a.txt", format="coco")
