"""Seeded labelled/unlabelled splits: per image (per clip for video), exact fraction, reproducible files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import write_image

from gazelab.cli import main
from gazelab.data.formats import read_annotations, write_vat
from gazelab.data.formats.gazefollow import read_gazefollow, write_gazefollow
from gazelab.data.splits import split_frames
from gazelab.errors import GazelabError
from gazelab.types import Box, Frame, Person


def _images(count: int) -> list[Frame]:
    frames = []
    for i in range(count):
        people = [Person(Box(0.1, 0.1, 0.2, 0.2), ((0.5, 0.6),), True, person_id=f"{i}-{k}") for k in range(1 + i % 2)]
        frames.append(Frame(f"train/{i:04d}.jpg", 100, 80, people))
    return frames


def test_split_is_per_image_exact_and_keeps_order() -> None:
    frames = _images(50)
    labelled, unlabelled = split_frames(frames, 0.1, seed=0)
    assert len(labelled) == 5 and len(unlabelled) == 45
    assert {f.path for f in labelled}.isdisjoint(f.path for f in unlabelled)
    assert [f.path for f in frames if f in labelled] == [f.path for f in labelled]
    assert [f.path for f in frames if f in unlabelled] == [f.path for f in unlabelled]


def test_split_depends_on_seed_and_images_only() -> None:
    frames = _images(40)
    first = {f.path for f in split_frames(frames, 0.25, seed=0)[0]}
    assert first == {f.path for f in split_frames(frames[::-1], 0.25, seed=0)[0]}
    assert first != {f.path for f in split_frames(frames, 0.25, seed=1)[0]}
    assert split_frames(frames, 0.0)[0] == [] and split_frames(frames, 1.0)[1] == []
    with pytest.raises(GazelabError, match="--fraction must be between 0 and 1"):
        split_frames(frames, 1.5)


def test_video_frames_split_by_clip() -> None:
    frames = [
        Frame(f"images/s/c{c}/{i}.jpg", 10, 10, [], frame_index=i, clip=f"s/c{c}") for c in range(10) for i in range(4)
    ]
    labelled, unlabelled = split_frames(frames, 0.3, seed=5)
    assert len({f.clip for f in labelled}) == 3 and len(labelled) == 12
    assert {f.clip for f in labelled}.isdisjoint(f.clip for f in unlabelled)


def _gazelab(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in-process (a fresh interpreter per call costs seconds of imports)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def test_cli_writes_two_reproducible_gazefollow_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_gazefollow(_images(20), tmp_path / "train_annotations.txt", split="train")
    for name in ("a", "b"):
        code, out, err = _gazelab(capsys, "split", str(source), "--format", "gazefollow", "--fraction", "0.2",
                                  "--seed", "3", "--out", str(tmp_path / name))  # fmt: skip
        assert code == 0, err
    for part in ("labelled.txt", "unlabelled.txt"):
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes()
    labelled = read_gazefollow(tmp_path / "b" / "labelled.txt", check_images=False)
    unlabelled = read_gazefollow(tmp_path / "b" / "unlabelled.txt", check_images=False)
    assert labelled.report.format == "gazefollow:release-train"
    assert f"labelled: 4 images, {labelled.num_people} people -> {tmp_path / 'b' / 'labelled.txt'}" in out
    assert re.search(rf"^unlabelled: 16 images, {unlabelled.num_people} people", out, re.MULTILINE)
    assert sorted(f.path for f in [*labelled, *unlabelled]) == sorted(f.path for f in _images(20))
    rows = len((tmp_path / "b" / "labelled.txt").read_text().splitlines())
    rows += len((tmp_path / "b" / "unlabelled.txt").read_text().splitlines())
    assert rows == len(source.read_text().splitlines())


def test_cli_keeps_the_test_layout_and_rejects_unwritable_formats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_gazefollow(_images(6), tmp_path / "test.txt", split="test")
    code, _, err = _gazelab(capsys, "split", str(source), "--fraction", "0.5", "--out", str(tmp_path / "out"))
    assert code == 0, err
    labelled = read_gazefollow(tmp_path / "out" / "labelled.txt", check_images=False)
    assert labelled.report.format == "gazefollow:release-test" and len(labelled) == 3
    (tmp_path / "g.json").write_text("[]")
    code, _, err = _gazelab(capsys, "split", str(tmp_path / "g.json"), "--fraction", "0.5", "--out", str(tmp_path))
    assert code == 2 and "cannot write format 'gazelle-json'" in err


def test_cli_splits_vat_trees_by_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = []
    for clip in range(4):
        for index in range(2):
            rel = f"images/show{clip % 2}/clip{clip}/{index:05d}.jpg"
            write_image(tmp_path / "vat" / rel, (16, 12), seed=clip)
            people = [Person(Box(0.1, 0.1, 0.3, 0.4), ((0.5, 0.5),), True, track_id="p1")]
            frames.append(Frame(rel, 16, 12, people, frame_index=index, clip=f"show{clip % 2}/clip{clip}"))
    write_vat(frames, tmp_path / "vat", split="train")
    out_dir = tmp_path / "out"
    code, out, err = _gazelab(capsys, "split", str(tmp_path / "vat"), "--fraction", "0.5", "--out", str(out_dir))
    assert code == 0, err
    assert "labelled: 2 clips, 4 frames, 4 people" in out
    parts = [
        read_annotations(out_dir / name, "vat", split="train", check_images=False)
        for name in ("labelled", "unlabelled")
    ]
    clips = [{f.clip for f in part} for part in parts]
    assert len(clips[0]) == len(clips[1]) == 2 and clips[0].isdisjoint(clips[1])
