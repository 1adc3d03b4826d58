"""Frames per second of ``gazelab video`` on this machine, for one and two tracked people.

One frame's work is what the command does: decode the frame (JPEG from the shared VAT demo clip, 960x540),
run the model with its video protocol (image models: one encoding per frame, all people decoded together),
draw the overlay and encode it into an H.264 mp4, and write the CSV row(s). Models: Gaze-LLE ViT-S/14 at its
real size (448 px, random weights, seed 0) and the tiny test model; fp32, ``torch.inference_mode``. Each
figure is frames / wall-clock seconds over ``--frames`` frames after one warm-up frame. The load average is
printed: on a shared machine it tells whether the figures can be trusted.

    python benchmarks/video_speed.py [--frames 20] [--threads N] [--device cpu]

Last line: ``RESULT video_speed fps_1=.. fps_2=.. tiny_fps_1=.. tiny_fps_2=..`` (fps_* are ViT-S/14).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

from gazelab.models import create_model
from gazelab.video.annotate import annotate
from gazelab.video.output import ResultWriter
from gazelab.video.reader import VideoSource
from gazelab.video.runner import run_video
from gazelab.video.tracks import load_tracks
from gazelab.video.writer import VideoWriter

CLIP = Path(os.environ.get("GAZELAB_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
MODELS = {"": "gazelle_dinov2_vits14", "tiny_": "gazelle_tiny"}


def fps(model: torch.nn.Module, people: int, frames: int, out: Path) -> float:
    """Frames per second of the whole per-frame pipeline with the first ``people`` tracks of the clip."""
    clip = CLIP / "vat_demo"
    source = VideoSource(clip / "frames")
    tracks = load_tracks([clip / f"person{i + 1}.txt" for i in range(people)], source)
    order = {t: i for i, t in enumerate(tracks.track_ids)}
    header = {"width": source.width, "height": source.height}
    with VideoWriter(out, source.fps, (source.width, source.height)) as writer, \
            ResultWriter(out.with_suffix(".csv"), None, header) as rows:  # fmt: skip
        results = run_video(model, islice(source, frames + 1), tracks)
        for count, result in enumerate(results):
            if count == 1:  # the first frame warms up allocators and kernels
                start = time.perf_counter()
            writer.write(annotate(result, order))
            rows.write(result)
        seconds = time.perf_counter() - start
    return frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (CLIP / "vat_demo").is_dir():
        raise SystemExit(f"shared clip not found at {CLIP / 'vat_demo'} (set GAZELAB_SHARED_DATA)")

    load_before = os.getloadavg()[0]
    result = {}
    print(f"device {args.device}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs; 960x540 JPEG frames "
          f"-> annotated H.264 mp4 + CSV; {args.frames} frames after 1 warm-up")  # fmt: skip
    print(f"{'model':<24}{'people':>7}{'frames/s':>10}{'ms/frame':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for prefix, name in MODELS.items():
            torch.manual_seed(0)
            model = create_model(name).to(args.device)
            for people in (1, 2):
                rate = fps(model, people, args.frames, Path(tmp) / f"{prefix}{people}.mp4")
                result[f"{prefix}fps_{people}"] = rate
                print(f"{name:<24}{people:>7}{rate:>10.2f}{1000 / rate:>10.0f}")
    load_after = os.getloadavg()[0]
    print(f"1-min load {load_before:.1f} before, {load_after:.1f} after")
    if max(load_before, load_after) > (os.cpu_count() or 1):
        print("warning: more runnable processes than CPUs: other work competed and the figures are low")
    print("RESULT video_speed " + " ".join(f"{k}={v:.2f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
