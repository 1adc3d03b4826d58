"""The one vocabulary every part of gazelab speaks: boxes, people, frames and predictions.

Coordinates inside the library are *normalized* to [0, 1] (x divided by the image width, y by its height);
pixels appear only at file boundaries (readers, writers, drawing). Readers turn any annotation format into
``list[Frame]``; datasets, models, metrics and visualisation consume these records and never re-read files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

Point = tuple[float, float]
"""A normalized (x, y) point."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in normalized xyxy coordinates.

    The constructor checks only what every box must satisfy (finite, not inverted); a box may stick out of
    [0, 1] because real annotations do — :meth:`clamp` brings it inside once that is wanted.
    """

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        values = (self.x1, self.y1, self.x2, self.y2)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"box coordinates must be finite, got {values}")
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box is inverted (x2 < x1 or y2 < y1): {values}")

    @classmethod
    def from_pixels(cls, x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
        """Box from pixel xyxy coordinates of a ``width`` x ``height`` image."""
        return cls(x1 / width, y1 / height, x2 / width, y2 / height)

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        return cls(x, y, x + w, y + h)

    def to_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        return (self.x1 * width, self.y1 * height, self.x2 * width, self.y2 * height)

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> Point:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def clamp(self) -> Box:
        """The part of the box inside the unit square (a box fully outside collapses onto the border)."""

        def c(v: float) -> float:
            return min(max(v, 0.0), 1.0)

        return Box(c(self.x1), c(self.y1), c(self.x2), c(self.y2))

    def contains(self, point: Point) -> bool:
        return self.x1 <= point[0] <= self.x2 and self.y1 <= point[1] <= self.y2

    def hflip(self) -> Box:
        return Box(1.0 - self.x2, self.y1, 1.0 - self.x1, self.y2)


@dataclass
class Person:
    """One person in one frame: where their head is and where they look.

    ``gaze`` holds one point per annotator (GazeFollow test has up to 20; most datasets have one). It is
    empty when the target is outside the frame or unknown. ``inout`` is True (target in the frame), False
    (outside) or None (not annotated, e.g. unlabelled data).
    """

    head: Box | None
    gaze: tuple[Point, ...] = ()
    inout: bool | None = None
    label: str | None = None
    labels: tuple[str, ...] = ()
    """Every acceptable label (GazeHOI ``aux_object``, GazeFollow test ``gaze_gt_labels``); ``label`` first."""
    target_box: Box | None = None
    """Box of the looked-at object when the dataset has one (GazeHOI)."""
    track_id: str | None = None
    """Identity of the person across the frames of a video (VAT track file stem, ChildPlay person id)."""
    person_id: str | None = None
    """Identity within the source file (GazeFollow ``idx``, GazeHOI ``pair_id``)."""
    eye: Point | None = None
    body: Box | None = None
    head_px: tuple[float, float, float, float] | None = None
    """Raw pixel head box, kept only while the image size is unknown (annotation-only reading)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Format-specific columns a writer needs for a faithful round trip (e.g. GazeFollow ``source``)."""

    @property
    def gaze_point(self) -> Point | None:
        """Mean annotator point (the target of ``avg_l2``), or None when there is none."""
        if not self.gaze:
            return None
        n = len(self.gaze)
        return (sum(p[0] for p in self.gaze) / n, sum(p[1] for p in self.gaze) / n)


@dataclass
class Frame:
    """One image (or one video frame) with every annotated person in it.

    ``path`` is relative to the dataset root (as written in the annotation file); ``root`` is that root.
    ``width``/``height`` are the original image size in pixels, None when the image was not opened.
    """

    path: str
    width: int | None = None
    height: int | None = None
    people: list[Person] = field(default_factory=list)
    frame_index: int | None = None
    clip: str | None = None
    """Video/sequence key (VAT ``show/clip``, ChildPlay clip); None for still images."""
    root: Path | None = None

    @property
    def image_path(self) -> Path:
        return (self.root / self.path) if self.root is not None else Path(self.path)

    @property
    def size(self) -> tuple[int, int] | None:
        if self.width is None or self.height is None:
            return None
        return (self.width, self.height)

    def with_people(self, people: Sequence[Person]) -> Frame:
        return replace(self, people=list(people))


@dataclass
class GazePrediction:
    """What a model says about one person: the heatmap, its point, and optionally in/out and a label.

    ``heatmap`` is a 64x64 array (torch tensor or numpy) in [0, 1]; ``point`` is its argmax as
    ``(col / 64, row / 64)`` — the convention of every published protocol (see :mod:`gazelab.eval.metrics`).
    """

    heatmap: Any
    point: Point
    inout: float | None = None
    """Probability that the target is inside the frame; None for models without an in/out head."""
    head: Box | None = None
    track_id: str | None = None
    gaze_vector: tuple[float, float] | None = None
    labels: tuple[tuple[str, float], ...] = ()
    """Top labels with their scores, best first (semantic models only)."""

    @property
    def label(self) -> str | None:
        return self.labels[0][0] if self.labels else None


def iter_people(frames: Sequence[Frame]) -> Iterator[tuple[Frame, Person]]:
    """Every (frame, person) pair in order — the unit of training and evaluation."""
    for frame in frames:
        for person in frame.people:
            yield frame, person
