"""``gazelab predict`` and ``gazelab models`` on the real photos, with the tiny random-weight test model.

Random weights say nothing about gaze, so these tests check what the command promises: one prediction per
head, values in range, files written and consistent with each other, and one-line errors.
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gazelab.cli import main
from gazelab.models import checkpoints

TINY = ["--model", "gazelle_tiny_inout", "--weights", "none"]
FACES_FOUND = {"image1": 2, "image2": 4, "image3": 1, "image4": 3}


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def photos(shared_data: Path) -> list[str]:
    return [str(shared_data / "images" / f"{name}.jpg") for name in FACES_FOUND]


def test_predict_with_detection_writes_one_prediction_per_head(shared_data, tmp_path, capsys) -> None:
    code, out, err = run(capsys, "predict", *photos(shared_data), *TINY, "--detect", "--save-heatmaps",
                         "--out", str(tmp_path))  # fmt: skip
    assert code == 0, err
    assert f"wrote 4 image(s) to {tmp_path}" in out
    assert "random weights" in err
    for name, count in FACES_FOUND.items():
        record = json.loads((tmp_path / f"{name}.json").read_text())
        picture = Image.open(shared_data / "images" / f"{name}.jpg")
        assert (record["width"], record["height"]) == picture.size
        assert Image.open(tmp_path / f"{name}.png").size == picture.size
        people = record["people"]
        assert [p["index"] for p in people] == list(range(count))
        saved = np.load(tmp_path / f"{name}.npz")
        assert saved["heatmaps"].shape == (count, 64, 64) and saved["heatmaps"].dtype == np.float32
        assert 0.0 <= saved["heatmaps"].min() and saved["heatmaps"].max() <= 1.0
        for i, person in enumerate(people):
            assert person["face_score"] >= 0.5
            assert all(0.0 <= v <= 1.0 for v in person["head"])
            assert person["head_px"] == pytest.approx(
                [person["head"][0] * picture.width, person["head"][1] * picture.height,
                 person["head"][2] * picture.width, person["head"][3] * picture.height], abs=0.1)  # fmt: skip
            assert 0.0 <= person["inout"] <= 1.0
            row, col = divmod(int(np.argmax(saved["heatmaps"][i])), 64)
            assert person["point"] == [col / 64, row / 64], "the point is the heatmap's argmax"
            np.testing.assert_allclose(saved["heads"][i], person["head"], atol=1e-6)


def test_predict_with_given_boxes(shared_data, tmp_path, capsys) -> None:
    image = str(shared_data / "images" / "image1.jpg")  # 800 x 450
    code, _, err = run(capsys, "predict", image, "--model", "gazelle_tiny", "--weights", "none",
                       "--heads", "386,80,446,140;168,99,221,152", "--out", str(tmp_path / "px"))  # fmt: skip
    assert code == 0, err
    people = json.loads((tmp_path / "px" / "image1.json").read_text())["people"]
    expected = [[386 / 800, 80 / 450, 446 / 800, 140 / 450], [168 / 800, 99 / 450, 221 / 800, 152 / 450]]
    assert [p["head"] for p in people] == [pytest.approx(box, abs=1e-6) for box in expected]
    assert all(p["inout"] is None and p["face_score"] is None for p in people), "gazelle_tiny has no in/out head"
    assert all(0.0 <= v < 1.0 for p in people for v in p["point"])

    heads_file = tmp_path / "heads.json"
    heads_file.write_text(json.dumps({"image3.jpg": [[0.3, 0.2, 0.5, 0.35]], "image4.jpg": [[0.2, 0.1, 0.3, 0.3]] * 3}))
    images = [str(shared_data / "images" / name) for name in ("image3.jpg", "image4.jpg")]
    code, _, err = run(capsys, "predict", *images, *TINY, "--heads-file", str(heads_file), "--out", str(tmp_path))
    assert code == 0, err
    assert len(json.loads((tmp_path / "image3.json").read_text())["people"]) == 1
    assert len(json.loads((tmp_path / "image4.json").read_text())["people"]) == 3


def test_heatmap_choice_changes_only_the_overlay(shared_data, tmp_path, capsys) -> None:
    image = shared_data / "images" / "image4.jpg"
    for choice in ("none", "all"):
        code, _, err = run(capsys, "predict", str(image), *TINY, "--heads", "0.4,0.2,0.5,0.4",
                           "--heatmap", choice, "--out", str(tmp_path / choice))  # fmt: skip
        assert code == 0, err
    original = np.asarray(Image.open(image).convert("RGB"), dtype=np.int16)
    corner = (slice(350, 400), slice(0, 50))  # far from the head box and from the gaze line's start
    plain = np.asarray(Image.open(tmp_path / "none" / "image4.png"), dtype=np.int16)
    tinted = np.asarray(Image.open(tmp_path / "all" / "image4.png"), dtype=np.int16)
    assert np.abs(plain[corner] - original[corner]).max() == 0
    assert np.abs(tinted[corner] - original[corner]).mean() > 5
    assert (tmp_path / "none" / "image4.json").read_text() == (tmp_path / "all" / "image4.json").read_text()


def test_published_model_offline_is_one_line_naming_url_and_path(tmp_path, monkeypatch, capsys) -> None:
    def offline(url: str):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("GAZELAB_HOME", str(tmp_path))
    monkeypatch.setattr(checkpoints, "_open_url", offline)
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48)).save(image)
    code, _, err = run(capsys, "predict", str(image), "--model", "gazelle_dinov2_vitb14", "--out", str(tmp_path / "o"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gazelab: error: could not download")
    assert "https://github.com/fkryan/gazelle/releases/download/v1.0.0/gazelle_dinov2_vitb14.pt" in lines[0]
    assert str(tmp_path / "weights" / "gazelle_dinov2_vitb14.pt") in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gazelle_tiny"], "gazelle_tiny has no published weights: pass --weights FILE"),
        ([*TINY, "--heads", "0.1,0.1,0.2,0.2", "--detect"], "at most one of --heads, --heads-file, --detect"),
        ([*TINY, "--heatmap", "first"], "--heatmap must be all, none or a person number"),
        ([*TINY, "--heads", "0.1,0.1,0.2"], "--heads box 1 '0.1,0.1,0.2': expected 4 numbers"),
        ([*TINY, "--model", "gazelle_huge"], "unknown model 'gazelle_huge'"),
    ],
)
def test_user_errors_end_in_one_line(shared_data, tmp_path, capsys, args: list[str], message: str) -> None:
    image = str(shared_data / "images" / "image1.jpg")
    code, _, err = run(capsys, "predict", image, *args, "--out", str(tmp_path))
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("gazelab: error: ")
    assert message in err


def test_missing_image_is_reported_before_any_work(tmp_path, capsys) -> None:
    code, _, err = run(capsys, "predict", str(tmp_path / "nope.jpg"), *TINY)
    assert code == 2 and f"{tmp_path / 'nope.jpg'}: image not found" in err


def test_models_lists_the_zoo_and_what_is_cached(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GAZELAB_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "dinov2_vitb14_pretrain.pth").write_bytes(b"")
    code, out, _ = run(capsys, "models")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("gazelle_")}
    assert set(rows) == {
        "gazelle_dinov2_vitb14", "gazelle_dinov2_vitl14", "gazelle_dinov2_vitb14_inout", "gazelle_dinov2_vitl14_inout",
        "gazelle_dinov2_vits14", "gazelle_dinov2_vits14_inout", "gazelle_tiny", "gazelle_tiny_inout", "gazelle_synth",
    }  # fmt: skip
    vitb, vitb_inout = rows["gazelle_dinov2_vitb14"], rows["gazelle_dinov2_vitb14_inout"]
    assert "86.58M + 2.83M" in vitb and " no " in vitb and "gazelle_dinov2_vitb14.pt" in vitb
    assert "86.58M + 2.86M" in vitb_inout and " yes " in vitb_inout
    assert "dinov2_vitb14_pretrain.pth *" in out, "the cached backbone file is marked"
    assert "dinov2_vitl14_pretrain.pth *" not in out
    assert f"weight cache: {tmp_path / 'weights'}" in out
    code, out, _ = run(capsys, "models", "--pretrained")
    assert "gazelle_tiny" not in out and "gazelle_dinov2_vitl14_inout" in out


def test_bf16_precision_is_a_predict_option(shared_data, tmp_path, capsys, bf16_kernels) -> None:
    """``--precision bf16`` runs the encoder under bf16 autocast: same people, heatmaps close to fp32's; an
    unknown precision is a one-line error. bf16 is allowed on any CPU here (torch emulates what the hardware
    lacks, with the same numbers: the ``bf16_kernels`` fixture); test_predictor_fast.py checks the refusal."""
    image = str(shared_data / "images" / "image1.jpg")
    boxes = ["--heads", "386,80,446,140;168,99,221,152", "--save-heatmaps"]
    maps = {}
    for precision in ("fp32", "bf16"):
        code, _, err = run(capsys, "predict", image, *TINY, *boxes, "--precision", precision,
                           "--out", str(tmp_path / precision))  # fmt: skip
        assert code == 0, err
        maps[precision] = np.load(tmp_path / precision / "image1.npz")["heatmaps"]
    assert maps["bf16"].shape == maps["fp32"].shape == (2, 64, 64)
    assert 0 < np.abs(maps["bf16"] - maps["fp32"]).max() < 0.05
    code, _, err = run(capsys, "predict", image, *TINY, *boxes, "--precision", "fp16", "--out", str(tmp_path / "x"))
    assert code == 2 and "unknown precision 'fp16'" in err and len(err.strip().splitlines()) == 1
