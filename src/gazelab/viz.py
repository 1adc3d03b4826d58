"""Drawing what a model or an annotation says: head boxes, gaze lines, heatmaps, in/out and label captions.

One colour per person (stable by index) so the box, the line and the caption of a person match. Drawing works
on a copy; the caller's image is never modified.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from gazelab.types import Box, GazePrediction, Person

PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190),
)  # fmt: skip


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def heatmap_overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """Blend a [h, w] heatmap in [0, 1] (any resolution) over the image with a black-red-yellow ramp."""
    values = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    ramp = np.stack([np.clip(values * 2, 0, 1), np.clip(values * 2 - 1, 0, 1), np.zeros_like(values)], -1)
    coloured = Image.fromarray((ramp * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    weight = Image.fromarray((values * 255 * alpha).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    out = image.convert("RGB").copy()
    out.paste(coloured, mask=weight)
    return out


def _pixels(box: Box, size: tuple[int, int]) -> tuple[float, float, float, float]:
    return box.to_pixels(*size)


def draw_gaze(
    image: Image.Image,
    people: Sequence[tuple[Box | None, tuple[float, float] | None, str]],
    width: int | None = None,
) -> Image.Image:
    """Draw (head box, gaze point, caption) triples: box, a line from the head centre to the point, a dot."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    size = out.size
    width = width or max(2, round(min(size) / 200))
    for index, (head, point, caption) in enumerate(people):
        col = colour(index)
        start = (size[0] / 2, size[1] / 2)
        if head is not None:
            x1, y1, x2, y2 = _pixels(head, size)
            draw.rectangle((x1, y1, x2, y2), outline=col, width=width)
            start = ((x1 + x2) / 2, (y1 + y2) / 2)
            anchor = (x1, max(0.0, y1 - 12 - width))
        else:
            anchor = (2.0, 2.0 + 14 * index)
        if point is not None:
            end = (point[0] * size[0], point[1] * size[1])
            draw.line((start, end), fill=col, width=width)
            r = 2 * width + 1
            draw.ellipse((end[0] - r, end[1] - r, end[0] + r, end[1] + r), fill=col, outline=(0, 0, 0))
        if caption:
            draw.text(anchor, caption, fill=col)
    return out


def draw_predictions(image: Image.Image, predictions: Sequence[GazePrediction], heatmap: bool = True) -> Image.Image:
    """Predictions on the image: the heatmap of the first person (if asked), then boxes, lines and captions.

    A person whose in/out probability is below 0.5 gets no line (the model says the target is outside).
    """
    out = image
    if heatmap and predictions:
        out = heatmap_overlay(image, np.asarray(predictions[0].heatmap))
    items = []
    for pred in predictions:
        caption = []
        if pred.inout is not None:
            caption.append(f"in {pred.inout:.2f}")
        if pred.labels:  # a semantic model's top labels with their similarity
            caption.append(", ".join(f"{name} {score:.2f}" for name, score in pred.labels[:3]))
        looks_inside = pred.inout is None or pred.inout >= 0.5
        items.append((pred.head, pred.point if looks_inside else None, " ".join(caption)))
    return draw_gaze(out, items)


def draw_annotations(image: Image.Image, people: Sequence[Person]) -> Image.Image:
    """Ground truth on the image: every annotator point of each person, the line to their mean point."""
    out = draw_gaze(image, [(p.head, p.gaze_point, p.label or ("out" if p.inout is False else "")) for p in people])
    draw = ImageDraw.Draw(out)
    for index, person in enumerate(people):
        for x, y in person.gaze:
            px, py = x * out.size[0], y * out.size[1]
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), outline=colour(index))
    return out
