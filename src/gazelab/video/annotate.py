"""Drawing a processed frame: heatmap, then each person's head box, gaze line and caption.

A person keeps one colour for the whole video (the colour of their track's rank in order of first
appearance), which :func:`gazelab.viz.draw_gaze` gives by list position, so absent tracks hold their place
with empty entries. As in ``gazelab predict``, a person whose in/out probability is below 0.5 gets no line.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gazelab.types import Box
from gazelab.video.runner import FrameResult
from gazelab.viz import draw_gaze, heatmap_overlay

HEATMAPS = ("all", "none")
"""``all``: the maximum of everyone's heatmaps; ``none``; or a track id: that person's."""


def annotate(result: FrameResult, track_order: dict[str, int], heatmap: str = "all") -> np.ndarray:
    """The frame with the answers drawn on it (``HxWx3`` uint8)."""
    picture = Image.fromarray(result.pixels)
    maps = [p.heatmap for p in result.people if heatmap == "all" or p.track_id == heatmap]
    if maps and heatmap != "none":
        picture = heatmap_overlay(picture, np.max(maps, axis=0))
    slots: list[tuple[Box | None, tuple[float, float] | None, str]] = [(None, None, "")] * (
        max((track_order[p.track_id] for p in result.people), default=-1) + 1
    )
    for person in result.people:
        caption = person.track_id
        if person.inout is not None:
            caption += f" in {person.inout:.2f}"
        if person.label:
            caption += f" {person.label}"
        looks_inside = person.inout is None or person.inout >= 0.5
        slots[track_order[person.track_id]] = (person.head, person.point if looks_inside else None, caption)
    return np.asarray(draw_gaze(picture, slots))
