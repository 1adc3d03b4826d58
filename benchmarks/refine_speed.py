"""GCDR refinement speed: pseudo-labels per second of the published diffusion model (random weights).

One refinement = the VAT context encoder once per person (two ResNet-50 trunks at 224 px + the context pyramid)
and ``steps`` UNet evaluations on the 64x64 map, as ``gazelab refine`` does it (default: GCDR's 2 DDIM steps from
t = 250, one sample, batch 64). Timed in float32 and under bfloat16 autocast (the diffusion arithmetic stays
float32). FLOPs are counted by PyTorch (``FlopCounterMode``; multiply-add = 2).

    python benchmarks/refine_speed.py [--batch-size 64] [--steps 2] [--repeats 1] [--threads N] [--device cpu]

Last line: ``RESULT refine_speed per_s_fp32=.. per_s_bf16=.. gflops_per_sample=..`` where ``gflops_per_sample``
is the UNet's per evaluation; ``total_gflops_per_sample`` (encoder + all steps) is printed in the table.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _floor import count_flops, times_ms

from gazelab.gcdr.model import HeatmapDiffusion
from gazelab.gcdr.refine import RefineConfig, Refiner


def _inputs(batch: int, size: int, device: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    head = torch.zeros(batch, 1, size, size)
    head[:, :, 20:60, 90:130] = 1
    inputs = {
        "scene": torch.randn(batch, 3, size, size, generator=g),
        "head": head,
        "face": torch.randn(batch, 3, size, size, generator=g),
    }
    priors = torch.rand(batch, 64, 64, generator=g)
    return priors.to(device), {k: v.to(device) for k, v in inputs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--t-start", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per precision (the median is reported)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = HeatmapDiffusion().to(args.device).eval()
    size = model.config.input_size
    config = RefineConfig(t_start=args.t_start, steps=args.steps)

    one_prior, one = _inputs(1, size, args.device)
    with torch.no_grad():
        context = model.context(**one)
        t = torch.full((1,), float(args.t_start), device=args.device)
        unet = count_flops(lambda: model.denoise(one_prior[:, None], t, context))
        encoder = count_flops(lambda: model.context(**one))
    total = encoder + args.steps * unet

    priors, inputs = _inputs(args.batch_size, size, args.device)
    seeds = list(range(args.batch_size))
    rates = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        refiner = Refiner(model, config, autocast=dtype)
        refiner(priors[:2], {k: v[:2] for k, v in inputs.items()}, seeds[:2])  # warm-up on a small batch
        ms = statistics.median(times_ms(lambda r=refiner: r(priors, inputs, seeds), args.repeats, args.device, 0))
        rates[name] = args.batch_size / (ms / 1e3)
        print(f"{name}: batch {args.batch_size} in {ms / 1e3:.2f} s -> {rates[name]:.2f} pseudo-labels/s")

    params = sum(p.numel() for p in model.unet.parameters()) / 1e6
    print(f"device {args.device}, threads {torch.get_num_threads()}, t_start {args.t_start}, steps {args.steps}")
    print(f"UNet: {params:.1f} M parameters, {unet / 1e9:.2f} GFLOPs per evaluation")
    print(f"context encoder: {encoder / 1e9:.2f} GFLOPs; total per pseudo-label: {total / 1e9:.2f} GFLOPs")
    print(f"fp32 {rates['fp32']:.2f}/s ({rates['fp32'] * total / 1e9:.1f} GFLOP/s), bf16 {rates['bf16']:.2f}/s")
    print(
        f"RESULT refine_speed per_s_fp32={rates['fp32']:.3f} per_s_bf16={rates['bf16']:.3f} "
        f"gflops_per_sample={unet / 1e9:.3f} total_gflops_per_sample={total / 1e9:.3f}"
    )


if __name__ == "__main__":
    main()
