"""Head boxes for gaze models: detected in the picture, read from a JSON file, or typed on the command line.

Gaze models were trained on annotated *head* boxes (hair, ears and chin included), and their head token is
placed on the cells of that box, so a box that is too small or shifted changes the prediction. A face
detector's box is smaller: BlazeFace's covers roughly eyebrows to chin. :class:`HeadExpansion` grows it into
a head box.

Detection uses MediaPipe's BlazeFace *full-range* model (the one behind MediaPipe's legacy
``face_detection`` with ``model_selection=1``; it finds faces up to about 5 m away, where the short-range
model misses most people in group photos) through MediaPipe's Tasks API, which runs offline. MediaPipe wheels
up to 0.10.21 ship that file inside the package and it is used from there; newer wheels ship no models, so
the file is then taken from gazelab's weight cache (downloaded once, sha256-checked; offline, the error names
the URL and where to put the file).

Boxes given by users may be in pixels or normalized; :data:`NORMALIZED_LIMIT` tells them apart.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gazelab.errors import GazelabError
from gazelab.models.base import ImageLike, image_tensor
from gazelab.models.checkpoints import CheckpointError, WeightFile, fetch
from gazelab.types import Box

FACE_DETECTOR = WeightFile(
    "https://storage.googleapis.com/mediapipe-assets/face_detection_full_range_sparse.tflite",
    sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    size=676_746,
)
"""BlazeFace full-range; the same bytes as ``mediapipe/modules/face_detection/`` in mediapipe<=0.10.21 wheels."""

NORMALIZED_LIMIT = 1.5
"""Boxes whose numbers are all at most this are normalized, else pixels. Normalized boxes may stick out of
the picture a little; a pixel box that small is no head."""

BoxRow = tuple[float, float, float, float]


@dataclass(frozen=True)
class HeadExpansion:
    """How far a head box reaches beyond a face box, in fractions of the face box's width and height.

    Set by eye on BlazeFace full-range boxes of the shared sample photos so that the head box covers hair and
    chin like GazeFollow's annotated boxes: the top of the head lies about half a face height above the
    eyebrows, ears and hair about a fifth of a face width to each side, the chin just below the box. The
    result is 1.4 x 1.55 times the face box, then clamped to the picture.
    """

    side: float = 0.2
    top: float = 0.5
    bottom: float = 0.05

    def head_box(self, face: Box) -> Box:
        """The head box around ``face`` (both normalized; fractions scale with each axis, so pixels agree)."""
        w, h = face.width, face.height
        head = Box(face.x1 - self.side * w, face.y1 - self.top * h, face.x2 + self.side * w, face.y2 + self.bottom * h)
        return head.clamp()


@dataclass(frozen=True)
class Detection:
    """One detected person: the head box to give a gaze model, the face box it came from, and its score."""

    head: Box
    face: Box
    score: float


def face_model_path(path: str | Path | None = None) -> Path:
    """The BlazeFace model file: ``path`` if given, else the one inside MediaPipe, else gazelab's cached copy."""
    if path is not None:
        if not Path(path).is_file():
            raise GazelabError(f"{path}: face detector model not found")
        return Path(path)
    bundled = _bundled_face_model()
    if bundled is not None:
        return bundled
    try:
        return fetch(FACE_DETECTOR)
    except CheckpointError as err:
        raise CheckpointError(f"face detector: {err} (mediapipe<=0.10.21 wheels also ship this file)") from None


def _bundled_face_model() -> Path | None:
    """The model file inside the installed MediaPipe package (wheels up to 0.10.21 have it), if there."""
    spec = importlib.util.find_spec("mediapipe")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "modules" / "face_detection" / FACE_DETECTOR.filename
        if bundled.is_file():
            return bundled
    return None


@contextmanager
def _native_logs_hidden() -> Iterator[None]:
    """Silence file descriptor 2 while MediaPipe's C++ runtime loads and first runs a model.

    It writes some fifty INFO/WARNING lines there (one "Sparsity tensors may not yet be fully supported" per
    sparse layer) that no environment variable turns off, burying the CLI's own output. Its failures still
    surface as Python exceptions.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _ignore_stray_sigprof() -> None:
    """Keep a stray SIGPROF from killing the process once MediaPipe's native runtime is loaded.

    In a process that has already run other heavy native code (seen when the whole test suite runs in one
    process), MediaPipe's runtime gets SIGPROF delivered — no profiling timer is armed, so it comes from a
    thread — and SIGPROF's default action terminates the process. Only the default disposition is replaced,
    so a profiler that installed its own handler keeps it. Signal handlers can only be set from the main thread.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGPROF) == signal.SIG_DFL:
        signal.signal(signal.SIGPROF, signal.SIG_IGN)


class HeadDetector:
    """Head boxes of every visible face in a picture, left to right, with BlazeFace scores.

    >>> with HeadDetector() as detect:
    ...     heads = [d.head for d in detect(picture)]

    ``min_score`` drops weaker faces (MediaPipe's default is 0.5). The detector is reusable across pictures;
    ``close`` frees the native runtime.
    """

    def __init__(
        self, min_score: float = 0.5, model_path: str | Path | None = None, expansion: HeadExpansion | None = None
    ) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise GazelabError(f"face score threshold must be in [0, 1], got {min_score}")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError:
            raise GazelabError("head detection needs MediaPipe: pip install 'gazelab[detect]'") from None
        self._mp = mp
        _ignore_stray_sigprof()
        self.expansion = expansion or HeadExpansion()
        model = face_model_path(model_path)
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model)), min_detection_confidence=min_score
        )
        try:
            with _native_logs_hidden():
                self._detector = vision.FaceDetector.create_from_options(options)
        except (RuntimeError, ValueError) as err:
            raise GazelabError(f"{model}: MediaPipe cannot load it as a face detector ({err})") from None

    def __call__(self, image: ImageLike) -> list[Detection]:
        pixels = np.ascontiguousarray(image_tensor(image).permute(1, 2, 0).numpy())
        height, width = pixels.shape[:2]
        with _native_logs_hidden():
            result = self._detector.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=pixels))
        found = []
        for detection in result.detections:
            b = detection.bounding_box
            face = Box.from_pixels(b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height, width, height)
            found.append(Detection(self.expansion.head_box(face), face.clamp(), float(detection.categories[0].score)))
        return sorted(found, key=lambda d: d.face.center[0])

    def close(self) -> None:
        with _native_logs_hidden():
            self._detector.close()

    def __enter__(self) -> HeadDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class HeadBoxes:
    """Head boxes as a user gave them, in pixels or normalized (see :data:`NORMALIZED_LIMIT`)."""

    rows: tuple[BoxRow, ...]
    normalized: bool
    source: str
    """Where the boxes came from, for error messages (``--heads``, ``file.json: image.jpg``)."""

    def boxes(self, width: int, height: int) -> list[Box]:
        """Normalized boxes for a ``width`` x ``height`` picture; a box with no part inside it is an error (a
        typo or the wrong image, never a head the model could look from)."""
        if self.normalized:
            boxes = [Box(*row) for row in self.rows]
        else:
            boxes = [Box.from_pixels(*row, width, height) for row in self.rows]
        for number, (row, box) in enumerate(zip(self.rows, boxes), start=1):
            if box.x2 <= 0 or box.y2 <= 0 or box.x1 >= 1 or box.y1 >= 1:
                unit = "normalized" if self.normalized else "pixels"
                raise GazelabError(
                    f"{self.source}: head box {number} {list(row)} ({unit}) lies wholly outside the "
                    f"{width}x{height} picture — check the coordinates and the image"
                )
        return boxes


def _row(values: Any, where: str) -> BoxRow:
    """Four finite numbers x1, y1, x2, y2 with a non-empty extent."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 4:
        raise GazelabError(f"{where}: expected 4 numbers x1,y1,x2,y2, got {values!r}")
    try:
        x1, y1, x2, y2 = (float(v) for v in values)
    except (TypeError, ValueError):
        raise GazelabError(f"{where}: expected 4 numbers x1,y1,x2,y2, got {values!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise GazelabError(f"{where}: box coordinates must be finite, got {values!r}")
    if x2 <= x1 or y2 <= y1:
        raise GazelabError(f"{where}: empty or inverted box {values!r} (need x2 > x1 and y2 > y1)")
    return (x1, y1, x2, y2)


def _json_row(values: Any, where: str) -> BoxRow:
    """Like :func:`_row`, but numbers written as JSON strings (or booleans) are refused, not converted."""
    if isinstance(values, list) and not all(type(v) in (int, float) for v in values):
        raise GazelabError(f"{where}: expected 4 numbers x1,y1,x2,y2, got {values!r}")
    return _row(values, where)


def _is_normalized(rows: Sequence[BoxRow]) -> bool:
    return all(v <= NORMALIZED_LIMIT for row in rows for v in row)


def parse_heads(text: str) -> HeadBoxes:
    """Boxes from ``"x1,y1,x2,y2;x1,y1,x2,y2"`` (the ``--heads`` option), all in pixels or all normalized."""
    parts = [part for part in text.split(";") if part.strip()]
    if not parts:
        raise GazelabError('--heads: no box given; write "x1,y1,x2,y2;x1,y1,x2,y2"')
    rows = tuple(_row(part.split(","), f"--heads box {i + 1} {part.strip()!r}") for i, part in enumerate(parts))
    return HeadBoxes(rows, _is_normalized(rows), "--heads")


@dataclass(frozen=True)
class HeadsFile:
    """Boxes per image from a JSON file ``{"image.jpg": [[x1, y1, x2, y2], ...], ...}``.

    Keys are image paths (relative to the file's folder, to the working directory, or absolute) or bare file
    names. Units are decided for the whole file: normalized when no number exceeds
    :data:`NORMALIZED_LIMIT`, else pixels. An image may list no boxes (``[]``).
    """

    path: Path
    entries: Mapping[str, tuple[BoxRow, ...]]
    normalized: bool

    def for_image(self, image: str | Path) -> HeadBoxes:
        """The boxes listed for ``image``; an error names the image when the file has no entry for it."""
        image = Path(image)
        target = image.resolve()
        for key, rows in self.entries.items():
            if (self.path.parent / key).resolve() == target or Path(key).resolve() == target:
                return HeadBoxes(rows, self.normalized, f"{self.path}: {key}")
        by_name = [key for key in self.entries if Path(key).name == image.name]
        if len(by_name) > 1:
            raise GazelabError(f"{self.path}: several entries named {image.name} ({', '.join(by_name)}); use paths")
        if not by_name:
            known = ", ".join(list(self.entries)[:3]) or "none"
            raise GazelabError(f"{self.path}: no boxes for {image} (entries are image paths or names; first: {known})")
        return HeadBoxes(self.entries[by_name[0]], self.normalized, f"{self.path}: {by_name[0]}")


def load_heads(path: str | Path) -> HeadsFile:
    """Read a heads JSON file (see :class:`HeadsFile`); one clear error for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise GazelabError(f"{path}: heads file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise GazelabError(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as err:
        raise GazelabError(f"{path}:{err.lineno}:{err.colno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise GazelabError(f'{path}: expected an object {{"image.jpg": [[x1, y1, x2, y2], ...]}}')
    entries = {}
    for key, boxes in data.items():
        if not isinstance(boxes, list):
            raise GazelabError(f"{path}: {key}: expected a list of boxes [[x1, y1, x2, y2], ...]")
        entries[key] = tuple(_json_row(box, f"{path}: {key} box {i + 1}") for i, box in enumerate(boxes))
    return HeadsFile(path, entries, _is_normalized([row for rows in entries.values() for row in rows]))
