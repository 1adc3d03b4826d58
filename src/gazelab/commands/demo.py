"""``gazelab demo``: the whole pipeline on generated data, no download (see :mod:`gazelab.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

from gazelab.cli import app


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Output folder (data, model, report)."),
    images: int = typer.Option(600, help="Synthetic images to generate (80% train, 20% test)."),
    fraction: float = typer.Option(0.1, help="Fraction of training images that keep their labels."),
    steps: int = typer.Option(300, help="Training steps of each student."),
    diffusion_epochs: int = typer.Option(30, "--diffusion-epochs", help="Epochs of the diffusion teacher."),
    p_correct: float = typer.Option(0.6, "--p-correct", help="Share of simulated priors on the true target."),
    seed: int = typer.Option(0, help="Seed of data, priors, split and training."),
) -> None:
    """GCDR end to end: synthetic data + simulated priors -> split -> diffusion teacher -> refined pseudo-labels
    -> GCDR and supervised-only students -> evaluation; writes report.md and prints the tables."""
    from gazelab.demo import DemoConfig, run_demo

    config = DemoConfig(images=images, fraction=fraction, student_steps=steps, diffusion_epochs=diffusion_epochs,
                        p_correct=p_correct, seed=seed)  # fmt: skip
    summary = run_demo(out, config)
    figures = " ".join(f"{k}={v:.4f}" if k != "minutes" else f"{k}={v:.2f}" for k, v in summary.items())
    typer.echo(f"RESULT demo {figures}")
