"""Head tracks: which heads are in which frame, and which of them belong to the same person.

Tracks are known in full before the model runs. Given tracks come from files; detected tracks come from a
first, cheap pass over the video (face detection and linking only, a few kilobytes of boxes however long the
video). Knowing whole tracks first is what makes VideoAttentionTarget's box smoothing (a *centred* moving
average over 11 frames, :func:`gazelab.data.formats.vat.smooth_boxes`) exact for detected heads too, and lets
one-frame false detections be dropped before any model time is spent on them.

Files:

- VAT per-person files (one per track, the track id is the file stem), header-less rows
  ``frame file, x1, y1, x2, y2`` in pixels, optionally followed by ``gaze x, gaze y`` (ignored here).
- One CSV with the header ``frame,track_id,x1,y1,x2,y2``: ``frame`` is the 0-based frame index in the video
  (before any stride) or, for a frame folder, a file name; boxes in pixels, or normalized when no number
  exceeds :data:`~gazelab.infer.heads.NORMALIZED_LIMIT`.

Frame file names are matched to a frame folder's files. For a video *file*, VAT names with a numeric stem
(``00002575.jpg``) count from the smallest stem in the given files, which is taken as the video's first frame.

Linking detections: each frame's detections are matched to the live tracks by IoU with the Hungarian method
(``scipy.optimize.linear_sum_assignment`` on ``1 - IoU``), which is SORT without its Kalman filter. Heads in
gaze videos move little from frame to frame compared with their size, and the detector runs on every kept
frame, so IoU with a track's last box is a strong cue and a motion model buys little; the maintained
multi-object tracker libraries (ByteTrack, norfair, motpy) add a dependency for the same result here.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gazelab.data.formats.vat import SMOOTH_WINDOW, smooth_boxes
from gazelab.errors import DataError, GazelabError
from gazelab.infer.heads import NORMALIZED_LIMIT
from gazelab.types import Box
from gazelab.video.reader import VideoSource

CSV_HEADER = ("frame", "track_id", "x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class TrackedHead:
    """One person's head in one frame."""

    track_id: str
    box: Box


@dataclass
class Tracks:
    """Head boxes per frame index (the source's index, before stride), each tagged with its track."""

    by_frame: dict[int, list[TrackedHead]] = field(default_factory=dict)

    def at(self, index: int) -> list[TrackedHead]:
        """The heads in frame ``index``, ordered by track id."""
        return self.by_frame.get(index, [])

    @property
    def track_ids(self) -> list[str]:
        """Every track id, by first appearance (then by name): the order of colours and rows."""
        first: dict[str, int] = {}
        for index in sorted(self.by_frame):
            for head in sorted(self.by_frame[index], key=lambda h: h.track_id):
                first.setdefault(head.track_id, index)
        return list(first)

    def add(self, index: int, track_id: str, box: Box, where: str = "tracks") -> None:
        """Put ``track_id``'s head in frame ``index``; ``where`` (file:line) names the row in errors."""
        heads = self.by_frame.setdefault(index, [])
        if any(h.track_id == track_id for h in heads):
            raise DataError(f"{where}: track {track_id!r} has a second head box in frame {index}; keep one")
        heads.append(TrackedHead(track_id, box))
        heads.sort(key=lambda h: h.track_id)

    def per_track(self) -> dict[str, tuple[list[int], np.ndarray]]:
        """Each track's frame indices (ascending) and boxes [N, 4]."""
        rows: dict[str, list[tuple[int, tuple[float, ...]]]] = {}
        for index, heads in self.by_frame.items():
            for head in heads:
                rows.setdefault(head.track_id, []).append((index, head.box.as_tuple()))
        out = {}
        for track_id, items in rows.items():
            items.sort()
            out[track_id] = ([i for i, _ in items], np.array([b for _, b in items], dtype=np.float64))
        return out

    def smoothed(self, window: int = SMOOTH_WINDOW) -> Tracks:
        """Every track's boxes smoothed as the VAT benchmark does (centred moving average, edges repeated)."""
        return _from_tracks({tid: (idx, smooth_boxes(boxes, window)) for tid, (idx, boxes) in self.per_track().items()})

    def without_short(self, min_frames: int) -> Tracks:
        """Only the tracks seen in at least ``min_frames`` frames (drops flickering false detections)."""
        return _from_tracks({tid: t for tid, t in self.per_track().items() if len(t[0]) >= min_frames})


def _from_tracks(tracks: dict[str, tuple[list[int], np.ndarray]]) -> Tracks:
    out = Tracks()
    for track_id, (indices, boxes) in tracks.items():
        for index, box in zip(indices, boxes.tolist()):
            out.add(index, track_id, Box(*box).clamp())
    return out


# --- given tracks ------------------------------------------------------------------------------------------------


def load_tracks(paths: Sequence[str | Path], source: VideoSource) -> Tracks:
    """Tracks from one CSV with a ``frame,track_id,...`` header, or from VAT per-person files (one per track)."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise GazelabError(f"{path}: tracks file not found")
    if len(paths) == 1 and _has_csv_header(paths[0]):
        return _read_csv(paths[0], source)
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise GazelabError(f"track files must have different names (the name is the track id): {stems}")
    rows = {path.stem: _read_vat_file(path) for path in paths}
    first = _first_numbered_frame(rows.values()) if source.frame_names is None else None
    tracks = Tracks()
    for path, (track_id, track_rows) in zip(paths, rows.items()):
        for line, name, pixels in track_rows:
            index = _frame_index(name, source, first, f"{path}:{line}")
            tracks.add(index, track_id, _box(pixels, False, source, f"{path}:{line}"), f"{path}:{line}")
    return tracks


def _has_csv_header(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        first = next(csv.reader(handle), [])
    return [c.strip().lower() for c in first[:2]] == list(CSV_HEADER[:2])


def _numbers(values: Sequence[str], where: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in values)
    except ValueError:
        raise DataError(f"{where}: expected numbers x1,y1,x2,y2, got {list(values)}") from None
    if not all(np.isfinite((x1, y1, x2, y2))) or x2 <= x1 or y2 <= y1:
        raise DataError(f"{where}: empty, inverted or non-finite head box {list(values)} (need x2 > x1, y2 > y1)")
    return x1, y1, x2, y2


def _read_vat_file(path: Path) -> list[tuple[int, str, tuple[float, float, float, float]]]:
    rows = []
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) not in (5, 7):
                raise DataError(f"{path}:{line}: expected 'frame,x1,y1,x2,y2[,gaze_x,gaze_y]', got {len(row)} columns")
            rows.append((line, row[0].strip(), _numbers(row[1:5], f"{path}:{line}")))
    if not rows:
        raise DataError(f"{path}: no head boxes in the file")
    return rows


def _first_numbered_frame(tracks: Iterable[list[tuple[int, str, tuple[float, ...]]]]) -> int | None:
    stems = [Path(name).stem for rows in tracks for _, name, _ in rows]
    return min(int(s) for s in stems) if stems and all(s.isdigit() for s in stems) else None


def _frame_index(key: str, source: VideoSource, first_number: int | None, where: str) -> int:
    """A frame key of a tracks file -> the frame's index in ``source``."""
    if source.frame_names is not None:
        index = source.index_of(key)
        if index is not None:
            return index
        if key.isdigit():
            return int(key)
        raise DataError(f"{where}: frame {key!r} is not a file of {source.path}")
    if key.isdigit():
        return int(key)
    stem = Path(key).stem
    if first_number is not None and stem.isdigit():
        return int(stem) - first_number
    raise DataError(f"{where}: frame {key!r} is neither a frame index nor a numbered frame file name")


def _box(values: Sequence[float], normalized: bool, source: VideoSource, where: str) -> Box:
    box = Box(*values) if normalized else Box.from_pixels(*values, source.width, source.height)
    if box.x2 <= 0 or box.y2 <= 0 or box.x1 >= 1 or box.y1 >= 1:
        raise DataError(f"{where}: head box {list(values)} lies outside the {source.width}x{source.height} frame")
    return box.clamp()


def _read_csv(path: Path, source: VideoSource) -> Tracks:
    rows = []
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = [c.strip().lower() for c in next(reader)]
        if tuple(header[:6]) != CSV_HEADER:
            raise DataError(f"{path}:1: expected the header {','.join(CSV_HEADER)}, got {','.join(header)}")
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 6:
                raise DataError(f"{path}:{line}: expected {','.join(CSV_HEADER)}, got {len(row)} columns")
            rows.append((line, row[0].strip(), row[1].strip(), _numbers(row[2:6], f"{path}:{line}")))
    if not rows:
        raise DataError(f"{path}: no head boxes in the file")
    normalized = all(v <= NORMALIZED_LIMIT for *_, box in rows for v in box)
    tracks = Tracks()
    for line, frame, track_id, box in rows:
        where = f"{path}:{line}"
        tracks.add(_frame_index(frame, source, None, where), track_id, _box(box, normalized, source, where), where)
    return tracks


# --- detected tracks ---------------------------------------------------------------------------------------------


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4] (xyxy) -> [N, M]."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class _LiveTrack:
    track_id: str
    box: Box
    missed: int = 0


class IoUTracker:
    """Links per-frame detections into tracks: Hungarian matching on IoU with each live track's last box.

    Birth: a detection that matches no live track starts a new one (``person1``, ``person2``... in order of
    appearance). Death: a track unmatched for more than ``max_missed`` consecutive frames is closed; a head
    that comes back after that gets a new id. A pair only matches with IoU at least ``min_iou``.
    """

    def __init__(self, min_iou: float = 0.3, max_missed: int = 10) -> None:
        if not 0.0 < min_iou <= 1.0:
            raise GazelabError(f"minimum IoU must be in (0, 1], got {min_iou}")
        self.min_iou, self.max_missed = min_iou, max_missed
        self._live: list[_LiveTrack] = []
        self._born = 0

    def update(self, boxes: Sequence[Box]) -> list[str]:
        """The track id of each of this frame's detections, in the given order."""
        from scipy.optimize import linear_sum_assignment

        ids: list[str | None] = [None] * len(boxes)
        if self._live and boxes:
            iou = iou_matrix(np.array([t.box.as_tuple() for t in self._live]), np.array([b.as_tuple() for b in boxes]))
            for row, col in zip(*linear_sum_assignment(1.0 - iou)):
                if iou[row, col] >= self.min_iou:
                    track = self._live[row]
                    track.box, track.missed, ids[col] = boxes[col], -1, track.track_id
        for track in self._live:
            track.missed += 1
        self._live = [t for t in self._live if t.missed <= self.max_missed]
        for col, box in enumerate(boxes):
            if ids[col] is None:
                self._born += 1
                ids[col] = f"person{self._born}"
                self._live.append(_LiveTrack(ids[col], box))  # type: ignore[arg-type]
        return ids  # type: ignore[return-value]


def detect_tracks(
    source: VideoSource,
    detect: Callable[[np.ndarray], Sequence[Box]],
    tracker: IoUTracker | None = None,
    min_frames: int = 3,
    on_frame: Callable[[], None] | None = None,
) -> Tracks:
    """Detect heads in every kept frame of ``source`` and link them; tracks shorter than ``min_frames`` go."""
    tracker = tracker or IoUTracker()
    tracks = Tracks()
    for frame in source:
        boxes = list(detect(frame.pixels))
        for track_id, box in zip(tracker.update(boxes), boxes):
            tracks.add(frame.index, track_id, box)
        if on_frame is not None:
            on_frame()
    return tracks.without_short(min_frames)
