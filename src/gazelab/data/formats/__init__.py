"""Annotation files -> ``list[Frame]`` (and back, for the formats gazelab writes).

:func:`read_annotations` is the single entry point the CLI and datasets use; it picks the reader by name or
recognises the format from the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gazelab.data.formats.childplay import read_childplay
from gazelab.data.formats.gazefollow import read_gazefollow, write_gazefollow
from gazelab.data.formats.gazefollow_labels import attach_gazefollow_labels, read_gazefollow_labels
from gazelab.data.formats.gazehoi import read_gazehoi, write_gazehoi
from gazelab.data.formats.gazelle_json import read_gazelle_json
from gazelab.data.formats.vat import read_vat, write_vat
from gazelab.data.report import Annotations
from gazelab.errors import GazelabError
from gazelab.types import Frame

FORMATS = ("gazefollow", "gazelle-json", "vat", "childplay", "gazehoi")
WRITABLE_FORMATS = ("gazefollow", "vat", "gazehoi")

__all__ = [
    "FORMATS", "WRITABLE_FORMATS", "detect_format", "read_annotations", "write_annotations",
    "read_childplay", "read_gazefollow", "read_gazehoi", "read_gazelle_json", "read_vat",
    "write_gazefollow", "write_gazehoi", "write_vat", "attach_gazefollow_labels", "read_gazefollow_labels",
]  # fmt: skip


def detect_format(path: str | Path) -> str:
    """Guess the format: a folder is a VAT or ChildPlay tree, a ``.json`` is Gaze-LLE's, a CSV with a
    GazeHOI header is GazeHOI, anything else is tried as GazeFollow."""
    path = Path(path)
    if path.is_dir():
        annotations = path / "annotations"
        if any(annotations.glob("*/*.csv")):
            return "childplay"
        if any(annotations.glob("*/*/*/*.txt")):
            return "vat"
        raise GazelabError(f"{path}: folder is neither a VAT nor a ChildPlay tree — pass --format")
    if path.suffix.lower() == ".json":
        return "gazelle-json"
    if path.is_file():
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        if first.lower().startswith("file_name,"):
            return "gazehoi"
    return "gazefollow"


def read_annotations(
    path: str | Path,
    format: str | None = None,
    root: str | Path | None = None,
    split: str = "test",
    check_images: bool | None = None,
    smooth: bool = True,
) -> Annotations:
    """Read any supported format. ``path`` is the annotation file (GazeFollow, Gaze-LLE JSON, GazeHOI) or the
    dataset root (VAT, ChildPlay; ``split`` picks ``annotations/<split>``). ``smooth`` applies to VAT only."""
    path = Path(path)
    if not path.exists():
        raise GazelabError(f"{path}: no such file or folder")
    format = format or detect_format(path)
    if format == "gazefollow":
        return read_gazefollow(path, root=root, check_images=check_images)
    if format == "gazelle-json":
        return read_gazelle_json(path, root=root)
    if format == "gazehoi":
        return read_gazehoi(path, root=root, check_images=check_images)
    if format == "vat":
        return read_vat(path, split=split, smooth=smooth, check_images=check_images)
    if format == "childplay":
        return read_childplay(path, split=split, check_images=check_images)
    raise GazelabError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")


def write_annotations(frames: Sequence[Frame], path: str | Path, format: str, split: str = "train") -> None:
    """Write frames in ``format``: a file for GazeFollow/GazeHOI, the dataset root for VAT."""
    if format == "gazefollow":
        write_gazefollow(frames, path, split=split)
    elif format == "gazehoi":
        write_gazehoi(frames, path)
    elif format == "vat":
        write_vat(frames, path, split=split)
    else:
        raise GazelabError(f"cannot write format {format!r}; writable: {', '.join(WRITABLE_FORMATS)}")
