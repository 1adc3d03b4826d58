"""``gazelab split``: a seeded labelled/unlabelled split of an annotation file, written in its own format."""

from __future__ import annotations

from pathlib import Path

import typer

from gazelab.cli import app
from gazelab.data.formats import FORMATS, WRITABLE_FORMATS, detect_format, read_annotations, write_annotations
from gazelab.data.splits import split_frames
from gazelab.errors import GazelabError
from gazelab.types import Frame


def _unit_counts(frames: list[Frame]) -> str:
    clips = {f.clip for f in frames if f.clip is not None}
    people = sum(len(f.people) for f in frames)
    units = f"{len(clips)} clips, {len(frames)} frames" if clips else f"{len(frames)} images"
    return f"{units}, {people} people"


@app.command("split")
def split(
    annotations: Path = typer.Argument(..., help="Annotation file (GazeFollow, GazeHOI) or dataset root (VAT)."),
    format: str = typer.Option(None, "--format", "-f", help=f"One of {', '.join(FORMATS)} (default: detect)."),
    fraction: float = typer.Option(..., help="Fraction of images (clips for video) to label, in [0, 1]."),
    seed: int = typer.Option(0, help="Seed of the split; the same seed and input give the same files."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the two outputs (labelled, unlabelled)."),
    split_name: str = typer.Option("train", "--split", help="Split folder read and written for VAT trees."),
    root: Path = typer.Option(None, help="Dataset root the image paths are relative to (default: the file's folder)."),
) -> None:
    """Split ANNOTATIONS into a labelled and an unlabelled part, per image (per clip for video datasets).

    Writes OUT/labelled.<ext> and OUT/unlabelled.<ext> (VAT: OUT/labelled and OUT/unlabelled dataset roots).
    """
    format = format or detect_format(annotations)
    if format not in WRITABLE_FORMATS:
        raise GazelabError(f"cannot write format {format!r}; split works on {', '.join(WRITABLE_FORMATS)}")
    # Rows go out as they came in: VAT boxes unsmoothed; GazeFollow read without its images (pixel boxes
    # are kept as written, and the train set's images need not be opened). VAT/GazeHOI writers need sizes.
    frames = read_annotations(
        annotations,
        format=format,
        root=root,
        split=split_name,
        check_images=False if format == "gazefollow" else None,
        smooth=False,
    )
    labelled, unlabelled = split_frames(frames, fraction, seed)
    # GazeFollow test files have no in/out column; keep the layout of the input.
    write_split = "test" if format == "gazefollow" and frames.report.format.endswith("-test") else split_name
    suffix = "" if format == "vat" else annotations.suffix
    for name, part in (("labelled", labelled), ("unlabelled", unlabelled)):
        target = out / f"{name}{suffix}"
        try:
            write_annotations(part, target, format, split=write_split)
        except ValueError as err:
            raise GazelabError(f"cannot write {target}: {err}") from None
        typer.echo(f"{name}: {_unit_counts(part)} -> {target}")
    if frames.report.rows_skipped:
        typer.echo(f"note: {frames.report.rows_skipped} rows were rejected on reading (see `gazelab data check`)")
