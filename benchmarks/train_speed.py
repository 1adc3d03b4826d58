"""Gaze-LLE decoder training: an epoch from the frozen-feature cache vs recomputing the frozen backbone each step.

Both runs train the same decoder on the same samples in the same order with the same augmentation (flip and
head-box jitter: what cached features allow), one (image, head) sample at a time as the reference recipe does.
The uncached run encodes every sample's image with the frozen DINOv2 ViT-S/14 (448 px) at every step; the
cached run reads the features written once before training. The backbone's weights are random — its speed does
not depend on them, and nothing is downloaded. Data: a seeded synthetic set (`gazelab synth`).

    python benchmarks/train_speed.py [--images 24] [--batch-size 8] [--epochs 2] [--model gazelle_dinov2_vits14]

Epoch times are the last epoch's (the first includes warm-up); the cache build is the cached run's time
outside epochs minus the uncached run's. ``flop_bound`` is the most the cache could give if every FLOP ran at the
same rate: (backbone forward + decoder forward and backward) / (decoder forward and backward), counted with
torch's FlopCounterMode for one sample — the cache removes the backbone's work, not the decoder's. Last line:
``RESULT train_speed ratio=<uncached epoch / cached epoch> flop_bound=.. cached_s=.. uncached_s=.. cache_build_s=..``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L
import torch

from gazelab.data.synthetic import preset, write_dataset
from gazelab.train import GazeDataModule, GazeModule
from gazelab.train.cached_data import cacheable


class EpochTimer(L.Callback):
    """Wall time of each training epoch; ``other_s`` is the rest of the fit (reading, cache build, teardown)."""

    def __init__(self) -> None:
        self.epochs: list[float] = []
        self.other_s = 0.0
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append(time.perf_counter() - self._start)


def run(args: argparse.Namespace, train: Path, cache: Path | None) -> EpochTimer:
    L.seed_everything(0, verbose=False)
    module = GazeModule(name=args.model)
    data = GazeDataModule(
        train=str(train),
        augment=cacheable("gazelle"),
        batch_size=args.batch_size,
        num_workers=args.workers,
        feature_cache=str(cache) if cache is not None else None,
        cache_batch_size=args.batch_size,
    )
    timer = EpochTimer()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=args.epochs,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(train.parent),
    )
    start = time.perf_counter()
    trainer.fit(module, data)
    timer.other_s = time.perf_counter() - start - sum(timer.epochs)
    return timer


def flop_bound(name: str) -> tuple[float, float, float]:
    """(backbone forward GFLOPs, decoder forward + backward GFLOPs, their ratio bound) for one sample."""
    from torch.utils.flop_counter import FlopCounterMode

    model = GazeModule(name=name).model
    size = model.cfg.in_size
    images = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8)
    inputs = model.prepare(images, [[(0.4, 0.2, 0.5, 0.35)]])
    with FlopCounterMode(display=False) as encoder, torch.no_grad():
        features = model.encode(inputs.images)
    with FlopCounterMode(display=False) as decoder:
        model.decode(features, inputs.people).heatmap.sum().backward()
    enc, dec = encoder.get_total_flops() / 1e9, decoder.get_total_flops() / 1e9
    return enc, dec, (enc + dec) / dec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="synthetic images (about 2.5 people each)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="loader processes")
    parser.add_argument("--model", default="gazelle_dinov2_vits14")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synth"
        write_dataset(folder, preset("small", images=args.images), preset_name="small")
        train = folder / "train_annotations_release.txt"
        cached = run(args, train, Path(tmp) / "cache")
        uncached = run(args, train, None)
    rows = [("cached", cached), ("recomputed", uncached)]
    print(f"{args.model}: {args.images} images, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"{'backbone':<11} {'other s':>8} " + " ".join(f"{f'epoch {i + 1} s':>10}" for i in range(args.epochs)))
    for name, timer in rows:
        print(f"{name:<11} {timer.other_s:>8.2f} " + " ".join(f"{t:>10.2f}" for t in timer.epochs))
    ratio = uncached.epochs[-1] / cached.epochs[-1]
    build = cached.other_s - uncached.other_s
    encoder_gflops, decoder_gflops, bound = flop_bound(args.model)
    print(f"cache build (once) ~{build:.1f} s; epoch speed-up {ratio:.2f}x")
    print(f"per sample: backbone forward {encoder_gflops:.1f} GFLOPs, decoder forward+backward {decoder_gflops:.1f} "
          f"GFLOPs -> the cache can give at most {bound:.2f}x")  # fmt: skip
    print(
        f"RESULT train_speed ratio={ratio:.3f} flop_bound={bound:.3f} cached_s={cached.epochs[-1]:.3f} "
        f"uncached_s={uncached.epochs[-1]:.3f} cache_build_s={build:.3f}"
    )


if __name__ == "__main__":
    main()
