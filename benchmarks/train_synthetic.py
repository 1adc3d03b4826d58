"""Train the synthetic recipe on the synthetic benchmark set and compare it with the centre-prior baseline.

Trains ``configs/synthetic/gazelle_tiny.yaml`` with ``gazelab train`` on the train split of a
``gazelab synth --preset benchmark`` folder, scoring the test split every epoch (``gazefollow`` protocol), and
prints the learning curve. The result is the final epoch's (no checkpoint selection on the test split).
Target: AUC >= 0.85 and an average L2 at most half the centre prior's, in at most 20 minutes of training on the
2-core development CPU.

    gazelab synth --out data/bench --preset benchmark
    python benchmarks/train_synthetic.py --data data/bench [--out runs/bench_synthetic] [-- --trainer.max_epochs 4]

Anything after ``--`` is passed to ``gazelab train`` as overrides. Last line:
``RESULT train_synthetic auc=.. avg_l2=.. center_avg_l2=.. minutes=..`` (minutes: wall time of training,
validation included, data generation excluded).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from gazelab.data.formats import read_annotations
from gazelab.eval.baselines import make_baseline
from gazelab.eval.metrics import get_protocol
from gazelab.eval.predictions import targets_from_frames
from gazelab.train import run_training

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "synthetic" / "gazelle_tiny.yaml"


def center_baseline(test_file: Path, root: Path) -> float:
    """Average L2 of the centre prior on the test split (what ``gazelab eval --baseline center`` reports)."""
    frames = read_annotations(test_file, root=root, check_images=True)
    targets = targets_from_frames(frames)
    prior = make_baseline("center", len(targets))
    return get_protocol("gazefollow").evaluate(targets, heatmaps=prior.heatmaps).summary["avg_l2"]


def curve(run: Path) -> list[dict[str, float]]:
    """Per epoch: training loss and validation scores, from the run's CSV log."""
    epochs: dict[int, dict[str, float]] = {}
    for version in sorted(run.glob("version_*/metrics.csv")):
        with version.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                values = {k: float(v) for k, v in row.items() if v and k not in ("epoch", "step")}
                epochs.setdefault(int(row["epoch"]), {}).update(values)
    return [epochs[e] for e in sorted(epochs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `gazelab synth --preset benchmark` folder")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_synthetic"), help="run folder (replaced)")
    parser.add_argument("overrides", nargs="*", help="extra `gazelab train` options, after --")
    args = parser.parse_args()
    meta = json.loads((args.data / "synthetic.json").read_text(encoding="utf-8"))
    if meta.get("preset") != "benchmark" or meta.get("overrides"):
        print(f"warning: {args.data} is not the unmodified benchmark preset ({meta.get('preset')!r} with overrides)")
    train, test = args.data / "train_annotations_release.txt", args.data / "test_annotations_release.txt"
    center = center_baseline(test, args.data)
    start = time.perf_counter()
    run_training([
        "--config", str(RECIPE), "--data.train", str(train), "--data.val", str(test),
        "--trainer.default_root_dir", str(args.out), *args.overrides,
    ])  # fmt: skip
    minutes = (time.perf_counter() - start) / 60
    rows = curve(args.out)
    print(f"\n{'epoch':>5} {'loss':>8} {'auc':>7} {'avg_l2':>7} {'min_l2':>7}   (centre prior avg_l2 {center:.4f})")
    for epoch, row in enumerate(rows):
        print(f"{epoch:>5} {row.get('train_loss_epoch', float('nan')):>8.4f} {row['val_auc']:>7.4f} "
              f"{row['val_avg_l2']:>7.4f} {row['val_min_l2']:>7.4f}")  # fmt: skip
    final = rows[-1]
    passed = final["val_auc"] >= 0.85 and final["val_avg_l2"] <= center / 2 and minutes <= 20
    print(f"target (AUC >= 0.85, avg L2 <= {center / 2:.4f}, <= 20 min): {'met' if passed else 'NOT met'}")
    print(
        f"RESULT train_synthetic auc={final['val_auc']:.4f} avg_l2={final['val_avg_l2']:.4f} "
        f"center_avg_l2={center:.4f} minutes={minutes:.2f}"
    )


if __name__ == "__main__":
    main()
