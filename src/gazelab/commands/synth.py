"""``gazelab synth``: write a procedural gaze-following dataset in the real formats (see docs/synthetic.md)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gazelab.cli import app
from gazelab.data.synthetic import PRESETS, preset, write_dataset
from gazelab.errors import GazelabError


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (new, empty, or an earlier synthetic set)."),
    preset_name: str = typer.Option("benchmark", "--preset", help=f"One of {', '.join(PRESETS)}."),
    images: int = typer.Option(None, help="Number of images, train and test together (default: the preset's)."),
    seed: int = typer.Option(0, help="Seed: the same seed and options give byte-identical files."),
    video: bool = typer.Option(False, "--video", help="Write a VideoAttentionTarget tree of clips instead."),
    clips: int = typer.Option(None, help="Video mode: number of clips (default: the preset's)."),
    frames_per_clip: int = typer.Option(None, help="Video mode: frames per clip (default: the preset's)."),
    depth: bool = typer.Option(False, "--depth", help="Also write 16-bit depth PNGs under OUT/depth/."),
    test_fraction: float = typer.Option(None, help="Share of test images (video: test shows)."),
    workers: int = typer.Option(1, help="Worker processes (the output does not depend on it)."),
    priors: bool = typer.Option(
        False, "--priors", help="Also write simulated priors to OUT/priors and record them in synthetic.json."
    ),
) -> None:
    """Generate images (or video clips) with people looking at named objects, deterministic from --seed."""
    given = {"images": images, "clips": clips, "frames_per_clip": frames_per_clip, "test_fraction": test_fraction}
    overrides = {k: v for k, v in given.items() if v is not None}
    config = preset(preset_name, seed=seed, mode="video" if video else "image", depth=depth, **overrides)
    if priors and video:
        raise GazelabError("--priors needs image mode: simulated priors use objects.csv, which video mode lacks")
    total = config.clips if video else config.images
    console = Console(stderr=True)
    start = time.perf_counter()
    with Progress(
        TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("synth", total=total)
        metadata = write_dataset(
            out,
            config,
            workers=workers,
            preset_name=preset_name,
            progress=lambda done, _: bar.update(task, completed=done),
        )
    if priors:
        from gazelab.priors.simulate import SimulationParams, write_simulated_priors

        store = write_simulated_priors(out, SimulationParams(seed=seed))
        console.print(f"simulated priors: {len(store)} people in {store.root}", highlight=False)
    elapsed = time.perf_counter() - start
    for split, counts in metadata["counts"].items():
        listed = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
        console.print(f"{split}: {listed}", highlight=False)
    unit = "clips" if video else "images"
    console.print(
        f"wrote {total} {unit} to {out} in {elapsed:.1f} s (metadata: {out / 'synthetic.json'})", highlight=False
    )
