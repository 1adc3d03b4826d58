"""Per-person predictions on disk, and the ground truth of frames as tensors for :mod:`gazelab.eval.metrics`.

Predictions made elsewhere (another codebase, a model not in gazelab) are scored by ``gazelab eval
--predictions FILE``; ``gazelab eval`` writes the same files, so its output can be re-scored.

**CSV** (header required; other columns are ignored)::

    path,person,head_x1,head_y1,head_x2,head_y2,x,y,inout

- ``path``: the image path exactly as in the annotation file.
- ``person``: 0-based index of the person in that image, in annotation-file order. May be empty (or the
  column absent) when the head box is given: the row then goes to the person of that image whose head box
  overlaps it most (IoU >= 0.5).
- ``head_x1..head_y2``: head box in pixels, as in the annotation file (only needed without ``person``).
- ``x, y``: predicted gaze point, normalized to [0, 1] (x by image width, y by height).
- ``inout``: optional probability that the target is inside the frame (needed for in/out AP).

**NPZ** of heatmaps (read without pickle): ``heatmaps`` [N, 64, 64], ``path`` [N] (str), ``person`` [N]
(int, as above) and optionally ``inout`` [N]. With a CSV and an NPZ together, points come from the CSV
(e.g. sub-pixel decoding) and heatmaps from the NPZ; with an NPZ alone, points are the heatmap argmax.
Every annotated person needs exactly one prediction; anything else is an error naming the person or row.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gazelab.errors import GazelabError
from gazelab.eval.metrics import EvalTargets
from gazelab.train.atomic import write_atomic
from gazelab.types import Frame, Person

CSV_COLUMNS = ("path", "person", "head_x1", "head_y1", "head_x2", "head_y2", "x", "y", "inout")
MIN_IOU = 0.5

Key = tuple[str, int]
"""(image path, index of the person in the image): how a prediction row names its person."""


def person_keys(frames: Sequence[Frame]) -> list[Key]:
    return [(frame.path, index) for frame in frames for index in range(len(frame.people))]


def targets_from_frames(frames: Sequence[Frame]) -> EvalTargets:
    """Ground truth of every person (in :func:`person_keys` order) as padded tensors.

    Image sizes are kept only when every frame has one (a protocol needing them then works on all persons);
    head boxes of the whole frame (for P.Head) only with normalized boxes.
    """
    people = [(frame, person) for frame in frames for person in frame.people]
    annotators = max((len(p.gaze) for _, p in people), default=0)
    gaze = torch.full((len(people), max(annotators, 1), 2), -1.0, dtype=torch.float64)
    for i, (_, person) in enumerate(people):
        if person.gaze and person.inout is not False:
            gaze[i, : len(person.gaze)] = torch.tensor(person.gaze, dtype=torch.float64)
    known = [p.inout for _, p in people]
    inout = None if all(v is None or v is True for v in known) else torch.tensor([v is not False for v in known])
    sizes = None
    if people and all(f.size is not None for f in frames):
        sizes = torch.tensor([frame.size for frame, _ in people], dtype=torch.int64)
    return EvalTargets(gaze=gaze, inout=inout, image_sizes=sizes, heads=_frame_heads(frames))


def _frame_heads(frames: Sequence[Frame]) -> Tensor | None:
    if any(p.head is None and p.head_px is not None for f in frames for p in f.people):
        return None  # boxes only in pixels: image sizes unknown
    most = max((len(f.people) for f in frames), default=0)
    rows = []
    for frame in frames:
        boxes = [p.head.as_tuple() if p.head is not None else (math.nan,) * 4 for p in frame.people]
        boxes += [(math.nan,) * 4] * (most - len(boxes))
        rows.extend([boxes] * len(frame.people))
    return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), most, 4)


def head_pixels(frame: Frame, person: Person) -> tuple[float, float, float, float] | None:
    """The head box in pixels: as read (size unknown) or from the normalized box and the image size."""
    if person.head_px is not None:
        return person.head_px
    if person.head is not None and frame.size is not None:
        return person.head.to_pixels(*frame.size)
    return None


# ------------------------------------------------------------------------------------------------ write


def write_predictions_csv(
    path: Path,
    frames: Sequence[Frame],
    points: Tensor,
    inout: Tensor | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """One row per person (the format above), plus ``person_id`` and any ``extra`` per-person columns.

    Written atomically (as are the heatmaps), so an interrupted evaluation never leaves a partial file."""
    extra = extra or {}
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, "person_id", *extra])
    row = 0
    for frame in frames:
        for index, person in enumerate(frame.people):
            box = head_pixels(frame, person)
            cells = [frame.path, index, *(("",) * 4 if box is None else (_num(v) for v in box))]
            cells += [_num(float(points[row, 0])), _num(float(points[row, 1]))]
            cells.append("" if inout is None else _num(float(inout[row])))
            cells.append(person.person_id or "")
            cells += [_num(float(values[row])) for values in extra.values()]
            writer.writerow(cells)
            row += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda handle: handle.write(text.getvalue().encode("utf-8")))
    return path


def _num(value: float) -> str:
    return "" if math.isnan(value) else repr(round(value, 10))


def write_heatmaps_npz(path: Path, frames: Sequence[Frame], heatmaps: Tensor, inout: Tensor | None = None) -> Path:
    keys = person_keys(frames)
    arrays = {
        "heatmaps": heatmaps.detach().cpu().to(torch.float32).numpy(),
        "path": np.array([k[0] for k in keys], dtype=str),
        "person": np.array([k[1] for k in keys], dtype=np.int64),
    }
    if inout is not None:
        arrays["inout"] = inout.detach().cpu().to(torch.float64).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda handle: np.savez_compressed(handle, **arrays))
    return path


# ------------------------------------------------------------------------------------------------- read


@dataclass
class LoadedPredictions:
    """Predictions aligned with :func:`person_keys` of the annotations; None for what the files lacked."""

    points: Tensor | None = None
    heatmaps: Tensor | None = None
    inout: Tensor | None = None


def read_predictions(files: Sequence[Path], frames: Sequence[Frame]) -> LoadedPredictions:
    """Read at most one CSV and one NPZ (see the module docstring) and align them with ``frames``."""
    csvs = [Path(f) for f in files if Path(f).suffix.lower() == ".csv"]
    npzs = [Path(f) for f in files if Path(f).suffix.lower() == ".npz"]
    other = [str(f) for f in files if Path(f).suffix.lower() not in (".csv", ".npz")]
    if other or len(csvs) > 1 or len(npzs) > 1 or not files:
        raise GazelabError("--predictions takes one .csv and/or one .npz file (see `gazelab eval --help`)")
    for file in files:
        if not Path(file).is_file():
            raise GazelabError(f"{file}: predictions file not found")
    loaded = LoadedPredictions()
    if npzs:
        loaded.heatmaps, loaded.inout = _read_npz(npzs[0], frames)
    if csvs:
        loaded.points, csv_inout = _read_csv(csvs[0], frames)
        loaded.inout = csv_inout if csv_inout is not None else loaded.inout
    return loaded


def _align(source: Path, keys: list[Key], frames: Sequence[Frame]) -> Tensor:
    """Row of the file for each annotated person; every person exactly once."""
    wanted = {key: i for i, key in enumerate(person_keys(frames))}
    order = torch.full((len(wanted),), -1, dtype=torch.int64)
    for row, key in enumerate(keys):
        slot = wanted.get(key)
        if slot is None:
            raise GazelabError(f"{source}: entry {row + 1} ({key[0]}, person {key[1]}) is not in the annotations")
        if order[slot] >= 0:
            raise GazelabError(f"{source}: {key[0]}, person {key[1]} has more than one prediction")
        order[slot] = row
    missing = (order < 0).nonzero().flatten()
    if len(missing):
        first = person_keys(frames)[int(missing[0])]
        raise GazelabError(
            f"{source}: {len(missing)} annotated persons have no prediction (first: {first[0]}, person {first[1]})"
        )
    return order


def _read_npz(path: Path, frames: Sequence[Frame]) -> tuple[Tensor, Tensor | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise GazelabError(f"{path}: not a readable .npz without pickled objects ({err})") from None
    missing = [k for k in ("heatmaps", "path", "person") if k not in arrays]
    if missing:
        raise GazelabError(f"{path}: missing arrays {missing} (needs heatmaps, path, person)")
    heatmaps = arrays["heatmaps"]
    if heatmaps.ndim != 3 or len(heatmaps) != len(arrays["path"]) or len(heatmaps) != len(arrays["person"]):
        raise GazelabError(f"{path}: heatmaps must be [N, H, W] with one path and person per map")
    keys = [(str(p), int(i)) for p, i in zip(arrays["path"], arrays["person"], strict=True)]
    order = _align(path, keys, frames)
    inout = torch.from_numpy(np.asarray(arrays["inout"], dtype=np.float64))[order] if "inout" in arrays else None
    return torch.from_numpy(heatmaps)[order], inout


def _read_csv(path: Path, frames: Sequence[Frame]) -> tuple[Tensor, Tensor | None]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            missing = [c for c in ("path", "x", "y") if c not in (reader.fieldnames or [])]
            if missing:
                raise GazelabError(f"{path}: missing columns {missing} (needs path, x, y and person or a head box)")
            rows = list(reader)
        except (csv.Error, UnicodeDecodeError) as err:
            raise GazelabError(f"{path}: not a readable UTF-8 CSV near line {reader.line_num + 1} ({err})") from None
    by_path = {frame.path: frame for frame in frames}
    keys: list[Key] = []
    points: list[tuple[float, float]] = []
    has_inout = bool(rows) and all((r.get("inout") or "").strip() for r in rows)
    inout: list[float] = []
    for i, row in enumerate(rows):
        line = i + 2
        keys.append((row["path"], _person_index(path, line, row, by_path.get(row["path"]))))
        points.append((_float(path, line, row, "x"), _float(path, line, row, "y")))
        if has_inout:
            inout.append(_float(path, line, row, "inout"))
    order = _align(path, keys, frames)
    scores = torch.tensor(inout, dtype=torch.float64)[order] if has_inout else None
    return torch.tensor(points, dtype=torch.float64).reshape(-1, 2)[order], scores


def _float(path: Path, line: int, row: dict[str, str], column: str) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise GazelabError(f"{path}:{line}: {column}={row.get(column)!r} is not a number") from None
    if not math.isfinite(value):
        raise GazelabError(f"{path}:{line}: {column} is not finite")
    return value


def _person_index(path: Path, line: int, row: dict[str, str], frame: Frame | None) -> int:
    text = (row.get("person") or "").strip()
    if text:
        try:
            return int(text)
        except ValueError:
            raise GazelabError(f"{path}:{line}: person={text!r} is not an index") from None
    if frame is None:
        raise GazelabError(f"{path}:{line}: image {row['path']!r} is not in the annotations")
    box = [_float(path, line, row, c) for c in ("head_x1", "head_y1", "head_x2", "head_y2")]
    overlaps = [_iou(box, head_pixels(frame, p)) for p in frame.people]
    best = max(range(len(overlaps)), key=overlaps.__getitem__, default=-1)
    if best < 0 or overlaps[best] < MIN_IOU:
        raise GazelabError(f"{path}:{line}: no annotated head in {row['path']!r} matches the head box {box}")
    return best


def _iou(a: Sequence[float], b: Sequence[float] | None) -> float:
    if b is None:
        return 0.0
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
