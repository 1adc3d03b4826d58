"""``gazelab data ...``: inspect annotation files before training on them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from gazelab.cli import app
from gazelab.data.formats import FORMATS, read_annotations
from gazelab.data.report import Annotations

data_app = typer.Typer(help="Inspect annotation files.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
def check(
    path: Path = typer.Argument(
        ..., help="Annotation file (GazeFollow, Gaze-LLE JSON, GazeHOI) or dataset root (VAT, ChildPlay)."
    ),  # fmt: skip
    format: str = typer.Option(None, "--format", "-f", help=f"One of {', '.join(FORMATS)} (default: detect)."),
    split: str = typer.Option("test", help="Split folder for tree formats (VAT, ChildPlay)."),
    root: Path = typer.Option(
        None, help="Dataset root the image paths are relative to (default: the file's folder)."
    ),  # fmt: skip
    images: bool = typer.Option(
        None, "--images/--no-images", help="Require/ignore the image files (default: use them if they are there)."
    ),  # fmt: skip
) -> None:
    """Read an annotation file, print what it holds, and list rejected rows (exit 1 if any)."""
    annotations = read_annotations(path, format=format, root=root, split=split, check_images=images)
    console = Console()
    report = annotations.report
    typer.echo(f"{report.source} — format {report.format}")
    console.print(_summary_table(annotations))
    if annotations and all(f.size is None for f in annotations):
        console.print("note: no images found — annotations checked alone (image sizes unknown; "
                      "pass --root DIR to check the images)")  # fmt: skip
    for what, count in sorted(report.notes.items()):
        console.print(f"note: {what}: {count} rows (kept)")
    if report.rows_skipped:
        console.print(f"[bold red]{report.rows_skipped} rows rejected[/] — first {len(report.examples)}:")
        for example in report.examples:
            typer.echo(f"  {example}")
        raise typer.Exit(code=1)
    console.print("[green]all rows usable[/]")


def _summary_table(annotations: Annotations) -> Table:
    report = annotations.report
    people = [p for f in annotations for p in f.people]
    sized = sum(f.size is not None for f in annotations)
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("rows read", report.rows_read),
        ("rows kept", report.rows_kept),
        *((f"rejected: {reason}", n) for reason, n in sorted(report.skipped.items())),
        ("images (frames)", len(annotations)),
        ("images with known size", sized),
        ("people", len(people)),
        ("annotator points", sum(len(p.gaze) for p in people)),
        ("max annotators per person", max((len(p.gaze) for p in people), default=0)),
        ("in frame", sum(p.inout is True for p in people)),
        ("out of frame", sum(p.inout is False for p in people)),
        ("clips", len({f.clip for f in annotations if f.clip is not None})),
        ("tracks", len({(f.clip, p.track_id) for f in annotations for p in f.people if p.track_id is not None})),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table
