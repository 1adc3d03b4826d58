"""benchmarks/semisup_synthetic.py resumes a stopped run: finished stages are read back, not trained again."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from gazelab.cli import main as gazelab_main
from gazelab.semisup import pipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "semisup_synthetic.py"
ROWS = ("supervised", "gcdr", "argmax", "raw")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("semisup_synthetic", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(benchmark, monkeypatch, data: Path, out: Path, steps: int = 2) -> None:
    argv = [str(SCRIPT), "--data", str(data), "--out", str(out), "--seeds", "0", "--fractions", "0.3", "--steps",
            str(steps), "--teacher-epochs", "1", "--guide", "--no-ablation", "--device", "cpu",
            "--refine-samples", "2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    benchmark.main()


def test_a_stopped_run_trains_only_what_is_missing(tmp_path: Path, monkeypatch, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "runs"
    with pytest.raises(SystemExit) as done:
        gazelab_main(["synth", "--out", str(data), "--preset", "small", "--images", "30"])
    assert done.value.code in (0, None)
    benchmark = load_benchmark()
    run(benchmark, monkeypatch, data, out)
    seed = out / "f0.3_s0"
    first = json.loads((seed / "results.json").read_text())
    assert first["device"] == "cpu" and first["refine_samples"] == 2
    assert json.loads((seed / "refined" / "meta.json").read_text())["samples"] == 2  # averaged draws per label
    for folder in [seed / row for row in ROWS] + [out / "full_s0"]:
        assert (folder / "student.pt").is_file()
        assert json.loads((folder / "scores.json").read_text()).keys() == {"auc", "avg_l2", "min_l2"}
    assert (seed / "diffusion" / "diffusion.ckpt").is_file() and (seed / "guides" / "full.pt").is_file()

    # Stopped during the GCDR student: its folder and the seed's results are not there yet.
    (seed / "results.json").unlink()
    (seed / "gcdr" / "scores.json").unlink()
    trained, teachers = [], []
    train_student, train_diffusion = pipeline.train_student, pipeline.train_diffusion

    def student(files, row, *args, **kwargs):
        trained.append(row)
        return train_student(files, row, *args, **kwargs)

    def teacher(*args, **kwargs):
        teachers.append(args)
        return train_diffusion(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_student", student)
    monkeypatch.setattr(pipeline, "train_diffusion", teacher)
    run(benchmark, monkeypatch, data, out)
    assert trained == ["gcdr"] and teachers == []
    again = json.loads((seed / "results.json").read_text())
    assert all(again[row] == first[row] for row in ("supervised", "argmax", "raw", "full"))
    assert again["gcdr"] == pytest.approx(first["gcdr"], abs=1e-6)  # same seed, same pseudo-labels

    # A stopped run does not resume with other settings: its stages would mix two recipes.
    (seed / "results.json").unlink()
    with pytest.raises(SystemExit, match="use another --out"):
        run(benchmark, monkeypatch, data, out, steps=3)
    assert trained == ["gcdr"]
    capsys.readouterr()


def test_settings_written_before_a_setting_existed_resume_with_its_default(tmp_path: Path) -> None:
    benchmark = load_benchmark()
    old = {"steps": 2, "teacher_epochs": 1, "guide": True, "scheduler": "cosine", "teacher_from": None,
           "teacher_distractors": 0.0}  # fmt: skip
    (tmp_path / "settings.json").write_text(json.dumps(old))
    benchmark.claim(tmp_path, {**old, "refine_samples": 1})  # made with one sample, as every run before the flag
    assert json.loads((tmp_path / "settings.json").read_text())["refine_samples"] == 1
    (tmp_path / "settings.json").write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="use another --out"):
        benchmark.claim(tmp_path, {**old, "refine_samples": 8})
