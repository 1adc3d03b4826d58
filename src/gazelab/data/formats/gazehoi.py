"""GazeHOI (semantic gaze targets, SemGaze): ``<split>-annotations.csv`` with a header, plus ``vocab2id.json``.

Columns: file_name, pair_id, object, aux_object (a list literal of extra acceptable labels), o_xmin..o_ymax
(object box px), oc_x, oc_y (object centre px = the gaze point), h_xmin..h_ymax (head box px; -1 = not
visible, the row is dropped). ``aux_object`` is parsed with :func:`ast.literal_eval` — never ``eval``.
Every GazeHOI target is inside the frame.
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from gazelab.data.formats._common import (
    ImageSizes,
    RowError,
    clamp_pixel_box,
    csv_error,
    new_frame,
    parse_float,
    pixel_box_to_box,
    pixel_text,
    require_file,
    safe_relative,
)
from gazelab.data.report import Annotations, LoadReport
from gazelab.errors import DataError
from gazelab.types import Frame, Person

FORMAT = "gazehoi"
COLUMNS = (
    "file_name", "pair_id", "object", "aux_object", "o_xmin", "o_ymin", "o_xmax", "o_ymax",
    "oc_x", "oc_y", "h_xmin", "h_ymin", "h_xmax", "h_ymax",
)  # fmt: skip


MAX_LABELS_TEXT = 10_000
"""Longest ``aux_object`` cell parsed: :func:`ast.literal_eval` on long nested or chained input exhausts memory or
the recursion limit (found by fuzzing), and real cells are a few labels long."""


def _parse_labels(text: str) -> tuple[str, ...]:
    text = text.strip()
    if not text:
        return ()
    if len(text) > MAX_LABELS_TEXT:
        raise RowError("malformed row", f"aux_object is {len(text)} characters long, not a list of labels")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise RowError("malformed row", f"aux_object={text[:80]!r} is not a list literal") from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RowError("malformed row", f"aux_object={text!r} is not a list of labels")
    return tuple(value)


def read_gazehoi(path: str | Path, root: str | Path | None = None, check_images: bool | None = None) -> Annotations:
    """Read a GazeHOI annotation CSV; image paths are relative to ``root`` (default: the CSV's folder)."""
    path = require_file(path, "GazeHOI annotation file")
    root = Path(root) if root is not None else path.parent
    report = LoadReport(format=FORMAT, source=str(path))
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: not a GazeHOI file, missing columns {missing}")
            rows = list(reader)
        except csv.Error as err:
            raise csv_error(path, reader.line_num, err) from None
    sizes = ImageSizes(root, check_images)
    sizes.decide([r.get("file_name") or "" for r in rows])
    frames: dict[str, Frame] = {}
    for line, row in enumerate(rows, start=2):
        report.rows_read += 1
        try:
            rel, person = _parse_row(row, root, sizes, report)
        except RowError as err:
            report.skip(path, line, err.reason, err.detail)
            continue
        report.rows_kept += 1
        frame = frames.get(rel)
        if frame is None:
            frame = frames[rel] = new_frame(rel, sizes, root)
        frame.people.append(person)
    return Annotations(list(frames.values()), report)


def _parse_row(row: dict[str, str], root: Path, sizes: ImageSizes, report: LoadReport) -> tuple[str, Person]:
    if any(row.get(c) is None for c in COLUMNS):
        raise RowError("malformed row", "missing values")
    rel = row["file_name"].strip()
    safe_relative(root, rel)
    head_px = tuple(parse_float(row[c], c) for c in ("h_xmin", "h_ymin", "h_xmax", "h_ymax"))
    if all(v == -1 for v in head_px):
        raise RowError("head not visible")
    obj_px = tuple(parse_float(row[c], c) for c in ("o_xmin", "o_ymin", "o_xmax", "o_ymax"))
    centre = (parse_float(row["oc_x"], "oc_x"), parse_float(row["oc_y"], "oc_y"))
    label = row["object"].strip()
    if not label:
        raise RowError("malformed row", "empty object label")
    labels = (label, *(a for a in _parse_labels(row["aux_object"]) if a != label))
    size = sizes.size(rel)
    head = clamp_pixel_box(head_px, size, report)  # type: ignore[arg-type]
    if obj_px[2] < obj_px[0] or obj_px[3] < obj_px[1]:
        raise RowError("inverted object box", str(obj_px))
    if size is not None and not (0 <= centre[0] <= size[0] and 0 <= centre[1] <= size[1]):
        raise RowError("gaze outside image while in frame", f"object centre {centre} size={size}")
    if size is None:
        return rel, Person(head=None, head_px=head, inout=True, label=label, labels=labels,
                           person_id=row["pair_id"].strip(),
                           extra={"gaze_px": centre, "target_box_px": obj_px})  # fmt: skip
    target = pixel_box_to_box(clamp_pixel_box(obj_px, size, report), size)
    gaze = (centre[0] / size[0], centre[1] / size[1])
    return rel, Person(head=pixel_box_to_box(head, size), gaze=(gaze,), inout=True, label=label, labels=labels,
                       target_box=target, person_id=row["pair_id"].strip())  # fmt: skip


def write_gazehoi(frames: Sequence[Frame], path: str | Path) -> Path:
    """Write people that have a label, head and target box as a GazeHOI CSV (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for frame in frames:
            if frame.size is None:
                raise ValueError(f"{frame.path}: write_gazehoi needs the frame size")
            width, height = frame.size
            for index, person in enumerate(frame.people):
                if person.label is None or person.head is None or person.target_box is None:
                    continue
                if not person.gaze or person.inout is False:
                    continue
                gx, gy = person.gaze_point  # type: ignore[misc]
                aux = [label for label in person.labels if label != person.label]
                writer.writerow([
                    frame.path, person.person_id or str(index), person.label, json.dumps(aux),
                    *map(pixel_text, person.target_box.to_pixels(width, height)),
                    pixel_text(gx * width), pixel_text(gy * height),
                    *map(pixel_text, person.head.to_pixels(width, height)),
                ])  # fmt: skip
    tmp.replace(path)
    return path


def vocab_to_ids(labels: Iterable[str]) -> dict[str, int]:
    """``vocab2id`` mapping: each distinct label's id is its alphabetical rank (the SemGaze convention)."""
    return {label: i for i, label in enumerate(sorted(set(labels)))}


def write_vocab(labels: Iterable[str], path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(vocab_to_ids(labels), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomically, as the annotation files
    return path


def read_vocab(path: str | Path) -> dict[str, int]:
    """Read ``vocab2id.json`` and check that ids are the alphabetical ranks (what the embeddings assume)."""
    path = require_file(path, "vocab2id.json")
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(vocab, dict) or vocab != vocab_to_ids(vocab):
        raise DataError(f"{path}: ids are not the alphabetical rank of the labels — rebuild it with write_vocab")
    return vocab
