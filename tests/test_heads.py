"""Head boxes: BlazeFace detection on real photos, face -> head growth, and boxes typed or read from JSON."""

from __future__ import annotations

import json
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from gazelab.errors import GazelabError
from gazelab.infer import heads
from gazelab.infer.heads import FACE_DETECTOR, HeadDetector, HeadExpansion, face_model_path, load_heads, parse_heads
from gazelab.io import load_image
from gazelab.models import checkpoints
from gazelab.models.checkpoints import CheckpointError
from gazelab.types import Box

FACES_FOUND = {"image1.jpg": 2, "image2.jpg": 4, "image3.jpg": 1, "image4.jpg": 3}
"""Faces BlazeFace full-range finds at score >= 0.5, checked by eye: every box is on a real face; missed are
image2's man at the back, in profile and half hidden, and image3's child, looking down."""


@pytest.fixture(scope="module")
def detector() -> Iterator[HeadDetector]:
    with HeadDetector() as detect:
        yield detect


@pytest.mark.parametrize("name", sorted(FACES_FOUND))
def test_detection_on_real_photos_finds_every_visible_face(detector, shared_data: Path, name: str) -> None:
    picture = load_image(shared_data / "images" / name)
    found = detector(picture)
    assert len(found) == FACES_FOUND[name]
    width, height = picture.size
    for detection in found:
        head, face = detection.head, detection.face
        assert 0.5 <= detection.score <= 1.0
        assert all(0.0 <= v <= 1.0 for v in head.as_tuple())
        assert head.x1 <= face.x1 < face.x2 <= head.x2 and head.y1 <= face.y1 < face.y2 <= head.y2
        assert 0.05 < head.height < 0.4, "a head in these group photos is 5-40 % of the picture height"
        assert 0.6 < (head.width * width) / (head.height * height) < 1.2, "heads are a little taller than wide"
    centres = [d.face.center[0] for d in found]
    assert centres == sorted(centres), "people are numbered left to right"


def test_score_threshold_drops_weaker_faces(shared_data: Path) -> None:
    with HeadDetector(min_score=0.8) as detect:
        found = detect(load_image(shared_data / "images" / "image2.jpg"))
    assert len(found) == 2 and all(d.score >= 0.8 for d in found)


def test_face_box_grows_into_a_head_box() -> None:
    head = HeadExpansion().head_box(Box(0.4, 0.4, 0.5, 0.6))
    assert head.as_tuple() == pytest.approx((0.38, 0.3, 0.52, 0.61))
    corner = HeadExpansion(side=0.5, top=1.0, bottom=0.0).head_box(Box(0.0, 0.05, 0.1, 0.15))
    assert corner.as_tuple() == pytest.approx((0.0, 0.0, 0.15, 0.15)), "clamped to the picture"


def test_growth_is_the_same_in_pixels_and_normalized() -> None:
    width, height = 640, 480
    face_px = (100.0, 200.0, 160.0, 260.0)
    head = HeadExpansion().head_box(Box.from_pixels(*face_px, width, height))
    w, h = 60.0, 60.0
    expected = (100 - 0.2 * w, 200 - 0.5 * h, 160 + 0.2 * w, 260 + 0.05 * h)
    assert head.to_pixels(width, height) == pytest.approx(expected)


def test_missing_mediapipe_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    with pytest.raises(GazelabError, match=r"needs MediaPipe: pip install 'gazelab\[detect\]'"):
        HeadDetector()


def test_face_model_comes_from_mediapipe_then_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAZELAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(checkpoints, "_open_url", _offline)
    bundled = tmp_path / "mediapipe" / FACE_DETECTOR.filename
    bundled.parent.mkdir()
    bundled.write_bytes(b"model")
    monkeypatch.setattr(heads, "_bundled_face_model", lambda: bundled)
    assert face_model_path() == bundled
    monkeypatch.setattr(heads, "_bundled_face_model", lambda: None)
    cached = tmp_path / "home" / "weights" / FACE_DETECTOR.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(bytes(FACE_DETECTOR.size))
    assert face_model_path() == cached


def test_face_model_offline_error_names_url_and_destination(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAZELAB_HOME", str(tmp_path))
    monkeypatch.setattr(checkpoints, "_open_url", _offline)
    monkeypatch.setattr(heads, "_bundled_face_model", lambda: None)
    with pytest.raises(CheckpointError) as err:
        HeadDetector()
    message = str(err.value)
    assert FACE_DETECTOR.url in message
    assert str(tmp_path / "weights" / "face_detection_full_range_sparse.tflite") in message
    assert "mediapipe<=0.10.21" in message


def test_explicit_face_model_must_exist(tmp_path) -> None:
    with pytest.raises(GazelabError, match="nope.tflite: face detector model not found"):
        HeadDetector(model_path=tmp_path / "nope.tflite")


def test_unloadable_face_model_is_one_clear_error(tmp_path) -> None:
    (tmp_path / "bad.tflite").write_bytes(b"not a model")
    with pytest.raises(GazelabError, match="bad.tflite: MediaPipe cannot load it as a face detector"):
        HeadDetector(model_path=tmp_path / "bad.tflite")


def test_score_threshold_must_be_a_probability() -> None:
    with pytest.raises(GazelabError, match=r"must be in \[0, 1\], got 1.5"):
        HeadDetector(min_score=1.5)


def _offline(url: str):
    raise urllib.error.URLError("no network")


def test_heads_string_in_pixels_and_normalized() -> None:
    pixels = parse_heads("10,20,50,80; 100,0,140,40;")
    assert not pixels.normalized and len(pixels.rows) == 2
    assert pixels.boxes(200, 100) == [Box(0.05, 0.2, 0.25, 0.8), Box(0.5, 0.0, 0.7, 0.4)]
    normalized = parse_heads("0.1,0.2,0.3,0.4;-0.05,0.5,0.2,1.02")
    assert normalized.normalized
    assert normalized.boxes(640, 480) == [Box(0.1, 0.2, 0.3, 0.4), Box(-0.05, 0.5, 0.2, 1.02)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no box given"),
        (" ; ", "no box given"),
        ("1,2,3", r"box 1 '1,2,3': expected 4 numbers"),
        ("0.1,0.1,0.2,0.2;1,2,x,4", r"box 2 '1,2,x,4': expected 4 numbers"),
        ("0.3,0.1,0.2,0.2", "empty or inverted box"),
        ("0.1,0.1,0.1,0.2", "empty or inverted box"),
        ("0.1,nan,0.2,0.2", "must be finite"),
    ],
)
def test_bad_heads_strings_are_refused(text: str, message: str) -> None:
    with pytest.raises(GazelabError, match=message):
        parse_heads(text)


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_heads_file_matches_images_by_path_or_name(tmp_path) -> None:
    (tmp_path / "imgs").mkdir()
    table = load_heads(_write(tmp_path / "heads.json", {
        "imgs/a.jpg": [[10, 10, 50, 60]],
        "b.jpg": [[100, 20, 160, 90], [200, 20, 260, 90]],
        "c.jpg": [],
    }))  # fmt: skip
    assert not table.normalized
    a = table.for_image(tmp_path / "imgs" / "a.jpg")
    assert a.boxes(100, 100) == [Box(0.1, 0.1, 0.5, 0.6)]
    assert len(table.for_image(Path("elsewhere") / "b.jpg").rows) == 2
    assert table.for_image(tmp_path / "c.jpg").boxes(10, 10) == []
    with pytest.raises(GazelabError, match=r"heads.json: no boxes for .*d.jpg \(entries are image paths or names"):
        table.for_image(tmp_path / "d.jpg")


def test_heads_file_units_are_decided_for_the_whole_file(tmp_path) -> None:
    normalized = load_heads(_write(tmp_path / "n.json", {"a.jpg": [[0.1, 0.1, 0.3, 0.4]], "b.jpg": [[0.5, 0, 1, 1]]}))
    assert normalized.normalized
    assert normalized.for_image("a.jpg").boxes(640, 480) == [Box(0.1, 0.1, 0.3, 0.4)]
    pixels = load_heads(_write(tmp_path / "p.json", {"a.jpg": [[0.5, 0.5, 1, 1]], "b.jpg": [[10, 10, 30, 40]]}))
    assert not pixels.normalized, "one pixel box makes the whole file pixels"


def test_heads_file_name_shared_by_two_entries_is_ambiguous(tmp_path) -> None:
    table = load_heads(_write(tmp_path / "h.json", {"x/a.jpg": [[1, 1, 9, 9]], "y/a.jpg": [[1, 1, 9, 9]]}))
    with pytest.raises(GazelabError, match="several entries named a.jpg"):
        table.for_image("z/a.jpg")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"a.jpg": [[1, 2, 3, 4]],\n "b.jpg": [1, 2', r"h.json:2:\d+: invalid JSON"),
        ("[[1, 2, 3, 4]]", "expected an object"),
        ('{"a.jpg": [1, 2, 3, 4]}', r"a.jpg box 1: expected 4 numbers"),
        ('{"a.jpg": {"box": [1, 2, 3, 4]}}', "a.jpg: expected a list of boxes"),
        ('{"a.jpg": [[10, 10, 30, 40], [50, 60, 40, 70]]}', r"a.jpg box 2: empty or inverted box"),
        ('{"a.jpg": [["1", "2", "3", null]]}', "expected 4 numbers"),
    ],
)
def test_malformed_heads_files_name_the_problem(tmp_path, body: str, message: str) -> None:
    with pytest.raises(GazelabError, match=message):
        load_heads(_write(tmp_path / "h.json", body))


def test_missing_heads_file(tmp_path) -> None:
    with pytest.raises(GazelabError, match="nope.json: heads file not found"):
        load_heads(tmp_path / "nope.json")


def test_a_head_box_wholly_outside_the_picture_is_an_error_naming_it():
    from gazelab.errors import GazelabError
    from gazelab.infer.heads import parse_heads

    heads = parse_heads("10,10,40,40;500,300,560,380")
    wanted = r"--heads: head box 2 \[500.0, 300.0, 560.0, 380.0\] \(pixels\) lies wholly"
    with pytest.raises(GazelabError, match=wanted):
        heads.boxes(320, 240)
    assert len(parse_heads("10,10,40,40;300,200,340,260").boxes(320, 240)) == 2  # partly inside is fine
