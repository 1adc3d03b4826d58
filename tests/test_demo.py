"""`gazelab demo` end to end at a tiny size: every stage leaves its files and the report is consistent."""

from __future__ import annotations

import json
import math
from pathlib import Path

from gazelab.cli import main
from gazelab.data.formats import read_annotations


def test_demo_runs_every_stage(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    try:
        main(["demo", "--out", str(out), "--images", "30", "--epochs", "1"])
    except SystemExit as done:
        assert done.code in (0, None)
    printed = capsys.readouterr().out
    result = next(line for line in printed.splitlines() if line.startswith("RESULT demo "))
    figures = dict(item.split("=") for item in result.split()[2:])
    assert set(figures) == {"auc_model", "avg_l2_model", "auc_center", "avg_l2_center", "minutes"}
    assert all(math.isfinite(float(v)) for v in figures.values())
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["auc_model"] - float(figures["auc_model"])) < 1e-4
    assert 0.0 <= summary["auc_model"] <= 1.0 and 0.0 <= summary["avg_l2_center"] <= 2**0.5
    # The split covers the training images exactly once.
    train = read_annotations(out / "data" / "train_annotations_release.txt")
    labelled = read_annotations(out / "split" / "labelled.txt")
    unlabelled = read_annotations(out / "split" / "unlabelled.txt")
    assert labelled and unlabelled
    assert sorted([f.path for f in labelled] + [f.path for f in unlabelled]) == sorted(f.path for f in train)
    for name in ("prediction.png", "ground_truth.png", "report.md", "gazelle_synth.pt"):
        assert (out / name).stat().st_size > 0
    assert "| gazelle_synth (trained) |" in (out / "report.md").read_text()
