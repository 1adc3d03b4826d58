"""``gazelab train`` (a YAML recipe, see docs/training.md) and ``gazelab export-weights``."""

from __future__ import annotations

from pathlib import Path

import typer

from gazelab.cli import app


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
)
def train(ctx: typer.Context) -> None:
    """Train from a recipe: gazelab train --config configs/gazelle/vitb14_gazefollow.yaml [--trainer.max_epochs 3 ...]

    Every option is LightningCLI's (``gazelab train --help`` lists them); ``--ckpt_path last`` resumes.
    """
    from gazelab.train.cli import run_training  # Lightning is heavy: imported only when training

    run_training(ctx.args)


@app.command("export-weights")
def export_weights(
    checkpoint: Path = typer.Argument(..., help="A training checkpoint (.ckpt) written by gazelab train."),
    out: Path = typer.Option(..., "--out", "-o", help="Weight file to write (.pt, the family's published format)."),
) -> None:
    """Export a training checkpoint's weights in the model family's published format."""
    from gazelab.train.export import export_checkpoint

    typer.echo(f"wrote {export_checkpoint(checkpoint, out)}")
