"""The CLI end to end on messy real-world input: every bad file ends in a counted skip or one clear line.

User errors exit with code 2 and one ``gazelab: error:`` line naming the file (and row); ``gazelab data check``
exits 1 when it rejected rows and lists them with their line numbers. Pictures in unusual modes (grayscale,
RGBA, CMYK, 16-bit, EXIF-rotated) must simply work. Commands run in-process (an exception other than a
:class:`GazelabError` would fail the test with its traceback); two subprocess runs check the real process.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gazelab.cli import main

TINY = ["--model", "gazelle_tiny_inout", "--weights", "none"]
SIZE = (80, 60)
ROW = "0,0,0,0,0.5,0.5,0.2,0.2,10,10,30,30,1,src,meta"
"""The columns after path and id of a valid 17-column GazeFollow row (head box 10,10,30,30 px)."""
NON_UTF8_NAME = b"caf\xe9.jpg"


def _huge_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset root with one good JPEG and one picture per awkward or broken kind, under img/."""
    root = tmp_path_factory.mktemp("bad_inputs")
    folder = root / "img"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    picture = Image.fromarray(pixels)
    picture.save(folder / "good.jpg")
    good = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 2)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "bomb.png").write_bytes(_huge_png(30_000, 30_000))
    picture.convert("L").save(folder / "gray.png")
    picture.convert("RGBA").save(folder / "rgba.png")
    picture.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(pixels[..., 0].astype(np.uint16) * 257).save(folder / "sixteen.png")
    exif = picture.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: shown (and annotated) as 60x80
    picture.save(folder / "exif_rotated.jpg", exif=exif)
    with open(os.fsencode(folder) + b"/" + NON_UTF8_NAME, "wb") as handle:
        handle.write(good)
    return root


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *expected: str) -> None:
    """Exit code 2 and one error line, the last one (notes, progress and Lightning's log may come before)."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert [line for line in lines if "error" in line.lower()] == lines[-1:], err
    assert lines[-1].startswith("gazelab: error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in lines[-1], lines[-1]


# ----------------------------------------------------------------------------------------- pictures


@pytest.mark.parametrize(
    ("name", "size"),
    [("gray.png", SIZE), ("rgba.png", SIZE), ("cmyk.jpg", SIZE), ("sixteen.png", SIZE), ("exif_rotated.jpg", (60, 80))],
)
def test_unusual_pictures_work_in_predict(images, tmp_path, capsys, name: str, size: tuple[int, int]) -> None:
    code, _, err = run(capsys, "predict", str(images / "img" / name), *TINY, "--heads", "10,10,30,30",
                       "--out", str(tmp_path))  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / f"{Path(name).stem}.json").read_text())
    assert (record["width"], record["height"]) == size
    assert len(record["people"]) == 1 and all(0 <= v <= 1 for v in record["people"][0]["point"])


def test_non_utf8_file_name_works_in_predict(images, tmp_path, capsys) -> None:
    path = os.fsdecode(os.fsencode(images / "img") + b"/" + NON_UTF8_NAME)
    code, out, err = run(capsys, "predict", path, *TINY, "--heads", "10,10,30,30", "--out", str(tmp_path))
    assert code == 0, err
    written = [p for p in tmp_path.iterdir() if p.suffix == ".json"]
    assert len(written) == 1 and len(json.loads(written[0].read_text())["people"]) == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.jpg", "corrupt or truncated"),
        ("corrupt.jpg", "not a readable image"),
        ("zero.jpg", "empty (0 bytes)"),
        ("bomb.png", "too large"),
    ],
)
def test_unreadable_pictures_are_one_line_errors_in_predict(images, tmp_path, capsys, name, message) -> None:
    path = str(images / "img" / name)
    code, _, err = run(capsys, "predict", path, *TINY, "--heads", "10,10,30,30", "--out", str(tmp_path))
    assert_one_line_error(code, err, path, message)


@pytest.mark.parametrize(
    ("heads", "message"),
    [("30,10,20,20", "empty or inverted box"), ("10,10,10,30", "empty or inverted box"),
     ("nan,1,2,3", "must be finite"), ("inf,1,2,3", "must be finite"), ("1,2,3", "expected 4 numbers")],
)  # fmt: skip
def test_bad_head_boxes_are_one_line_errors_in_predict(images, tmp_path, capsys, heads, message) -> None:
    code, _, err = run(capsys, "predict", str(images / "img/good.jpg"), *TINY, "--heads", heads,
                       "--out", str(tmp_path))  # fmt: skip
    assert_one_line_error(code, err, "--heads", message)


# -------------------------------------------------------------------------------------- annotation rows

OTHER = "img/good.jpg,2,0,0,0,0,0.6,0.5,0.2,0.2"
"""Path, id, body, eye and gaze columns of a second person in good.jpg."""
BAD_ROWS = {
    "box outside the image": (f"{OTHER},500,500,600,600,1,src,meta", "degenerate head box"),
    "inverted box": (f"{OTHER},30,10,20,20,1,src,meta", "inverted head box"),
    "empty box": (f"{OTHER},10,10,10,30,1,src,meta", "degenerate head box"),
    "NaN": ("img/good.jpg,2,0,0,0,0,nan,0.5,0.2,0.2,10,10,30,30,1,src,meta", "non-finite value (eye_x=nan)"),
    "inf": ("img/good.jpg,2,0,0,0,0,0.6,0.5,inf,0.2,10,10,30,30,1,src,meta", "non-finite value (gaze_x=inf)"),
    "text in a number": ("img/good.jpg,2,0,0,0,0,0.6,0.5,0.2,abc,10,10,30,30,1,src,meta", "malformed row"),
    "short row": ("img/good.jpg,2,0,0,0,0,0.6,0.5", "malformed row (8 columns"),
    "unknown column": (f"img/good.jpg,2,{ROW},extra", "malformed row (18 columns"),
    "bad inout": (f"{OTHER},10,10,30,30,7,src,meta", "malformed row (inout="),
    "parent path": (f"../../etc/passwd,2,{ROW}", "path escapes dataset root"),
    "absolute path": (f"/etc/passwd,2,{ROW}", "path escapes dataset root"),
    "missing image": (f"img/nope.jpg,2,{ROW}", "missing image file"),
    "corrupt image": (f"img/corrupt.jpg,2,{ROW}", "unreadable image"),
    "zero-byte image": (f"img/zero.jpg,2,{ROW}", "unreadable image"),
    "decompression bomb": (f"img/bomb.png,2,{ROW}", "too large"),
}


def _annotations(root: Path, name: str, *lines: str | bytes) -> Path:
    path = root / name
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_data_check_rejects_each_bad_row_by_line(images, capsys, case: str) -> None:
    row, reason = BAD_ROWS[case]
    ann = _annotations(images, f"{case.replace(' ', '_')}.txt", f"img/good.jpg,1,{ROW}", row)
    code, out, err = run(capsys, "data", "check", str(ann), "--format", "gazefollow")
    assert code == 1, out + err
    assert "1 rows rejected" in out
    listed = [line.strip() for line in out.splitlines() if line.strip().startswith(f"{ann}:")]
    assert len(listed) == 1 and listed[0].startswith(f"{ann}:2: ") and reason in listed[0], out


def test_pictures_in_unusual_modes_are_kept_with_their_displayed_size(images, capsys) -> None:
    names = ("gray.png", "rgba.png", "cmyk.jpg", "sixteen.png", "exif_rotated.jpg", "truncated.jpg")
    ann = _annotations(images, "modes.txt", *(f"img/{name},{i},{ROW}" for i, name in enumerate(names)))
    code, out, err = run(capsys, "data", "check", str(ann))
    assert code == 0, out + err
    assert "all rows usable" in out
    from gazelab.data.formats import read_annotations

    sizes = {frame.path: frame.size for frame in read_annotations(ann)}
    assert sizes["img/exif_rotated.jpg"] == (60, 80) and sizes["img/cmyk.jpg"] == SIZE


def test_non_utf8_annotation_bytes_are_read_and_the_row_is_accounted_for(images, capsys) -> None:
    ann = _annotations(images, "latin1.txt", f"img/good.jpg,1,{ROW}", b"img/" + NON_UTF8_NAME + b"," + ROW.encode())
    code, out, err = run(capsys, "data", "check", str(ann))
    # Latin-1 bytes are read as Latin-1 (the file is not UTF-8); the image is then looked up under its UTF-8
    # name: found or not, the row is kept or listed, never lost.
    assert code in (0, 1), err
    assert "rows read" in out and "│ 2" in out.split("rows read")[1].splitlines()[0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"", "annotation file is empty"),
        ("binary.txt", bytes(range(256)) * 4, "not a GazeFollow layout"),
        ("one_huge_field.txt", b'"' + b"x" * 200_000, "not readable as CSV"),
        ("three.txt", b"a,b,c\n1,2,3\n", "rows have 3 columns"),
        ("bad.json", b'[{"path": ', "not valid JSON"),
        ("dict.json", b'{"path": "a.jpg"}', "expected a JSON list"),
        ("hoi.csv", b"file_name,pair_id,object\nimg/good.jpg,1,cup\n", "missing columns"),
    ],
)
def test_unusable_annotation_files_are_one_line_errors(images, capsys, name, content, message) -> None:
    path = images / name
    path.write_bytes(content)
    for command in (["data", "check", str(path)], ["eval", "-a", str(path), "--baseline", "center", "--protocol",
                                                    "gazefollow-64", "--out", str(images / "out")]):  # fmt: skip
        code, _, err = run(capsys, *command)
        assert_one_line_error(code, err, str(path), message)


def test_gazelle_json_bad_entries_are_counted(images, capsys) -> None:
    head = {"bbox": [10, 10, 30, 30], "gazex_norm": [0.5], "gazey_norm": [0.5], "inout": 1}
    entries = [
        {"path": "img/good.jpg", "width": 80, "height": 60, "heads": [head]},
        {"path": "../../etc/passwd", "width": 80, "height": 60, "heads": [head]},
        {"path": "img/good.jpg", "width": float("nan"), "height": 60, "heads": [head]},
        {"path": "img/gray.png", "width": 80, "height": 60, "heads": [{**head, "bbox": [30, 10, 20, 20]},
                                                                      {**head, "gazex_norm": [float("inf")]}]},
        "not an entry",
    ]  # fmt: skip
    path = images / "gazelle.json"
    path.write_text(json.dumps(entries))  # NaN/Infinity literals: what Python's json writes and reads
    code, out, err = run(capsys, "data", "check", str(path))
    assert code == 1, err
    for reason in ("path escapes dataset root", "non-finite value", "inverted head box", "malformed row"):
        assert reason in out
    assert "5 rows rejected" in out


def test_gazehoi_labels_are_never_evaluated_as_code(images, capsys, tmp_path) -> None:
    marker = tmp_path / "ran"
    header = "file_name,pair_id,object,aux_object,o_xmin,o_ymin,o_xmax,o_ymax,oc_x,oc_y,h_xmin,h_ymin,h_xmax,h_ymax"
    code_text = f"\"__import__('os').system('touch {marker}')\""
    path = _annotations(images, "hoi_bad.csv", header, "img/good.jpg,1,cup,\"['mug']\",40,20,60,40,50,30,10,10,30,30",
                        f"img/good.jpg,2,cup,{code_text},40,20,60,40,50,30,10,10,30,30")  # fmt: skip
    code, out, _ = run(capsys, "data", "check", str(path))
    assert code == 1 and f"{path}:3: malformed row" in out
    assert not marker.exists()


def test_eval_counts_skipped_rows_and_scores_the_rest(images, tmp_path, capsys) -> None:
    rows = [row for row, _ in BAD_ROWS.values()]
    ann = _annotations(images, "mixed.txt", f"img/good.jpg,1,{ROW}", *rows, f"img/gray.png,1,{ROW}")
    code, out, err = run(capsys, "eval", "-a", str(ann), "--baseline", "center", "--out", str(tmp_path))
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"]["persons"] == 2
    assert f"{len(rows) + 2} rows read, 2 kept, {len(rows)} skipped" in summary["loaded"]


def test_eval_with_a_model_names_the_truncated_picture(images, tmp_path, capsys) -> None:
    ann = _annotations(images, "trunc.txt", f"img/good.jpg,1,{ROW}", f"img/truncated.jpg,1,{ROW}")
    code, _, err = run(capsys, "eval", "-a", str(ann), *TINY, "--out", str(tmp_path))
    assert_one_line_error(code, err, str(images / "img/truncated.jpg"), "corrupt or truncated")
    assert not (tmp_path / "predictions.csv").exists()


def test_train_on_a_bad_annotation_file_is_one_line(images, tmp_path, capsys) -> None:
    bad = _annotations(images, "train_bad.txt", f"../outside.jpg,1,{ROW}")
    recipe = {
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "default_root_dir": str(tmp_path),
                    "enable_progress_bar": False, "enable_model_summary": False, "logger": False},
        "model": {"name": "gazelle_tiny"},
        "data": {"train": str(bad), "val": str(bad), "batch_size": 2, "num_workers": 0},
    }  # fmt: skip
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    code, _, err = run(capsys, "train", "--config", str(config))
    assert_one_line_error(code, err, str(bad), "no usable person", "path escapes dataset root: 1")


# -------------------------------------------------------------------------------------------- video


@pytest.fixture(scope="module")
def clip(images: Path) -> Path:
    from gazelab.video.writer import VideoWriter

    video = images / "clip.mp4"
    with VideoWriter(video, fps=10, size=(64, 48)) as writer:
        for i in range(30):
            writer.write(np.full((48, 64, 3), i * 8, dtype=np.uint8))
    tracks = images / "tracks.csv"
    tracks.write_text("frame,track_id,x1,y1,x2,y2\n" + "".join(f"{i},a,5,5,20,20\n" for i in range(30)))
    return video


@pytest.mark.parametrize("kind", ["zero-byte", "garbage", "truncated"])
def test_broken_videos_are_one_line_errors_and_leave_no_output(clip, tmp_path, capsys, kind: str) -> None:
    video = tmp_path / f"{kind}.mp4"
    data = clip.read_bytes()
    video.write_bytes({"zero-byte": b"", "garbage": bytes(range(256)) * 16, "truncated": data[: len(data) // 3]}[kind])
    out = tmp_path / "out" / "annotated.mp4"
    code, _, err = run(capsys, "video", str(video), "--out", str(out), "--tracks", str(clip.parent / "tracks.csv"),
                       *TINY)  # fmt: skip
    assert_one_line_error(code, err, str(video))
    assert not out.parent.exists() or not [p.name for p in out.parent.iterdir()]


# ------------------------------------------------------------------------------------- real process


def test_real_process_prints_no_traceback_unless_debug(images) -> None:
    ann = _annotations(images, "empty_for_debug.txt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plain = subprocess.run([sys.executable, "-m", "gazelab", "data", "check", str(ann)], capture_output=True,
                           text=True, timeout=120, env=env)  # fmt: skip
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == f"gazelab: error: {ann}: annotation file is empty"
    debug = subprocess.run([sys.executable, "-m", "gazelab", "--debug", "data", "check", str(ann)],
                           capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "DataError" in debug.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"path,person,x,y\nimg/good.jpg,0,nan,0.5\n", ":2: x is not finite"),
        (b"path,person,x,y\nimg/good.jpg,0,0.5\nimg/good.jpg,1,0.5,0.5\n", ":2: y=None is not a number"),
        (b"path,person,x,y\nimg/nope.jpg,0,0.5,0.5\n", "is not in the annotations"),
        (b"path,person,x,y\n" + b"img/caf\xe9.jpg,0,0.5,0.5\n", "not a readable UTF-8 CSV"),
        (b"path,x\n", "missing columns ['y']"),
    ],
)
def test_bad_prediction_files_are_one_line_errors(images, tmp_path, capsys, content: bytes, message: str) -> None:
    ann = _annotations(images, "one.txt", f"img/good.jpg,1,{ROW}")
    predictions = tmp_path / "predictions.csv"
    predictions.write_bytes(content)
    code, _, err = run(capsys, "eval", "-a", str(ann), "--predictions", str(predictions), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, str(predictions), message)
