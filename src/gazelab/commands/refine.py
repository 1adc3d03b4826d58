"""``gazelab refine``: GCDR pseudo-labels — prior maps refined by the heatmap diffusion model, into a prior store."""

from __future__ import annotations

from pathlib import Path

import typer

from gazelab.cli import app

DATA_HELP = "Annotation file (any format), dataset root (VAT, ChildPlay), or a `gazelab synth` folder (all splits)."


@app.command("refine")
def refine(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    priors: Path = typer.Option(..., "--priors", help="Prior store to refine (from `gazelab prior run/simulate`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Store for the refined maps (created, or resumed if it exists)."),
    weights: Path = typer.Option(..., "--weights", help="Diffusion model: official GCDR file or gazelab checkpoint."),
    t_start: int = typer.Option(250, "--t-start", help="Timestep (1..500) the prior is noised to (GCDR: 200 at 5%)."),
    steps: int = typer.Option(2, help="DDIM steps from t_start."),
    samples: int = typer.Option(1, help="Draws averaged per person."),
    eta: float = typer.Option(1.0, help="DDIM stochasticity (GCDR: 1)."),
    from_noise: bool = typer.Option(False, "--from-noise", help="Ignore the priors: sample from pure noise."),
    seed: int = typer.Option(0, help="A person's map depends only on the seed, image and person id."),
    batch_size: int = typer.Option(64, "--batch-size", help="People per forward pass."),
    flush_every: int = typer.Option(1024, help="Records per shard file: a kill loses at most this many."),
    shard: str = typer.Option(None, help="Do only part i of n (0 <= i < n); merge with `gazelab prior merge`."),
    device: str = typer.Option("cpu", help="torch device, e.g. cuda."),
    bf16: bool = typer.Option(False, "--bf16", help="Run the network under bfloat16 autocast."),
    root: Path = typer.Option(None, help="Dataset root the image paths are relative to (default: DATA's folder)."),
    split: str = typer.Option("train", help="Split folder for tree formats."),
    format: str = typer.Option(None, "--format", "-f", help="Annotation format (default: detect)."),
) -> None:
    """Refine every person's prior map with a trained diffusion model and write the pseudo-labels to OUT.

    People without a valid prior are written as invalid; empty priors (looking outside the frame) stay empty.
    A rerun with the same options continues where a killed run stopped.
    """
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from gazelab.gcdr.official import load_diffusion
    from gazelab.gcdr.pseudo import PseudoLabeller
    from gazelab.gcdr.refine import RefineConfig, Refiner
    from gazelab.priors.jobs import parse_shard, pending, run_job
    from gazelab.priors.sources import load_frames
    from gazelab.priors.store import PriorStore

    part = parse_shard(shard)
    config = RefineConfig(t_start=t_start, steps=steps, samples=samples, eta=eta, from_noise=from_noise)
    source = PriorStore(priors)
    frames, _ = load_frames(data, format=format, root=root, split=split)
    meta = PseudoLabeller.meta(config, seed, weights, source)
    store = PriorStore(out, create=True, meta=meta)
    todo = pending(frames, store, part)
    console = Console(stderr=True)
    written = 0
    if todo:
        model = load_diffusion(weights).to(device)
        refiner = Refiner(model, config, autocast=torch.bfloat16 if bf16 else None)
        labeller = PseudoLabeller(refiner, source, seed)
        columns = (TextColumn("refine"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("refine", total=len(todo))
            written = run_job(todo, labeller, store, batch_size, flush_every, lambda n: bar.advance(task, n))
    console.print(f"refine: {written} new, {len(store) - written} already in {out} ({len(store)} in all)")
