"""GazeHOI and Gaze-LLE JSON readers, and image loading edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from PIL import Image

from gazelab.data.formats import detect_format, read_annotations
from gazelab.data.formats.gazehoi import read_gazehoi, read_vocab, vocab_to_ids, write_gazehoi, write_vocab
from gazelab.errors import DataError
from gazelab.io import image_size, load_image
from gazelab.types import Box, Frame, Person

HOI_HEADER = "file_name,pair_id,object,aux_object,o_xmin,o_ymin,o_xmax,o_ymax,oc_x,oc_y,h_xmin,h_ymin,h_xmax,h_ymax\n"


def test_gazehoi_reads_labels_and_never_evaluates_code(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", (200, 100))
    (tmp_path / "test-annotations.csv").write_text(
        HOI_HEADER
        + "a.jpg,1,cup,\"['mug', 'glass']\",100,20,140,60,120,40,10,10,30,30\n"
        + "a.jpg,2,phone,[],100,20,140,60,120,40,-1,-1,-1,-1\n"
        + "a.jpg,3,book,\"__import__('os').getcwd()\",100,20,140,60,120,40,10,10,30,30\n"
    )
    frames = read_gazehoi(tmp_path / "test-annotations.csv")
    assert detect_format(tmp_path / "test-annotations.csv") == "gazehoi"
    person = frames[0].people[0]
    assert person.label == "cup" and person.labels == ("cup", "mug", "glass")
    assert person.gaze == ((0.6, 0.4),) and person.target_box == Box(0.5, 0.2, 0.7, 0.6)
    assert frames.report.skipped == {"head not visible": 1, "malformed row": 1}


def test_gazehoi_round_trip_and_vocab(tmp_path: Path) -> None:
    write_image(tmp_path / "img/b.jpg", (300, 150))
    frames = [Frame(path="img/b.jpg", width=300, height=150, people=[
        Person(head=Box(0.1, 0.1, 0.2, 0.3), gaze=((0.5, 0.5),), inout=True, label="plant",
               labels=("plant", "pot"), target_box=Box(0.4, 0.4, 0.6, 0.6), person_id="9"),
    ])]  # fmt: skip
    write_gazehoi(frames, tmp_path / "train-annotations.csv")
    back = read_gazehoi(tmp_path / "train-annotations.csv")
    p, q = frames[0].people[0], back[0].people[0]
    assert (q.label, q.labels, q.person_id) == (p.label, p.labels, p.person_id)
    assert np.allclose(q.gaze, p.gaze, atol=1e-9) and q.target_box.as_tuple() == pytest.approx(p.target_box.as_tuple())
    write_vocab(["plant", "cup", "plant", "apple"], tmp_path / "vocab2id.json")
    expected = {"apple": 0, "cup": 1, "plant": 2}
    assert read_vocab(tmp_path / "vocab2id.json") == expected == vocab_to_ids(["cup", "plant", "apple"])
    (tmp_path / "bad.json").write_text(json.dumps({"b": 0, "a": 1}))
    with pytest.raises(DataError, match="alphabetical"):
        read_vocab(tmp_path / "bad.json")


def test_gazelle_json(tmp_path: Path) -> None:
    entries = [
        {"path": "test2/x.jpg", "width": 400, "height": 200, "heads": [
            {"bbox": [40, 20, 80, 60], "bbox_norm": [0.1, 0.1, 0.2, 0.3], "gazex": [200, 220], "gazey": [100, 80],
             "gazex_norm": [0.5, 0.55], "gazey_norm": [0.5, 0.4], "inout": 1, "num_annot": 2, "head_id": 0},
            {"bbox": [90, 20, 80, 60], "gazex_norm": [0.5], "gazey_norm": [0.5], "inout": 1},
        ]},
        {"path": "../escape.jpg", "width": 10, "height": 10, "heads": []},
    ]  # fmt: skip
    path = tmp_path / "test_preprocessed.json"
    path.write_text(json.dumps(entries))
    frames = read_annotations(path)
    assert frames.report.format == "gazelle-json"
    assert len(frames) == 1 and frames[0].size == (400, 200)
    person = frames[0].people[0]
    assert person.head == Box(0.1, 0.1, 0.2, 0.3) and person.gaze == ((0.5, 0.5), (0.55, 0.4))
    assert frames.report.skipped == {"inverted head box": 1, "path escapes dataset root": 1}


def test_images_are_upright_rgb_whatever_the_file(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (30, 20), (255, 0, 0, 255))
    rgba.save(tmp_path / "a.png")
    Image.new("L", (30, 20), 128).save(tmp_path / "g.png")
    Image.new("CMYK", (30, 20), (0, 255, 0, 0)).save(tmp_path / "c.jpg")
    Image.fromarray(np.full((20, 30), 65535, dtype=np.uint16)).save(tmp_path / "d.png")
    for name in ("a.png", "g.png", "c.jpg", "d.png"):
        image = load_image(tmp_path / name)
        assert image.mode == "RGB" and image.size == (30, 20)
    assert np.asarray(load_image(tmp_path / "d.png")).max() == 255
    # EXIF orientation 6 (rotate 90): the displayed image is 20 wide, 30 high.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (30, 20)).save(tmp_path / "r.jpg", exif=exif)
    assert image_size(tmp_path / "r.jpg") == (20, 30)
    assert load_image(tmp_path / "r.jpg").size == (20, 30)


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_unreadable_images_raise_one_clear_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=r"x\.jpg"):
        load_image(path)


def test_truncated_jpeg_is_reported(tmp_path: Path) -> None:
    write_image(tmp_path / "t.jpg", (64, 64))
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_image(tmp_path / "t.jpg")
