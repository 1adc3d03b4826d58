"""Pieces every annotation reader shares: safe paths, image sizes, number parsing, pixel-box checks."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from gazelab.data.report import LoadReport
from gazelab.errors import DataError, GazelabError
from gazelab.io import image_size
from gazelab.types import Box, Frame


class RowError(Exception):
    """A row that cannot be used; ``reason`` is the short category counted in the :class:`LoadReport`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def csv_error(path: str | Path, line: int, err: csv.Error) -> DataError:
    """The error for text the csv module cannot split into rows (binary data, a stray quote or carriage return)."""
    return DataError(f"{path}:{line}: not readable as CSV ({err}) — is this the annotation file? fix that line")


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise GazelabError(f"{path}: {what} not found — check the path")
    return path


def parse_float(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RowError("malformed row", f"{column}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError("non-finite value", f"{column}={text}")
    return value


def safe_relative(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` that would leave the dataset root."""
    if not relative:
        raise RowError("malformed row", "empty image path")
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise RowError("path escapes dataset root", relative)
    return root / candidate


def clamp_pixel_box(
    box: tuple[float, float, float, float], size: tuple[int, int] | None, report: LoadReport
) -> tuple[float, float, float, float]:
    """Clamp a pixel xyxy box to the image (to >= 0 alone while the size is unknown).

    Real files have boxes a few pixels outside the image; those are repaired and counted as a note. An
    inverted box or one with no area left is a :class:`RowError`.
    """
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        raise RowError("inverted head box", f"{box}")
    hi_x, hi_y = size if size is not None else (math.inf, math.inf)
    clamped = (min(max(x1, 0.0), hi_x), min(max(y1, 0.0), hi_y), min(max(x2, 0.0), hi_x), min(max(y2, 0.0), hi_y))
    if clamped != (x1, y1, x2, y2):
        report.note("head box clamped to the image")
    if clamped[2] - clamped[0] <= 0 or clamped[3] - clamped[1] <= 0:
        raise RowError("degenerate head box", f"{box}")
    return clamped


def pixel_box_to_box(box: tuple[float, float, float, float], size: tuple[int, int]) -> Box:
    return Box.from_pixels(*box, width=size[0], height=size[1])


class ImageSizes:
    """Finds images under a dataset root and reads their sizes (header only, cached per path).

    ``check``: True — every image must exist (missing ones reject their rows); False — never look at images
    (sizes stay unknown); None — decide from the data: if none of the first images exist the file is read as
    annotations only, otherwise as with True.
    """

    PROBE = 16

    def __init__(self, root: Path, check: bool | None) -> None:
        self.root = root
        self.check = check
        self._cache: dict[str, tuple[int, int]] = {}
        self._probed: list[str] = []

    def decide(self, relative_paths: list[str]) -> bool:
        """Resolve the ``None`` (auto) mode from a sample of the paths; returns whether images are used."""
        if self.check is None:
            sample = [p for p in relative_paths[: self.PROBE] if p]
            self.check = any(self._exists(p) for p in sample)
        return self.check

    def _exists(self, relative: str) -> bool:
        try:
            return safe_relative(self.root, relative).is_file()
        except RowError:
            return False

    def size(self, relative: str) -> tuple[int, int] | None:
        """Size of the image, None when images are not used; :class:`RowError` when it is missing/unreadable."""
        if not self.check:
            return None
        if relative in self._cache:
            return self._cache[relative]
        path = safe_relative(self.root, relative)
        if not os.path.isfile(path):
            raise RowError("missing image file", str(relative))
        try:
            size = image_size(path)
        except DataError as err:
            raise RowError("unreadable image", str(err)) from None
        self._cache[relative] = size
        return size


def pixel_text(value: float) -> str:
    """A pixel coordinate as written back to a file: rounded to 1e-6 px, whole pixels without ``.0``."""
    value = round(float(value), 6)
    return str(int(value)) if value.is_integer() else repr(value)


def new_frame(rel: str, sizes: ImageSizes, root: Path, **fields: object) -> Frame:
    """A frame for image ``rel`` with its size when images are used (None otherwise)."""
    size = sizes.size(rel) if sizes.check else None
    return Frame(path=rel, width=size[0] if size else None, height=size[1] if size else None, root=root,
                 **fields)  # type: ignore[arg-type]  # fmt: skip
