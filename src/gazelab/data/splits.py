"""Seeded labelled/unlabelled splits for semi-supervised training (GCDR's 5/10/20 % settings).

The unit is the image — or the clip for video datasets — so no image (clip) has people on both sides; the
reference split person rows without a seed, which leaks images across the split. The labelled units are the
``round(fraction * n)`` units with the smallest keyed hash ``blake2b(seed, unit)``: the result depends only on
the seed and the set of units (not on file order, platform or library versions), and is reproducible bit
for bit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from gazelab.errors import GazelabError
from gazelab.types import Frame


def split_unit(frame: Frame) -> str:
    """What must stay on one side of the split: the clip of a video frame, else the image path."""
    return f"clip:{frame.clip}" if frame.clip is not None else f"image:{frame.path}"


def _rank(seed: int, unit: str) -> bytes:
    return hashlib.blake2b(unit.encode("utf-8"), digest_size=16, key=str(seed).encode()).digest()


def split_frames(frames: Sequence[Frame], fraction: float, seed: int = 0) -> tuple[list[Frame], list[Frame]]:
    """(labelled, unlabelled) frames, each in input order, with ``fraction`` of the images (clips) labelled."""
    if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
        raise GazelabError(f"--fraction must be between 0 and 1, got {fraction}")
    units = sorted({split_unit(frame) for frame in frames})
    count = math.floor(fraction * len(units) + 0.5)
    labelled = set(sorted(units, key=lambda unit: _rank(seed, unit))[:count])
    chosen = [frame for frame in frames if split_unit(frame) in labelled]
    rest = [frame for frame in frames if split_unit(frame) not in labelled]
    return chosen, rest
