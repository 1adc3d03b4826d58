"""Train tiny SemGaze on synthetic GazeHOI data and score where (AUC, average L2) and what (Acc@1) people look at.

Trains ``configs/synthetic/semgaze_tiny.yaml`` with ``gazelab train`` on ``train-annotations.csv`` of a
``gazelab synth --preset benchmark`` folder (the generator's object classes are the vocabulary), then scores the
final weights (no checkpoint selection on the test split) on the first ``--test-images`` test images with the
``gazefollow`` protocol and top-1 label accuracy, next to two priors: the centre of the image (L2) and the most
frequent training class (Acc@1). It also prints the validation curve of the run (first 150 test images, per
epoch): the angular loss of the gaze vector, AUC, average L2 and Acc@1, so one sees whether where and what move.

    gazelab synth --out data/bench --preset benchmark
    python benchmarks/semgaze_synthetic.py --data data/bench [--out runs/bench_semgaze] [-- --trainer.max_epochs 4]

Anything after ``--`` is passed to ``gazelab train``. Last line:
``RESULT semgaze_synthetic auc=.. avg_l2=.. acc1=.. minutes=..`` (minutes: training wall time, validation
included, data generation and the final scoring excluded).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from gazelab.data.dataset import ImageDataset, SampleConfig, collate_people
from gazelab.data.formats.gazehoi import read_gazehoi, read_vocab
from gazelab.errors import GazelabError
from gazelab.eval.baselines import make_baseline
from gazelab.eval.metrics import get_protocol
from gazelab.eval.predictions import targets_from_frames
from gazelab.eval.semantic import top_k_accuracy
from gazelab.models import create_model
from gazelab.models.vocab import build_vocabulary
from gazelab.train import run_training
from gazelab.train.data import validation_people

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "synthetic" / "semgaze_tiny.yaml"


def curve(run: Path) -> list[tuple[int, dict[str, float]]]:
    """Per epoch of the run's newest log: training losses and validation scores."""
    versions = sorted(run.glob("version_*/metrics.csv"), key=lambda path: int(path.parent.name.split("_")[1]))
    epochs: dict[int, dict[str, float]] = {}
    if versions:
        with versions[-1].open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                values = {k: float(v) for k, v in row.items() if v and k not in ("epoch", "step")}
                epochs.setdefault(int(row["epoch"]), {}).update(values)
    return sorted(epochs.items())


@torch.no_grad()
def score(checkpoint: Path, data: Path, test_images: int) -> dict[str, float]:
    """AUC / average L2 / Acc@1 of the checkpoint's model on the first test images, and the priors' values."""
    model = create_model("semgaze_tiny", pretrained=checkpoint).eval()
    vocab = build_vocabulary(read_vocab(data / "vocab2id.json"), "random")
    dataset = ImageDataset(list(read_gazehoi(data / "test-annotations.csv"))[:test_images], SampleConfig())
    _, frames = validation_people(dataset)
    heatmaps, embeddings, labels = [], [], []
    for batch in DataLoader(dataset, batch_size=25, collate_fn=collate_people):
        people = model.prepare_people(batch["heads"].double(), batch["image_index"], batch["images"])
        out = model.decode(model.encode(model.prepare_images(batch["images"])), people)
        heatmaps.append(out.heatmap)
        embeddings.append(out.label_embedding)
        labels += batch["labels"]
    targets = targets_from_frames(frames)
    protocol = get_protocol("gazefollow")
    report = protocol.evaluate(targets, heatmaps=torch.cat(heatmaps)).summary
    centre = protocol.evaluate(targets, heatmaps=make_baseline("center", len(targets)).heatmaps).summary
    ids = vocab.label_ids(labels)
    acc1 = top_k_accuracy(torch.cat(embeddings), vocab.embeddings, ids, k=1)
    train_labels = Counter(p.label for f in read_gazehoi(data / "train-annotations.csv") for p in f.people)
    majority = vocab.ids[train_labels.most_common(1)[0][0]]
    return {
        "auc": report["auc"],
        "avg_l2": report["avg_l2"],
        "acc1": float(acc1[~acc1.isnan()].mean()),
        "centre_avg_l2": centre["avg_l2"],
        "majority_acc1": float((ids == majority).double().mean()),
        "people": float(len(ids)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `gazelab synth --preset benchmark` folder")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_semgaze"), help="run folder")
    parser.add_argument("--test-images", type=int, default=300, help="score on the first N test images")
    parser.add_argument("overrides", nargs="*", help="extra `gazelab train` options, after --")
    args = parser.parse_args()
    meta = json.loads((args.data / "synthetic.json").read_text(encoding="utf-8"))
    if meta.get("preset") != "benchmark" or meta.get("overrides"):
        print(f"warning: {args.data} is not the unmodified benchmark preset ({meta.get('preset')!r} with overrides)")
    start = time.perf_counter()
    try:
        run_training([
            "--config", str(RECIPE), "--data.train", str(args.data / "train-annotations.csv"),
            "--data.val", str(args.data / "test-annotations.csv"), "--model.vocabulary",
            str(args.data / "vocab2id.json"), "--trainer.default_root_dir", str(args.out), *args.overrides,
        ])  # fmt: skip
    except GazelabError as err:  # weight export after training; the checkpoints are written by then
        print(f"note: {err}")
    minutes = (time.perf_counter() - start) / 60
    columns = ("train_angular", "train_info_nce", "val_auc", "val_avg_l2", "val_acc1", "val_acc3")
    print(f"\n{'epoch':>5} " + " ".join(f"{c:>14}" for c in columns))
    for epoch, values in curve(args.out):
        print(f"{epoch:>5} " + " ".join(f"{values.get(c, math.nan):>14.4f}" for c in columns))
    result = score(args.out / "checkpoints" / "last.ckpt", args.data, args.test_images)
    print(f"\nscored {result['people']:.0f} people of the first {args.test_images} test images (final weights)")
    print(f"{'':>14} {'auc':>7} {'avg_l2':>7} {'acc@1':>7}")
    print(f"{'semgaze_tiny':>14} {result['auc']:>7.4f} {result['avg_l2']:>7.4f} {result['acc1']:>7.4f}")
    print(f"{'priors':>14} {'':>7} {result['centre_avg_l2']:>7.4f} {result['majority_acc1']:>7.4f}"
          "   (image centre; most frequent training class)")  # fmt: skip
    values = (result["auc"], result["avg_l2"], result["acc1"])
    if any(math.isnan(v) for v in values):
        raise SystemExit("scores are NaN — nothing was scored")
    print(
        f"RESULT semgaze_synthetic auc={result['auc']:.4f} avg_l2={result['avg_l2']:.4f} acc1={result['acc1']:.4f} "
        f"minutes={minutes:.2f}"
    )


if __name__ == "__main__":
    main()
