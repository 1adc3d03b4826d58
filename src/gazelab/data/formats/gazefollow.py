"""GazeFollow annotation files (header-less CSV, one row per person and annotator).

Every published column layout is recognised from the file itself (see ``../shared/reference/formats.md``):

====================  =====  ===================================================================
variant               cols   layout after ``path, idx, body(4 norm), eye(2), gaze(2), head(4 px)``
====================  =====  ===================================================================
release-train         17     inout, source, meta   (also Sharingan/SemGaze ``*_annotations_new``)
release-test          16     source, meta          (no inout: every test person is in frame)
chong-train           16     inout, meta
chong-test            15     meta
persondet-train       21     inout, meta/source, meta/ori_name, body x1 y1 x2 y2 (px, <0 = none)
persondet-test        20     meta/source, meta/ori_name, body x1 y1 x2 y2
====================  =====  ===================================================================

Rows of the same person (same image and ``eye_x``) are its annotators: the test split has up to 20.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
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
from gazelab.types import Box, Frame, Person

FORMAT = "gazefollow"


@dataclass(frozen=True)
class Variant:
    name: str
    columns: int
    inout: int | None
    """Index of the inout column, None when the split has none (all in frame)."""
    text: tuple[int, ...]
    """Indices of the free-text columns kept for writing back (source/meta/ori_name)."""
    body_px: int | None = None
    """Index of the first detected-body pixel column (persondet files)."""


VARIANTS = {
    v.name: v
    for v in (
        Variant("release-train", 17, inout=14, text=(15, 16)),
        Variant("release-test", 16, inout=None, text=(14, 15)),
        Variant("chong-train", 16, inout=14, text=(15,)),
        Variant("chong-test", 15, inout=None, text=(14,)),
        Variant("persondet-train", 21, inout=14, text=(15, 16), body_px=17),
        Variant("persondet-test", 20, inout=None, text=(14, 15), body_px=16),
    )
}


def _is_inout(text: str) -> bool:
    try:
        return float(text) in (-1.0, 0.0, 1.0)
    except ValueError:
        return False


def detect_variant(rows: Sequence[Sequence[str]], source: str = "") -> Variant:
    """The column layout used by most rows (16- and 20-column files differ by whether column 14 is inout)."""
    counts: dict[int, int] = {}
    for row in rows:
        counts[len(row)] = counts.get(len(row), 0) + 1
    if not counts:
        raise DataError(f"{source}: annotation file is empty")
    ncols = max(counts, key=lambda n: counts[n])
    candidates = [v for v in VARIANTS.values() if v.columns == ncols]
    if not candidates:
        known = sorted({v.columns for v in VARIANTS.values()})
        raise DataError(f"{source}: rows have {ncols} columns, not a GazeFollow layout ({known}) — check --format")
    if len(candidates) == 1:
        return candidates[0]
    sample = [r for r in rows if len(r) == ncols][:200]
    with_inout = sum(_is_inout(r[14]) for r in sample) > len(sample) / 2
    return next(v for v in candidates if (v.inout is not None) == with_inout)


def _read_rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return list(reader)
    except csv.Error as err:
        raise csv_error(path, reader.line_num, err) from None


def read_gazefollow(
    path: str | Path,
    root: str | Path | None = None,
    check_images: bool | None = None,
    variant: str | None = None,
) -> Annotations:
    """Read a GazeFollow-format file into frames (one per image) with people grouped over annotators.

    ``root`` is the dataset root the image paths are relative to (default: the file's folder).
    ``check_images``: see :class:`ImageSizes`; without images head boxes stay in pixels
    (``Person.head_px``, negative coordinates clamped to 0) and frame sizes are None.
    """
    path = require_file(path, "GazeFollow annotation file")
    root = Path(root) if root is not None else path.parent
    rows = _read_rows(path)
    if rows and rows[0] and rows[0][0].strip().lower() == "path":
        rows = [[]] + rows[1:]  # a header line: keep line numbers, skip it
    chosen = VARIANTS[variant] if variant else detect_variant([r for r in rows if r], str(path))
    report = LoadReport(format=f"{FORMAT}:{chosen.name}", source=str(path))
    sizes = ImageSizes(root, check_images)
    sizes.decide([r[0] for r in rows if r])

    frames: dict[str, Frame] = {}
    people: dict[tuple[str, float], Person] = {}
    for line, row in enumerate(rows, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        report.rows_read += 1
        try:
            rel, key, person, point = _parse_row(row, chosen, sizes, report)
        except RowError as err:
            report.skip(path, line, err.reason, err.detail)
            continue
        report.rows_kept += 1
        frame = frames.get(rel)
        if frame is None:
            frame = frames[rel] = new_frame(rel, sizes, root)
        existing = people.get(key)
        if existing is None:
            people[key] = person
            frame.people.append(person)
        elif point is not None:
            existing.gaze = existing.gaze + (point,)
    return Annotations(list(frames.values()), report)


def _parse_row(
    row: list[str], variant: Variant, sizes: ImageSizes, report: LoadReport
) -> tuple[str, tuple[str, float], Person, tuple[float, float] | None]:
    if len(row) != variant.columns:
        raise RowError("malformed row", f"{len(row)} columns, expected {variant.columns} ({variant.name})")
    rel = row[0].strip()
    safe_relative(sizes.root, rel)
    body_xywh = tuple(parse_float(row[i], "body") for i in range(2, 6))
    eye = (parse_float(row[6], "eye_x"), parse_float(row[7], "eye_y"))
    gaze = (parse_float(row[8], "gaze_x"), parse_float(row[9], "gaze_y"))
    head_px = tuple(parse_float(row[i], "head box") for i in range(10, 14))
    inout = True
    if variant.inout is not None:
        flag = parse_float(row[variant.inout], "inout")
        if flag == -1:
            raise RowError("invalid inout (-1)")
        if flag not in (0.0, 1.0):
            raise RowError("malformed row", f"inout={row[variant.inout]!r}")
        inout = flag == 1.0
    if inout and not (0.0 <= gaze[0] <= 1.0 and 0.0 <= gaze[1] <= 1.0):
        raise RowError("gaze outside image while in frame", f"gaze=({gaze[0]}, {gaze[1]})")
    size = sizes.size(rel)
    clamped = clamp_pixel_box(head_px, size, report)  # type: ignore[arg-type]
    extra: dict[str, object] = {"text": tuple(row[i] for i in variant.text), "variant": variant.name}
    if variant.body_px is not None:
        extra["body_px"] = tuple(parse_float(row[i], "body box") for i in range(variant.body_px, variant.body_px + 4))
    body = None
    if body_xywh[2] > 0 and body_xywh[3] > 0:
        body = Box.from_xywh(*body_xywh)
    person = Person(
        head=pixel_box_to_box(clamped, size) if size else None,
        head_px=None if size else clamped,
        gaze=(gaze,) if inout else (),
        inout=inout,
        person_id=row[1].strip(),
        eye=eye,
        body=body,
        extra=extra,
    )
    return rel, (rel, eye[0]), person, gaze if inout else None


def _exact_text(value: float) -> str:
    """Shortest text that reads back as the same float; integral values without a trailing ``.0``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def write_gazefollow(frames: Sequence[Frame], path: str | Path, split: str = "train") -> Path:
    """Write frames as a GazeFollow release file: 17 columns for ``train``, 16 (no inout) for ``test``.

    One row per annotator. Head boxes are written in pixels (frames need their size, or the person its
    ``head_px``); pixel values are rounded to 1e-6 px so whole-pixel boxes stay whole. Written atomically.
    """
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    path = Path(path)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for frame in frames:
        for index, person in enumerate(frame.people):
            writer.writerows(_person_rows(frame, person, index, split))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    tmp.replace(path)
    return path


def _person_rows(frame: Frame, person: Person, index: int, split: str) -> list[list[str]]:
    if person.head is not None and frame.size is not None:
        head_px = person.head.to_pixels(*frame.size)
    elif person.head_px is not None:
        head_px = person.head_px
    else:
        raise ValueError(f"{frame.path}: person {index} has no head box in pixels (frame size unknown)")
    if split == "test" and person.inout is False:
        raise ValueError(f"{frame.path}: GazeFollow test rows cannot be out of frame")
    body = person.body.as_tuple() if person.body is not None else (0.0, 0.0, 0.0, 0.0)
    # xyxy -> xywh: round away the float noise of the subtraction (files hold 2-5 decimals).
    body_xywh = tuple(round(v, 12) for v in (body[0], body[1], body[2] - body[0], body[3] - body[1]))
    eye = person.eye if person.eye is not None else (person.head.center if person.head else (0.0, 0.0))
    text = list(person.extra.get("text", ()))
    source, meta = (text + ["synthetic", "False"])[:2] if len(text) != 1 else ("synthetic", text[0])
    points = list(person.gaze) if person.inout is not False and person.gaze else [(-1.0, -1.0)]
    rows = []
    for gaze in points:
        numbers = [*body_xywh, *eye, *gaze]
        row = [frame.path, person.person_id or str(index), *map(_exact_text, numbers)]
        row += [pixel_text(v) for v in head_px]
        if split == "train":
            row.append("1" if person.inout is not False else "0")
        rows.append(row + [source, meta])
    return rows
