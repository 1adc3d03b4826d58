"""Speed of the exact ``gazefollow`` AUC against the reference per-person loop, on identical inputs.

The reference is what Gaze-LLE's evaluation does for every person: upsample the 64x64 heatmap to the image
with ``torch.nn.functional.interpolate`` (bilinear, align_corners=False), draw one positive pixel per
annotator, call ``sklearn.metrics.roc_auc_score``. Ours is :func:`gazelab.eval.metrics.gazefollow_auc`.

Inputs are seeded and realistic: image sides 320-1000 px, 1-20 annotators per person near a Gaussian blob,
smooth heatmaps with noise, a third of them quantised to 256 levels so that ties are common (as with maps
stored as 8-bit images).

    python benchmarks/metrics_speed.py [--persons 4000] [--seed 0] [--device cpu] [--threads N]

Last line: ``RESULT metrics_speed ratio=<reference time / ours> max_abs_diff=<largest |difference|>``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from gazelab.eval.metrics import EvalTargets, gazefollow_auc

MAX_ANNOTATORS = 20


def make_inputs(persons: int, seed: int) -> tuple[torch.Tensor, EvalTargets]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(320, 1001, size=(persons, 2))
    centre = rng.uniform(0.05, 0.95, size=(persons, 1, 2))
    count = rng.integers(1, MAX_ANNOTATORS + 1, size=persons)
    gaze = np.clip(centre + rng.normal(0, 0.08, size=(persons, MAX_ANNOTATORS, 2)), 0, 1)
    gaze[np.arange(MAX_ANNOTATORS)[None, :] >= count[:, None]] = -1.0
    cells = np.arange(64) / 64
    peak = centre[:, 0] + rng.normal(0, 0.1, size=(persons, 2))
    sigma = rng.uniform(0.04, 0.15, size=(persons, 1, 1))
    blob = np.exp(
        -((cells[None, None, :] - peak[:, 0, None, None]) ** 2 + (cells[None, :, None] - peak[:, 1, None, None]) ** 2)
        / (2 * sigma**2)
    )
    maps = np.clip(blob + rng.uniform(0, 0.05, size=(persons, 64, 64)), 0, 1).astype(np.float32)
    quantised = rng.random(persons) < 1 / 3
    maps[quantised] = np.round(maps[quantised] * 255) / 255
    targets = EvalTargets(gaze=torch.from_numpy(gaze), image_sizes=torch.from_numpy(sizes))
    return torch.from_numpy(maps), targets


def reference_auc(heatmap: torch.Tensor, points: np.ndarray, width: int, height: int) -> float:
    target = np.zeros((height, width))
    for x, y in points:
        if x >= 0:
            target[min(int(y * height), height - 1), min(int(x * width), width - 1)] = 1
    upsampled = F.interpolate(heatmap[None, None], (height, width), mode="bilinear", align_corners=False)
    return roc_auc_score(target.flatten(), upsampled.flatten().numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both methods (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    heatmaps, targets = make_inputs(args.persons, args.seed)
    pixels = float((targets.image_sizes[:, 0] * targets.image_sizes[:, 1]).double().mean())
    print(f"{args.persons} persons, mean image {pixels / 1e6:.2f} Mpx, device {args.device}, "
          f"{torch.get_num_threads()} torch threads")  # fmt: skip

    start = time.perf_counter()
    ours = gazefollow_auc(heatmaps.to(args.device), targets)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    ours_time = time.perf_counter() - start

    start = time.perf_counter()
    gaze = targets.gaze.numpy()
    sizes = targets.image_sizes.tolist()
    reference = np.array([reference_auc(heatmaps[i], gaze[i], *sizes[i]) for i in range(args.persons)])
    reference_time = time.perf_counter() - start

    diff = float(np.abs(ours.numpy() - reference).max())
    ratio = reference_time / ours_time
    print(f"{'method':<34}{'total s':>10}{'ms/person':>12}")
    print(
        f"{'reference (interpolate + sklearn)':<34}{reference_time:>10.2f}{reference_time / args.persons * 1e3:>12.2f}"
    )
    print(f"{'gazelab gazefollow_auc':<34}{ours_time:>10.2f}{ours_time / args.persons * 1e3:>12.2f}")
    print(f"speed-up {ratio:.1f}x, max |difference| {diff:.3g}, mean AUC {reference.mean():.6f}")
    print(f"RESULT metrics_speed ratio={ratio:.2f} max_abs_diff={diff:.3g}")


if __name__ == "__main__":
    main()
