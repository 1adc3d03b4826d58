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
    missed_target_weight: float = typer.Option(
        0.0, "--missed-target-weight", help="Weight of the true target's blob in a wrong prior (0: one blob)."
    ),
    guide: bool = typer.Option(False, "--guide/--no-guide", help="Condition the teacher on the supervised student."),
    teacher_distractors: float = typer.Option(
        0.0, "--teacher-distractors", help="Share of the teacher's training maps given a random second blob."
    ),
    scheduler: str = typer.Option("constant", help="Students' learning rate: cosine (to 0) or constant."),
    seed: int = typer.Option(0, help="Seed of data, priors, split and training."),
    device: str = typer.Option("auto", help="Where to train and predict: auto (the GPU if any), cpu, cuda, cuda:1."),
    workers: int = typer.Option(0, help="Data-loading processes while training (0 on a CPU; a few on a GPU)."),
) -> None:
    """GCDR end to end: synthetic data + simulated priors -> split -> diffusion teacher -> refined pseudo-labels
    -> GCDR and supervised-only students -> evaluation; writes report.md and prints the tables."""
    from gazelab.demo import DemoConfig, run_demo
    from gazelab.device import resolve_device

    if scheduler not in ("cosine", "constant"):
        raise typer.BadParameter(f"--scheduler must be cosine or constant, got {scheduler!r}")
    if workers < 0:
        raise typer.BadParameter(f"--workers must be 0 or more, got {workers}")
    resolve_device(device)  # fails now, with the option's name, rather than after the data is generated
    config = DemoConfig(images=images, fraction=fraction, student_steps=steps, diffusion_epochs=diffusion_epochs,
                        p_correct=p_correct, missed_target_weight=missed_target_weight, guide=guide,
                        teacher_distractors=teacher_distractors,
                        scheduler=None if scheduler == "constant" else scheduler, seed=seed, device=device,
                        workers=workers)  # fmt: skip
    summary = run_demo(out, config)
    figures = " ".join(f"{k}={v:.4f}" if k != "minutes" else f"{k}={v:.2f}" for k, v in summary.items())
    typer.echo(f"RESULT demo {figures}")
