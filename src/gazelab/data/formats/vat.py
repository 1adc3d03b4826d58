"""VideoAttentionTarget (VAT) trees: one header-less CSV per head track.

```
ROOT/annotations/<split>/<show>/<clip>/<person>.txt   frame file, xmin, ymin, xmax, ymax (head px), gazex, gazey (px)
ROOT/images/<show>/<clip>/<frame file>
```
``gazex, gazey = -1, -1`` means the target is outside the frame. The benchmark code smooths each track's head
boxes with a moving average over 11 frames (edges padded by repeating the first/last box 5 times); that is on
by default here too (``smooth=True``) so evaluation matches published numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gazelab.data.formats._common import (
    ImageSizes,
    RowError,
    clamp_pixel_box,
    csv_error,
    new_frame,
    parse_float,
    pixel_box_to_box,
    pixel_text,
)
from gazelab.data.report import Annotations, LoadReport
from gazelab.errors import GazelabError
from gazelab.types import Frame, Person

FORMAT = "vat"
SMOOTH_WINDOW = 11


def smooth_boxes(boxes: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Moving average of a track's boxes ([N, 4]) with edge padding by repetition, as the VAT benchmark."""
    if len(boxes) == 0:
        return boxes
    pad = window // 2
    padded = np.concatenate([np.repeat(boxes[:1], pad, 0), boxes, np.repeat(boxes[-1:], pad, 0)])
    kernel = np.ones(window) / window
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(boxes.shape[1])], axis=1)


def _frame_index(name: str) -> int | None:
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else None


def read_vat(
    root: str | Path, split: str = "test", smooth: bool = True, check_images: bool | None = None
) -> Annotations:
    """Read ``root/annotations/<split>`` into frames (one per annotated image), people keyed by track.

    ``Frame.clip`` is ``"<show>/<clip>"``, ``Person.track_id`` the track file's stem. Frames are ordered by
    clip, then frame index. ``check_images`` as in :class:`ImageSizes` (``None``: auto).
    """
    root = Path(root)
    ann_dir = root / "annotations" / split
    if not ann_dir.is_dir():
        raise GazelabError(f"{ann_dir}: no such folder — ROOT must hold annotations/{split}/<show>/<clip>/*.txt")
    report = LoadReport(format=FORMAT, source=str(ann_dir))
    track_files = sorted(ann_dir.glob("*/*/*.txt"))
    sizes = ImageSizes(root, check_images)
    probe = []
    for track in track_files[: ImageSizes.PROBE]:
        with track.open(encoding="utf-8", errors="replace", newline="") as handle:
            try:
                first = next(csv.reader(handle), None)
            except csv.Error as err:
                raise csv_error(track, 1, err) from None
        if first:
            probe.append(f"images/{track.parent.parent.name}/{track.parent.name}/{first[0].strip()}")
    sizes.decide(probe)

    frames: dict[tuple[str, str], Frame] = {}
    for track in track_files:
        clip = f"{track.parent.parent.name}/{track.parent.name}"
        for frame_name, person in _read_track(track, clip, smooth, sizes, report):
            key = (clip, frame_name)
            frame = frames.get(key)
            if frame is None:
                rel = f"images/{clip}/{frame_name}"
                frame = frames[key] = new_frame(rel, sizes, root, frame_index=_frame_index(frame_name), clip=clip)
            frame.people.append(person)
    ordered = sorted(frames.values(), key=lambda f: (f.clip or "", f.frame_index or 0, f.path))
    return Annotations(ordered, report)


def _read_track(
    track: Path, clip: str, smooth: bool, sizes: ImageSizes, report: LoadReport
) -> list[tuple[str, Person]]:
    parsed: list[tuple[int, str, tuple[float, ...], tuple[float, float]]] = []
    with track.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        try:
            rows = list(reader)
        except csv.Error as err:
            raise csv_error(track, reader.line_num, err) from None
        for line, row in enumerate(rows, start=1):
            if not row or all(not c.strip() for c in row):
                continue
            report.rows_read += 1
            try:
                if len(row) != 7:
                    raise RowError("malformed row", f"{len(row)} columns, expected 7")
                box = tuple(parse_float(v, "head box") for v in row[1:5])
                gaze = (parse_float(row[5], "gaze_x"), parse_float(row[6], "gaze_y"))
                if box[2] < box[0] or box[3] < box[1]:
                    raise RowError("inverted head box", str(box))
                parsed.append((line, row[0].strip(), box, gaze))
            except RowError as err:
                report.skip(track, line, err.reason, err.detail)
    if not parsed:
        return []
    boxes = np.array([p[2] for p in parsed], dtype=np.float64)
    if smooth:
        boxes = smooth_boxes(boxes)
    out = []
    for (line, frame_name, _, gaze), box in zip(parsed, boxes):
        try:
            person = _person(frame_name, clip, tuple(box.tolist()), gaze, track.stem, sizes, report)
        except RowError as err:
            report.skip(track, line, err.reason, err.detail)
            continue
        report.rows_kept += 1
        out.append((frame_name, person))
    return out


def _person(
    frame_name: str,
    clip: str,
    box: tuple[float, ...],
    gaze: tuple[float, float],
    track_id: str,
    sizes: ImageSizes,
    report: LoadReport,
) -> Person:
    size = sizes.size(f"images/{clip}/{frame_name}")
    head = clamp_pixel_box(box, size, report)  # type: ignore[arg-type]
    inout = not (gaze[0] == -1 and gaze[1] == -1)
    points: tuple[tuple[float, float], ...] = ()
    if inout:
        gx, gy = gaze
        if gx < 0 or gy < 0:
            if gx < -1 or gy < -1:
                raise RowError("gaze outside image while in frame", f"gaze=({gx}, {gy})")
            gx, gy = max(gx, 0.0), max(gy, 0.0)  # the benchmark clamps slightly negative in-frame points
            report.note("gaze point clamped to 0")
        if size is not None:
            if gx > size[0] or gy > size[1]:
                raise RowError("gaze outside image while in frame", f"gaze=({gx}, {gy}) size={size}")
            points = ((gx / size[0], gy / size[1]),)
        else:
            points = ((gx, gy),)
    return Person(
        head=pixel_box_to_box(head, size) if size else None,
        head_px=None if size else head,
        gaze=points if size else (),
        inout=inout,
        track_id=track_id,
        extra={} if size else {"gaze_px": points},
    )


def write_vat(frames: Sequence[Frame], root: str | Path, split: str) -> list[Path]:
    """Write ``root/annotations/<split>/<show>/<clip>/<track>.txt`` for frames of VAT-style clips.

    Frames need ``clip`` (``"<show>/<clip>"``), their size, and people with ``track_id``; the image file name
    is the last part of ``Frame.path``. Returns the written track files.
    """
    root = Path(root)
    tracks: dict[tuple[str, str], list[list[str]]] = {}
    for frame in frames:
        if frame.clip is None or frame.size is None:
            raise ValueError(f"{frame.path}: write_vat needs Frame.clip and the frame size")
        width, height = frame.size
        for person in frame.people:
            if person.track_id is None or person.head is None:
                raise ValueError(f"{frame.path}: write_vat needs a track_id and a head box for every person")
            if person.inout is not False and person.gaze:
                gx, gy = person.gaze_point  # type: ignore[misc]
                gaze = (gx * width, gy * height)
            else:
                gaze = (-1.0, -1.0)
            head = person.head.to_pixels(width, height)
            row = [Path(frame.path).name, *map(pixel_text, head), *map(pixel_text, gaze)]
            tracks.setdefault((frame.clip, person.track_id), []).append(row)
    written = []
    for (clip, track_id), rows in sorted(tracks.items()):
        path = root / "annotations" / split / clip / f"{track_id}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
