"""Video frames in and out, head tracks from files and from linked detections, and temporal smoothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gazelab.data.formats.vat import smooth_boxes
from gazelab.errors import DataError, GazelabError
from gazelab.types import Box
from gazelab.video.reader import VideoSource
from gazelab.video.smoothing import OneEuroFilter, TrackSmoother, argmax_point
from gazelab.video.tracks import IoUTracker, Tracks, detect_tracks, iou_matrix, load_tracks
from gazelab.video.writer import VideoWriter


def coloured_frames(count: int, size: tuple[int, int] = (95, 63)) -> list[np.ndarray]:
    """Flat frames whose grey level encodes their index (survives lossy coding)."""
    return [np.full((size[1], size[0], 3), 10 + 20 * i, dtype=np.uint8) for i in range(count)]


def test_mp4_round_trip_keeps_count_order_size_and_rate(tmp_path) -> None:
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=12.5, size=(95, 63)) as writer:  # odd size: padded to even for 4:2:0
        for frame in coloured_frames(12):
            writer.write(frame)
    assert writer.codec == "libx264" and writer.frames == 12
    source = VideoSource(path)
    assert (source.fps, source.frame_count, len(source)) == (12.5, 12, 12)
    assert (source.width, source.height) == (96, 64)
    frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert [round((f.pixels[10:50, 10:80].mean() - 10) / 20) for f in frames] == list(range(12))
    strided = VideoSource(path, stride=5)
    assert [f.index for f in strided] == [0, 5, 10] and len(strided) == 3
    assert strided.output_fps == 2.5
    assert [f.time for f in strided] == [0.0, 0.4, 0.8]


def test_writer_refuses_a_frame_of_another_size(tmp_path) -> None:
    with VideoWriter(tmp_path / "v.mp4", fps=25, size=(64, 48)) as writer:
        with pytest.raises(GazelabError, match="frame 0 is 32x32, the video is 64x48"):
            writer.write(np.zeros((32, 32, 3), np.uint8))
        writer.write(np.zeros((48, 64, 3), np.uint8))


def test_frame_folder_is_read_in_natural_order(tmp_path) -> None:
    for i, frame in enumerate(coloured_frames(11, (40, 30))):
        Image.fromarray(frame).save(tmp_path / f"f{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    source = VideoSource(tmp_path, fps=10)
    assert source.frame_names[:3] == ["f0.png", "f1.png", "f2.png"] and source.frame_names[-1] == "f10.png"
    assert [int(f.pixels[0, 0, 0]) for f in source] == [10 + 20 * i for i in range(11)]
    assert source.index_of("f10.png") == 10 and source.index_of("nope.png") is None


def test_unreadable_inputs_are_one_clear_error(tmp_path) -> None:
    with pytest.raises(GazelabError, match="no such video file or frame folder"):
        VideoSource(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GazelabError, match="holds no frame images"):
        VideoSource(tmp_path / "empty")
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="bad.mp4: not a readable video"):
        VideoSource(tmp_path / "bad.mp4")
    with pytest.raises(GazelabError, match="stride"):
        VideoSource(tmp_path / "bad.mp4", stride=0)


# --- tracks from files --------------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path) -> VideoSource:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(20):
        Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(frames / f"{100 + i:08d}.jpg")
    return VideoSource(frames)


def write_vat_track(path: Path, first: int, count: int, jitter: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    boxes = np.array([[20.0, 10.0, 60.0, 50.0]] * count) + (rng.integers(-4, 5, (count, 4)) if jitter else 0)
    path.write_text("".join(f"{first + i:08d}.jpg,{','.join(map(str, b))}\n" for i, b in enumerate(boxes)))
    return boxes


def test_vat_person_files_match_frame_names_and_smooth_like_the_benchmark(folder, tmp_path) -> None:
    raw = write_vat_track(tmp_path / "alice.txt", 103, 15, jitter=True)
    write_vat_track(tmp_path / "bob.txt", 100, 3)
    tracks = load_tracks([tmp_path / "alice.txt", tmp_path / "bob.txt"], folder)
    assert tracks.track_ids == ["bob", "alice"]  # order of first appearance
    assert sorted(tracks.by_frame) == list(range(18))
    assert [h.track_id for h in tracks.at(3)] == ["alice"] and tracks.at(19) == []
    assert tracks.at(3)[0].box == Box.from_pixels(*raw[0], 200, 100)
    smoothed = smooth_boxes(raw) / [200, 100, 200, 100]
    indices, boxes = tracks.smoothed().per_track()["alice"]
    assert indices == list(range(3, 18))
    np.testing.assert_allclose(boxes, smoothed, atol=1e-12)


def test_vat_names_count_from_the_first_frame_for_a_video_file(tmp_path) -> None:
    video = tmp_path / "v.mp4"
    with VideoWriter(video, fps=25, size=(200, 100)) as writer:
        for frame in coloured_frames(6, (200, 100)):
            writer.write(frame)
    write_vat_track(tmp_path / "p.txt", 2575, 4)
    tracks = load_tracks([tmp_path / "p.txt"], VideoSource(video))
    assert sorted(tracks.by_frame) == [0, 1, 2, 3]


def test_one_csv_with_indices_or_names_in_pixels_or_normalized(folder, tmp_path) -> None:
    pixels = tmp_path / "px.csv"
    pixels.write_text("frame,track_id,x1,y1,x2,y2\n0,a,20,10,60,50\n00000101.jpg,a,22,10,62,50\n1,b,100,0,140,40\n")
    tracks = load_tracks([pixels], folder)
    assert [(h.track_id, h.box) for h in tracks.at(1)] == [
        ("a", Box(0.11, 0.1, 0.31, 0.5)),
        ("b", Box(0.5, 0, 0.7, 0.4)),
    ]
    normalized = tmp_path / "norm.csv"
    normalized.write_text("frame,track_id,x1,y1,x2,y2\n4,a,0.1,0.1,0.3,0.5\n")
    assert load_tracks([normalized], folder).at(4)[0].box == Box(0.1, 0.1, 0.3, 0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frame,track_id,x1,y1,x2,y2\n0,a,20,10,x,50\n", r"bad.csv:2: expected numbers"),
        ("frame,track_id,x1,y1,x2,y2\n0,a,60,10,20,50\n", r"bad.csv:2: empty, inverted"),
        ("frame,track_id,x1,y1,x2,y2\nmissing.jpg,a,20,10,60,50\n", r"bad.csv:2: frame 'missing.jpg' is not a file"),
        ("frame,track_id,x1,y1,x2,y2\n0,a,500,10,600,50\n", r"bad.csv:2: head box .* lies outside the 200x100"),
        ("frame,track_id,x1,y1,x2,y2\n", r"bad.csv: no head boxes"),
        ("frame,track_id,x1,y1,x2,y2\n3,a,1,1,9,9\n3,a,2,2,9,9\n", r"bad.csv:3: track 'a' has a second head box"),
        ("00000100.jpg,20,10,60\n", r"bad.csv:1: expected 'frame,x1,y1,x2,y2"),
    ],
)
def test_bad_tracks_files_name_the_row(folder, tmp_path, text: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_tracks([tmp_path / "bad.csv"], folder)


# --- linking detections -------------------------------------------------------------------------------------------


def box_at(x: float, y: float, size: float = 0.1) -> Box:
    return Box(x, y, x + size, y + size)


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], float)
    b = np.array([[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 7, 0, 1], [0, 0, 0.25]])


def test_crossing_heads_keep_their_identity() -> None:
    """Two heads pass each other (overlapping on the way); detections come in left-to-right order, so a
    linker that matched by position in the list would swap them where they cross."""
    tracker = IoUTracker(min_iou=0.3)
    names: dict[str, list[str]] = {"rightward": [], "leftward": []}
    for t in range(21):
        rightward, leftward = box_at(0.2 + 0.02 * t, 0.30), box_at(0.6 - 0.02 * t, 0.34)
        ordered = sorted([("rightward", rightward), ("leftward", leftward)], key=lambda p: p[1].x1)
        for (who, _), track_id in zip(ordered, tracker.update([b for _, b in ordered])):
            names[who].append(track_id)
    assert set(names["rightward"]) == {"person1"} and set(names["leftward"]) == {"person2"}


def test_a_head_that_vanishes_briefly_keeps_its_track_a_long_absence_ends_it() -> None:
    tracker = IoUTracker(max_missed=3)
    assert tracker.update([box_at(0.1, 0.1), box_at(0.6, 0.1)]) == ["person1", "person2"]
    for _ in range(3):
        assert tracker.update([box_at(0.6, 0.1)]) == ["person2"]
    assert tracker.update([box_at(0.61, 0.1), box_at(0.1, 0.1)]) == ["person2", "person1"]
    for _ in range(4):
        tracker.update([box_at(0.6, 0.1)])
    assert tracker.update([box_at(0.1, 0.1)]) == ["person3"]
    assert tracker.update([box_at(0.3, 0.5)]) == ["person4"]  # a new head far from every track is born


def test_detect_tracks_drops_flickering_false_detections(folder) -> None:
    def detect(pixels: np.ndarray) -> list[Box]:
        detect.calls += 1
        return [box_at(0.1, 0.1)] + ([box_at(0.7, 0.5)] if detect.calls == 5 else [])

    detect.calls = 0
    tracks = detect_tracks(folder, detect, min_frames=3)
    assert tracks.track_ids == ["person1"] and len(tracks.by_frame) == 20
    assert isinstance(tracks, Tracks)


# --- smoothing -----------------------------------------------------------------------------------------------------


def peak(col: int, row: int) -> np.ndarray:
    heatmap = np.zeros((64, 64), np.float32)
    heatmap[row, col] = 1.0
    return heatmap


def test_one_euro_steadies_a_jittery_point_and_follows_a_saccade() -> None:
    smoother = TrackSmoother("one-euro")
    rng = np.random.default_rng(0)
    raw, smoothed = [], []
    for t in range(50):
        col, row = 20 + rng.integers(-2, 3), 30 + rng.integers(-2, 3)
        raw.append(argmax_point(peak(col, row)))
        smoothed.append(smoother("a", t / 25, peak(col, row), 0.9).point)
    assert np.std(np.array(smoothed)[10:], 0).max() < 0.5 * np.std(np.array(raw)[10:], 0).min()
    for t in range(50, 56):  # the target jumps across the picture
        point = smoother("a", t / 25, peak(50, 10), 0.9).point
    assert abs(point[0] - 50 / 64) < 0.03 and abs(point[1] - 10 / 64) < 0.03
    fresh = smoother("a", 60.0, peak(5, 5), 0.1)  # seen again after a long absence: no memory of the past
    assert fresh.point == (5 / 64, 5 / 64) and fresh.inout == 0.1


def test_one_euro_depends_on_time_not_on_frame_count() -> None:
    fast, slow = OneEuroFilter(), OneEuroFilter()
    for t in range(0, 11):
        a = fast(t / 50, np.array([float(t >= 5)]))
    for t in range(0, 11, 2):
        b = slow(t / 50, np.array([float(t >= 5)]))
    assert abs(a[0] - b[0]) < 0.1 and 0.3 < b[0] < 1


def test_ema_is_a_time_constant_average_of_heatmaps() -> None:
    tau = 0.2
    every_frame, every_other = TrackSmoother("ema", tau=tau), TrackSmoother("ema", tau=tau)
    every_frame("a", 0.0, peak(10, 10), 0.0)
    every_other("a", 0.0, peak(10, 10), 0.0)
    for t in (0.04, 0.08):
        out = every_frame("a", t, peak(40, 10), 1.0)
    other = every_other("a", 0.08, peak(40, 10), 1.0)
    remaining = np.exp(-0.08 / tau)  # weight left on the old peak after 0.08 s, at any frame rate
    assert out.heatmap[10, 10] == pytest.approx(remaining, rel=1e-5)
    assert other.heatmap[10, 10] == pytest.approx(remaining, rel=1e-5)
    assert out.inout == pytest.approx(1 - remaining) and out.point == (10 / 64, 10 / 64)  # old peak still higher
    later = every_frame("a", 0.5, peak(40, 10), 1.0)
    assert later.point == (40 / 64, 10 / 64)
