"""The one interface every gaze model family implements (Gaze-LLE now; VAT, PDP, SemGaze later).

Predictor, trainer and evaluator talk to models only through this, so they never branch on the family:

- :meth:`GazeModel.prepare` turns pictures (PIL, ``HxWx3`` uint8 arrays, ``3xHxW`` uint8 tensors) and each
  picture's head boxes into model tensors. Each family owns its preprocessing (Gaze-LLE: 448 px ImageNet
  normalised images + 32x32 head masks; VAT: 224 px + head channel + head crop), because that is where
  silent accuracy losses hide.
- :meth:`GazeModel.encode` runs the image encoder once per image; :meth:`GazeModel.decode` answers every
  person of every image from those features. Multi-person scenes cost one encoding, and frozen-backbone
  features can be cached and fed straight to ``decode``.
- ``forward`` is both; every family returns a :class:`GazeOutput`.

A model's (usually frozen) image encoder is its ``backbone`` attribute, so checkpoint code can load it
separately from the published backbone weights.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from gazelab.errors import GazelabError
from gazelab.types import Box

ImageLike = Image.Image | np.ndarray | Tensor
"""An RGB picture: PIL image, ``HxWx3`` uint8 array, or ``3xHxW`` uint8 tensor (the dataset's layout)."""
HeadLike = Box | Sequence[float] | None
"""A normalized xyxy head box, or None for a person whose head box is unknown."""


@dataclass
class People:
    """Per-person model inputs: every tensor's first dimension is the person, across all images of a batch."""

    boxes: Tensor
    """[P, 4] float32 normalized xyxy head boxes; a NaN row means "no box"."""
    image_index: Tensor
    """[P] long: which image of the batch each person is in."""
    extras: dict[str, Tensor] = field(default_factory=dict)
    """Family-specific per-person tensors made by ``prepare_people`` (Gaze-LLE: ``head_maps``)."""

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> People:
        extras = {k: v.to(device) for k, v in self.extras.items()}
        return People(self.boxes.to(device), self.image_index.to(device), extras)


@dataclass
class ModelInput:
    """Everything ``forward`` needs: prepared images [B, ...] and the people on them."""

    images: Tensor
    people: People

    def to(self, device: torch.device | str) -> ModelInput:
        return ModelInput(self.images.to(device), self.people.to(device))


@dataclass
class GazeOutput:
    """What every family answers, one row per person (in input order)."""

    heatmap: Tensor
    """[P, 64, 64] in [0, 1]."""
    inout: Tensor | None = None
    """[P] probability that the target is inside the frame; None for models without an in/out head."""
    gaze_vector: Tensor | None = None
    """[P, 2] unit 2-D gaze direction (families that predict one)."""
    label_embedding: Tensor | None = None
    """[P, D] embedding of the looked-at object's label (semantic families)."""


def head_boxes(heads_per_image: Sequence[Sequence[HeadLike] | None]) -> tuple[Tensor, Tensor]:
    """User head boxes -> ``(boxes [P, 4] float64 with NaN rows for None, image_index [P])``.

    ``None`` in place of an image's list means one person without a box (enough for one-person pictures).
    """
    rows: list[tuple[float, float, float, float]] = []
    index: list[int] = []
    for image_number, heads in enumerate(heads_per_image):
        for head in [None] if heads is None else heads:
            rows.append(_box_row(head, image_number))
            index.append(image_number)
    boxes = torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)
    return boxes, torch.tensor(index, dtype=torch.long)


def _box_row(head: HeadLike, image_number: int) -> tuple[float, float, float, float]:
    if head is None:
        return (math.nan,) * 4
    if isinstance(head, Box):
        return head.as_tuple()
    try:
        values = [float(v) for v in head]
        if len(values) != 4:
            raise ValueError(f"expected 4 numbers, got {len(values)}")
        return Box(*values).as_tuple()
    except (TypeError, ValueError) as err:
        raise GazelabError(
            f"image {image_number}: bad head box {head!r} ({err}) — give normalized (x1, y1, x2, y2) in [0, 1], "
            "a gazelab.Box, or None"
        ) from None


def image_tensor(image: ImageLike) -> Tensor:
    """Any accepted picture as a ``3xHxW`` uint8 tensor (writable arrays and tensors are not copied)."""
    if isinstance(image, Image.Image):
        image = np.array(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise GazelabError(f"image array must be HxWx3 uint8 RGB, got {image.dtype} of shape {image.shape}")
        if not image.flags.writeable:  # torch cannot wrap read-only memory
            image = image.copy()
        return torch.from_numpy(image).permute(2, 0, 1)
    if isinstance(image, Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise GazelabError(f"image tensor must be 3xHxW uint8 RGB, got {image.dtype} of shape {tuple(image.shape)}")
        return image
    raise GazelabError(f"unsupported image type {type(image).__name__}: give a PIL image, numpy array or tensor")


class GazeModel(nn.Module, ABC):
    """Base class of every gaze model family (see the module docstring for the contract)."""

    heatmap_size: int = 64
    has_inout: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @abstractmethod
    def prepare_images(self, images: Sequence[ImageLike] | Tensor) -> Tensor:
        """Pictures (or a uint8 batch [B, 3, H, W]) -> the encoder's input batch, on the model's device."""

    def prepare_people(self, boxes: Tensor, image_index: Tensor, images: Sequence[ImageLike] | Tensor) -> People:
        """Head boxes [P, 4] (NaN = none) and their image indices -> :class:`People` on the model's device.

        ``images`` are the original pictures, for families that cut head crops from them.
        """
        return People(boxes.to(self.device, torch.float32), image_index.to(self.device))

    def prepare(self, images: Sequence[ImageLike] | Tensor, heads: Sequence[Sequence[HeadLike] | None]) -> ModelInput:
        """Pictures and, per picture, a list of head boxes (or None: one unboxed person) -> model input."""
        if len(images) != len(heads):
            raise GazelabError(f"got {len(images)} images but head lists for {len(heads)}; give one list per image")
        boxes, image_index = head_boxes(heads)
        return ModelInput(self.prepare_images(images), self.prepare_people(boxes, image_index, images))

    @abstractmethod
    def encode(self, images: Tensor) -> Tensor:
        """Prepared images [B, ...] -> scene features [B, ...] (computed once per image)."""

    @abstractmethod
    def decode(self, features: Tensor, people: People) -> GazeOutput:
        """Scene features of a batch and the people on its images -> one output row per person."""

    def forward(self, inputs: ModelInput) -> GazeOutput:
        return self.decode(self.encode(inputs.images), inputs.people)
