"""The embedded end-to-end job: synthetic data -> check -> split -> train -> evaluate -> predict -> report.

Everything runs on this machine without a download, in a few minutes on a laptop CPU, and touches every
public piece a user would (readers, the synthetic generator, splits, the Lightning trainer, the named
protocols, the Predictor, drawing). When the semi-supervised (GCDR) stage lands it joins this flow; until
then the demo trains the supervised student on the full training split.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gazelab.data.formats import read_annotations, write_gazefollow
from gazelab.data.splits import split_frames
from gazelab.data.synthetic import preset, write_dataset
from gazelab.errors import GazelabError

PROTOCOL = "gazefollow"
LABELLED_FRACTION = 0.1


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run; the defaults finish in a few minutes on 2 CPU cores."""

    images: int = 400
    epochs: int = 5
    batch_size: int = 16
    seed: int = 0


def _table(rows: dict[str, dict[str, float]]) -> Table:
    table = Table(title=f"synthetic test split, protocol {PROTOCOL}")
    for column in ("method", "AUC", "Avg L2", "Min L2"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, metrics in rows.items():
        table.add_row(name, *(f"{metrics[k]:.4f}" for k in ("auc", "avg_l2", "min_l2")))
    return table


def _markdown(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| method | AUC | Avg L2 | Min L2 |", "|---|---|---|---|"]
    lines += [f"| {n} | {m['auc']:.4f} | {m['avg_l2']:.4f} | {m['min_l2']:.4f} |" for n, m in rows.items()]
    return "\n".join(lines)


def run_demo(out: Path, config: DemoConfig = DemoConfig(), console: Console | None = None) -> dict[str, float]:
    """Run the whole flow into ``out`` and return the headline figures (also in ``out/summary.json``)."""
    import lightning.pytorch as L
    from lightning.pytorch.loggers import CSVLogger

    from gazelab.eval.baselines import make_baseline
    from gazelab.eval.evaluate import predict_frames
    from gazelab.eval.metrics import get_protocol
    from gazelab.eval.predictions import targets_from_frames
    from gazelab.infer.predictor import Predictor
    from gazelab.io import load_image
    from gazelab.train import GazeDataModule, GazeModule
    from gazelab.train.export import official_state_dict, save_weights
    from gazelab.viz import draw_annotations, draw_predictions

    console = console or Console()
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "summary.json").exists() and not (out / "data").exists():
        raise GazelabError(f"{out}: folder exists and is not an earlier demo output — choose another --out")
    data = out / "data"

    console.rule("1. synthetic data")
    write_dataset(data, preset("small", images=config.images, seed=config.seed), preset_name="small")
    train = read_annotations(data / "train_annotations_release.txt")
    test = read_annotations(data / "test_annotations_release.txt")
    for name, frames in (("train", train), ("test", test)):
        console.print(f"{name}: {len(frames)} images, {frames.num_people} people — {frames.report.summary()}")

    console.rule(f"2. labelled/unlabelled split ({LABELLED_FRACTION:.0%} labelled, by image)")
    labelled, unlabelled = split_frames(train, LABELLED_FRACTION, config.seed)
    write_gazefollow(labelled, out / "split" / "labelled.txt", split="train")
    write_gazefollow(unlabelled, out / "split" / "unlabelled.txt", split="train")
    console.print(f"labelled {len(labelled)} images, unlabelled {len(unlabelled)} -> {out / 'split'}")

    console.rule(f"3. train gazelle_synth end to end ({config.epochs} epochs, full train split)")
    L.seed_everything(config.seed, verbose=False)
    module = GazeModule(name="gazelle_synth", train_backbone=True, losses={"heatmap_bce": 1.0}, protocol=PROTOCOL,
                        optimizer="adamw", lr=2e-3, weight_decay=0.01, scheduler="cosine", min_lr=1e-5)  # fmt: skip
    datamodule = GazeDataModule(
        train=str(data / "train_annotations_release.txt"), val=str(data / "test_annotations_release.txt"),
        image_size=224, augment="gazelle", sampling="image", batch_size=config.batch_size, val_batch_size=50,
        num_workers=0, seed=config.seed,
    )  # fmt: skip
    trainer = L.Trainer(max_epochs=config.epochs, accelerator="cpu", devices=1, default_root_dir=out / "train",
                        logger=CSVLogger(out / "train", name=""), enable_checkpointing=False,
                        log_every_n_steps=10, enable_model_summary=False)  # fmt: skip
    with warnings.catch_warnings():
        # Lightning's own deprecation chatter and the "fewer batches than the log interval" hint of tiny runs.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        trainer.fit(module, datamodule=datamodule)
    weights = save_weights(official_state_dict(module.model, include_backbone=True), out / "gazelle_synth.pt")
    console.print(f"weights: {weights} (gazelab predict --model gazelle_synth --weights {weights} IMG)")

    console.rule(f"4. evaluate on the test split (protocol {PROTOCOL})")
    protocol = get_protocol(PROTOCOL)
    targets = targets_from_frames(test)
    model = module.model.eval()
    rows: dict[str, dict[str, float]] = {}
    rows["gazelle_synth (trained)"] = protocol.evaluate(targets, heatmaps=predict_frames(model, test).heatmaps).summary
    for baseline in ("center", "bias"):
        made = make_baseline(baseline, len(targets), train if baseline == "bias" else None, config.seed)
        rows[f"baseline: {baseline}"] = protocol.evaluate(targets, heatmaps=made.heatmaps).summary
    console.print(_table(rows))

    console.rule("5. predict on a test scene")
    frame = max(test, key=lambda f: len(f.people))
    predictor = Predictor(model)
    predictor.set_image(frame.image_path)
    predictions = predictor.predict([p.head for p in frame.people])
    image = load_image(frame.image_path)
    draw_predictions(image, predictions).save(out / "prediction.png")
    draw_annotations(image, frame.people).save(out / "ground_truth.png")
    console.print(f"{frame.path}: {len(predictions)} people -> {out / 'prediction.png'} (truth: ground_truth.png)")

    minutes = (time.perf_counter() - start) / 60
    model_row, center_row = rows["gazelle_synth (trained)"], rows["baseline: center"]
    summary = {"auc_model": model_row["auc"], "avg_l2_model": model_row["avg_l2"],
               "auc_center": center_row["auc"], "avg_l2_center": center_row["avg_l2"], "minutes": minutes}  # fmt: skip
    (out / "summary.json").write_text(json.dumps({"config": config.__dict__, "results": rows, **summary}, indent=2))
    (out / "report.md").write_text(
        "# gazelab demo\n\n"
        f"Synthetic `small` preset, {config.images} images (seed {config.seed}); `gazelle_synth` trained "
        f"{config.epochs} epochs end to end on the train split; protocol `{PROTOCOL}` on the test split.\n\n"
        f"{_markdown(rows)}\n\n![prediction](prediction.png) ![ground truth](ground_truth.png)\n"
    )
    console.print(f"report: {out / 'report.md'}")
    if not all(math.isfinite(v) for v in summary.values()):
        raise GazelabError("demo produced a non-finite metric — see the log above")
    return summary
