"""Gaze-LLE's preprocessed GazeFollow/VAT JSON: one entry per image with its size and heads.

Entry: ``{path, width, height, heads: [{bbox (px), bbox_norm, gazex, gazey (px lists), gazex_norm,
gazey_norm (lists, one per annotator), inout, head_id?, num_annot?}]}``. Sizes come from the file, so no image
needs to be opened. Users who ran Gaze-LLE's preprocessing have these on disk.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gazelab.data.formats._common import RowError, clamp_pixel_box, require_file, safe_relative
from gazelab.data.report import Annotations, LoadReport
from gazelab.errors import DataError
from gazelab.types import Box, Frame, Person

FORMAT = "gazelle-json"


def read_gazelle_json(path: str | Path, root: str | Path | None = None) -> Annotations:
    """Read a Gaze-LLE JSON file; image paths are relative to ``root`` (default: the file's folder)."""
    path = require_file(path, "Gaze-LLE JSON file")
    root = Path(root) if root is not None else path.parent
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be a Gaze-LLE file") from None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of image entries")
    report = LoadReport(format=FORMAT, source=str(path))
    frames = []
    for index, entry in enumerate(entries):
        try:
            frame = _frame(entry, root, report)
        except RowError as err:
            report.rows_read += 1
            report.skip(path, index, err.reason, err.detail)
            continue
        frames.append(frame)
    return Annotations(frames, report)


def _number(value: Any, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise RowError("non-finite value" if isinstance(value, float) else "malformed row", f"{what}={value!r}")
    return float(value)


def _frame(entry: Any, root: Path, report: LoadReport) -> Frame:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise RowError("malformed row", "entry without a path")
    rel = entry["path"]
    safe_relative(root, rel)
    width, height = int(_number(entry.get("width"), "width")), int(_number(entry.get("height"), "height"))
    if width <= 0 or height <= 0:
        raise RowError("malformed row", f"image size {width}x{height}")
    frame = Frame(path=rel, width=width, height=height, root=root)
    heads = entry.get("heads", [])
    if not isinstance(heads, list):
        raise RowError("malformed row", "heads is not a list")
    for head_index, head in enumerate(heads):
        report.rows_read += 1
        try:
            frame.people.append(_person(head, (width, height), report))
            report.rows_kept += 1
        except RowError as err:
            report.skip(rel, head_index, err.reason, err.detail)
    return frame


def _person(head: Any, size: tuple[int, int], report: LoadReport) -> Person:
    if not isinstance(head, dict):
        raise RowError("malformed row", "head entry is not an object")
    bbox = head.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise RowError("malformed row", "head without a 4-value bbox")
    box = clamp_pixel_box(tuple(_number(v, "bbox") for v in bbox), size, report)  # type: ignore[arg-type]
    xs, ys = head.get("gazex_norm", []), head.get("gazey_norm", [])
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise RowError("malformed row", "gazex_norm/gazey_norm are not lists of equal length")
    inout = bool(_number(head.get("inout", 1), "inout") == 1)
    points = tuple((_number(x, "gazex_norm"), _number(y, "gazey_norm")) for x, y in zip(xs, ys))
    if inout:
        if not points:
            raise RowError("malformed row", "in-frame head without gaze points")
        if not all(0 <= x <= 1 and 0 <= y <= 1 for x, y in points):
            raise RowError("gaze outside image while in frame", str(points))
    head_id = head.get("head_id")
    return Person(
        head=Box.from_pixels(*box, width=size[0], height=size[1]),
        gaze=points if inout else (),
        inout=inout,
        person_id=None if head_id is None else str(head_id),
    )
