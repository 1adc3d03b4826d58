"""``gazelab eval``: score predictions — from a file or a no-model baseline — under a named protocol.

Writes to ``--out``: ``predictions.csv`` (one row per person: image, person, head box, predicted point,
in/out score and the person's metric values; re-scorable with ``--predictions``), ``heatmaps.npz`` (with
``--save-heatmaps``), ``summary.json`` (protocol, counts, metric means, notes) and ``metrics.md`` (the table
that is also printed). Files are written atomically, ``summary.json`` last: an interrupted run leaves no partial
file, and running the same command again gives the same files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gazelab.cli import app
from gazelab.data.formats import FORMATS, read_annotations
from gazelab.data.report import Annotations
from gazelab.errors import GazelabError

if TYPE_CHECKING:  # torch is imported when the command runs, so `gazelab --help` stays fast
    import torch
    from torch import Tensor

    from gazelab.eval.metrics import EvalTargets, MetricReport, Protocol

BASELINES = ("center", "bias", "random")
PROTOCOLS = ("gazefollow", "gazefollow-skimage", "gazefollow-64", "vat", "childplay")

ANNOTATIONS_HELP = "Annotation file (or dataset root for VAT/ChildPlay) holding the ground truth."
PREDICTIONS_HELP = (
    "Predictions made elsewhere: a .csv (path, person or head box, x, y[, inout]) and/or an .npz of heatmaps; "
    "repeat the option for both. Format: see gazelab.eval.predictions."
)
ROOT_HELP = "Dataset root with the images: gives the image sizes the gazefollow AUC needs (default: the file's folder)."


@app.command("eval")
def eval_command(
    annotations: Path = typer.Option(..., "--annotations", "-a", help=ANNOTATIONS_HELP),
    format: str = typer.Option(None, "--format", "-f", help=f"One of {', '.join(FORMATS)} (default: detect)."),
    protocol: str = typer.Option("gazefollow", "--protocol", "-p", help=f"One of {', '.join(PROTOCOLS)}."),
    model: str = typer.Option(None, "--model", "-m", help="Run a zoo model (see `gazelab models`) on the images."),
    weights: str = typer.Option(
        None,
        "--weights",
        help="Weights for --model: a file path, 'pretrained' (default: download) or 'none' (random; smoke tests).",
    ),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per forward pass for --model."),
    baseline: str = typer.Option(None, "--baseline", help=f"Score a no-model baseline: {', '.join(BASELINES)}."),
    train: Path = typer.Option(None, "--train", help="Training annotations (same format) for --baseline bias."),
    predictions: list[Path] = typer.Option(None, "--predictions", metavar="FILE", help=PREDICTIONS_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for predictions.csv, summary.json, metrics.md."),
    root: Path = typer.Option(None, "--root", help=ROOT_HELP),
    split: str = typer.Option("test", help="Split folder for tree formats (VAT, ChildPlay)."),
    seed: int = typer.Option(0, help="Seed of --baseline random."),
    save_heatmaps: bool = typer.Option(False, "--save-heatmaps", help="Also write heatmaps.npz."),
    device: str = typer.Option(
        "cpu", help="Where to compute the metrics (cpu, cuda, cuda:1, ..., or auto: the GPU if any)."
    ),
) -> None:
    """Score predictions (or a baseline) under a named evaluation protocol and write a report."""
    from gazelab.device import resolve_device
    from gazelab.eval.baselines import make_baseline
    from gazelab.eval.metrics import get_protocol, missing_image_sizes
    from gazelab.eval.predictions import read_predictions, targets_from_frames

    chosen = get_protocol(protocol)
    if sum((model is not None, baseline is not None, bool(predictions))) != 1:
        raise GazelabError("give exactly one of --model NAME, --baseline NAME or --predictions FILE")
    frames = read_annotations(annotations, format=format, root=root, split=split, check_images=True if root else None)
    console = Console()
    console.print(f"{frames.report.source} — {frames.report.format}: {frames.report.summary()}")
    if not frames.num_people:
        raise GazelabError(f"{annotations}: no usable person to evaluate ({frames.report.summary()})")
    targets = targets_from_frames(frames)
    points = None
    if model is not None:
        if chosen.needs_image_size and targets.image_sizes is None:
            raise missing_image_sizes(chosen.name)
        heatmaps, inout = _run_model(model, weights, frames, batch_size, resolve_device(device))
        source = f"model {model} ({weights or 'pretrained'} weights)"
    elif baseline is not None:
        if chosen.needs_image_size and targets.image_sizes is None:
            raise missing_image_sizes(chosen.name)
        train_frames = read_annotations(train, format=format, split="train") if train is not None else None
        made = make_baseline(baseline, len(targets), train_frames, seed)
        heatmaps, inout, source = made.heatmaps, made.inout, f"baseline {baseline}: {made.description}"
    else:
        loaded = read_predictions(predictions, frames)
        if loaded.heatmaps is not None and chosen.needs_image_size and targets.image_sizes is None:
            raise missing_image_sizes(chosen.name)
        heatmaps, points, inout = loaded.heatmaps, loaded.points, loaded.inout
        source = "predictions " + ", ".join(p.name for p in predictions)
    report = _score(chosen, targets, heatmaps, points, inout, resolve_device(device))
    _write(out, frames, report, heatmaps, points, inout, save_heatmaps, source, annotations)
    console.print(f"{source} — protocol {report.protocol}")
    console.print(_table(report))
    for note in report.notes:
        console.print(f"note: {note}")
    console.print(
        f"wrote {out}/predictions.csv, summary.json, metrics.md" + (", heatmaps.npz" if save_heatmaps else "")
    )


def _run_model(
    name: str, weights: str | None, frames: Annotations, batch_size: int, device: torch.device
) -> tuple[Tensor, Tensor | None]:
    from gazelab.eval.evaluate import predict_frames
    from gazelab.models import create_model

    pretrained: bool | str = {None: True, "pretrained": True, "none": False}.get(weights, weights)  # type: ignore[arg-type]
    if not pretrained:
        import torch

        torch.manual_seed(0)  # the same random model on every run, so smoke-test reports can be compared
    net = create_model(name, pretrained=pretrained, backbone_weights=None if pretrained else False)
    columns = (TextColumn(f"{name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("predicting", total=frames.num_people)
        made = predict_frames(net, frames, batch_size, device, progress=lambda n: bar.advance(task, n))
    return made.heatmaps, made.inout


def _score(
    protocol: Protocol, targets: EvalTargets, heatmaps: Tensor | None, points: Tensor | None, inout: Tensor | None,
    device: torch.device,
) -> MetricReport:  # fmt: skip
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("scoring", total=len(targets))
        report = protocol.evaluate(
            targets,
            heatmaps=heatmaps.to(device) if heatmaps is not None else None,
            points=points,
            inout_scores=inout,
            progress=lambda done: bar.advance(task, done),
        )
        bar.update(task, completed=len(targets))
    return report


def _write(
    out: Path, frames: Annotations, report: MetricReport, heatmaps: Tensor | None, points: Tensor | None,
    inout: Tensor | None, save_heatmaps: bool, source: str, annotations: Path,
) -> None:  # fmt: skip
    from gazelab.eval.metrics import predicted_points
    from gazelab.eval.predictions import write_heatmaps_npz, write_predictions_csv

    out.mkdir(parents=True, exist_ok=True)
    if points is None:
        points = predicted_points(heatmaps)
    write_predictions_csv(out / "predictions.csv", frames, points, inout, report.per_sample)
    if save_heatmaps and heatmaps is not None:
        write_heatmaps_npz(out / "heatmaps.npz", frames, heatmaps, inout)
    summary = report.to_dict()
    summary.update(
        annotations=str(annotations), format=frames.report.format, loaded=frames.report.summary(), predictions=source
    )
    # Every file is written atomically; summary.json comes last, so its presence means the run finished.
    _write_text(out / "metrics.md", report.markdown(source) + "\n")
    _write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")


def _write_text(path: Path, text: str) -> None:
    from gazelab.train.atomic import write_atomic

    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def _table(report: MetricReport) -> Table:
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("scored", justify="right")
    for name, value in report.summary.items():
        scored = report.counts.get(f"scored_{name}", 0)
        table.add_row(name, "n/a" if math.isnan(value) else f"{value:.4f}", str(scored))
    table.add_row("persons", str(report.counts["persons"]), "")
    return table
