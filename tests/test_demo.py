"""`gazelab demo` (GCDR end to end) at a tiny size: every stage leaves its files and the report is consistent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from gazelab.cli import main
from gazelab.data.formats import read_annotations


def test_demo_runs_every_stage(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    try:
        main(["demo", "--out", str(out), "--images", "30", "--fraction", "0.3", "--steps", "3",
              "--diffusion-epochs", "1", "--p-correct", "0.9", "--missed-target-weight", "0.4", "--guide",
              "--scheduler", "cosine", "--teacher-distractors", "0.5", "--device", "cpu",
              "--workers", "1"])  # fmt: skip
    except SystemExit as done:
        assert done.code in (0, None)
    printed = capsys.readouterr().out
    result = next(line for line in printed.splitlines() if line.startswith("RESULT demo "))
    figures = dict(item.split("=") for item in result.split()[2:])
    assert set(figures) == {"auc_gcdr", "auc_supervised", "avg_l2_gcdr", "avg_l2_supervised", "minutes"}
    assert all(math.isfinite(float(v)) for v in figures.values())
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["auc_gcdr"] - float(figures["auc_gcdr"])) < 1e-4
    assert 0.0 <= summary["auc_supervised"] <= 1.0 and 0.0 <= summary["avg_l2_gcdr"] <= 2**0.5
    assert set(summary["pseudo_labels"]) == {"raw prior", "refined (GCDR)"}
    # The prior quality asked for reaches the simulated store.
    prior_meta = json.loads((out / "data" / "priors" / "meta.json").read_text())
    assert summary["config"]["p_correct"] == prior_meta["params"]["p_correct"] == 0.9
    assert summary["config"]["missed_target_weight"] == prior_meta["params"]["missed_target_weight"] == 0.4
    # Training stages loaded their data in a worker process (as on a GPU machine), two-stream batches included.
    assert summary["config"]["device"] == "cpu" and summary["config"]["workers"] == 1
    teacher = torch.load(out / "diffusion" / "diffusion.ckpt", map_location="cpu", weights_only=False)
    assert teacher["hyper_parameters"]["distractors"] == 0.5
    # The split covers the training images exactly once.
    train = read_annotations(out / "data" / "train_annotations_release.txt")
    labelled = read_annotations(out / "split" / "labelled.txt")
    unlabelled = read_annotations(out / "split" / "unlabelled.txt")
    assert labelled and unlabelled
    assert sorted([f.path for f in labelled] + [f.path for f in unlabelled]) == sorted(f.path for f in train)
    for name in ("prediction.png", "ground_truth.png", "pseudo_labels.png", "report.md", "gazelle_synth.pt",
                 "diffusion/diffusion.ckpt", "refined/meta.json", "data/priors/meta.json",
                 "guides/full.pt", "guides/fold0.pt", "guides/fold1.pt"):  # fmt: skip
        assert (out / name).stat().st_size > 0
    # Every unlabelled person got a pseudo-label (the refined store covers the unlabelled side exactly).
    from gazelab.priors.store import PriorStore, person_key

    keys = {person_key(f, i) for f in unlabelled for i in range(len(f.people))}
    assert PriorStore(out / "refined").keys() == keys
    report = (out / "report.md").read_text()
    assert "| GCDR student (30% labels + refined pseudo-labels) |" in report and "| refined (GCDR) |" in report
