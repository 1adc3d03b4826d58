"""Depth maps for PDP training: read beside the images, augmented with them, handed to the model per person.

PDP's depth model takes a depth map aligned with the scene, so a depth map must go through exactly the crop and
flip of its image. Rather than teach every dataset a second picture, the depth map rides along as a fourth
channel of the loaded image: geometry (crop, flip, resize) applies to all four channels, colour jitter to the
first three only (:class:`DepthAwareAugment`). The collate functions split it off again into
``extras["depth"]`` [P, 1, 224, 224] in [0, 1], one map per person of the image, which
:class:`~gazelab.train.module.GazeModule` passes to the model as ``people.extras``.

Files: ``<dataset root>/<depth_dir>/<image path with .png>`` (the layout ``gazelab synth --depth`` writes),
16-bit (value / 65535) or 8-bit (value / 255); larger means nearer. Carried as 8 bits, like the image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from gazelab.data.dataset import ImageDataset, PersonDataset, Sample, SequenceDataset
from gazelab.data.transforms import AugmentParams, GazeAugment
from gazelab.errors import DataError
from gazelab.models.pdp import read_depth_file
from gazelab.models.vat import INPUT_SIZE
from gazelab.types import Frame

Collate = Callable[[Sequence[Sample]], Sample]


def depth_path(frame: Frame, depth_dir: str) -> Path:
    """Where the depth map of ``frame`` lives."""
    root = frame.root if frame.root is not None else Path()
    return root / depth_dir / Path(frame.path).with_suffix(".png")


def read_depth(path: Path, size: tuple[int, int]) -> Tensor:
    """A depth PNG as uint8 [1, H, W] at ``size`` (H, W) of its image."""
    depth = (read_depth_file(path) * 255).round().to(torch.uint8)
    if tuple(depth.shape[-2:]) != size:
        depth = F.resize(depth, list(size), antialias=True)
    return depth


class DepthAwareAugment:
    """A :class:`GazeAugment` for 4-channel (RGB + depth) images: colour changes touch RGB only."""

    def __init__(self, augment: GazeAugment) -> None:
        self.augment = augment

    def sample(self, *args, **kwargs) -> AugmentParams:
        return self.augment.sample(*args, **kwargs)

    def apply(self, params: AugmentParams, image: Tensor, heads: Tensor, gaze: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rgb, new_heads, new_gaze = self.augment.apply(params, image[:3], heads, gaze)
        depth, _, _ = self.augment.apply(replace(params, color=()), image[3:], heads, gaze)
        return torch.cat([rgb, depth]), new_heads, new_gaze

    def __call__(
        self, image: Tensor, heads: Tensor, gaze: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        params = self.sample(heads, gaze, (image.shape[-2], image.shape[-1]), generator)
        return self.apply(params, image, heads, gaze)


class _WithDepth:
    """Mixin for the frame datasets: load each image with its depth map as a fourth channel."""

    def __init__(self, *args, depth_dir: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.depth_dir = depth_dir
        if self.augment is not None:
            self.augment = DepthAwareAugment(self.augment)

    def _load(self, frame: Frame) -> Tensor:
        image = super()._load(frame)
        path = depth_path(frame, self.depth_dir)
        if not path.is_file():
            raise DataError(f"{path}: depth map of {frame.path} not found — PDP depth training needs one per image")
        return torch.cat([image, read_depth(path, (image.shape[-2], image.shape[-1]))])


class DepthPersonDataset(_WithDepth, PersonDataset):
    """:class:`PersonDataset` whose images carry depth as a fourth channel."""


class DepthImageDataset(_WithDepth, ImageDataset):
    """:class:`ImageDataset` whose images carry depth as a fourth channel."""


class DepthSequenceDataset(_WithDepth, SequenceDataset):
    """:class:`SequenceDataset` whose frames carry depth as a fourth channel."""


DEPTH_VARIANTS: dict[type, type] = {
    PersonDataset: DepthPersonDataset,
    ImageDataset: DepthImageDataset,
    SequenceDataset: DepthSequenceDataset,
}


def _person_depth(image: Tensor) -> Tensor:
    """uint8 [1, H, W] -> float [1, 224, 224] in [0, 1] (the scene's size in the Chong-style models)."""
    return F.resize(image.float() / 255.0, [INPUT_SIZE, INPUT_SIZE], antialias=True).clamp(0, 1)


class SplitDepth:
    """Wraps a collate function: RGB stays in ``images``, depth goes to ``extras["depth"]`` per person."""

    def __init__(self, collate: Collate) -> None:
        self.collate = collate

    def __call__(self, samples: Sequence[Sample]) -> Sample:
        batch = self.collate(samples)
        images = batch["images"]
        depth = [_person_depth(image[3:]) for image in images]
        batch["images"] = images[:, :3] if isinstance(images, Tensor) else [image[:3] for image in images]
        batch.setdefault("extras", {})["depth"] = torch.stack(depth)[batch["image_index"]]
        return batch
