"""Image inference: encode a picture once, then ask about as many people on it as wanted.

The backbone is by far the costly part of every model, so :meth:`Predictor.set_image` runs it once and
:meth:`Predictor.predict` only runs the decoder, for all the given people in one batch. The predictor works
with any :class:`~gazelab.models.base.GazeModel`; it never looks at the family.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from gazelab.data.targets import heatmap_argmax_point
from gazelab.errors import GazelabError
from gazelab.io import load_image
from gazelab.models.base import GazeModel, GazeOutput, HeadLike, ImageLike, head_boxes
from gazelab.types import Box, GazePrediction

ImageSource = ImageLike | str | Path
"""A picture in memory, or the path of an image file (EXIF orientation applied)."""


def _load(image: ImageSource) -> ImageLike:
    return load_image(image) if isinstance(image, (str, Path)) else image


def _head_list(heads: Sequence[HeadLike] | Box | None) -> list[HeadLike]:
    """``None`` -> one person without a box; a single Box -> that person; else the sequence as given."""
    if heads is None:
        return [None]
    if isinstance(heads, Box):
        return [heads]
    return list(heads)


def _as_box(head: HeadLike) -> Box | None:
    if head is None or isinstance(head, Box):
        return head
    return Box(*(float(v) for v in head))


def _predictions(output: GazeOutput, heads: Sequence[HeadLike]) -> list[GazePrediction]:
    """One :class:`GazePrediction` per person; heatmaps become CPU float32 numpy arrays."""
    heatmaps = output.heatmap.float().cpu()
    points = heatmap_argmax_point(heatmaps).tolist()
    inout = output.inout.float().cpu().tolist() if output.inout is not None else [None] * len(heads)
    vectors = output.gaze_vector.float().cpu().tolist() if output.gaze_vector is not None else [None] * len(heads)
    return [
        GazePrediction(
            heatmap=heatmaps[i].numpy(),
            point=(points[i][0], points[i][1]),
            inout=inout[i],
            head=_as_box(head),
            gaze_vector=None if vectors[i] is None else (vectors[i][0], vectors[i][1]),
        )
        for i, head in enumerate(heads)
    ]


class Predictor:
    """Where people in a picture look, with any gazelab model.

    >>> predictor = Predictor(create_model("gazelle_dinov2_vitb14_inout", pretrained=True))
    >>> predictor.set_image("photo.jpg")
    >>> first, second = predictor.predict([(0.1, 0.2, 0.2, 0.35), (0.6, 0.1, 0.7, 0.3)])
    """

    def __init__(self, model: GazeModel, device: str | torch.device | None = None) -> None:
        self.model = model.eval() if device is None else model.to(device).eval()
        self._image: ImageLike | None = None
        self._features: Tensor | None = None

    @torch.inference_mode()
    def set_image(self, image: ImageSource) -> None:
        """Encode ``image`` (PIL, ``HxWx3`` uint8 array, ``3xHxW`` uint8 tensor, or a path) for later queries."""
        self._image = _load(image)
        self._features = self.model.encode(self.model.prepare_images([self._image]))

    @torch.inference_mode()
    def predict(self, heads: Sequence[HeadLike] | Box | None = None) -> list[GazePrediction]:
        """One prediction per head box (normalized xyxy ``Box`` or 4-tuple, or None for an unknown box).

        ``heads=None`` asks about one person without a box — enough when the picture shows one person.
        """
        if self._features is None:
            raise GazelabError("no image set: call set_image(image) before predict(heads)")
        people = _head_list(heads)
        boxes, image_index = head_boxes([people])
        output = self.model.decode(self._features, self.model.prepare_people(boxes, image_index, [self._image]))
        return _predictions(output, people)

    @torch.inference_mode()
    def predict_batch(
        self, images: Sequence[ImageSource], heads_per_image: Sequence[Sequence[HeadLike] | Box | None]
    ) -> list[list[GazePrediction]]:
        """Several pictures in one forward pass; one list of predictions per picture, in order."""
        if len(images) != len(heads_per_image):
            raise GazelabError(f"got {len(images)} images but head lists for {len(heads_per_image)}")
        pictures = [_load(image) for image in images]
        heads = [_head_list(h) for h in heads_per_image]
        flat = _predictions(self.model(self.model.prepare(pictures, heads)), [h for hs in heads for h in hs])
        result, start = [], 0
        for people in heads:
            result.append(flat[start : start + len(people)])
            start += len(people)
        return result
