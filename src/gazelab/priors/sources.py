"""Which frames a prior job covers: an annotation file of any format, or a whole synthetic dataset folder."""

from __future__ import annotations

from pathlib import Path

from gazelab.data.formats import read_annotations, read_gazefollow
from gazelab.errors import GazelabError
from gazelab.types import Frame

SYNTHETIC_FILES = ("train_annotations_release.txt", "test_annotations_release.txt")


def load_frames(
    data: str | Path, format: str | None = None, root: str | Path | None = None, split: str = "train"
) -> tuple[list[Frame], Path]:
    """Frames of ``data`` and the dataset root their paths are relative to.

    A synthetic image dataset folder (``gazelab synth``) stands for both of its GazeFollow files, train and
    test, so one store covers the whole dataset; anything else goes to :func:`read_annotations`.
    """
    data = Path(data)
    if data.is_dir() and (data / "synthetic.json").is_file() and (data / SYNTHETIC_FILES[0]).is_file():
        frames = [f for name in SYNTHETIC_FILES for f in read_gazefollow(data / name, root=root or data)]
        return frames, Path(root or data)
    frames = list(read_annotations(data, format=format, root=root, split=split))
    if not frames:
        raise GazelabError(f"{data}: no usable frames — check it with `gazelab data check {data}`")
    return frames, Path(root) if root else (data if data.is_dir() else data.parent)
