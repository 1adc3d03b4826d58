"""Latency of image inference with Gaze-LLE (ViT-S/14 and ViT-B/14 at 448 px), next to this machine's floor.

One measured call is what ``gazelab predict`` does per image after decoding it: :class:`Predictor`
``set_image`` (resize, normalise, backbone once) then ``predict`` for all people (decoder batch). Random
weights (seed 0), fp32, ``torch.inference_mode``; the picture is 640x480. Each time is the median of
``--repeats`` runs after one warm-up (the best run is shown too: on a busy machine it is the closer to the
truth), printed with the call's FLOPs (counted by PyTorch's ``FlopCounterMode``) and the matmul-bound floor,
FLOPs / the machine's measured fp32 GEMM rate (the best of a measurement before and one after the timings,
so a busy spell during one of them does not lower the floor). The load average is printed too: on a shared
machine it tells whether the times can be trusted.

    python benchmarks/predict_speed.py [--repeats 5] [--device cpu] [--threads N]

Last line: ``RESULT predict_speed vits_ms=.. vits_floor_ms=.. vitb_ms=.. vitb_floor_ms=.. vitb_5p_ms=..``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from functools import partial

import numpy as np
import torch
from _floor import count_flops, gemm_flops_per_second, times_ms
from PIL import Image

from gazelab.infer.predictor import Predictor
from gazelab.models import create_model

MODELS = {"vits": "gazelle_dinov2_vits14", "vitb": "gazelle_dinov2_vitb14"}
PEOPLE = (1, 5)


def head_boxes(count: int) -> list[tuple[float, float, float, float]]:
    """``count`` head-sized boxes side by side, as in a group photo."""
    return [(0.05 + 0.18 * i, 0.2, 0.15 + 0.18 * i, 0.35) for i in range(count)]


def run(predictor: Predictor, picture: Image.Image, heads: list[tuple[float, float, float, float]]) -> None:
    """One image's work: encode it once, then answer for every person."""
    predictor.set_image(picture)
    predictor.predict(heads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    load_before = os.getloadavg()[0]
    rate_before = gemm_flops_per_second(device=args.device)
    rows = []  # (result key, model, people, FLOPs, run times in ms)
    for key, name in MODELS.items():
        torch.manual_seed(0)
        predictor = Predictor(create_model(name), device=args.device)
        for people in PEOPLE:
            infer = partial(run, predictor, picture, head_boxes(people))
            flops, times = count_flops(infer), times_ms(infer, args.repeats, args.device)
            rows.append((key if people == 1 else f"{key}_{people}p", name, people, flops, times))
    rate_after = gemm_flops_per_second(device=args.device)
    rate = max(rate_before, rate_after)

    print(f"device {args.device}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs; picture 640x480 -> "
          f"448x448; median of {args.repeats} runs")  # fmt: skip
    load_after = os.getloadavg()[0]
    gemm = f"{rate_before / 1e9:.0f} GFLOP/s before, {rate_after / 1e9:.0f} after, floor uses {rate / 1e9:.0f}"
    print(f"fp32 GEMM (best 2048x2048 matmul) {gemm}; 1-min load {load_before:.1f} before, {load_after:.1f} after")
    if max(load_before, load_after) > (os.cpu_count() or 1):
        print("warning: more runnable processes than CPUs: other work competed and the times are inflated (with "
              "several torch threads badly, as a descheduled thread stalls the rest; try --threads 1)")  # fmt: skip
    print(f"{'model':<24}{'people':>7}{'GFLOPs':>9}{'median ms':>11}{'best ms':>9}{'floor ms':>10}{'floor/median':>14}")
    result = {}
    for key, name, people, flops, times in rows:
        ms, floor = statistics.median(times), flops / rate * 1e3
        result[f"{key}_ms"], result[f"{key}_floor_ms"] = ms, floor
        print(f"{name:<24}{people:>7}{flops / 1e9:>9.1f}{ms:>11.0f}{min(times):>9.0f}{floor:>10.0f}{floor / ms:>14.0%}")
    keys = ("vits_ms", "vits_floor_ms", "vitb_ms", "vitb_floor_ms", "vitb_5p_ms")
    print("RESULT predict_speed " + " ".join(f"{k}={result[k]:.0f}" for k in keys))


if __name__ == "__main__":
    main()
