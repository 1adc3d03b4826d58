"""``gazelab video`` on the real 101-frame clip (VAT demo) with the tiny random-weight model.

Random weights say nothing about gaze, so these tests check what the command promises: one row per track per
frame, a decodable mp4 with every frame, values in range, CSV and JSON that agree, and one-line errors.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gazelab.cli import main
from gazelab.video.reader import VideoSource

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--model", "gazelle_tiny_inout", "--weights", "none"]


@pytest.fixture
def clip(shared_data: Path) -> Path:
    return shared_data / "vat_demo"


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_real_clip_with_given_tracks(clip, tmp_path, capsys) -> None:
    out = tmp_path / "gaze.mp4"
    code, stdout, err = run(capsys, "video", str(clip / "frames"), "--out", str(out), *TINY,
                            "--tracks", str(clip / "person1.txt"), "--tracks", str(clip / "person2.txt"))  # fmt: skip
    assert code == 0, err
    assert "wrote 101 frames" in stdout and "202 rows" in stdout

    video = VideoSource(out)
    assert (video.width, video.height, video.fps) == (960, 540, 25.0)
    assert sum(1 for _ in video) == 101  # decoded back, frame by frame

    rows = read_rows(out.with_suffix(".csv"))
    for track in ("person1", "person2"):
        assert [int(r["frame"]) for r in rows if r["track_id"] == track] == list(range(101))
    first = next(line for line in (clip / "person1.txt").read_text().splitlines())
    assert [float(rows[0][k]) for k in ("head_x1", "head_y1", "head_x2", "head_y2")] == [
        float(v) for v in first.split(",")[1:5]
    ]
    for row in rows:
        assert 0 <= float(row["gaze_x"]) <= 960 and 0 <= float(row["gaze_y"]) <= 540
        assert 0 <= float(row["head_x1"]) < float(row["head_x2"]) <= 960
        assert 0 <= float(row["head_y1"]) < float(row["head_y2"]) <= 540
        assert 0 <= float(row["inout"]) <= 1 and row["label"] == ""

    record = json.loads(out.with_suffix(".json").read_text())
    assert record["tracks"] == ["person1", "person2"] and len(record["frames"]) == 101
    assert record["frames"][0]["name"] == "00002575.jpg"
    people = [p for f in record["frames"] for p in f["people"]]
    assert [p["point_px"] for p in people] == [[float(r["gaze_x"]), float(r["gaze_y"])] for r in rows]


def test_detected_and_smoothed_tracks_at_a_lower_frame_rate(clip, tmp_path, capsys) -> None:
    out = tmp_path / "detect.mp4"
    # --fps 2.5 on a 25 fps folder keeps every 10th frame
    options = ["--detect", "--fps", "2.5", "--smooth-boxes", "--smooth", "one-euro", "--json", str(tmp_path / "j.json")]
    code, stdout, err = run(capsys, "video", str(clip / "frames"), "--out", str(out), *TINY, *options)
    assert code == 0, err
    rows = read_rows(out.with_suffix(".csv"))
    frames = list(range(0, 101, 10))
    by_track: dict[str, list[int]] = {}
    for row in rows:
        by_track.setdefault(row["track_id"], []).append(int(row["frame"]))
    assert len(by_track) == 2 and all(indices == frames for indices in by_track.values())  # two faces, every frame
    left = [float(r["head_x2"]) for r in rows if r["track_id"] == min(by_track)]
    assert max(left) < 480  # the track ids follow the people, not the detection order
    assert sum(1 for _ in VideoSource(out)) == 11 and VideoSource(out).fps == 2.5
    assert (tmp_path / "j.json").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give either --tracks FILE"),
        (["--detect", "--stride", "2", "--fps", "5"], "at most one of --stride and --fps"),
        (["--detect", "--smooth", "kalman"], "--smooth must be one of none, one-euro, ema"),
    ],
)
def test_bad_options_are_one_line_errors(clip, tmp_path, capsys, extra: list[str], message: str) -> None:
    code, _, err = run(capsys, "video", str(clip / "frames"), "--out", str(tmp_path / "o.mp4"), *TINY, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bad_tracks_row_names_the_file_and_line(clip, tmp_path, capsys) -> None:
    tracks = tmp_path / "p.txt"
    tracks.write_text("00002575.jpg,276.5,35.5,376,137.5\n00002576.jpg,276.5,35.5,oops,137.5\n")
    code, _, err = run(capsys, "video", str(clip / "frames"), "--out", str(tmp_path / "o.mp4"), *TINY,
                       "--tracks", str(tracks))  # fmt: skip
    assert code == 2 and f"{tracks}:2: expected numbers" in err
    assert not (tmp_path / "o.mp4").exists()


def test_fast_paths_are_refused_for_temporal_models(clip, tmp_path, capsys) -> None:
    out = tmp_path / "o.mp4"
    code, _, err = run(capsys, "video", str(clip / "frames"), "--out", str(out), "--model", "vat_temporal_tiny",
                       "--weights", "none", "--tracks", str(clip / "person1.txt"), "--precision", "bf16")  # fmt: skip
    assert code == 2 and "VATTemporal is temporal" in err.strip().splitlines()[-1]
    assert not out.exists() and not out.with_suffix(".csv").exists(), "nothing half-written"
