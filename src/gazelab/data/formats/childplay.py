"""ChildPlay: ``annotations/<split>/*.csv`` (with a header), one row per (clip, frame, person).

Columns used: clip, frame, person_id, gaze_class, gaze_x, gaze_y (px), bbox_x, bbox_y, bbox_width,
bbox_height (head, xywh px). ``inside_visible`` is in frame, ``outside_frame`` out of it; the classes the
benchmark excludes (gaze shifts, occluded/uncertain targets, closed eyes) are skipped with their reason.
Frame images: clip ``"<video_id>_<start>-<end>[-downsample]"`` -> ``images/<clip>/<video_id>_<start+frame-1>.jpg``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from gazelab.data.formats._common import (
    ImageSizes,
    RowError,
    clamp_pixel_box,
    csv_error,
    new_frame,
    parse_float,
    pixel_box_to_box,
)
from gazelab.data.report import Annotations, LoadReport
from gazelab.errors import DataError, GazelabError
from gazelab.types import Frame, Person

FORMAT = "childplay"
EXCLUDED_CLASSES = ("gaze_shift", "inside_occluded", "inside_uncertain", "eyes_closed")
COLUMNS = ("clip", "frame", "person_id", "gaze_class", "gaze_x", "gaze_y",
           "bbox_x", "bbox_y", "bbox_width", "bbox_height")  # fmt: skip


def frame_image_path(clip: str, frame: int) -> tuple[str, int]:
    """Image path (relative to the root) and absolute frame number of 1-based ``frame`` in ``clip``."""
    video_id, _, span = clip.rpartition("_")
    try:
        start = int(span.split("-")[0])
    except ValueError:
        raise RowError("malformed row", f"clip name {clip!r} is not <video_id>_<start>-<end>") from None
    if not video_id:
        raise RowError("malformed row", f"clip name {clip!r} is not <video_id>_<start>-<end>")
    number = start + frame - 1
    return f"images/{clip}/{video_id}_{number}.jpg", number


def read_childplay(root: str | Path, split: str = "test", check_images: bool | None = None) -> Annotations:
    root = Path(root)
    ann_dir = root / "annotations" / split
    if not ann_dir.is_dir():
        raise GazelabError(f"{ann_dir}: no such folder — ROOT must hold annotations/{split}/*.csv")
    report = LoadReport(format=FORMAT, source=str(ann_dir))
    rows: list[tuple[Path, int, dict[str, str]]] = []
    for csv_path in sorted(ann_dir.glob("*.csv")):
        with csv_path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
            reader = csv.DictReader(handle)
            try:
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise DataError(f"{csv_path}: not a ChildPlay annotation file, missing columns {missing}")
                rows.extend((csv_path, line, row) for line, row in enumerate(reader, start=2))
            except csv.Error as err:
                raise csv_error(csv_path, reader.line_num, err) from None
    sizes = ImageSizes(root, check_images)
    probe = []
    for _, _, row in rows[: ImageSizes.PROBE]:
        try:
            probe.append(frame_image_path(row["clip"], int(float(row["frame"])))[0])
        except (RowError, ValueError):
            continue
    sizes.decide(probe)

    frames: dict[str, Frame] = {}
    for csv_path, line, row in rows:
        report.rows_read += 1
        try:
            rel, number, person = _parse_row(row, sizes, report)
        except RowError as err:
            report.skip(csv_path, line, err.reason, err.detail)
            continue
        report.rows_kept += 1
        frame = frames.get(rel)
        if frame is None:
            frame = frames[rel] = new_frame(rel, sizes, root, frame_index=number, clip=row["clip"])
        frame.people.append(person)
    ordered = sorted(frames.values(), key=lambda f: (f.clip or "", f.frame_index or 0))
    return Annotations(ordered, report)


def _parse_row(row: dict[str, str], sizes: ImageSizes, report: LoadReport) -> tuple[str, int, Person]:
    if any(row.get(c) is None for c in COLUMNS):
        raise RowError("malformed row", "missing values")
    gaze_class = row["gaze_class"].strip()
    if gaze_class in EXCLUDED_CLASSES:
        raise RowError(f"excluded gaze class ({gaze_class})")
    frame = parse_float(row["frame"], "frame")
    rel, number = frame_image_path(row["clip"].strip(), int(frame))
    x, y, w, h = (parse_float(row[c], c) for c in ("bbox_x", "bbox_y", "bbox_width", "bbox_height"))
    size = sizes.size(rel)
    head = clamp_pixel_box((x, y, x + w, y + h), size, report)
    inout = gaze_class == "inside_visible"
    gaze: tuple[tuple[float, float], ...] = ()
    extra: dict[str, object] = {"gaze_class": gaze_class}
    if inout:
        gx, gy = parse_float(row["gaze_x"], "gaze_x"), parse_float(row["gaze_y"], "gaze_y")
        if size is None:
            extra["gaze_px"] = (gx, gy)
        elif not (0 <= gx <= size[0] and 0 <= gy <= size[1]):
            raise RowError("gaze outside image while in frame", f"gaze=({gx}, {gy}) size={size}")
        else:
            gaze = ((gx / size[0], gy / size[1]),)
    person = Person(
        head=pixel_box_to_box(head, size) if size else None,
        head_px=None if size else head,
        gaze=gaze,
        inout=inout,
        track_id=row["person_id"].strip(),
        person_id=row["person_id"].strip(),
        extra=extra,
    )
    return rel, number, person
