"""Per-frame results on disk, written as they come (a long video never holds its rows in memory).

- CSV, one row per person per processed frame, pixel coordinates of the source frames::

      frame,time_s,track_id,head_x1,head_y1,head_x2,head_y2,gaze_x,gaze_y,inout,label

  ``frame`` is the index in the source (before stride); ``inout`` and ``label`` are empty when the model has
  no such output. The gaze point is written even when ``inout`` < 0.5 (filter on it as suits the use).
- JSON, ``{"video": ..., "width", "height", "fps", "model", "frames": [{"frame", "time_s", "name", "people":
  [{"track_id", "head", "head_px", "point", "point_px", "inout", "label"}]}]}`` with normalized and pixel
  values (as ``gazelab predict``'s JSON).

Both are streamed into ``.<name>.part`` files beside their targets and renamed only when the run finished, so
an interrupted run never leaves a complete-looking partial CSV (or a JSON closed after a crash).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from gazelab.video.runner import FrameResult

CSV_COLUMNS = (
    "frame", "time_s", "track_id", "head_x1", "head_y1", "head_x2", "head_y2", "gaze_x", "gaze_y", "inout", "label",
)  # fmt: skip


def _r(values: tuple[float, ...], digits: int) -> list[float]:
    return [round(v, digits) for v in values]


class ResultWriter:
    """Streams :class:`FrameResult` s to a CSV and/or a JSON file (either may be None)."""

    def __init__(self, csv_path: Path | None, json_path: Path | None, header: dict[str, Any]) -> None:
        self.size = (int(header["width"]), int(header["height"]))
        self.rows = 0
        self._csv_file = self._json_file = None
        self._first_frame = True
        self._targets = [p for p in (csv_path, json_path) if p is not None]
        """Final names; the files are written as ``.<name>.part`` and renamed by :meth:`close`."""
        if csv_path is not None:
            self._csv_file = _partial_open(csv_path, newline="")
            self._csv = csv.writer(self._csv_file)
            self._csv.writerow(CSV_COLUMNS)
        if json_path is not None:
            self._json_file = _partial_open(json_path)
            opening = json.dumps({**header, "frames": []}, indent=1)
            self._json_file.write(opening[: opening.rindex("[") + 1] + "\n")

    def write(self, result: FrameResult) -> None:
        width, height = self.size
        people = []
        for person in result.people:
            head_px = person.head.to_pixels(width, height)
            point_px = (person.point[0] * width, person.point[1] * height)
            inout = None if person.inout is None else round(person.inout, 4)
            if self._csv_file is not None:
                self._csv.writerow([
                    result.index, round(result.time, 4), person.track_id, *_r(head_px, 1), *_r(point_px, 1),
                    "" if inout is None else inout, person.label or "",
                ])  # fmt: skip
            people.append({
                "track_id": person.track_id, "head": _r(person.head.as_tuple(), 6), "head_px": _r(head_px, 1),
                "point": _r(person.point, 6), "point_px": _r(point_px, 1), "inout": inout, "label": person.label,
            })  # fmt: skip
            self.rows += 1
        if self._json_file is not None:
            record = {"frame": result.index, "time_s": round(result.time, 4), "name": result.name, "people": people}
            self._json_file.write(("  " if self._first_frame else ",\n  ") + json.dumps(record))
            self._first_frame = False

    def close(self) -> None:
        """Finish both files and move them to their final names."""
        if self._json_file is not None:
            self._json_file.write("\n ]\n}\n")
        self._close_handles()
        for path in self._targets:
            os.replace(_partial(path), path)

    def discard(self) -> None:
        """Give up: delete the unfinished files (the final names are left as they were)."""
        self._close_handles()
        for path in self._targets:
            _partial(path).unlink(missing_ok=True)

    def _close_handles(self) -> None:
        for handle in (self._csv_file, self._json_file):
            if handle is not None:
                handle.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is None:
            self.close()
        else:
            self.discard()


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


def _partial_open(path: Path, newline: str | None = None) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _partial(path).open("w", encoding="utf-8", newline=newline)
