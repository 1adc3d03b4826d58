"""``kill -9`` in the middle of a long job, then the same command again: the result of an uninterrupted run.

Each test runs the job once uninterrupted (in-process), once in a real subprocess killed with SIGKILL while it
works, checks that the killed run left nothing complete-looking under the final names, then runs the command
again (in-process) and compares with the uninterrupted result. Prior generation has the same test in
``test_priors_store.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_train_support import make_synthetic

from gazelab.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--model", "gazelle_tiny_inout", "--weights", "none"]
FRAMES = 20
EPOCHS = 3
BATCHES = 2
"""Training batches per epoch (an int: a float 1.0 would mean all of them)."""


def gazelab(*args: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code in (0, None)


def kill_when(
    args: list[str], ready: Callable[[subprocess.Popen[str]], bool], sig: int = signal.SIGKILL, timeout: float = 120
) -> int:
    """Start ``gazelab ARGS`` in a subprocess, send ``sig`` as soon as ``ready(process)``; it must not have finished
    by then. Returns the exit status."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same arithmetic as this process
    # A shell starts background jobs with SIGINT ignored, and children inherit that: restore the default, or a
    # suite launched with `&` would see Ctrl-C do nothing.
    process = subprocess.Popen([sys.executable, "-m", "gazelab", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while not ready(process):
            assert process.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "the job never reached the point to kill it at"
            time.sleep(0.005)
        process.send_signal(sig)
        process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
    assert process.returncode != 0
    return process.returncode


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_synthetic(tmp_path_factory.mktemp("kill_resume") / "synth", images=12)


# --------------------------------------------------------------------------------------------- eval


def _printed_a_line(process: subprocess.Popen[str]) -> bool:
    return bool(process.stdout.readline())  # type: ignore[union-attr]


def test_killed_evaluation_reruns_to_the_same_files(synthetic, tmp_path) -> None:
    _, test = synthetic
    args = ["eval", "-a", str(test), *TINY, "--batch-size", "1", "--save-heatmaps"]
    gazelab(*args, "--out", str(tmp_path / "full"))
    out = tmp_path / "rerun"
    # Killed while the model runs: the annotations are read (first line printed), nothing is written yet.
    assert kill_when([*args, "--out", str(out)], _printed_a_line) == -signal.SIGKILL
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]
    gazelab(*args, "--out", str(out))
    for name in ("predictions.csv", "summary.json", "metrics.md"):
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    with np.load(out / "heatmaps.npz") as rerun, np.load(tmp_path / "full" / "heatmaps.npz") as full:
        assert rerun.files == full.files and all(np.array_equal(rerun[k], full[k]) for k in full.files)


# -------------------------------------------------------------------------------------------- video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from gazelab.video.writer import VideoWriter

    folder = tmp_path_factory.mktemp("kill_video")
    rng = np.random.default_rng(0)
    with VideoWriter(folder / "clip.mp4", fps=10, size=(64, 48)) as writer:
        for _ in range(FRAMES):
            writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    tracks = folder / "tracks.csv"
    rows = "".join(f"{i},a,5,5,30,30\n{i},b,34,10,60,40\n" for i in range(FRAMES))
    tracks.write_text("frame,track_id,x1,y1,x2,y2\n" + rows)
    return folder / "clip.mp4", tracks


def test_interrupted_video_leaves_no_partial_output_and_reruns_to_the_same_rows(clip, tmp_path) -> None:
    video, tracks = clip
    args = ["video", str(video), "--tracks", str(tracks), *TINY, "--device", "cpu"]
    full = tmp_path / "full" / "gaze.mp4"
    gazelab(*args, "--out", str(full))
    out = tmp_path / "rerun" / "gaze.mp4"
    partial = out.with_name(f".{out.name}.part")
    finals = (out, out.with_suffix(".csv"), out.with_suffix(".json"))
    # Ctrl-C while it works on the frames: the unfinished files are deleted, nothing is left at all.
    assert kill_when([*args, "--out", str(out)], lambda _: partial.is_file(), signal.SIGINT) == 130
    assert not list(out.parent.iterdir())
    # kill -9: the unfinished files stay under their temporary names, never under the final ones.
    assert kill_when([*args, "--out", str(out)], lambda _: partial.is_file()) == -signal.SIGKILL
    assert not any(p.exists() for p in finals)
    gazelab(*args, "--out", str(out))
    for suffix in (".csv", ".json"):
        assert out.with_suffix(suffix).read_bytes() == full.with_suffix(suffix).read_bytes(), suffix
    assert json.loads(out.with_suffix(".json").read_text())["frames"][-1]["frame"] == FRAMES - 1
    from gazelab.video.reader import VideoSource

    assert sum(1 for _ in VideoSource(out)) == FRAMES


# ----------------------------------------------------------------------------------------- training


def _recipe(path: Path, root: Path, train: Path, test: Path) -> Path:
    recipe = {
        "seed_everything": 0,
        "trainer": {"max_epochs": EPOCHS, "accelerator": "cpu", "devices": 1, "default_root_dir": str(root),
                    "limit_train_batches": BATCHES, "limit_val_batches": 0, "enable_progress_bar": False,
                    "enable_model_summary": False, "log_every_n_steps": 1},
        "model": {"name": "gazelle_tiny", "lr": 0.003, "scheduler": "cosine", "min_lr": 1e-5},
        "data": {"train": str(train), "val": str(test), "batch_size": 2, "num_workers": 0},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_training_killed_after_a_checkpoint_resumes_to_the_same_weights(synthetic, tmp_path) -> None:
    train, test = synthetic
    full_root, killed_root = tmp_path / "full", tmp_path / "killed"
    gazelab("train", "--config", str(_recipe(tmp_path / "full.yaml", full_root, train, test)))
    recipe = _recipe(tmp_path / "killed.yaml", killed_root, train, test)
    last = killed_root / "checkpoints" / "last.ckpt"
    assert kill_when(["train", "--config", str(recipe)], lambda _: last.is_file()) == -signal.SIGKILL
    # Whatever the kill interrupted, the checkpoint on disk is a complete one (atomic writes).
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert 0 < saved["global_step"] < EPOCHS * BATCHES
    gazelab("train", "--config", str(recipe), "--ckpt_path", "last")
    full = torch.load(full_root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    resumed = torch.load(last, map_location="cpu", weights_only=True)
    assert full["global_step"] == resumed["global_step"] == EPOCHS * BATCHES
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
