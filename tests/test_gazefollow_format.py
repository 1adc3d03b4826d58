from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import write_image

from gazelab.data.formats import read_annotations
from gazelab.data.formats.gazefollow import VARIANTS, read_gazefollow, write_gazefollow
from gazelab.errors import DataError
from gazelab.types import Box, Frame, Person


@pytest.fixture
def real_rows(shared_data: Path) -> list[list[str]]:
    """The real file's rows, split into columns (missing shared data fails with the fixture's clear message)."""
    return [line.split(",") for line in (shared_data / "gazefollow_val_annotations_new.txt").read_text().splitlines()]


def test_real_file_parses_with_published_counts(shared_data: Path) -> None:
    frames = read_gazefollow(shared_data / "gazefollow_val_annotations_new.txt")
    assert frames.report.format == "gazefollow:release-train"
    assert frames.report.rows_read == 4499
    assert frames.report.rows_kept == 4499
    assert len(frames) == 4486
    assert frames.num_people == 4499
    # No images are shipped: sizes stay unknown, pixel boxes are kept and negative coordinates clamped to 0.
    assert all(f.size is None for f in frames)
    people = [p for f in frames for p in f.people]
    assert all(p.head is None and p.head_px is not None for p in people)
    assert all(min(p.head_px) >= 0 for p in people)
    assert frames.report.notes["head box clamped to the image"] == 4
    assert all(p.inout is True and len(p.gaze) == 1 for p in people)


def _variant_row(row: list[str], variant: str) -> list[str]:
    """Turn one real 17-column row into the layout of another GazeFollow variant."""
    base, inout, source, meta = row[:14], row[14], row[15], row[16]
    body_px = ["10", "20", "30", "40"]
    return {
        "release-train": base + [inout, source, meta],
        "release-test": base + [source, meta],
        "chong-train": base + [inout, meta],
        "chong-test": base + [meta],
        "persondet-train": base + [inout, meta, "ori.jpg"] + body_px,
        "persondet-test": base + [meta, "ori.jpg"] + body_px,
    }[variant]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_column_variant_is_detected(tmp_path: Path, variant: str, real_rows: list[list[str]]) -> None:
    rows = [_variant_row(r, variant) for r in real_rows[:50]]
    assert len(rows[0]) == VARIANTS[variant].columns
    path = tmp_path / "ann.txt"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    frames = read_gazefollow(path)
    assert frames.report.format == f"gazefollow:{variant}"
    assert frames.report.rows_kept == 50
    first = frames[0].people[0]
    assert first.gaze[0] == pytest.approx((float(real_rows[0][8]), float(real_rows[0][9])))
    if VARIANTS[variant].body_px is not None:
        assert first.extra["body_px"] == (10.0, 20.0, 30.0, 40.0)


def test_test_split_rows_group_into_annotators(tmp_path: Path) -> None:
    write_image(tmp_path / "test2/a.jpg", (200, 100))
    rows = []
    for k in range(20):
        rows.append(f"test2/a.jpg,7,0.1,0.1,0.3,0.5,0.25,0.2,{0.5 + k * 0.01},0.6,40,10,60,30,src,False")
    rows.append("test2/a.jpg,8,0.1,0.1,0.3,0.5,0.75,0.2,0.1,0.9,140,10,160,30,src,False")
    (tmp_path / "test.txt").write_text("\n".join(rows) + "\n")
    frames = read_gazefollow(tmp_path / "test.txt")
    assert frames.report.format == "gazefollow:release-test"
    assert len(frames) == 1 and frames[0].size == (200, 100)
    first, second = frames[0].people
    assert len(first.gaze) == 20 and len(second.gaze) == 1
    assert first.head == Box(0.2, 0.1, 0.3, 0.3)
    assert first.gaze_point == pytest.approx((0.5 + 0.01 * 19 / 2, 0.6))


def test_bad_rows_are_skipped_with_reason_and_line(tmp_path: Path) -> None:
    write_image(tmp_path / "img/a.jpg", (100, 100))
    good = "img/a.jpg,1,0,0,0,0,0.5,0.5,0.2,0.2,10,10,20,20,1,src,meta"
    lines = [
        good,
        "img/a.jpg,2,0,0,0,0,0.6,0.5,0.2,0.2,30,10,20,20,1,src,meta",  # inverted box
        "img/a.jpg,3,0,0,0,0,0.7,0.5,nan,0.2,10,10,20,20,1,src,meta",  # NaN
        "img/a.jpg,4,0,0,0,0,0.8,0.5,1.4,0.2,10,10,20,20,1,src,meta",  # gaze outside while in frame
        "img/missing.jpg,5,0,0,0,0,0.5,0.5,0.2,0.2,10,10,20,20,1,src,meta",  # no image
        "../../etc/passwd,6,0,0,0,0,0.5,0.5,0.2,0.2,10,10,20,20,1,src,meta",  # escapes the root
        "img/a.jpg,7,0,0,0,0,0.9,0.5,0.2,0.2,10,10,20,20,-1,src,meta",  # invalid inout
        "img/a.jpg,8,0,0",  # too few columns
        "img/a.jpg,9,0,0,0,0,0.95,0.5,0.2,0.2,10,10,10,20,1,src,meta",  # zero-width box
        "img/a.jpg,10,0,0,0,0,0.99,0.5,5,5,10,10,20,20,0,src,meta",  # out of frame: gaze ignored, kept
    ]
    (tmp_path / "ann.txt").write_text("\n".join(lines) + "\n")
    frames = read_gazefollow(tmp_path / "ann.txt")
    report = frames.report
    assert report.rows_read == 10 and report.rows_kept == 2
    assert dict(report.skipped) == {
        "inverted head box": 1,
        "non-finite value": 1,
        "gaze outside image while in frame": 1,
        "missing image file": 1,
        "path escapes dataset root": 1,
        "invalid inout (-1)": 1,
        "malformed row": 1,
        "degenerate head box": 1,
    }
    assert [e.line for e in report.examples] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert all(e.file.endswith("ann.txt") for e in report.examples)
    out_person = frames[0].people[1]
    assert out_person.inout is False and out_person.gaze == ()


def test_round_trip_write_then_read(tmp_path: Path) -> None:
    write_image(tmp_path / "train/a.jpg", (320, 240))
    write_image(tmp_path / "train/b.jpg", (200, 300), seed=1)
    frames = [
        Frame(path="train/a.jpg", width=320, height=240, people=[
            Person(head=Box(0.1, 0.1, 0.2, 0.25), gaze=((0.5, 0.5),), inout=True, eye=(0.15, 0.17),
                   body=Box(0.05, 0.1, 0.3, 0.9), person_id="0"),
            Person(head=Box(0.6, 0.1, 0.7, 0.3), gaze=(), inout=False, eye=(0.65, 0.2), person_id="1"),
        ]),
        Frame(path="train/b.jpg", width=200, height=300, people=[
            Person(head=Box(0.3, 0.3, 0.4, 0.4), gaze=((0.9, 0.1),), inout=True, eye=(0.35, 0.35), person_id="5"),
        ]),
    ]  # fmt: skip
    write_gazefollow(frames, tmp_path / "train_annotations_release.txt", split="train")
    back = read_gazefollow(tmp_path / "train_annotations_release.txt")
    assert back.report.rows_skipped == 0
    assert [f.path for f in back] == [f.path for f in frames]
    for original, read in zip(frames, back):
        assert read.size == original.size
        for p, q in zip(original.people, read.people, strict=True):
            assert q.inout == p.inout and q.person_id == p.person_id and q.eye == p.eye
            assert q.gaze == p.gaze
            assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(p.head.as_tuple(), q.head.as_tuple()))


def test_multi_annotator_test_round_trip(tmp_path: Path) -> None:
    write_image(tmp_path / "test/a.jpg", (100, 80))
    gaze = tuple((0.1 * k, 0.05 * k) for k in range(1, 8))
    frames = [Frame(path="test/a.jpg", width=100, height=80,
                    people=[Person(head=Box(0.1, 0.1, 0.3, 0.3), gaze=gaze, inout=True, eye=(0.2, 0.2))])]  # fmt: skip
    write_gazefollow(frames, tmp_path / "test.txt", split="test")
    back = read_gazefollow(tmp_path / "test.txt")
    assert back.report.format == "gazefollow:release-test"
    assert back[0].people[0].gaze == gaze


def test_not_a_gazefollow_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="3 columns"):
        read_annotations(path, format="gazefollow")
