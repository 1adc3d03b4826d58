"""Torch datasets over :class:`~gazelab.types.Frame` records, and the collate functions that batch them.

Samples are canonical, not model-specific: the (augmented) full image as uint8 [3, H, W] — resized to
``SampleConfig.image_size`` or kept at its size — with every coordinate normalized and the 64x64 target
heatmaps. Each model makes its own inputs from this (448 px + box tokens, 224 px + head channel + face crop,
...), so one dataset serves every family.

Three views of the same frames:

- :class:`PersonDataset` — one sample per person (training, as the references: an image is loaded once per
  person);
- :class:`ImageDataset` — one sample per image with all its people (evaluation, multi-person models);
- :class:`SequenceDataset` — windows of consecutive frames of one head track (temporal models, VAT).

A person/image sample holds ``image``, ``heads`` [P, 4], ``gaze`` [P, A, 2] (annotator points, ``-1`` where
missing or out of frame), ``inout`` [P] (1 in frame, 0 out, -1 unknown), ``heatmaps`` [P, 64, 64] (the
Gaussian of the single annotator, Chong's multi-annotator map when there are several, zeros when out),
``person_index`` [P] (position in ``Frame.people``), ``size`` (original width, height), ``path`` and
``labels`` (each person's target class name or None; semantic models turn them into ids).
:func:`collate_people` flattens the people of a batch with an ``image_index`` so an image is encoded once and
its people are queries on it; annotators are padded to 20 with ``-1`` as the references do.

Augmentation is seeded per (seed, epoch, sample index): a sample is the same whichever worker loads it, and
:meth:`set_epoch` changes every sample between epochs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F

from gazelab.data.targets import HEATMAP_SIZE, SIGMA, GaussianRule, annotator_heatmaps
from gazelab.data.transforms import AugmentConfig, AugmentParams, GazeAugment
from gazelab.errors import DataError
from gazelab.io import load_image
from gazelab.types import Box, Frame, Person

ANNOTATORS = 20
"""GazeFollow test persons have up to 20 annotators; batches pad to this many (more if a person has more)."""

Sample = dict[str, Any]


@dataclass(frozen=True)
class SampleConfig:
    """How samples are made: output image size, augmentation recipe, target heatmap rule, seed."""

    image_size: int | tuple[int, int] | None = None
    """Resize the (augmented) image to this (square int, or (height, width)); None keeps the original size."""
    augment: AugmentConfig | str | None = None
    """An :class:`AugmentConfig` or preset name (``gazelle``, ``vat``, ``pdp``, ``semgaze``, ``gcdr``)."""
    heatmap_rule: GaussianRule = "gazelle"
    """Gaussian placement of the target (see :mod:`gazelab.data.targets`): ``gazelle`` or ``chong``."""
    heatmap_size: int = HEATMAP_SIZE
    sigma: int = SIGMA
    seed: int = 0


def _head(person: Person, width: int, height: int) -> Box:
    """The normalized head box, clamped to the image (pixel boxes of annotation-only reads normalized here)."""
    if person.head is not None:
        return person.head.clamp()
    assert person.head_px is not None, "filtered out by _usable"
    return Box.from_pixels(*person.head_px, width=width, height=height).clamp()


def _usable(frame: Frame, index: int, person: Person) -> bool:
    """Whether a person can be a sample; an in-frame person without points is an error, not a skip."""
    if person.head is None and person.head_px is None:
        return False
    if person.inout is True and not person.gaze:
        raise DataError(
            f"{frame.path}: person {index} is in frame but has no normalized gaze point — read the annotations "
            "with their images (image sizes are needed to normalize pixel points)"
        )
    return True


def _seed(*parts: int) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class _FrameDataset(Dataset):
    def __init__(self, frames: Sequence[Frame], config: SampleConfig | None) -> None:
        self.frames = list(frames)
        self.config = config or SampleConfig()
        self.augment = GazeAugment(self.config.augment) if self.config.augment is not None else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different augmentations from now on (workers see it when they are re-created each epoch)."""
        self.epoch = epoch

    def _generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(_seed(self.config.seed, self.epoch, index))

    def _load(self, frame: Frame) -> Tensor:
        return F.pil_to_tensor(load_image(frame.image_path))

    def _people(self, frame: Frame, indices: Sequence[int], width: int, height: int) -> tuple[Tensor, Tensor, Tensor]:
        """float64 heads [P, 4] and gaze [P, A, 2] (-1 padded), float32 inout [P] for the chosen people."""
        people = [frame.people[i] for i in indices]
        annotators = max([len(p.gaze) for p in people if p.inout is not False] + [1])
        heads = torch.tensor([_head(p, width, height).as_tuple() for p in people], dtype=torch.float64)
        gaze = torch.full((len(people), annotators, 2), -1.0, dtype=torch.float64)
        for row, person in enumerate(people):
            if person.inout is not False and person.gaze:
                gaze[row, : len(person.gaze)] = torch.tensor(person.gaze, dtype=torch.float64)
        inout = torch.tensor([-1.0 if p.inout is None else float(p.inout) for p in people])
        return heads, gaze, inout

    def _finish(self, image: Tensor, gaze: Tensor) -> tuple[Tensor, Tensor]:
        """Resize the image and draw the targets (from float64 points, as the references)."""
        if self.config.image_size is not None:
            size = self.config.image_size
            image = F.resize(image, [size, size] if isinstance(size, int) else list(size), antialias=True)
        cfg = self.config
        heatmaps = annotator_heatmaps(gaze, cfg.heatmap_size, cfg.sigma, cfg.heatmap_rule)
        return image, heatmaps

    def _image_sample(self, index: int, frame: Frame, people: Sequence[int]) -> Sample:
        image = self._load(frame)
        height, width = image.shape[-2:]
        heads, gaze, inout = self._people(frame, people, width, height)
        if self.augment is not None:
            image, heads, gaze = self.augment(image, heads, gaze, self._generator(index))
        image, heatmaps = self._finish(image, gaze)
        return {
            "image": image,
            "heads": heads.to(torch.float32),
            "gaze": gaze.to(torch.float32),
            "inout": inout,
            "heatmaps": heatmaps,
            "person_index": torch.tensor(list(people), dtype=torch.long),
            "size": torch.tensor([width, height], dtype=torch.long),
            "path": frame.path,
            "labels": [frame.people[i].label for i in people],
        }


class PersonDataset(_FrameDataset):
    """One sample per person with a head box (P = 1); ``in_frame_only`` keeps only in-frame targets."""

    def __init__(
        self, frames: Sequence[Frame], config: SampleConfig | None = None, in_frame_only: bool = False
    ) -> None:
        super().__init__(frames, config)
        self.index = [
            (f, p)
            for f, frame in enumerate(self.frames)
            for p, person in enumerate(frame.people)
            if _usable(frame, p, person) and (person.inout is True or not in_frame_only)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> Sample:
        f, p = self.index[index]
        return self._image_sample(index, self.frames[f], [p])


class ImageDataset(_FrameDataset):
    """One sample per image holding every person with a head box; images without one are left out."""

    def __init__(self, frames: Sequence[Frame], config: SampleConfig | None = None) -> None:
        super().__init__(frames, config)
        self.index = []
        for f, frame in enumerate(self.frames):
            people = [p for p, person in enumerate(frame.people) if _usable(frame, p, person)]
            if people:
                self.index.append((f, people))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> Sample:
        f, people = self.index[index]
        return self._image_sample(index, self.frames[f], people)


class SequenceDataset(_FrameDataset):
    """Windows of ``length`` consecutive frames of one head track, a new window every ``stride`` frames.

    Tracks are the people sharing ``Frame.clip`` and ``Person.track_id`` (people without either are left
    out), ordered by ``frame_index``. The last window of a track may be shorter; windows stop once one reaches
    the track's end. One set of augmentation choices covers the whole window (the crop keeps the head and gaze
    of every frame), as in VAT training. A sample holds ``images`` [T, 3, H, W], ``heads`` [T, 4], ``gaze``
    [T, A, 2], ``inout`` [T], ``heatmaps`` [T, 64, 64], ``paths``, ``size`` and ``track`` (``clip/track_id``).
    """

    def __init__(
        self, frames: Sequence[Frame], length: int, stride: int | None = None, config: SampleConfig | None = None
    ) -> None:
        super().__init__(frames, config)
        if length < 1 or (stride is not None and stride < 1):
            raise ValueError("length and stride must be at least 1")
        stride = stride or length
        tracks: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for f, frame in enumerate(self.frames):
            for p, person in enumerate(frame.people):
                if frame.clip is not None and person.track_id is not None and _usable(frame, p, person):
                    tracks.setdefault((frame.clip, person.track_id), []).append((f, p))
        self.windows: list[tuple[str, list[tuple[int, int]]]] = []
        for (clip, track_id), members in sorted(tracks.items()):
            members.sort(key=lambda m: (self.frames[m[0]].frame_index or 0, self.frames[m[0]].path))
            for start in range(0, len(members), stride):
                self.windows.append((f"{clip}/{track_id}", members[start : start + length]))
                if start + length >= len(members):
                    break

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> Sample:
        track, members = self.windows[index]
        frames = [self.frames[f] for f, _ in members]
        images = [self._load(frame) for frame in frames]
        height, width = images[0].shape[-2:]
        if any(image.shape != images[0].shape for image in images):
            raise DataError(f"{track}: frames of one track differ in size — cannot batch them as a sequence")
        people = [self._people(frame, [p], width, height) for frame, (_, p) in zip(frames, members)]
        heads = torch.cat([h for h, _, _ in people])
        gaze = _pad_annotators([g for _, g, _ in people], max(g.shape[1] for _, g, _ in people))
        inout = torch.cat([i for _, _, i in people])
        if self.augment is not None:
            params = self.augment.sample(heads[:, None], gaze[:, None], (height, width), self._generator(index))
            images, heads, gaze = _apply_to_frames(self.augment, params, images, heads, gaze)
        outputs = [self._finish(image, g[None]) for image, g in zip(images, gaze)]
        return {
            "images": torch.stack([image for image, _ in outputs]),
            "heads": heads.to(torch.float32),
            "gaze": gaze.to(torch.float32),
            "inout": inout,
            "heatmaps": torch.cat([maps for _, maps in outputs]),
            "size": torch.tensor([width, height], dtype=torch.long),
            "paths": [frame.path for frame in frames],
            "track": track,
        }


def _apply_to_frames(
    augment: GazeAugment, params: AugmentParams, images: list[Tensor], heads: Tensor, gaze: Tensor
) -> tuple[list[Tensor], Tensor, Tensor]:
    """The same choices on every frame (``heads`` [T, 4] and ``gaze`` [T, A, 2]: one person per frame)."""
    results = [augment.apply(params, im, h[None], g[None]) for im, h, g in zip(images, heads, gaze)]
    return [r[0] for r in results], torch.cat([r[1] for r in results]), torch.cat([r[2] for r in results])


def _pad_annotators(gaze: Sequence[Tensor], annotators: int) -> Tensor:
    """Concatenate [P_i, A_i, 2] point tensors along people, padding annotators to ``annotators`` with -1."""
    padded = [torch.cat([g, g.new_full((g.shape[0], annotators - g.shape[1], 2), -1.0)], dim=1) for g in gaze]
    return torch.cat(padded)


def _stack_or_list(tensors: list[Tensor]) -> Tensor | list[Tensor]:
    """One tensor when every image has the same size, else the list (original-size images)."""
    if all(t.shape == tensors[0].shape for t in tensors):
        return torch.stack(tensors)
    return tensors


def collate_people(samples: Sequence[Sample]) -> Sample:
    """Batch person or image samples: images stacked (a list if sizes differ), people flattened.

    Returns ``images`` [B, 3, H, W], ``heads`` [N, 4], ``gaze`` [N, max(20, A), 2], ``inout`` [N],
    ``heatmaps`` [N, 64, 64], ``image_index`` [N] (which image each person is in), ``person_index`` [N],
    ``sizes`` [B, 2], ``paths`` and ``labels`` (one class name or None per person).
    """
    gaze = [s["gaze"] for s in samples]
    annotators = max([ANNOTATORS] + [g.shape[1] for g in gaze])
    return {
        "images": _stack_or_list([s["image"] for s in samples]),
        "heads": torch.cat([s["heads"] for s in samples]),
        "gaze": _pad_annotators(gaze, annotators),
        "inout": torch.cat([s["inout"] for s in samples]),
        "heatmaps": torch.cat([s["heatmaps"] for s in samples]),
        "image_index": torch.cat([torch.full((len(s["heads"]),), i, dtype=torch.long) for i, s in enumerate(samples)]),
        "person_index": torch.cat([s["person_index"] for s in samples]),
        "sizes": torch.stack([s["size"] for s in samples]),
        "paths": [s["path"] for s in samples],
        "labels": [label for s in samples for label in s.get("labels", [None] * len(s["heads"]))],
    }


def collate_sequences(samples: Sequence[Sample]) -> Sample:
    """Batch sequence samples, padding to the longest window; ``frame_mask`` [B, T] marks real frames.

    ``images`` is [B, T, 3, H, W], or a list of [T, 3, H_i, W_i] when windows differ in size.
    Padded frames have zero images and heatmaps, ``-1`` gaze and in/out, and zero head boxes.
    """
    length = max(len(s["heads"]) for s in samples)
    annotators = max([ANNOTATORS] + [s["gaze"].shape[1] for s in samples])

    def pad(t: Tensor, fill: float) -> Tensor:
        return torch.cat([t, t.new_full((length - t.shape[0], *t.shape[1:]), fill)])

    return {
        "images": _stack_or_list([pad(s["images"], 0) for s in samples]),
        "heads": torch.stack([pad(s["heads"], 0.0) for s in samples]),
        "gaze": torch.stack([pad(_pad_annotators([s["gaze"]], annotators), -1.0) for s in samples]),
        "inout": torch.stack([pad(s["inout"], -1.0) for s in samples]),
        "heatmaps": torch.stack([pad(s["heatmaps"], 0.0) for s in samples]),
        "frame_mask": torch.stack([torch.arange(length) < len(s["heads"]) for s in samples]),
        "sizes": torch.stack([s["size"] for s in samples]),
        "paths": [s["paths"] for s in samples],
        "tracks": [s["track"] for s in samples],
    }
