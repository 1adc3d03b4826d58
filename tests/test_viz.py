from __future__ import annotations

import numpy as np
from PIL import Image

from gazelab.types import Box, GazePrediction, Person
from gazelab.viz import colour, draw_annotations, draw_predictions, heatmap_overlay


def _blank() -> Image.Image:
    return Image.new("RGB", (200, 100), (0, 0, 0))


def test_heatmap_overlay_lights_up_where_the_heatmap_is_high() -> None:
    heat = np.zeros((64, 64), dtype=np.float32)
    heat[:, 48:] = 1.0  # right quarter
    out = np.asarray(heatmap_overlay(_blank(), heat))
    assert out[:, 160:].mean() > 50 and out[:, :100].max() == 0


def test_draw_predictions_draws_line_to_point_and_keeps_input() -> None:
    image = _blank()
    pred = GazePrediction(heatmap=np.zeros((64, 64)), point=(0.9, 0.5), inout=0.9, head=Box(0.1, 0.4, 0.2, 0.6))
    out = np.asarray(draw_predictions(image, [pred]))
    assert np.asarray(image).max() == 0  # input untouched
    assert tuple(out[50, 180]) == colour(0)  # the gaze point is drawn at (0.9, 0.5)
    assert tuple(out[50, 100]) == colour(0)  # on the line from the head centre
    outside = GazePrediction(heatmap=np.zeros((64, 64)), point=(0.9, 0.5), inout=0.1, head=Box(0.1, 0.4, 0.2, 0.6))
    assert tuple(np.asarray(draw_predictions(image, [outside]))[50, 180]) == (0, 0, 0)  # no line when out


def test_draw_annotations_marks_each_person_in_its_colour() -> None:
    people = [Person(head=Box(0.1, 0.1, 0.2, 0.3), gaze=((0.5, 0.5),), inout=True),
              Person(head=Box(0.7, 0.1, 0.8, 0.3), gaze=((0.25, 0.8),), inout=True)]  # fmt: skip
    out = np.asarray(draw_annotations(_blank(), people))
    assert tuple(out[10, 20]) == colour(0) and tuple(out[10, 140]) == colour(1)
