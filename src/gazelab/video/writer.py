"""Frames out: an mp4 written frame by frame through PyAV (bounded memory, whatever the video's length).

H.264 (``libx264``, ``yuv420p``: what every browser and player plays) when the FFmpeg inside PyAV has it —
PyPI wheels do — else MPEG-4 Part 2 (``mpeg4``, always built into FFmpeg; larger files, plays in VLC/ffmpeg
but not in browsers), with a note on stderr. 4:2:0 chroma needs even sizes, so an odd width or height is
padded by repeating the last column/row.

The file is written as ``.<name>.part`` beside the target and renamed when it is finished, so an interrupted
run (Ctrl-C, a crash, ``kill -9``) never leaves a complete-looking but truncated video under the final name.
"""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from gazelab.errors import GazelabError

H264_CRF = "23"
"""libx264's default quality: visually clean overlays at a few Mb/s for 960x540."""


def pick_codec() -> str:
    """``libx264`` if this FFmpeg can encode H.264, else ``mpeg4``."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class VideoWriter:
    """Write RGB frames of one size to an mp4.

    >>> with VideoWriter("out.mp4", fps=25, size=(960, 540)) as writer:
    ...     writer.write(pixels)  # HxWx3 uint8
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], codec: str | None = None) -> None:
        import av

        self.path = Path(path)
        self.size = size
        self.codec = codec or pick_codec()
        if self.codec != "libx264":
            print(f"gazelab: note: no H.264 encoder in this FFmpeg; writing {self.path} as MPEG-4", file=sys.stderr)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(f".{self.path.name}.part")
        try:
            self._container = av.open(str(self._partial), mode="w", format="mp4")
        except av.error.FFmpegError as err:
            raise GazelabError(f"{self.path}: cannot write a video there ({err})") from None
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream(self.codec, rate=rate)
        self._stream.width, self._stream.height = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        self._stream.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            self._stream.options = {"crf": H264_CRF, "preset": "veryfast"}
        self.frames = 0

    def write(self, pixels: np.ndarray) -> None:
        """Append one ``HxWx3`` uint8 RGB frame of the writer's size."""
        import av

        if pixels.shape[1::-1] != self.size:
            raise GazelabError(f"{self.path}: frame {self.frames} is {pixels.shape[1]}x{pixels.shape[0]}, "
                               f"the video is {self.size[0]}x{self.size[1]}")  # fmt: skip
        pad = ((0, pixels.shape[0] % 2), (0, pixels.shape[1] % 2), (0, 0))
        if any(p[1] for p in pad):
            pixels = np.pad(pixels, pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder, finish the file and move it to its final name."""
        self._container.mux(self._stream.encode(None))
        self._container.close()
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        """Give up: close the unfinished file and delete it (the final name is left as it was)."""
        try:
            self._container.close()
        finally:
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is None:
            self.close()
        else:
            self.discard()
