"""Frames in: a video file (anything FFmpeg decodes, through PyAV) or a folder of frame images, one at a time.

PyAV is used rather than OpenCV because its wheels bundle FFmpeg (H.264/HEVC/VP9 decoders included) on every
platform and it reports the stream's frame rate and frame count without decoding. Frames are decoded lazily
and handed out one by one, so a long video never sits in memory. ``stride`` keeps every ``stride``-th frame;
a frame keeps its index in the source, so rows of the output refer to the original frame numbers.

A folder of frames is read in natural file name order (``frame2.jpg`` before ``frame10.jpg``); it has no frame
rate of its own, so the caller gives one (VideoAttentionTarget clips are stored as such folders).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from gazelab.errors import DataError, GazelabError
from gazelab.io import load_image_array

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEFAULT_FOLDER_FPS = 25.0
"""Frame rate assumed for a folder of frames when none is given (VideoAttentionTarget's clips are 25-30 fps)."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its index in the source (before striding), time in seconds, RGB pixels, name."""

    index: int
    time: float
    pixels: np.ndarray
    """``HxWx3`` uint8 RGB."""
    name: str
    """The frame's file name for a folder; ``"<index>"`` for a video file."""


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class VideoSource:
    """A video file or a folder of frames, read lazily.

    >>> source = VideoSource("clip.mp4", stride=2)
    >>> for frame in source: ...
    """

    def __init__(self, path: str | Path, stride: int = 1, fps: float | None = None) -> None:
        self.path = Path(path)
        if stride < 1:
            raise GazelabError(f"stride must be at least 1, got {stride}")
        if fps is not None and not fps > 0:
            raise GazelabError(f"frame rate must be positive, got {fps}")
        self.stride = stride
        self.frame_names: list[str] | None = None
        """File names of a frame folder in reading order; None for a video file."""
        self._name_index: dict[str, int] | None = None
        if self.path.is_dir():
            files = [p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            if not files:
                raise GazelabError(f"{self.path}: folder holds no frame images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            self.frame_names = sorted((p.name for p in files), key=_natural_key)
            self.fps = float(fps or DEFAULT_FOLDER_FPS)
            self.frame_count: int | None = len(self.frame_names)
            self.width, self.height = load_image_array(self.path / self.frame_names[0]).shape[1::-1]
        elif self.path.is_file():
            self._probe(fps)
        else:
            raise GazelabError(f"{self.path}: no such video file or frame folder")

    def _probe(self, fps: float | None) -> None:
        import av

        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise DataError(f"{self.path}: the file has no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or Fraction(DEFAULT_FOLDER_FPS)
                self.fps = float(fps or rate)
                self.frame_count = stream.frames or None
                self.width, self.height = stream.codec_context.width, stream.codec_context.height
        except av.error.FFmpegError as err:
            raise DataError(f"{self.path}: not a readable video ({err}); re-encode it or give a frame folder") from None

    def index_of(self, name: str) -> int | None:
        """Index of the frame file ``name`` in a frame folder (None if absent, or for a video file)."""
        if self.frame_names is None:
            return None
        if self._name_index is None:
            self._name_index = {n: i for i, n in enumerate(self.frame_names)}
        return self._name_index.get(name)

    @property
    def output_fps(self) -> float:
        """Frame rate of the processed frames (the source rate divided by the stride), so durations match."""
        return self.fps / self.stride

    def __len__(self) -> int:
        """Number of frames that will be yielded (0 when the video does not say how many it has)."""
        return 0 if self.frame_count is None else -(-self.frame_count // self.stride)

    def __iter__(self) -> Iterator[VideoFrame]:
        if self.frame_names is not None:
            for index in range(0, len(self.frame_names), self.stride):
                name = self.frame_names[index]
                yield VideoFrame(index, index / self.fps, load_image_array(self.path / name), name)
            return
        import av

        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for index, frame in enumerate(container.decode(stream)):
                    if index % self.stride == 0:
                        yield VideoFrame(index, index / self.fps, frame.to_ndarray(format="rgb24"), str(index))
        except av.error.FFmpegError as err:
            raise DataError(f"{self.path}: decoding failed ({err}) — the file may be truncated; re-encode it") from None
