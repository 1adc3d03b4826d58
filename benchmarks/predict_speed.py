"""Latency of image inference with Gaze-LLE (ViT-S/14, ViT-B/14 at 448 px) in fp32 and bf16, next to the floor.

One measured call is what ``gazelab predict`` does per image after decoding it: :class:`Predictor`
``set_image`` (resize, normalise, backbone once) then ``predict`` for all people (decoder batch). Random
weights (seed 0), ``torch.inference_mode``; the picture is 640x480. Each time is the median of ``--repeats``
runs after one warm-up (the best run is shown too: on a busy machine it is the closer to the truth), printed
with the call's FLOPs (PyTorch's ``FlopCounterMode``) and the matmul-bound floor: FLOPs / the machine's
measured GEMM rate in the same precision (fp32 or bf16; the best of a measurement before and one after the
timings, so a busy spell during one of them does not lower the floor). The load average is printed too: on a
shared machine it tells whether the times can be trusted.

Extra people: ``predict`` alone (the decoder, features reused) is timed for 1 and 5 people; the cost of one
more person is reported as a percentage of the whole one-person call.

The bf16 path is ``Predictor(precision="bf16")``: the backbone under bf16 autocast, the decoder in fp32.

bf16 deviation: fp32 and bf16 ViT-B predictors (random weights, seed 0) answer for every person of the test
images of a seeded synthetic set (``gazelab.data.synthetic``, preset ``small``, written to a temporary folder);
reported are the largest heatmap difference and the argmax agreement (same 64x64 cell). Random weights make
this a test of numerical stability, not of accuracy. For the AUC change, pass weights that were trained on
the synthetic data (``--auc-weights``, e.g. the result of ``benchmarks/train_synthetic.py`` for
``gazelle_synth``): both precisions are then scored with the ``gazefollow`` AUC on the same test images.

    python benchmarks/predict_speed.py [--repeats 5] [--device cpu] [--threads N] [--images 60] [--no-bf16]
        [--compile] [--auc-weights FILE --auc-model gazelle_synth]

Last line: ``RESULT predict_speed vits_ms=.. vits_floor_ms=.. vitb_ms=.. vitb_floor_ms=.. vitb_5p_ms=..
vitb_ratio_to_floor=.. extra_person_pct=.. vitb_bf16_ms=.. vitb_bf16_floor_ms=.. bf16_speedup=..
bf16_argmax_agreement=.. bf16_max_heatmap_diff=.. [vitb_compile_ms=..] [bf16_auc_change=..]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _floor import count_flops, gemm_flops_per_second, times_ms
from PIL import Image

from gazelab.data.formats import read_annotations
from gazelab.data.synthetic import preset, write_dataset
from gazelab.infer.predictor import Predictor
from gazelab.io import load_image
from gazelab.models import create_model
from gazelab.types import Frame, GazePrediction

VITS, VITB = "gazelle_dinov2_vits14", "gazelle_dinov2_vitb14"


@dataclass
class Row:
    key: str
    model: str
    precision: str
    people: int
    flops: int
    times: list[float]


def head_boxes(count: int) -> list[tuple[float, float, float, float]]:
    """``count`` head-sized boxes side by side, as in a group photo."""
    return [(0.05 + 0.18 * i, 0.2, 0.15 + 0.18 * i, 0.35) for i in range(count)]


def run(predictor: Predictor, picture: Image.Image, heads: list[tuple[float, float, float, float]]) -> None:
    """One image's work: encode it once, then answer for every person."""
    predictor.set_image(picture)
    predictor.predict(heads)


def build(name: str, device: str, weights: str | None = None, **options: object) -> Predictor:
    torch.manual_seed(0)
    return Predictor(create_model(name, pretrained=weights or False), device=device, **options)


def synthetic_test_frames(folder: Path, images: int) -> list[Frame]:
    """The test images of a seeded synthetic set (a fifth of ``images``), with every person's annotations."""
    write_dataset(folder, preset("small", images=images), preset_name="small")
    return read_annotations(folder / "test_annotations_release.txt", split="test")


def answer_all(predictor: Predictor, frames: list[Frame]) -> list[GazePrediction]:
    predictions = []
    for frame in frames:
        predictor.set_image(load_image(frame.image_path))
        predictions += predictor.predict([person.head for person in frame.people])
    return predictions


def deviation(exact: list[GazePrediction], fast: list[GazePrediction]) -> tuple[float, float]:
    """(largest heatmap difference, fraction of people whose argmax cell is the same)."""
    pairs = list(zip(exact, fast, strict=True))
    difference = max(float(np.abs(a.heatmap - b.heatmap).max()) for a, b in pairs)
    return difference, float(np.mean([a.point == b.point for a, b in pairs]))


def mean_auc(predictions: list[GazePrediction], frames: list[Frame]) -> float:
    from gazelab.eval.metrics import gazefollow_auc
    from gazelab.eval.predictions import targets_from_frames

    heatmaps = torch.from_numpy(np.stack([p.heatmap for p in predictions]))
    return float(gazefollow_auc(heatmaps, targets_from_frames(frames)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--images", type=int, default=60, help="synthetic images (a fifth are test images)")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 path (hardware without bf16)")
    parser.add_argument("--compile", action="store_true", help="also time ViT-B fp32 with torch.compile")
    parser.add_argument("--auc-weights", help="trained weights for the bf16 AUC change (see the docstring)")
    parser.add_argument("--auc-model", default="gazelle_synth", help="zoo name of --auc-weights")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = not args.no_bf16

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    load_before = os.getloadavg()[0]
    rates_before = {p: gemm_flops_per_second(dtype=d, device=args.device) for p, d in _precisions(bf16).items()}
    rows: list[Row] = []
    decode_ms: dict[int, float] = {}
    for key, name, precision, compiled in _configs(bf16, args.compile):
        predictor = build(name, args.device, precision=precision, compile=compiled)
        people_counts = (1, 5) if key == "vitb" else (1,)
        for people in people_counts:
            infer = partial(run, predictor, picture, head_boxes(people))
            # The compiled graph runs the same operations; FlopCounterMode cannot see inside it.
            flops = count_flops(infer) if not compiled else next(r.flops for r in rows if r.key == "vitb")
            times = times_ms(infer, args.repeats, args.device, warmup=2 if compiled else 1)
            rows.append(Row(key if people == 1 else f"{key}_{people}p", name, precision, people, flops, times))
        if key == "vitb":
            for people in (1, 5):
                query = partial(predictor.predict, head_boxes(people))
                decode_ms[people] = statistics.median(times_ms(query, max(args.repeats, 5), args.device))
    rates_after = {p: gemm_flops_per_second(dtype=d, device=args.device) for p, d in _precisions(bf16).items()}
    rates = {p: max(rates_before[p], rates_after[p]) for p in rates_before}
    load_after = os.getloadavg()[0]

    print(f"device {args.device}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs; picture 640x480 -> "
          f"448x448; median of {args.repeats} runs; torch {torch.__version__}")  # fmt: skip
    for precision in rates:
        gemm = f"{rates_before[precision] / 1e9:.0f} GFLOP/s before, {rates_after[precision] / 1e9:.0f} after"
        print(f"{precision} GEMM (best 2048x2048 matmul) {gemm}, floor uses {rates[precision] / 1e9:.0f}")
    print(f"1-min load {load_before:.1f} before, {load_after:.1f} after")
    if max(load_before, load_after) > (os.cpu_count() or 1):
        print("warning: more runnable processes than CPUs: other work competed and the times are inflated (with "
              "several torch threads badly, as a descheduled thread stalls the rest; try --threads 1)")  # fmt: skip
    header = f"{'model':<24}{'path':>14}{'people':>7}{'GFLOPs':>9}{'median ms':>11}{'best ms':>9}{'floor ms':>10}"
    print(header + f"{'median/floor':>14}")
    result: dict[str, float] = {}
    for row in rows:
        ms, floor = statistics.median(row.times), row.flops / rates[row.precision] * 1e3
        result[f"{row.key}_ms"], result[f"{row.key}_floor_ms"] = ms, floor
        path = row.precision + (" compiled" if row.key.endswith("compile") else "")
        print(f"{row.model:<24}{path:>14}{row.people:>7}{row.flops / 1e9:>9.1f}{ms:>11.0f}"
              f"{min(row.times):>9.0f}{floor:>10.0f}{ms / floor:>14.2f}")  # fmt: skip
    result["vitb_ratio_to_floor"] = result["vitb_ms"] / result["vitb_floor_ms"]
    result["extra_person_pct"] = (decode_ms[5] - decode_ms[1]) / 4 / result["vitb_ms"] * 100
    print(f"ViT-B decoder alone (features reused): {decode_ms[1]:.1f} ms for 1 person, {decode_ms[5]:.1f} ms for 5: "
          f"each extra person adds {result['extra_person_pct']:.2f}% of the one-person call")  # fmt: skip
    keys = ["vits_ms", "vits_floor_ms", "vitb_ms", "vitb_floor_ms", "vitb_5p_ms", "vitb_ratio_to_floor",
            "extra_person_pct"]  # fmt: skip
    if args.compile:
        keys.append("vitb_compile_ms")
    if bf16:
        result["bf16_speedup"] = result["vitb_ms"] / result["vitb_bf16_ms"]
        result["bf16_max_heatmap_diff"], result["bf16_argmax_agreement"] = bf16_deviation(args, VITB)
        keys += ["vitb_bf16_ms", "vitb_bf16_floor_ms", "bf16_speedup", "bf16_argmax_agreement",
                 "bf16_max_heatmap_diff"]  # fmt: skip
        if args.auc_weights:
            result["bf16_auc_change"] = bf16_auc_change(args)
            keys.append("bf16_auc_change")
    print("RESULT predict_speed " + " ".join(f"{k}={_number(result[k])}" for k in keys))


def _precisions(bf16: bool) -> dict[str, torch.dtype]:
    return {"fp32": torch.float32, "bf16": torch.bfloat16} if bf16 else {"fp32": torch.float32}


def _configs(bf16: bool, compiled: bool) -> list[tuple[str, str, str, bool]]:
    """(result key, model, precision, torch.compile) of every timed predictor."""
    configs = [("vits", VITS, "fp32", False), ("vitb", VITB, "fp32", False)]
    if bf16:
        configs.append(("vitb_bf16", VITB, "bf16", False))
    if compiled:
        configs.append(("vitb_compile", VITB, "fp32", True))
    return configs


def bf16_deviation(args: argparse.Namespace, name: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        frames = synthetic_test_frames(Path(tmp) / "synth", args.images)
        exact = answer_all(build(name, args.device), frames)
        fast = answer_all(build(name, args.device, precision="bf16"), frames)
    difference, agreement = deviation(exact, fast)
    print(f"bf16 vs fp32, {name} (random weights) on {len(exact)} people of {len(frames)} synthetic test images: "
          f"max heatmap difference {difference:.4f}, argmax agreement {agreement:.1%}")  # fmt: skip
    return difference, agreement


def bf16_auc_change(args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        frames = synthetic_test_frames(Path(tmp) / "synth", args.images)
        exact = answer_all(build(args.auc_model, args.device, args.auc_weights), frames)
        fast = answer_all(build(args.auc_model, args.device, args.auc_weights, precision="bf16"), frames)
    auc_exact, auc_fast = mean_auc(exact, frames), mean_auc(fast, frames)
    difference, agreement = deviation(exact, fast)
    print(f"bf16 vs fp32, {args.auc_model} ({args.auc_weights}) on {len(exact)} people of {len(frames)} synthetic "
          f"test images: AUC {auc_exact:.4f} -> {auc_fast:.4f}, max heatmap difference {difference:.4f}, "
          f"argmax agreement {agreement:.1%}")  # fmt: skip
    return auc_fast - auc_exact


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.4g}"


if __name__ == "__main__":
    main()
