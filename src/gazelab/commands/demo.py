"""``gazelab demo``: the whole pipeline on generated data, no download (see :mod:`gazelab.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

from gazelab.cli import app


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Output folder (data, model, report)."),
    images: int = typer.Option(400, help="Synthetic images to generate (80% train, 20% test)."),
    epochs: int = typer.Option(5, help="Training epochs."),
    seed: int = typer.Option(0, help="Seed of data, split and training."),
) -> None:
    """Synthetic data -> check -> split -> train -> evaluate -> predict; writes report.md and prints a table."""
    from gazelab.demo import DemoConfig, run_demo

    summary = run_demo(out, DemoConfig(images=images, epochs=epochs, seed=seed))
    figures = " ".join(f"{k}={v:.4f}" if k != "minutes" else f"{k}={v:.2f}" for k, v in summary.items())
    typer.echo(f"RESULT demo {figures}")
